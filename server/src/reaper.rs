//! Drops that must not run on an event loop: the last reference to a dataset version unmaps
//! its file, and when the file was renamed over (a new version published in its place), closing
//! it frees the whole inode, its page cache included, inside that one system call. [`Reaped`]
//! hands its value to one background thread (`quarry-reaper`) to drop there instead.
//!
//! If the thread cannot be started or is gone, the value is dropped where it is: correct, only
//! slower for the caller.

use std::ops::Deref;
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

type Garbage = Box<dyn Send>;

fn reaper() -> Option<&'static Sender<Garbage>> {
    static REAPER: OnceLock<Option<Sender<Garbage>>> = OnceLock::new();
    let slot = REAPER.get_or_init(|| {
        let (tx, rx) = channel::<Garbage>();
        std::thread::Builder::new()
            .name("quarry-reaper".to_string())
            .spawn(move || {
                for garbage in rx {
                    drop(garbage);
                }
            })
            .ok()
            .map(|_| tx)
    });
    slot.as_ref()
}

/// `T`, dropped on the reaper thread. Derefs to `T`.
pub struct Reaped<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> Reaped<T> {
    pub fn new(value: T) -> Reaped<T> {
        Reaped(Some(value))
    }
}

impl<T: Send + 'static> Deref for Reaped<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Some from `new` until `drop`, which is the only place that takes it.
        self.0
            .as_ref()
            .expect("a Reaped value is present until dropped")
    }
}

impl<T: Send + 'static> Drop for Reaped<T> {
    fn drop(&mut self) {
        let Some(value) = self.0.take() else {
            return;
        };
        if let Some(tx) = reaper() {
            // On a send error the value comes back inside the error and drops here.
            let _ = tx.send(Box::new(value));
        }
    }
}

impl<T: Send + 'static + std::fmt::Debug> std::fmt::Debug for Reaped<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    struct Probe(mpsc::Sender<String>);

    impl Drop for Probe {
        fn drop(&mut self) {
            let name = std::thread::current().name().unwrap_or("").to_string();
            let _ = self.0.send(name);
        }
    }

    #[test]
    fn the_value_is_dropped_on_the_reaper_thread() {
        let (tx, rx) = mpsc::channel();
        let reaped = Reaped::new(Probe(tx));
        let _: &Probe = &reaped;
        drop(reaped);
        let dropped_on = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the value was dropped");
        assert_eq!(dropped_on, "quarry-reaper");
    }
}
