//! Single-thread helpers for the event loop: a latch many tasks can wait on, and a yield.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

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

/// How long work may keep yielding without letting the runtime park. monoio fires timers only
/// when its run queue empties and it parks; a task that always re-wakes itself keeps the queue
/// full, so timers (hyper's timeouts, the loop-lag monitor) would wait until the whole scan ends,
/// and the lag monitor would report that wait as lag and shed every request.
const TIMER_TURN: Duration = Duration::from_millis(20);

thread_local! {
    static LAST_TIMER_TURN: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Gives the loop one turn (other tasks and I/O readiness) before continuing. At most every
/// `TIMER_TURN` the turn waits on a due timer instead, so the runtime parks (for at most about
/// a millisecond: monoio's timer resolution) and fires the timers that are due.
pub async fn yield_now() {
    let now = Instant::now();
    let timer_turn = LAST_TIMER_TURN.with(|last| {
        let due = last
            .get()
            .is_none_or(|t| now.duration_since(t) >= TIMER_TURN);
        if due {
            last.set(Some(now));
        }
        due
    });
    if timer_turn {
        monoio::time::sleep(Duration::ZERO).await;
    } else {
        YieldNow { yielded: false }.await;
    }
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
