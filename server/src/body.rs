//! The response body: empty, one `Bytes` (often a slice of a mapped file), or a stream of
//! `Bytes` frames produced on demand (bounded memory: one frame at a time).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::metrics::RequestGuard;

/// Produces the next frame of a streamed body; `None` when done. Each call does a bounded amount
/// of work (one encoder step), so hyper's write loop interleaves it with other connections.
/// An error aborts the response (its head is out): the connection is closed.
pub trait FrameSource {
    fn next_frame(&mut self) -> Result<Option<Bytes>, BodyAborted>;
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    /// Known pieces (slices of a mapping), sent one frame each; `u64` = bytes left.
    Pieces(VecDeque<Bytes>, u64),
    Stream(Box<dyn FrameSource>),
}

/// Why a streamed body was cut short (each counted and logged where it happened).
#[derive(Debug)]
pub enum BodyAborted {
    /// The frame's producer panicked (`panic::report`).
    Panicked,
    /// The next frame would not fit in the process memory budget.
    OverBudget,
}

impl std::fmt::Display for BodyAborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyAborted::Panicked => "the response body's producer panicked",
            BodyAborted::OverBudget => "the process memory budget is used up (--memory-budget)",
        })
    }
}

impl std::error::Error for BodyAborted {}

/// Response body; holds the request's metrics guard so latency and in-flight cover the whole
/// body, and a dataset handle (inside the source) so its map lives until the last byte is sent.
pub struct Body {
    kind: Kind,
    guard: Option<RequestGuard>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Full(_) => "full",
            Kind::Pieces(..) => "pieces",
            Kind::Stream(_) => "stream",
        };
        f.debug_struct("Body").field("kind", &kind).finish()
    }
}

impl Body {
    pub fn empty() -> Body {
        Body {
            kind: Kind::Empty,
            guard: None,
        }
    }

    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body {
            kind: Kind::Full(Some(bytes.into())),
            guard: None,
        }
    }

    /// A body of several `Bytes` with a known total length (Content-Length, no chunking).
    pub fn pieces(pieces: Vec<Bytes>) -> Body {
        let len = pieces.iter().map(|b| b.len() as u64).sum();
        Body {
            kind: Kind::Pieces(pieces.into(), len),
            guard: None,
        }
    }

    pub fn stream(source: Box<dyn FrameSource>) -> Body {
        Body {
            kind: Kind::Stream(source),
            guard: None,
        }
    }

    pub(crate) fn set_guard(&mut self, guard: RequestGuard) {
        self.guard = Some(guard);
    }

    /// Drops the payload (HEAD, 304) but keeps the guard.
    pub(crate) fn clear(&mut self) {
        self.kind = Kind::Empty;
    }

    fn account(&mut self, n: usize) {
        if let Some(g) = &mut self.guard {
            g.add_bytes(n);
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    /// A contained panic while producing a frame, or a frame over the memory budget: hyper then
    /// aborts the connection (the head is out, so no error status can follow).
    type Error = BodyAborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAborted>>> {
        let this = &mut *self;
        let next = match &mut this.kind {
            Kind::Empty => None,
            Kind::Full(b) => b.take(),
            Kind::Pieces(p, left) => {
                let next = p.pop_front();
                if let Some(b) = &next {
                    *left -= b.len() as u64;
                }
                next
            }
            Kind::Stream(s) => match crate::panic::contain(|| s.next_frame()) {
                Ok(Ok(next)) => next,
                Ok(Err(e)) => {
                    this.kind = Kind::Empty;
                    return Poll::Ready(Some(Err(e)));
                }
                Err(message) => {
                    if let Some(g) = &this.guard {
                        crate::panic::report(g.ctx(), "(streamed body)", "body", &message);
                    }
                    // The source's state is suspect: drop it, never poll it again.
                    this.kind = Kind::Empty;
                    return Poll::Ready(Some(Err(BodyAborted::Panicked)));
                }
            },
        };
        match next {
            Some(b) => {
                this.account(b.len());
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            None => {
                if let Some(g) = &mut this.guard {
                    g.body_done();
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Pieces(p, _) => p.is_empty(),
            Kind::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Pieces(_, left) => SizeHint::with_exact(*left),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}
