//! Write progress of one connection, for `--write-timeout`: the socket wrapper notes when a
//! write first found the socket full and forgets it as soon as any byte goes out. The
//! connection task (server.rs) aborts a response whose writes made no progress for the
//! timeout: dropping the connection drops hyper's buffers, the body, its encoder and the
//! dataset version (with its map slices) the response held.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::rt::{Read, ReadBufCursor, Write};

/// Shared between the socket wrapper and the connection task.
#[derive(Debug, Default)]
pub struct WriteProgress {
    /// Since when writes have found the socket full with no byte written; `None` otherwise.
    blocked_since: Cell<Option<Instant>>,
}

impl WriteProgress {
    pub fn blocked_since(&self) -> Option<Instant> {
        self.blocked_since.get()
    }

    fn note<T>(&self, r: &Poll<io::Result<T>>, wrote: impl FnOnce(&T) -> bool) {
        match r {
            Poll::Pending => {
                if self.blocked_since.get().is_none() {
                    self.blocked_since.set(Some(Instant::now()));
                }
            }
            Poll::Ready(Ok(v)) if wrote(v) => self.blocked_since.set(None),
            Poll::Ready(_) => {}
        }
    }
}

/// A socket that reports its write progress to a [`WriteProgress`].
#[derive(Debug)]
pub struct ProgressIo<T> {
    inner: T,
    progress: Rc<WriteProgress>,
}

impl<T> ProgressIo<T> {
    pub fn new(inner: T, progress: Rc<WriteProgress>) -> ProgressIo<T> {
        ProgressIo { inner, progress }
    }
}

impl<T: Read + Unpin> Read for ProgressIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for ProgressIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress.note(&r, |n| *n > 0);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress.note(&r, |n| *n > 0);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
