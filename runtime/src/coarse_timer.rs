//! hyper's timer as a coarse deadline list per loop thread.
//!
//! hyper arms its header-read timer for every request head it waits for and drops it once the
//! head is in, so the timer's cost is paid per request for a deadline that almost never fires.
//! Here a sleep is two words; the first time it is polled before its deadline it takes a slot in
//! the thread's list, and a sweeper task wakes the due slots every `TICK`. A sleep never ends
//! before its deadline and at most about a `TICK` after it: nothing against a slowloris bound of
//! seconds. [`LoopTimer`] picks this timer or monoio's own (`monoio_compat::hyper::MonoioTimer`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use monoio_compat::hyper::MonoioTimer;

/// How often due deadlines are found and woken.
const TICK: Duration = Duration::from_millis(50);

thread_local! {
    static DEADLINES: Deadlines = Deadlines::default();
}

#[derive(Default)]
struct Deadlines {
    slots: RefCell<Vec<Option<(Instant, Waker)>>>,
    free: RefCell<Vec<usize>>,
    /// Slots in use; the sweeper stops when none are.
    used: Cell<usize>,
    sweeping: Cell<bool>,
}

impl Deadlines {
    fn register(&self, slot: &mut Option<usize>, deadline: Instant, waker: &Waker) {
        let mut slots = self.slots.borrow_mut();
        match slot.and_then(|i| slots.get_mut(i)) {
            Some(Some((d, w))) => {
                *d = deadline;
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
            }
            _ => {
                let entry = Some((deadline, waker.clone()));
                let i = match self.free.borrow_mut().pop() {
                    Some(i) => {
                        slots[i] = entry;
                        i
                    }
                    None => {
                        slots.push(entry);
                        slots.len() - 1
                    }
                };
                *slot = Some(i);
                self.used.set(self.used.get() + 1);
                if !self.sweeping.replace(true) {
                    monoio::spawn(sweep());
                }
            }
        }
    }

    fn remove(&self, slot: usize) {
        if let Some(entry) = self.slots.borrow_mut().get_mut(slot) {
            if entry.take().is_some() {
                self.free.borrow_mut().push(slot);
                self.used.set(self.used.get() - 1);
            }
        }
    }

    fn update(&self, slot: usize, deadline: Instant) {
        if let Some(Some((d, _))) = self.slots.borrow_mut().get_mut(slot) {
            *d = deadline;
        }
    }
}

/// Wakes due sleeps every `TICK` while any are waiting. A woken sleep finds its deadline passed
/// and completes; its slot is freed when hyper drops it.
async fn sweep() {
    let mut due = Vec::new();
    loop {
        monoio::time::sleep(TICK).await;
        let now = Instant::now();
        let idle = DEADLINES.with(|d| {
            due.extend(
                d.slots
                    .borrow()
                    .iter()
                    .flatten()
                    .filter(|(deadline, _)| *deadline <= now)
                    .map(|(_, w)| w.clone()),
            );
            if d.used.get() == 0 {
                d.sweeping.set(false);
                true
            } else {
                false
            }
        });
        for w in due.drain(..) {
            w.wake();
        }
        if idle {
            return;
        }
    }
}

/// The timer given to hyper's connection builder: [`CoarseTimer`], or monoio's with
/// [`Plumbing::coarse_timer`](crate::Plumbing::coarse_timer) off.
#[derive(Clone, Copy, Debug)]
pub enum LoopTimer {
    Coarse(CoarseTimer),
    Monoio(MonoioTimer),
}

impl LoopTimer {
    pub fn new(coarse: bool) -> LoopTimer {
        if coarse {
            LoopTimer::Coarse(CoarseTimer)
        } else {
            LoopTimer::Monoio(MonoioTimer)
        }
    }
}

impl Timer for LoopTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        match self {
            LoopTimer::Coarse(t) => t.sleep(duration),
            LoopTimer::Monoio(t) => t.sleep(duration),
        }
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        match self {
            LoopTimer::Coarse(t) => t.sleep_until(deadline),
            LoopTimer::Monoio(t) => t.sleep_until(deadline),
        }
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match self {
            LoopTimer::Coarse(t) => t.reset(sleep, new_deadline),
            LoopTimer::Monoio(t) => t.reset(sleep, new_deadline),
        }
    }
}

/// A deadline in this thread's list, swept every `TICK` (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct CoarseTimer;

impl Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(CoarseSleep {
            deadline,
            slot: None,
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<CoarseSleep>() {
            Some(s) => {
                let s = s.get_mut();
                s.deadline = new_deadline;
                if let Some(i) = s.slot {
                    DEADLINES.with(|d| d.update(i, new_deadline));
                }
            }
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

struct CoarseSleep {
    deadline: Instant,
    /// Its slot in this thread's `DEADLINES`, once polled before the deadline.
    slot: Option<usize>,
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        DEADLINES.with(|d| d.register(&mut self.slot, deadline, cx.waker()));
        Poll::Pending
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            // `try_with`: a sleep dropped while the thread's locals are torn down has no list.
            let _ = DEADLINES.try_with(|d| d.remove(i));
        }
    }
}

impl Sleep for CoarseSleep {}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
    }

    #[test]
    fn a_sleep_ends_after_its_deadline_and_within_a_tick() {
        runtime().block_on(async {
            let start = Instant::now();
            CoarseTimer.sleep(Duration::from_millis(30)).await;
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(30), "woke early: {took:?}");
            assert!(
                took < Duration::from_millis(30) + 4 * TICK,
                "woke late: {took:?}"
            );
        });
    }

    #[test]
    fn dropped_and_reset_sleeps_free_their_slots_and_the_sweeper_stops() {
        runtime().block_on(async {
            let timer = CoarseTimer;
            let mut long = timer.sleep(Duration::from_secs(3600));
            // Polled once before its deadline: it takes a slot.
            let waker = std::task::Waker::noop();
            assert!(long
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending());
            assert_eq!(DEADLINES.with(|d| d.used.get()), 1);
            // Reset to a deadline just ahead: the same sleep, now due soon.
            timer.reset(&mut long, Instant::now() + Duration::from_millis(20));
            long.await;
            let short = timer.sleep(Duration::from_secs(3600));
            let mut short = short;
            assert!(short
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending());
            drop(short);
            assert_eq!(DEADLINES.with(|d| d.used.get()), 0);
            monoio::time::sleep(3 * TICK).await;
            assert!(
                !DEADLINES.with(|d| d.sweeping.get()),
                "the sweeper still runs"
            );
        });
    }

    /// Each timer `LoopTimer` can be sleeps at least as long as it was asked: a header-read
    /// timeout must never cut a client off early.
    #[test]
    fn neither_loop_timer_fires_before_its_deadline() {
        for coarse in [true, false] {
            runtime().block_on(async move {
                let timer = LoopTimer::new(coarse);
                let start = Instant::now();
                timer.sleep(Duration::from_millis(30)).await;
                let took = start.elapsed();
                assert!(
                    took >= Duration::from_millis(30),
                    "coarse = {coarse}: woke early: {took:?}"
                );
                // Reset to an earlier deadline than first asked: the new deadline holds.
                let start = Instant::now();
                let mut s = timer.sleep(Duration::from_secs(3600));
                timer.reset(&mut s, Instant::now() + Duration::from_millis(20));
                s.await;
                let took = start.elapsed();
                assert!(
                    took >= Duration::from_millis(20),
                    "coarse = {coarse}: reset woke early: {took:?}"
                );
                assert!(
                    took < Duration::from_secs(5),
                    "coarse = {coarse}: the reset was ignored"
                );
            });
        }
    }
}
