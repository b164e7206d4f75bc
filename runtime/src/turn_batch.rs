//! Turn-end write batching: small responses leave at the end of the loop's turn, together.
//!
//! Writing each response as soon as it is ready wakes a client waiting on many sockets once per
//! response, and a wake-up that crosses cores costs the writer an inter-processor interrupt. So
//! while other connections are open, a small response is copied aside and written once every
//! task the driver woke in this turn has run: [`TurnEndWriter::run`], woken by the turn's first
//! deferred write and so queued behind those tasks, writes them back to back.
//!
//! Invariants: the socket is told bytes were written when they were only buffered, so
//! (1) buffered bytes always go out before anything written after them, and before the turn
//! ends; (2) a buffered write that fails is reported by the connection's next write, flush or
//! shutdown, never lost; (3) at most `DEFER_MAX` bytes per connection wait: a larger write goes
//! out directly after what was deferred, and so does the rest of its response (until hyper
//! flushes). A deferred write that would block is left to the connection: hyper polls its flush
//! whenever the connection's task runs, which retries it with the task's own waker.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use hyper::rt::{Read, ReadBufCursor, Write};

/// Largest response (per connection and turn) copied aside: a point lookup's fits many times.
const DEFER_MAX: usize = 8 << 10;
/// A buffer that grew past this for one large turn is let go once written.
const KEEP_CAPACITY: usize = 16 << 10;

/// What a batched connection needs of its event loop (one per loop thread).
pub trait BatchingLoop: 'static {
    /// The loop's turn-end writer.
    fn turn_end(&self) -> &TurnEndWriter;
    /// Connections open on the loop: the only one writes at once (nothing to batch with).
    fn open_connections(&self) -> usize;
}

/// Connections with responses waiting for the end of the turn; one per loop, with
/// [`TurnEndWriter::run`] spawned on it.
#[derive(Default)]
pub struct TurnEndWriter {
    waiting: RefCell<Vec<Rc<dyn Deferred>>>,
    releaser: RefCell<Option<Waker>>,
}

impl std::fmt::Debug for TurnEndWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnEndWriter")
            .field("waiting", &self.waiting.borrow().len())
            .finish()
    }
}

trait Deferred {
    fn write_out(&self);
}

impl TurnEndWriter {
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
    pub async fn run<L: BatchingLoop>(lp: Rc<L>) {
        loop {
            poll_fn(|cx| {
                let writer = lp.turn_end();
                if writer.waiting.borrow().is_empty() {
                    *writer.releaser.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            lp.turn_end().write_all();
        }
    }

    /// Writes every deferred response now. Long work calls this before each time slice, so the
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
    /// In `TurnEndWriter::waiting`.
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
pub struct TurnBatchedIo<T, L> {
    conn: Rc<Conn<T>>,
    lp: Rc<L>,
}

impl<T, L> std::fmt::Debug for TurnBatchedIo<T, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnBatchedIo")
            .field("pending", &self.conn.pending.borrow().len())
            .finish()
    }
}

impl<T: Write + Unpin + 'static, L: BatchingLoop> TurnBatchedIo<T, L> {
    pub fn new(io: T, lp: Rc<L>) -> Self {
        TurnBatchedIo {
            conn: Rc::new(Conn {
                io: RefCell::new(io),
                pending: RefCell::new(Vec::new()),
                queued: Cell::new(false),
                waker: RefCell::new(None),
                error: Cell::new(None),
                direct: Cell::new(false),
            }),
            lp,
        }
    }

    fn write(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let conn = &self.conn;
        if let Some(e) = conn.error.take() {
            return Poll::Ready(Err(e));
        }
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let pending = conn.pending.borrow().len();
        if !conn.direct.get() && self.lp.open_connections() > 1 && pending + len <= DEFER_MAX {
            let mut p = conn.pending.borrow_mut();
            for b in bufs {
                p.extend_from_slice(b);
            }
            drop(p);
            conn.remember_waker(cx);
            if !conn.queued.replace(true) {
                self.lp.turn_end().defer(conn.clone());
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

impl<T: Read + Unpin, L> Read for TurnBatchedIo<T, L> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.conn.io.borrow_mut()).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin + 'static, L: BatchingLoop> Write for TurnBatchedIo<T, L> {
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

/// A connection's socket as hyper sees it: batched at the end of the turn, or written directly
/// ([`Plumbing::turn_batching`](crate::Plumbing::turn_batching) off).
#[derive(Debug)]
pub enum ConnIo<T, L> {
    Batched(TurnBatchedIo<T, L>),
    Direct(T),
}

impl<T: Write + Unpin + 'static, L: BatchingLoop> ConnIo<T, L> {
    pub fn new(io: T, lp: Rc<L>, batching: bool) -> Self {
        if batching {
            ConnIo::Batched(TurnBatchedIo::new(io, lp))
        } else {
            ConnIo::Direct(io)
        }
    }
}

impl<T: Read + Unpin, L: Unpin> Read for ConnIo<T, L> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnIo::Batched(io) => Pin::new(io).poll_read(cx, buf),
            ConnIo::Direct(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl<T: Write + Unpin + 'static, L: BatchingLoop + Unpin> Write for ConnIo<T, L> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ConnIo::Batched(io) => Pin::new(io).poll_write(cx, buf),
            ConnIo::Direct(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ConnIo::Batched(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            ConnIo::Direct(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ConnIo::Batched(io) => io.is_write_vectored(),
            ConnIo::Direct(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnIo::Batched(io) => Pin::new(io).poll_flush(cx),
            ConnIo::Direct(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ConnIo::Batched(io) => Pin::new(io).poll_shutdown(cx),
            ConnIo::Direct(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop with a fixed count of open connections.
    #[derive(Default)]
    struct TestLoop {
        turn_end: TurnEndWriter,
        connections: Cell<usize>,
    }

    impl BatchingLoop for TestLoop {
        fn turn_end(&self) -> &TurnEndWriter {
            &self.turn_end
        }
        fn open_connections(&self) -> usize {
            self.connections.get()
        }
    }

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
    async fn respond(name: &'static str, recorder: Recorder, size: usize, ctx: Rc<TestLoop>) {
        let log = recorder.log.clone();
        let mut io = TurnBatchedIo::new(recorder, ctx);
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
            crate::io_yield::yield_to_io().await;
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
        let ctx = Rc::new(TestLoop::default());
        ctx.connections.set(connections);
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        let l = log.clone();
        rt.block_on(async move {
            monoio::spawn(TurnEndWriter::run(ctx.clone()));
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

    /// Fails every write with `BrokenPipe`.
    struct Broken;

    impl Write for Broken {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn runtime() -> monoio::Runtime<monoio::LegacyDriver> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap()
    }

    /// A write that hyper was told succeeded but that failed at the end of the turn is
    /// reported by the connection's next call, whichever it is: never swallowed.
    #[test]
    fn a_failed_deferred_write_is_reported_by_the_next_write_flush_or_shutdown() {
        // One runtime for all three: the yield's pacer is per thread.
        runtime().block_on(async move {
            let lp = Rc::new(TestLoop::default());
            lp.connections.set(2);
            monoio::spawn(TurnEndWriter::run(lp.clone()));
            for next in ["write", "flush", "shutdown"] {
                let mut io = TurnBatchedIo::new(Broken, lp.clone());
                let n = poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b"[1]")).await;
                assert_eq!(n.unwrap(), 3, "a small write is taken (deferred)");
                poll_fn(|cx| Pin::new(&mut io).poll_flush(cx))
                    .await
                    .unwrap();
                // The turn ends: the deferred write is tried and fails.
                crate::io_yield::yield_to_io().await;
                let err = match next {
                    "write" => poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b"[2]"))
                        .await
                        .map(drop),
                    "flush" => poll_fn(|cx| Pin::new(&mut io).poll_flush(cx)).await,
                    _ => poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx)).await,
                }
                .expect_err(next);
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{next}");
            }
        });
    }

    /// Deferred bytes reach the socket when the turn ends, with no further call on their
    /// connection (a client waiting for its response is not left waiting for the next request).
    #[test]
    fn deferred_bytes_are_written_when_the_turn_ends_without_another_call() {
        let log = Log::default();
        let l = log.clone();
        runtime().block_on(async move {
            let lp = Rc::new(TestLoop::default());
            lp.connections.set(2);
            monoio::spawn(TurnEndWriter::run(lp.clone()));
            let recorder = Recorder {
                name: "a",
                log: l.clone(),
                block: 0,
                max: usize::MAX,
            };
            let mut io = TurnBatchedIo::new(recorder, lp);
            poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b"[1]"))
                .await
                .unwrap();
            poll_fn(|cx| Pin::new(&mut io).poll_flush(cx))
                .await
                .unwrap();
            assert!(l.borrow().is_empty(), "deferred, not yet written");
            crate::io_yield::yield_to_io().await;
            assert_eq!(*l.borrow(), ["a wrote [1]"]);
            drop(io);
        });
    }

    /// With batching off, a write goes to the socket at once even beside other connections.
    #[test]
    fn a_direct_connection_writes_at_once() {
        let log = Log::default();
        let l = log.clone();
        runtime().block_on(async move {
            let lp = Rc::new(TestLoop::default());
            lp.connections.set(2);
            let recorder = Recorder {
                name: "a",
                log: l.clone(),
                block: 0,
                max: usize::MAX,
            };
            let mut io = ConnIo::new(recorder, lp, false);
            poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b"[1]"))
                .await
                .unwrap();
            assert_eq!(*l.borrow(), ["a wrote [1]"]);
        });
    }
}
