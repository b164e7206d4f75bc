//! Early writeback: the output file's dirty pages go to disk while the build is still running,
//! so the fsync before publishing has little left to do.
//!
//! Without it the kernel holds the whole file dirty in the page cache (the background threshold
//! is 10% of memory) and the final fsync writes all of it while every core waits (a large share
//! of a build's wall time: docs/bench/etl-history.md). Here the writer thread asks a helper thread for an
//! `fdatasync` after every [`STEP`] bytes; the helper syncs while the pipeline keeps encoding.
//!
//! Errors: a failed `fdatasync` may be reported to one caller only (the error state of the
//! open file description is consumed), so the helper's result is returned by [`finish`] and
//! fails the build; it is never dropped.
//!
//! [`finish`]: EarlySync::finish

use std::fs::File;
use std::io::{self, Write};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender, TrySendError};

/// Bytes written between two sync requests.
pub const STEP: u64 = 64 << 20;

/// A file whose written bytes are synced in the background every [`STEP`] bytes. Dropped
/// without [`EarlySync::finish`] (a failed build), the helper ends after its current sync.
#[derive(Debug)]
pub struct EarlySync {
    file: File,
    step: u64,
    since_request: u64,
    requests: Option<Sender<()>>,
    helper: Option<JoinHandle<io::Result<u32>>>,
}

impl EarlySync {
    /// Wraps `file`; the helper thread syncs a duplicate of its descriptor.
    ///
    /// # Errors
    /// Duplicating the descriptor or spawning the thread failed.
    pub fn new(file: File) -> io::Result<EarlySync> {
        EarlySync::with_step(file, STEP)
    }

    /// As [`EarlySync::new`], with a sync request every `step` bytes.
    ///
    /// # Errors
    /// As [`EarlySync::new`].
    pub fn with_step(file: File, step: u64) -> io::Result<EarlySync> {
        let dup = file.try_clone()?;
        // One pending request at most: a request made while the helper is busy is merged into
        // the pending one, since one fdatasync covers every page dirty when it starts.
        let (tx, rx) = bounded::<()>(1);
        let helper = std::thread::Builder::new()
            .name("quarry-sync".into())
            .spawn(move || {
                let mut syncs = 0u32;
                for () in rx {
                    dup.sync_data()?;
                    syncs += 1;
                }
                Ok(syncs)
            })?;
        Ok(EarlySync {
            file,
            step: step.max(1),
            since_request: 0,
            requests: Some(tx),
            helper: Some(helper),
        })
    }

    /// Stops the helper after its last sync and returns the file. The caller still fsyncs it:
    /// the bytes written since the last request are not on disk yet.
    ///
    /// # Errors
    /// A background `fdatasync` failed, or the helper thread panicked.
    pub fn finish(mut self) -> io::Result<(File, u32)> {
        let syncs = self.stop()?;
        Ok((self.file, syncs))
    }

    fn stop(&mut self) -> io::Result<u32> {
        self.requests = None;
        match self.helper.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the fsync thread panicked"))),
            None => Ok(0),
        }
    }
}

impl Write for EarlySync {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since_request += n as u64;
        if self.since_request >= self.step {
            self.since_request = 0;
            if let Some(tx) = &self.requests {
                match tx.try_send(()) {
                    Ok(()) | Err(TrySendError::Full(())) => {}
                    // The helper ended early: its sync failed. Report that error now.
                    Err(TrySendError::Disconnected(())) => {
                        return Err(match self.stop() {
                            Err(e) => e,
                            Ok(_) => io::Error::other("the fsync thread stopped"),
                        });
                    }
                }
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn every_byte_arrives_and_the_helper_syncs_along_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut w = EarlySync::with_step(File::create(&path).unwrap(), 2 << 20).unwrap();
        let block: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        let blocks = 9;
        for _ in 0..blocks {
            w.write_all(&block).unwrap();
        }
        let (file, syncs) = w.finish().unwrap();
        drop(file);
        // Each crossing of the step makes a request; at least the first is served.
        assert!(syncs >= 1, "no background sync ran");
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), blocks << 20);
        assert!(back.chunks(1 << 20).all(|c| c == block.as_slice()));
    }
}
