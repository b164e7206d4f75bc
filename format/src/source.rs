//! Byte sources for [`QuarryFile`]: a read-only memory map, or aligned owned bytes.
//! This is the only module that touches memmap2. Its two `unsafe` blocks (the map, and the
//! `fcntl` of a read lease) are the only ones in Quarry.
//!
//! # The mapping contract (SIGBUS)
//! A mapped file's bytes are borrowed as `&[u8]` for as long as the map lives. If another
//! process truncated the file, reading the lost pages would raise SIGBUS; if it rewrote the file
//! in place, the "immutable" bytes would change under the reader. Quarry upholds the contract
//! by construction: `quarry-etl` writes a temporary file, fsyncs it and publishes it by
//! `rename`, so a published file is never modified; a new version is a new inode, and the old
//! one lives until its last map is dropped. `quarry-server` never writes data files and maps
//! them read-only; Kubernetes mounts the data volume read-only.
//!
//! Where the kernel allows it (a local filesystem, the process owns the file or has
//! `CAP_LEASE`), [`MappedFile::take_read_lease`] makes the contract enforced rather than assumed:
//! a process that opens the file for writing or truncates it is held by the kernel (up to
//! `/proc/sys/fs/lease-break-time` seconds) while the holder gets SIGIO, checks
//! [`MappedFile::lease_broken`] and drops its map; the lease ends when the map and its file
//! descriptor are dropped (fields in that order).

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::{FormatError, Result};
use crate::reader::QuarryFile;

/// A Quarry file mapped read-only. `Send + Sync + 'static`; wrap it in an `Arc` and hand out
/// `bytes::Bytes::from_owner` slices without copying.
#[derive(Debug)]
pub struct MappedFile {
    /// Declared before `file`: unmapped before the descriptor (and its lease) is closed.
    map: Mmap,
    /// Kept for a read lease; `None` after `release_descriptor`.
    file: Option<File>,
    path: PathBuf,
}

impl MappedFile {
    /// Maps `path` read-only.
    ///
    /// # Errors
    /// `FormatError::Io` naming the path when it cannot be opened or mapped.
    pub fn open(path: &Path) -> Result<MappedFile> {
        let file = File::open(path)
            .map_err(|e| FormatError::io(format!("opening {}", path.display()), e))?;
        // The map lives in this struct, which hands out only shared borrows.
        // SAFETY: the file is never modified while mapped (this module's mapping contract, upheld
        // by quarry-etl's publish-by-rename and the server's and Kubernetes' read-only access).
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| FormatError::io(format!("mapping {}", path.display()), e))?;
        Ok(MappedFile {
            map,
            file: Some(file),
            path: path.to_owned(),
        })
    }

    /// Takes a read lease (`fcntl(F_SETLEASE, F_RDLCK)`) on the mapped file. The process must
    /// handle SIGIO first (its default action ends the process). Fails with `EACCES` when the
    /// process neither owns the file nor has `CAP_LEASE`, `EAGAIN` when someone has it open for
    /// writing, `EINVAL` on filesystems without leases (NFS, FUSE, overlay lower layers).
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn take_read_lease(&self) -> std::io::Result<()> {
        let file = self.file.as_ref().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "descriptor released")
        })?;
        fcntl_int(file, libc::F_SETLEASE, libc::F_RDLCK).map(|_| ())
    }

    /// Closes the file descriptor (the map stays): for files served without a lease, so a
    /// process with many datasets does not hold one descriptor each.
    pub fn release_descriptor(&mut self) {
        self.file = None;
    }

    /// True when a read lease taken by [`take_read_lease`](Self::take_read_lease) is being
    /// broken or gone: another process is opening the file for writing or truncating it.
    pub fn lease_broken(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        !matches!(fcntl_int(file, libc::F_GETLEASE, 0), Ok(l) if l == libc::F_RDLCK)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Asks the kernel to read the whole file ahead (`madvise(MADV_WILLNEED)`).
    ///
    /// # Errors
    /// The kernel's refusal, which a caller may log and ignore.
    pub fn advise_willneed(&self) -> std::io::Result<()> {
        if self.map.is_empty() {
            return Ok(());
        }
        self.map.advise(Advice::WillNeed)
    }
}

/// `fcntl(fd, cmd, arg)` for the integer-argument lease commands.
fn fcntl_int(file: &File, cmd: libc::c_int, arg: libc::c_int) -> std::io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    // SAFETY: `file` is an open descriptor borrowed for the call; F_SETLEASE and F_GETLEASE take
    // an integer argument (or none) and touch no memory of this process.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, arg) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

/// Maps and opens the file at `path` (cheap validation only; call `verify` for the rest).
///
/// # Errors
/// I/O errors naming the path, or the [`QuarryFile::open`] error.
pub fn read_file(path: &Path) -> Result<QuarryFile<MappedFile>> {
    QuarryFile::open(MappedFile::open(path)?)
}

#[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C, align(64))]
struct Block([u8; 64]);

/// Owned bytes starting at a 64-byte-aligned address, for files read into memory (tests,
/// small files). A plain `Vec<u8>` gives no alignment guarantee and `open` would refuse it.
#[derive(Clone)]
pub struct AlignedBuf {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBuf {
    pub fn from_slice(bytes: &[u8]) -> AlignedBuf {
        let mut blocks = vec![Block([0; 64]); bytes.len().div_ceil(64)];
        blocks.as_mut_slice().as_mut_bytes()[..bytes.len()].copy_from_slice(bytes);
        AlignedBuf {
            blocks,
            len: bytes.len(),
        }
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.blocks.as_slice().as_bytes()[..self.len]
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}
