//! Responses leave at the end of the loop's turn, together.
//!
//! When a turn answers many connections, writing each response as soon as it is ready means a
//! client thread waiting on those sockets is woken again and again, and wherever a wake-up
//! crosses cores (loopback, or a client on the same node) each one costs the writer an
//! inter-processor interrupt: ~3-4 us in this VM, a quarter of a point lookup. So a small
//! response is copied aside and written when every task the driver woke in this turn has run:
//! the `TurnEnd` task, woken by the turn's first deferred write and so queued behind those tasks,
//! writes them back to back. A client then wakes about once per turn instead of once per
//! response (bench: 0.26 -> 0.02 sleeps of wrk per lookup).
//!
//! Bounds: only while other connections are open (the loop's only connection writes at once),
//! and only up to `DEFER_MAX` bytes per connection; larger writes go out directly, after
//! anything deferred before them, and so does the rest of their response (until hyper
//! flushes). A deferred write that would block is left to the connection itself: hyper polls
//! its flush whenever the connection's task runs, and that retries it with the task's own
//! waker. A failed deferred write is returned by the connection's next call.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use hyper::rt::{Read, ReadBufCursor, Write};

use crate::state::LoopCtx;

/// Largest response (per connection and turn) copied aside; a point lookup's is ~0.3 KiB.
const DEFER_MAX: usize = 8 << 10;
/// A buffer that grew past this for one large turn is let go once written.
const KEEP_CAPACITY: usize = 16 << 10;

/// Connections with responses waiting for the end of the turn.
#[derive(Default)]
pub struct TurnEnd {
    waiting: RefCell<Vec<Rc<dyn Deferred>>>,
    releaser: RefCell<Option<Waker>>,
}

impl std::fmt::Debug for TurnEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnEnd")
            .field("waiting", &self.waiting.borrow().len())
            .finish()
    }
}

trait Deferred {
    fn write_out(&self);
}

impl TurnEnd {
    fn defer(&self, conn: Rc<dyn Deferred>) {
        let mut waiting = self.waiting.borrow_mut();
        if waiting.is_empty() {
            if let Some(r) = self.releaser.borrow_mut().take() {
                r.wake();
            }
        }
        waiting.push(conn);
    }

    /// The releasing task: runs once per turn in which a write was deferred. Spawn one per loop.
    pub async fn run(ctx: Rc<LoopCtx>) {
        loop {
            poll_fn(|cx| {
                if ctx.turn_end.waiting.borrow().is_empty() {
                    *ctx.turn_end.releaser.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            ctx.turn_end.write_all();
        }
    }

    /// Writes every deferred response now. A scan calls this before each time slice, so the
    /// responses of its turn do not wait behind the slice.
    pub fn write_all(&self) {
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        for conn in waiting {
            conn.write_out();
        }
    }
}

/// One connection's socket and the bytes waiting for the end of the turn.
struct Conn<T> {
    io: RefCell<T>,
    pending: RefCell<Vec<u8>>,
    /// In `TurnEnd::waiting`.
    queued: Cell<bool>,
    /// The connection task's waker, for a deferred write that would block or fails.
    waker: RefCell<Option<Waker>>,
    /// A deferred write's error, for the connection's next call.
    error: Cell<Option<io::Error>>,
    /// A write went to the socket directly and hyper has not flushed since: the rest of that
    /// response follows it directly too (its tail must not wait for the end of the turn).
    direct: Cell<bool>,
}

impl<T: Write + Unpin> Conn<T> {
    fn write_pending(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut pending = self.pending.borrow_mut();
        let mut io = self.io.borrow_mut();
        let mut written = 0;
        let result = loop {
            if written == pending.len() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut *io).poll_write(cx, &pending[written..]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => break Poll::Pending,
            }
        };
        if written == pending.len() && pending.capacity() > KEEP_CAPACITY {
            *pending = Vec::new();
        } else {
            pending.drain(..written);
        }
        result
    }

    fn remember_waker(&self, cx: &Context<'_>) {
        let mut w = self.waker.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
    }
}

impl<T: Write + Unpin> Deferred for Conn<T> {
    fn write_out(&self) {
        self.queued.set(false);
        let Some(waker) = self.waker.borrow().clone() else {
            return;
        };
        // With the connection's own waker: if the socket is full, its task is woken when it
        // drains, and hyper's flush (polled on every run of the task) writes the rest.
        match self.write_pending(&mut Context::from_waker(&waker)) {
            Poll::Ready(Ok(())) | Poll::Pending => {}
            Poll::Ready(Err(e)) => {
                self.error.set(Some(e));
                waker.wake();
            }
        }
    }
}

/// An I/O object whose small writes leave at the end of the turn (see the module docs).
pub struct TurnIo<T> {
    conn: Rc<Conn<T>>,
    ctx: Rc<LoopCtx>,
}

impl<T: Write + Unpin + 'static> TurnIo<T> {
    pub fn new(io: T, ctx: Rc<LoopCtx>) -> Self {
        TurnIo {
            conn: Rc::new(Conn {
                io: RefCell::new(io),
                pending: RefCell::new(Vec::new()),
                queued: Cell::new(false),
                waker: RefCell::new(None),
                error: Cell::new(None),
                direct: Cell::new(false),
            }),
            ctx,
        }
    }

    fn write(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let conn = &self.conn;
        if let Some(e) = conn.error.take() {
            return Poll::Ready(Err(e));
        }
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let pending = conn.pending.borrow().len();
        if !conn.direct.get() && self.ctx.connections.get() > 1 && pending + len <= DEFER_MAX {
            let mut p = conn.pending.borrow_mut();
            for b in bufs {
                p.extend_from_slice(b);
            }
            drop(p);
            conn.remember_waker(cx);
            if !conn.queued.replace(true) {
                self.ctx.turn_end.defer(conn.clone());
            }
            return Poll::Ready(Ok(len));
        }
        // Whatever was deferred goes first.
        std::task::ready!(self.settle(cx, false))?;
        conn.direct.set(true);
        Pin::new(&mut *conn.io.borrow_mut()).poll_write_vectored(cx, bufs)
    }

    /// Writes what is deferred now, unless `later` and the end of the turn will.
    fn settle(&self, cx: &mut Context<'_>, later: bool) -> Poll<io::Result<()>> {
        if let Some(e) = self.conn.error.take() {
            return Poll::Ready(Err(e));
        }
        if (later && self.conn.queued.get()) || self.conn.pending.borrow().is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.conn.write_pending(cx)
    }
}

impl<T: Read + Unpin> Read for TurnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.conn.io.borrow_mut()).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin + 'static> Write for TurnIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.conn.io.borrow().is_write_vectored()
    }

    /// Deferred bytes count as flushed: the end of the turn writes them.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.settle(cx, true))?;
        std::task::ready!(Pin::new(&mut *self.conn.io.borrow_mut()).poll_flush(cx))?;
        self.conn.direct.set(false);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.settle(cx, false))?;
        Pin::new(&mut *self.conn.io.borrow_mut()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::metrics::Metrics;
    use clap::Parser;
    use std::sync::Arc;

    type Log = Rc<RefCell<Vec<String>>>;

    /// Logs each write; refuses the first `block` writes with `Pending` (waking the writer);
    /// takes at most `max` bytes a write.
    struct Recorder {
        name: &'static str,
        log: Log,
        block: usize,
        max: usize,
    }

    impl Write for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.block > 0 {
                self.block -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let buf = &buf[..buf.len().min(self.max)];
            let line = if buf.len() > 100 {
                format!("{} wrote {} bytes", self.name, buf.len())
            } else {
                format!("{} wrote {}", self.name, String::from_utf8_lossy(buf))
            };
            self.log.borrow_mut().push(line);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Two responses (of `size` bytes, or short ones), as a handler and hyper make them: write
    /// until all is taken, flush; then a close.
    async fn respond(name: &'static str, recorder: Recorder, size: usize, ctx: Rc<LoopCtx>) {
        let log = recorder.log.clone();
        let mut io = TurnIo::new(recorder, ctx);
        for i in 1..=2 {
            log.borrow_mut().push(format!("{name} handled {i}"));
            let response = match size {
                0 => format!("[{i}]"),
                n => "x".repeat(n),
            };
            let mut rest = response.as_bytes();
            while !rest.is_empty() {
                let n = poll_fn(|cx| Pin::new(&mut io).poll_write(cx, rest))
                    .await
                    .unwrap();
                rest = &rest[n..];
            }
            poll_fn(|cx| Pin::new(&mut io).poll_flush(cx))
                .await
                .unwrap();
            // The next request arrives in a later turn.
            crate::sync::yield_now().await;
        }
        poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx))
            .await
            .unwrap();
    }

    fn run_two_writers(connections: usize, block_a: usize) -> Vec<String> {
        run_two_writers_of(connections, block_a, usize::MAX, 0)
    }

    fn run_two_writers_of(
        connections: usize,
        block_a: usize,
        max: usize,
        size: usize,
    ) -> Vec<String> {
        let log = Log::default();
        let config = Arc::new(Config::parse_from(["quarry-server", "--data-dir", "/d"]));
        let ctx = LoopCtx::new(0, config, Arc::new(Metrics::new()));
        ctx.connections.set(connections);
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        let l = log.clone();
        rt.block_on(async move {
            monoio::spawn(TurnEnd::run(ctx.clone()));
            let recorder = |name, block| Recorder {
                name,
                log: l.clone(),
                block,
                max,
            };
            let a = monoio::spawn(respond("a", recorder("a", block_a), size, ctx.clone()));
            let b = monoio::spawn(respond("b", recorder("b", 0), size, ctx));
            a.await;
            b.await;
        });
        let log = log.borrow().clone();
        log
    }

    #[test]
    fn responses_of_one_turn_are_written_after_every_handler_of_the_turn_ran() {
        assert_eq!(
            run_two_writers(2, 0),
            [
                "a handled 1",
                "b handled 1",
                "a wrote [1]",
                "b wrote [1]",
                "a handled 2",
                "b handled 2",
                "a wrote [2]",
                "b wrote [2]",
            ]
        );
    }

    #[test]
    fn the_only_connection_writes_at_once() {
        let log = run_two_writers(1, 0);
        assert_eq!(log[..2], ["a handled 1", "a wrote [1]"]);
        assert_eq!(log.len(), 8);
    }

    #[test]
    fn a_deferred_write_that_would_block_is_finished_by_its_connection() {
        let log = run_two_writers(2, 1);
        // Every byte once and in order, whichever writes carried them.
        let a: String = log
            .iter()
            .filter_map(|l| l.strip_prefix("a wrote "))
            .collect();
        assert_eq!(a, "[1][2]");
        assert_eq!(log.iter().filter(|l| l.starts_with("b wrote")).count(), 2);
    }

    #[test]
    fn a_large_response_goes_out_directly_tail_and_all() {
        let log = run_two_writers_of(2, 0, DEFER_MAX + 100, DEFER_MAX + 300);
        assert_eq!(
            log[..4],
            [
                "a handled 1",
                "a wrote 8292 bytes",
                "a wrote 200 bytes",
                "b handled 1"
            ]
        );
    }
}
