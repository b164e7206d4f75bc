//! A one-way flag that many tasks of one thread wait on: the drain sequence's steps (stop
//! accepting, listener closed, close connections, all closed). A waiter dropped before the flag
//! is set takes its waker with it, so thousands of short-lived connections waiting on a latch
//! leave nothing behind.

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
