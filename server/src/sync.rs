//! Single-thread helpers for the event loop: a latch many tasks can wait on, and a yield.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A one-way flag: once set, every waiter (present and future) completes. Single-threaded.
/// A waiter that is dropped before the flag is set removes its waker, so thousands of
/// short-lived connections waiting on it cost nothing once gone.
#[derive(Debug, Default)]
pub struct Latch {
    set: Cell<bool>,
    next_key: Cell<u64>,
    waiters: RefCell<BTreeMap<u64, Waker>>,
}

impl Latch {
    pub fn set(&self) {
        if !self.set.replace(true) {
            let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
            for w in waiters.into_values() {
                w.wake();
            }
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    pub fn wait(&self) -> LatchWait<'_> {
        LatchWait {
            latch: self,
            key: None,
        }
    }
}

#[derive(Debug)]
pub struct LatchWait<'a> {
    latch: &'a Latch,
    key: Option<u64>,
}

impl Future for LatchWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.latch.set.get() {
            return Poll::Ready(());
        }
        let latch = self.latch;
        let mut waiters = latch.waiters.borrow_mut();
        match self.key {
            Some(k) => match waiters.get_mut(&k) {
                Some(w) if w.will_wake(cx.waker()) => {}
                Some(w) => *w = cx.waker().clone(),
                None => {
                    waiters.insert(k, cx.waker().clone());
                }
            },
            None => {
                let k = latch.next_key.get();
                latch.next_key.set(k + 1);
                waiters.insert(k, cx.waker().clone());
                drop(waiters);
                self.key = Some(k);
            }
        }
        Poll::Pending
    }
}

impl Drop for LatchWait<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.latch.waiters.borrow_mut().remove(&k);
        }
    }
}

/// Waiters for the next I/O turn of this thread's loop, and the turn count.
#[derive(Default)]
struct Turns {
    turn: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
    pacer_running: Cell<bool>,
}

thread_local! {
    static TURNS: Turns = Turns::default();
}

/// Lets the loop take an I/O turn before continuing: resolves once monoio has polled its driver
/// (epoll or io_uring) after the call, so requests that arrived meanwhile are queued ahead of
/// the yielding work.
///
/// Why not a plain re-wake: monoio polls I/O only after `2 x queue length` task runs or when its
/// queue empties. A scan that re-wakes itself keeps the queue full, so once the lookups of one
/// turn were answered, two scans alternated for ~130 steps (~70 ms of SF1 aggregation) before the
/// next requests were even read: lookups beside aggregations had a 555 ms p99. Why not a zero
/// timer: monoio's timers round up to the next millisecond, which made an aggregation alone up
/// to 3x slower. The wake-up here is a byte on a fresh socket pair: the driver reports it on its
/// very next poll, and the runtime also fires due timers whenever it polls with an empty queue.
pub async fn yield_now() {
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
/// plain re-wake, which never blocks progress.
async fn pace_turns() {
    loop {
        let round = TURNS.with(|t| std::mem::take(&mut *t.waiters.borrow_mut()));
        if round.is_empty() {
            TURNS.with(|t| t.pacer_running.set(false));
            return;
        }
        if io_turn().await.is_err() {
            YieldNow { yielded: false }.await;
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

#[derive(Debug)]
struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;
    use std::time::{Duration, Instant};

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

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
                yield_now().await;
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
            YieldNow { yielded: false }.await;
            tx.write_all(&[7]).expect("write");
            for turn in 0..3 {
                yield_now().await;
                if served.get() {
                    assert!(turn == 0, "served only after {} yields", turn + 1);
                    return;
                }
            }
            panic!("readable I/O was not served across three yields");
        });
    }

    #[test]
    fn latch_wakes_live_waiters_and_forgets_dropped_ones() {
        let latch = Latch::default();
        let flag = std::sync::Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            let mut w = Box::pin(latch.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert!(
            latch.waiters.borrow().is_empty(),
            "dropped waiters leave no waker behind"
        );
        let mut live = Box::pin(latch.wait());
        assert!(live.as_mut().poll(&mut cx).is_pending());
        assert!(live.as_mut().poll(&mut cx).is_pending());
        assert_eq!(latch.waiters.borrow().len(), 1);
        latch.set();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(live.as_mut().poll(&mut cx).is_ready());
        assert!(Box::pin(latch.wait()).as_mut().poll(&mut cx).is_ready());
    }
}
