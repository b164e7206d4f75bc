//! The loop yield: long work (a scan, verification, warming) gives the loop an I/O turn between
//! slices. monoio polls its driver only after `2 x queue length` task runs or when its queue
//! empties, so a task that merely re-wakes itself keeps requests that arrived meanwhile unread
//! (and due timers unfired); [`yield_to_io`] resolves only once the driver has polled.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Waiters for the next I/O turn of this thread's loop, and the turn count. Per thread, so one
/// runtime per thread: a runtime dropped while a round is pending leaves `pacer_running` set.
#[derive(Default)]
struct Turns {
    turn: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
    pacer_running: Cell<bool>,
}

thread_local! {
    static TURNS: Turns = Turns::default();
}

/// With `io`, [`yield_to_io`]; without, a plain yield to the back of the run queue
/// ([`Plumbing::io_yield`] off, A/B only: see the module docs for what that costs long work's
/// neighbours).
///
/// [`Plumbing::io_yield`]: crate::Plumbing::io_yield
pub async fn yield_to_loop(io: bool) {
    if io {
        yield_to_io().await
    } else {
        ReWake { yielded: false }.await
    }
}

/// Lets the loop take an I/O turn before continuing: resolves once monoio has polled its driver
/// (epoll or io_uring) after the call, so requests that arrived meanwhile are queued ahead of
/// the yielding work.
///
/// Not a plain re-wake: a scan that re-wakes itself keeps monoio's queue full, so two scans can
/// alternate for many steps before the next requests are even read. Not a zero timer: monoio's
/// timers round up to the next millisecond, a long pause per slice. The wake-up here is a byte
/// on a fresh socket pair: the driver reports it on its very next poll, and the runtime also
/// fires due timers whenever it polls with an empty queue.
pub async fn yield_to_io() {
    let start = TURNS.with(|t| t.turn.get());
    std::future::poll_fn(|cx| {
        TURNS.with(|t| {
            if t.turn.get() != start {
                return Poll::Ready(());
            }
            t.waiters.borrow_mut().push(cx.waker().clone());
            if !t.pacer_running.replace(true) {
                monoio::spawn(pace_turns());
            }
            Poll::Pending
        })
    })
    .await;
}

/// Runs while tasks wait for a turn. Each round takes the waiters registered so far, makes a
/// socket pair with one byte in flight, awaits the byte through monoio (which needs a driver
/// poll that starts after the round did), then wakes that round's waiters; tasks that yield
/// meanwhile wait for the next round. Without a socket (descriptors exhausted) a round is a
/// plain yield, which never blocks progress.
async fn pace_turns() {
    loop {
        let round = TURNS.with(|t| std::mem::take(&mut *t.waiters.borrow_mut()));
        if round.is_empty() {
            TURNS.with(|t| t.pacer_running.set(false));
            return;
        }
        if io_turn().await.is_err() {
            ReWake { yielded: false }.await;
        }
        TURNS.with(|t| t.turn.set(t.turn.get().wrapping_add(1)));
        for w in round {
            w.wake();
        }
    }
}

/// One byte through a new socket pair. New each round on purpose: monoio's epoll driver keeps a
/// descriptor's readiness after a successful read, so a reused socket would be read at once,
/// without the driver poll this waits for; a fresh descriptor starts not ready.
async fn io_turn() -> std::io::Result<()> {
    use monoio::io::AsyncReadRent;
    use std::io::Write;
    let (mut tx, rx) = std::os::unix::net::UnixStream::pair()?;
    tx.write_all(&[1])?;
    rx.set_nonblocking(true)?;
    let mut rx = monoio::net::UnixStream::from_std(rx)?;
    let (res, _) = rx.read(vec![0u8; 1]).await;
    res.map(|_| ())
}

/// Goes to the back of the run queue once; the driver is not asked. monoio puts a task that
/// wakes itself during its own poll at the front of its queue, so the wake comes from a task
/// spawned (at the back) instead.
#[derive(Debug)]
struct ReWake {
    yielded: bool,
}

impl Future for ReWake {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        let waker = cx.waker().clone();
        monoio::spawn(async move { waker.wake() });
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// With a yield that only re-wakes itself, monoio never parks, so a due timer would not fire
    /// until the work ended (and the lag monitor would shed every request meanwhile).
    #[test]
    fn a_due_timer_fires_while_work_keeps_yielding() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let fired = std::rc::Rc::new(Cell::new(false));
            let f = fired.clone();
            monoio::spawn(async move {
                monoio::time::sleep(Duration::from_millis(5)).await;
                f.set(true);
            });
            let start = Instant::now();
            while !fired.get() && start.elapsed() < Duration::from_secs(2) {
                let slice = Instant::now();
                while slice.elapsed() < Duration::from_micros(500) {
                    std::hint::spin_loop();
                }
                yield_to_io().await;
            }
            assert!(
                fired.get(),
                "the timer did not fire while work kept yielding"
            );
        });
    }

    /// A yield resolves only after the driver has polled: a connection that became readable
    /// before the yield has been served by the time the yielding work continues. A plain
    /// re-wake lets the work run again first (monoio polls I/O only every `2 x queue` runs).
    #[test]
    fn ready_io_is_served_before_yielding_work_continues() {
        use monoio::io::AsyncReadRent;
        use std::io::Write;
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut tx, rx) = std::os::unix::net::UnixStream::pair().expect("pair");
            rx.set_nonblocking(true).expect("nonblocking");
            let mut rx = monoio::net::UnixStream::from_std(rx).expect("register");
            let served = std::rc::Rc::new(Cell::new(false));
            let s = served.clone();
            monoio::spawn(async move {
                let (res, _) = rx.read(vec![0u8; 1]).await;
                assert_eq!(res.expect("read"), 1);
                s.set(true);
            });
            // Let the reader register its interest (and find nothing to read).
            ReWake { yielded: false }.await;
            tx.write_all(&[7]).expect("write");
            for turn in 0..3 {
                yield_to_io().await;
                if served.get() {
                    assert!(turn == 0, "served only after {} yields", turn + 1);
                    return;
                }
            }
            panic!("readable I/O was not served across three yields");
        });
    }

    /// The yield exists so that other work runs before the yielding task continues: a task
    /// that is ready when the yield starts has run by the time it returns, in either mode.
    #[test]
    fn a_ready_task_runs_before_the_yielding_task_continues() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            for io in [true, false] {
                // The yielding work is a task, as a scan is (`block_on`'s own future is polled
                // ahead of the queue).
                let ran = std::rc::Rc::new(Cell::new(false));
                let r = ran.clone();
                let work = monoio::spawn(async move {
                    let other = monoio::spawn(async move { r.set(true) });
                    yield_to_loop(io).await;
                    let seen = ran.get();
                    other.await;
                    seen
                });
                assert!(work.await, "io = {io}: the other task had not run");
            }
        });
    }
}
