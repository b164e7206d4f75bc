//! The memory gate that bounds decoded bytes of columnar jobs in flight.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

/// Bounds the estimated decoded bytes of columnar jobs in flight (sent and not yet taken by
/// the collector).
#[derive(Debug)]
pub struct Gate {
    budget: u64,
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
pub(super) struct GateState {
    in_flight: u64,
    held: HashMap<u64, u64>,
    closed: bool,
}

impl Gate {
    pub fn new(budget: u64) -> Gate {
        Gate {
            budget,
            state: Mutex::new(GateState::default()),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `bytes` more fit in the budget (at once when nothing is in flight) and
    /// records them under `seq`; `false` when the gate was closed.
    pub(super) fn acquire(&self, seq: u64, bytes: u64) -> bool {
        let mut st = self.lock();
        while !st.closed && st.in_flight > 0 && st.in_flight.saturating_add(bytes) > self.budget {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.closed {
            return false;
        }
        st.in_flight = st.in_flight.saturating_add(bytes);
        st.held.insert(seq, bytes);
        true
    }

    /// The collector took `seq`: its bytes no longer count (a no-op for text chunks).
    pub fn release(&self, seq: u64) {
        let mut st = self.lock();
        if let Some(b) = st.held.remove(&seq) {
            st.in_flight -= b;
            self.cv.notify_all();
        }
    }

    /// Wakes and stops the reader (the collector has stopped).
    pub fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }
}

/// Closes the gate when dropped.
#[derive(Debug)]
pub struct CloseOnDrop<'a>(pub &'a Gate);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn gate_admits_one_job_always_and_blocks_past_the_budget() {
        let gate = Arc::new(Gate::new(100));
        assert!(gate.acquire(0, 1_000), "an empty gate admits any job");
        let g = Arc::clone(&gate);
        let waiter = std::thread::spawn(move || g.acquire(1, 10));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "admitted past the budget");
        gate.release(0);
        assert!(waiter.join().unwrap());
        gate.release(7); // not held: no-op
        assert!(gate.acquire(2, 90));
        let g = Arc::clone(&gate);
        let waiter = std::thread::spawn(move || g.acquire(3, 50));
        gate.close();
        assert!(!waiter.join().unwrap(), "a closed gate stops the reader");
    }
}
