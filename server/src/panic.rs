//! Panic containment: a panic while answering one request ends that request (500, or an
//! aborted body once the head is out), is counted in `quarry_request_panics_total` and logged
//! as one JSON line; the loop and every other connection keep running.
//!
//! monoio does not catch panics: an unwinding task would end the loop thread and the process.
//! So each piece of request work (the synchronous handler, each poll of a scan future, each
//! body frame) runs inside `contain`, which is `std::panic::catch_unwind`. The state a caught
//! panic leaves behind belongs to that request alone (its scan, encoder, buffers), and it is
//! dropped, never polled again; loop-wide state is only `Cell`s and `RefCell`s that a handler
//! never holds borrowed across its own code.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// Depth of `contain` calls on this thread: the hook stays quiet inside them.
    static CONTAINING: Cell<u32> = const { Cell::new(0) };
    /// The message and location of the last contained panic, left by the hook.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

pub(crate) fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Installs the process's panic hook once (`start` calls it): a contained panic is recorded
/// for `contain` to log with its request (no stderr backtrace on the loop); any other panic is
/// logged as one JSON line (`"message":"thread panicked"`), then handed to the previous hook.
pub fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = payload_text(info.payload());
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            if CONTAINING.with(Cell::get) > 0 {
                LAST.with(|l| *l.borrow_mut() = Some(format!("{text} (at {location})")));
                return;
            }
            let thread = std::thread::current();
            tracing::error!(
                panic = %text,
                %location,
                thread = thread.name().unwrap_or("unnamed"),
                "thread panicked"
            );
            previous(info);
        }));
    });
}

/// Runs `f`; a panic inside becomes `Err(message)`.
pub(crate) fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    CONTAINING.with(|c| c.set(c.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(c.get() - 1));
    result.map_err(|payload| {
        LAST.with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| payload_text(&*payload))
    })
}

/// A future whose every poll runs inside `contain`; after a panic it is never polled again
/// (the inner future is dropped) and resolves to `Err(message)`.
pub(crate) struct CatchUnwind<F: ?Sized> {
    inner: Option<Pin<Box<F>>>,
}

impl<F: ?Sized> std::fmt::Debug for CatchUnwind<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchUnwind")
            .field("done", &self.inner.is_none())
            .finish()
    }
}

impl<F: Future + ?Sized> CatchUnwind<F> {
    pub fn new(inner: Pin<Box<F>>) -> CatchUnwind<F> {
        CatchUnwind { inner: Some(inner) }
    }
}

impl<F: Future + ?Sized> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err("polled after a panic".to_string()));
        };
        match contain(|| inner.as_mut().poll(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => {
                self.inner = None;
                Poll::Ready(Ok(v))
            }
            Err(message) => {
                // Dropping the future may panic too (a Drop impl of the same request's state).
                let inner = self.inner.take();
                let _ = contain(move || drop(inner));
                Poll::Ready(Err(message))
            }
        }
    }
}

/// Counts and logs (one JSON line) a contained panic of the request at `path`.
pub(crate) fn report(ctx: &crate::state::LoopCtx, path: &str, stage: &str, message: &str) {
    ctx.metrics.request_panics.inc();
    tracing::error!(
        loop_index = ctx.index,
        path,
        stage,
        panic = message,
        "request handler panicked; the request was ended, the loop goes on"
    );
}

/// The fault-injection hook for tests (cargo feature `fault-injection`, off in every build
/// but the tests'): true when the request carries `x-quarry-fault: <at>`.
#[cfg(feature = "fault-injection")]
pub(crate) fn wants_fault(headers: &http::HeaderMap, at: &str) -> bool {
    headers
        .get("x-quarry-fault")
        .is_some_and(|v| v.as_bytes() == at.as_bytes())
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn wants_fault(_headers: &http::HeaderMap, _at: &str) -> bool {
    false
}

/// Panics when the request asks for a fault at `at` (never without `fault-injection`).
#[inline(always)]
pub(crate) fn inject(headers: &http::HeaderMap, at: &str) {
    if wants_fault(headers, at) {
        panic!("injected fault at {at}");
    }
}
