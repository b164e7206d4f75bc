//! The fetcher's disk side: a thread that appends downloaded bytes to a `.part` file and
//! hashes them in order, so the network side (the fetcher's tokio thread) never waits on the
//! disk or on SHA-256 while bytes are arriving.
//!
//! Memory: the channel holds at most [`DEPTH`] batches and the thread one more, on top of the
//! ranges the network side has in flight.
//!
//! A write error stops the thread; the next [`Sink::push`] fails and [`Sink::finish`] returns
//! the error. Bytes are written and hashed in exactly the order they were pushed, so after
//! `finish` the file holds `written` bytes whose SHA-256 state is `hasher`.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::thread::JoinHandle;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Batches queued between the network side and the disk thread.
pub const DEPTH: usize = 4;

/// What the disk thread hands back.
pub struct SinkEnd {
    pub file: File,
    pub hasher: Sha256,
    /// Bytes in the file, the resumed ones included.
    pub written: u64,
    /// Why the thread stopped early.
    pub error: Option<io::Error>,
}

/// A running disk thread; [`Sink::finish`] joins it.
pub struct Sink {
    tx: Option<mpsc::Sender<Vec<Bytes>>>,
    thread: Option<JoinHandle<SinkEnd>>,
}

/// The disk thread stopped (a write failed); [`Sink::finish`] says why.
#[derive(Debug)]
pub struct Stopped;

impl Sink {
    /// Starts the thread on `file`, positioned after its `written` bytes, whose hash so far is
    /// `hasher`.
    pub fn start(file: File, hasher: Sha256, written: u64) -> io::Result<Sink> {
        let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(DEPTH);
        let thread = std::thread::Builder::new()
            .name("quarry-fetch-disk".to_string())
            .spawn(move || {
                let mut end = SinkEnd {
                    file,
                    hasher,
                    written,
                    error: None,
                };
                while let Some(batch) = rx.blocking_recv() {
                    if let Err(e) = write_all(&mut end.file, &batch) {
                        end.error = Some(e);
                        break;
                    }
                    for bytes in &batch {
                        end.hasher.update(bytes);
                        end.written += bytes.len() as u64;
                    }
                }
                end
            })?;
        Ok(Sink {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `batch` to be appended; waits while the queue is full.
    pub async fn push(&mut self, batch: Vec<Bytes>) -> Result<(), Stopped> {
        let tx = self.tx.as_ref().ok_or(Stopped)?;
        tx.send(batch).await.map_err(|_| Stopped)
    }

    /// Closes the queue and waits for the thread to write what is queued (at most
    /// [`DEPTH`] + 1 ranges).
    pub fn finish(mut self) -> io::Result<SinkEnd> {
        self.tx = None;
        let thread = self.thread.take().expect("finish runs once");
        thread
            .join()
            .map_err(|_| io::Error::other("the fetcher's disk thread panicked"))
    }
}

/// Appends every piece of `batch`, a few system calls for many pieces.
fn write_all(file: &mut File, batch: &[Bytes]) -> io::Result<()> {
    // Empty pieces are left out: a write of nothing returns 0, which would read as WriteZero.
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| IoSlice::new(b))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Dropped without `finish` (only when the fetcher itself unwinds): the sender closes
        // here and the thread ends after the batches already queued; nothing waits for it.
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn writes_and_hashes_in_push_order_after_resumed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.part");
        std::fs::write(&path, b"abc").unwrap();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        file.seek(SeekFrom::End(0)).unwrap();
        let mut hasher = Sha256::new();
        hasher.update(b"abc");
        let mut sink = Sink::start(file, hasher, 3).unwrap();
        runtime().block_on(async {
            let pieces = |p: &[&[u8]]| p.iter().map(|b| Bytes::copy_from_slice(b)).collect();
            sink.push(pieces(&[b"de", b"f"])).await.unwrap();
            sink.push(pieces(&[b""])).await.unwrap();
            sink.push(pieces(&[b"g", b"", b"hij"])).await.unwrap();
        });
        let mut end = sink.finish().unwrap();
        assert!(end.error.is_none());
        assert_eq!(end.written, 10);
        assert!(end.hasher.finalize()[..] == Sha256::digest(b"abcdefghij")[..]);
        let mut got = String::new();
        end.file.seek(SeekFrom::Start(0)).unwrap();
        end.file.read_to_string(&mut got).unwrap();
        assert_eq!(got, "abcdefghij");
    }

    #[test]
    fn a_failed_write_stops_the_sink_and_finish_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro");
        std::fs::write(&path, b"").unwrap();
        // A read-only descriptor: every write fails with EBADF.
        let file = File::open(&path).unwrap();
        let mut sink = Sink::start(file, Sha256::new(), 0).unwrap();
        let pushed = runtime().block_on(async {
            let mut ok = 0;
            for _ in 0..DEPTH + 8 {
                if sink.push(vec![Bytes::from_static(b"data")]).await.is_err() {
                    return ok;
                }
                ok += 1;
            }
            ok
        });
        assert!(
            pushed < 8,
            "pushes kept succeeding after the disk thread failed"
        );
        let end = sink.finish().unwrap();
        assert_eq!(end.written, 0);
        assert!(end.error.is_some());
    }
}
