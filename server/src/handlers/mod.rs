//! Request entry point: limits, load shedding, routing, methods, errors, conditional requests.

mod admin;
mod columns;
mod datasets;
mod postgrest;
mod probes;
mod rows;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::auth::Access;
use crate::body::Body;
use crate::dataset::Dataset;
use crate::error::ApiError;
use crate::metrics::{ConnActivity, RequestGuard};
use crate::routes::{match_path, Route};
use crate::state::{LoopCtx, Phase};

pub use admin::serve_admin;
pub use probes::OPENAPI_JSON;

pub type ApiResult = Result<Response<Body>, ApiError>;

/// The hyper service: never fails, every error becomes a JSON response.
///
/// Everything but a scan is answered synchronously, inside the call: the request is dropped
/// before hyper polls the connection for the next one, so hyper's read buffer is no longer
/// shared with the request's URI and headers and is reused in place instead of reallocated
/// (the fixed-body floor gets the same). Scans, which yield to the loop, get a boxed future.
pub fn serve(ctx: Rc<LoopCtx>, conn: Rc<ConnActivity>, req: Request<Incoming>) -> Serve {
    let mut guard = RequestGuard::new(ctx.clone(), conn);
    guard.log_access(&req);
    let is_head = req.method() == Method::HEAD;
    let handled = crate::panic::contain(|| {
        crate::panic::inject(req.headers(), "handler");
        route_and_handle(&ctx, &req, &mut guard)
    })
    .unwrap_or_else(|message| {
        crate::panic::report(&ctx, req.uri().path(), "handler", &message);
        Handled::Done(Err(ApiError::Panicked))
    });
    match handled {
        Handled::Done(result) => {
            drop(req);
            Serve::Ready(Some(finish(&ctx, result, is_head, guard)))
        }
        Handled::Scan(ds) => Serve::Scan(Box::pin(async move {
            let scan = crate::panic::CatchUnwind::new(Box::pin(rows::scan(&ctx, &req, ds)));
            let result = scan.await.unwrap_or_else(|message| {
                crate::panic::report(&ctx, req.uri().path(), "scan", &message);
                Err(ApiError::Panicked)
            });
            finish(&ctx, result, is_head, guard)
        })),
        Handled::Table(ds) => Serve::Scan(Box::pin(async move {
            let result = Ok(postgrest::scan(&ctx, &req, ds).await);
            finish(&ctx, result, is_head, guard)
        })),
    }
}

/// The response future handed to hyper: ready at once, or a scan in progress.
pub enum Serve {
    Ready(Option<Response<Body>>),
    Scan(Pin<Box<dyn Future<Output = Response<Body>>>>),
}

impl Future for Serve {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Serve::Ready(resp) => Poll::Ready(Ok(resp.take().unwrap_or_else(|| {
                // hyper never polls a finished future; answer rather than panic if it did.
                error_response(ApiError::Internal {
                    message: "response future polled after completion".to_string(),
                })
            }))),
            Serve::Scan(fut) => fut.as_mut().poll(cx).map(Ok),
        }
    }
}

/// Errors to JSON, `Connection: close` while draining, HEAD, and the metrics guard.
fn finish(
    ctx: &LoopCtx,
    result: ApiResult,
    is_head: bool,
    mut guard: RequestGuard,
) -> Response<Body> {
    let mut resp = result.unwrap_or_else(error_response);
    if ctx.draining() {
        // Tell keep-alive clients to reconnect (to a pod that is not leaving).
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if is_head {
        if let Some(len) = hyper::body::Body::size_hint(resp.body()).exact() {
            if resp.status() != StatusCode::NOT_MODIFIED {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
        }
        resp.body_mut().clear();
    }
    guard.set_status(resp.status().as_u16());
    resp.body_mut().set_guard(guard);
    resp
}

/// What routing produced: a finished result, or the dataset of a scan still to run.
enum Handled {
    Done(ApiResult),
    Scan(Arc<Dataset>),
    /// A scan of the PostgREST face.
    Table(Arc<Dataset>),
}

impl From<ApiResult> for Handled {
    fn from(r: ApiResult) -> Handled {
        Handled::Done(r)
    }
}

fn route_and_handle(ctx: &LoopCtx, req: &Request<Incoming>, guard: &mut RequestGuard) -> Handled {
    let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > ctx.config.max_uri_bytes {
        return Err(ApiError::UriTooLong {
            len: target_len,
            max: ctx.config.max_uri_bytes,
        })
        .into();
    }
    let head_len = head_len(req, target_len);
    if head_len > ctx.config.max_header_bytes {
        return Err(ApiError::HeaderTooLarge {
            len: head_len,
            max: ctx.config.max_header_bytes,
        })
        .into();
    }
    let route = match match_path(req.uri().path()) {
        Ok(r) => r,
        Err(e) => return Err(e).into(),
    };
    guard.set_route(route.index());
    if let Route::Rpc { name } = &route {
        // PostgREST calls functions with GET or POST (HEAD as GET); other methods are not
        // allowed on that path.
        let m = req.method();
        return Handled::Done(Ok(
            if m == Method::GET || m == Method::HEAD || m == Method::POST {
                postgrest::no_function(name)
            } else {
                postgrest::read_only(m, "GET, HEAD, POST")
            },
        ));
    }
    if matches!(route, Route::Table { .. })
        && req.method() != Method::GET
        && req.method() != Method::HEAD
    {
        return Handled::Done(Ok(postgrest::read_only(req.method(), "GET, HEAD")));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }).into();
    }
    if !route.is_probe() {
        if let Err(e) = shed_if_overloaded(ctx) {
            return Err(e).into();
        }
    }
    let access = match route {
        Route::Livez | Route::Healthz | Route::Metrics | Route::OpenApi => Access::Open,
        _ => match crate::auth::authenticate(ctx, req.headers()) {
            Ok(a) => a,
            Err(e) => {
                if let Route::Table { name } = &route {
                    // The PostgREST face answers in PostgREST's error shape.
                    let challenge = challenge(&e);
                    let mut resp = postgrest::error(e, name);
                    if let Some(c) = challenge {
                        resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
                    }
                    return Handled::Done(Ok(resp));
                }
                return Err(e).into();
            }
        },
    };
    guard.set_access(&access);
    let result = match route {
        Route::Livez => Ok(probes::livez(ctx)),
        Route::Healthz => Ok(probes::healthz(ctx, !ctx.auth.enabled())),
        // Served on the admin port only (--admin-listen).
        Route::Metrics => Err(ApiError::RouteNotFound {
            path: req.uri().path().to_string(),
        }),
        Route::OpenApi => Ok(probes::openapi()),
        Route::Datasets => datasets::list(ctx, req, &access),
        Route::Dataset { name } => {
            dataset(ctx, &access, &name).map(|ds| datasets::one(ctx, req, &ds))
        }
        Route::Row { name, raw_key } => {
            dataset(ctx, &access, &name).and_then(|ds| rows::one(ctx, req, &ds, raw_key))
        }
        Route::Rows { name } => match dataset(ctx, &access, &name) {
            Ok(ds) => return Handled::Scan(ds),
            Err(e) => Err(e),
        },
        Route::Column { name, column } => {
            dataset(ctx, &access, &name).and_then(|ds| columns::raw(ctx, req, &ds, &column))
        }
        Route::Table { name } => match dataset(ctx, &access, &name) {
            Ok(ds) => return Handled::Table(ds),
            Err(e) => Ok(postgrest::error(e, &name)),
        },
        Route::Rpc { name } => Ok(postgrest::no_function(&name)),
    };
    Handled::Done(result)
}

/// The size of the request head as sent: request line, `name: value` lines, blank line.
fn head_len<B>(req: &Request<B>, target_len: usize) -> usize {
    let line = req.method().as_str().len() + 1 + target_len + 1 + "HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + headers + 2
}

fn shed_if_overloaded(ctx: &LoopCtx) -> Result<(), ApiError> {
    let cfg = &ctx.config;
    let reason = if ctx.in_flight.get() > cfg.shed_in_flight {
        "too many requests in flight"
    } else if !cfg.shed_lag.is_zero() && ctx.lag.get() > cfg.shed_lag {
        "event loop lagging"
    } else {
        return Ok(());
    };
    ctx.metrics.shed.inc();
    Err(ApiError::Overloaded {
        reason,
        retry_after: Duration::from_secs(1),
    })
}

/// The version being served now; the request keeps it to the end. A dataset the caller may
/// not read is answered as if it did not exist.
fn dataset(ctx: &LoopCtx, access: &Access, name: &str) -> Result<Arc<Dataset>, ApiError> {
    if !access.allows(name) {
        return Err(ApiError::DatasetNotFound {
            name: name.to_string(),
        });
    }
    if let Some(ds) = ctx.with_catalog(|c| c.get(name)) {
        return Ok(ds);
    }
    if ctx.phase() == Phase::Starting {
        return Err(ApiError::NotReady {
            retry_after: Duration::from_secs(1),
        });
    }
    Err(ApiError::DatasetNotFound {
        name: name.to_string(),
    })
}

pub fn error_response(e: ApiError) -> Response<Body> {
    let mut resp = full(e.status(), "application/json", e.to_json());
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let ApiError::MethodNotAllowed { allow } = &e {
        h.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if let Some(challenge) = challenge(&e) {
        h.insert(header::WWW_AUTHENTICATE, challenge);
    }
    if let Some(after) = e.retry_after() {
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(after.as_secs().max(1)),
        );
    }
    resp
}

/// `WWW-Authenticate` of a 401 (RFC 6750 section 3).
fn challenge(e: &ApiError) -> Option<HeaderValue> {
    match e {
        ApiError::Unauthorized { reason: None } => {
            Some(HeaderValue::from_static("Bearer realm=\"quarry\""))
        }
        ApiError::Unauthorized { reason: Some(_) } => Some(HeaderValue::from_static(
            "Bearer realm=\"quarry\", error=\"invalid_token\"",
        )),
        _ => None,
    }
}

/// A complete response with a fixed body.
pub fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Strong ETag from the data versions a response depends on and the normalized request target
/// (query pieces sorted, so parameter order does not matter) plus the headers it varies on.
///
/// The hashed text is `v1\0v2\0...path?piece&piece&...` then `\0name:value,value,...` per
/// `vary` header, hashed with XXH3-128 in one shot (equal to the streaming digest of the same
/// bytes, which is what earlier versions computed: ETags survive the upgrade).
pub fn etag<B>(versions: &[&str], req: &Request<B>, vary: &[header::HeaderName]) -> HeaderValue {
    thread_local! {
        /// The text to hash, reused: no allocation per request once warm.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(512));
    }
    let digest = SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        buf.clear();
        etag_text(&mut buf, versions, req, vary);
        let digest = xxhash_rust::xxh3::xxh3_128(&buf);
        if buf.capacity() > 16 << 10 {
            // A long URI grew it: give the memory back.
            *buf = Vec::with_capacity(512);
        }
        digest
    });
    etag_value(digest)
}

fn etag_text<B>(
    buf: &mut Vec<u8>,
    versions: &[&str],
    req: &Request<B>,
    vary: &[header::HeaderName],
) {
    for v in versions {
        buf.extend_from_slice(v.as_bytes());
        buf.push(0);
    }
    buf.extend_from_slice(req.uri().path().as_bytes());
    buf.push(b'?');
    let query = req.uri().query().unwrap_or("");
    if !query.is_empty() {
        // Sorted pieces; a stack array covers every sane query string.
        const STACK: usize = 16;
        let mut stack = [""; STACK];
        let mut n = 0;
        let mut heap: Vec<&str> = Vec::new();
        for p in query.split('&').filter(|p| !p.is_empty()) {
            if n < STACK {
                stack[n] = p;
                n += 1;
            } else {
                if heap.is_empty() {
                    heap.extend_from_slice(&stack);
                }
                heap.push(p);
            }
        }
        let pieces: &mut [&str] = if heap.is_empty() {
            &mut stack[..n]
        } else {
            &mut heap
        };
        pieces.sort_unstable();
        for p in pieces.iter() {
            buf.extend_from_slice(p.as_bytes());
            buf.push(b'&');
        }
    }
    for name in vary {
        buf.push(0);
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.push(b':');
        for v in req.headers().get_all(name) {
            buf.extend_from_slice(v.as_bytes());
            buf.push(b',');
        }
    }
}

/// `"<32 lowercase hex digits>"`.
fn etag_value(digest: u128) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 34];
    for (i, b) in digest.to_be_bytes().iter().enumerate() {
        out[1 + 2 * i] = HEX[usize::from(b >> 4)];
        out[2 + 2 * i] = HEX[usize::from(b & 0xf)];
    }
    // Quoted hex is always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// True when `If-None-Match` lists `etag` (weak comparison) or is `*`.
pub fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    headers.get_all(header::IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == ours)
        })
    })
}

/// Adds ETag, Cache-Control and Vary to a dataset response, or turns it into a 304.
pub fn cacheable(
    ctx: &LoopCtx,
    req: &Request<Incoming>,
    etag: HeaderValue,
    vary: &'static str,
    mut resp: Response<Body>,
) -> Response<Body> {
    if resp.status().is_success() && not_modified(req.headers(), &etag) {
        resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag);
    if let Some(v) = ctx.auth.cache_control(&ctx.cache_control) {
        h.insert(header::CACHE_CONTROL, v.clone());
    }
    if !vary.is_empty() {
        h.insert(header::VARY, HeaderValue::from_static(vary));
    }
    if ctx.auth.enabled() {
        // The answer depends on who asks (a dataset list is filtered, others may be 404).
        h.append(header::VARY, HeaderValue::from_static("authorization"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streaming computation ETags were first made with: the one-shot path must agree.
    fn streaming_etag<B>(
        versions: &[&str],
        req: &Request<B>,
        vary: &[header::HeaderName],
    ) -> String {
        use xxhash_rust::xxh3::Xxh3;
        let mut h = Xxh3::new();
        for v in versions {
            h.update(v.as_bytes());
            h.update(b"\0");
        }
        h.update(req.uri().path().as_bytes());
        h.update(b"?");
        let mut pieces: Vec<&str> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .collect();
        pieces.sort_unstable();
        for p in pieces {
            h.update(p.as_bytes());
            h.update(b"&");
        }
        for name in vary {
            h.update(b"\0");
            h.update(name.as_str().as_bytes());
            h.update(b":");
            for v in req.headers().get_all(name) {
                h.update(v.as_bytes());
                h.update(b",");
            }
        }
        format!("\"{:032x}\"", h.digest128())
    }

    #[test]
    fn etags_equal_the_streaming_digest_and_ignore_parameter_order() {
        let long_query: String = (0..40).map(|i| format!("c{i}=eq.{i}&")).collect();
        let targets = [
            "/v1/datasets/flights/rows/20130101-UA1545-EWR".to_string(),
            "/v1/datasets".to_string(),
            "/v1/datasets/t/rows?b=eq.2&a=eq.1&&limit=5".to_string(),
            format!("/v1/datasets/t/rows?{long_query}"),
        ];
        let vary = [header::ACCEPT, header::HeaderName::from_static("prefer")];
        for target in &targets {
            for (versions, accept) in [
                (vec!["3c65c67a5a3d0042b8f52fce8d9fd506"], None),
                (vec!["a", "b", "c"], Some("text/csv")),
                (vec![], Some("application/x-ndjson")),
            ] {
                let mut b = Request::builder().uri(target.as_str());
                if let Some(a) = accept {
                    b = b.header(header::ACCEPT, a).header("prefer", "count=exact");
                }
                let req = b.body(()).expect("request");
                for v in [&vary[..], &[]] {
                    let ours = etag(&versions, &req, v);
                    let reference = streaming_etag(&versions, &req, v);
                    assert_eq!(ours.to_str().ok(), Some(reference.as_str()), "{target}");
                }
            }
        }
        let a = Request::builder()
            .uri("/r?x=1&y=2")
            .body(())
            .expect("request");
        let b = Request::builder()
            .uri("/r?y=2&x=1")
            .body(())
            .expect("request");
        let c = Request::builder()
            .uri("/r?y=2&x=3")
            .body(())
            .expect("request");
        assert_eq!(etag(&["v"], &a, &[]), etag(&["v"], &b, &[]));
        assert_ne!(etag(&["v"], &a, &[]), etag(&["v"], &c, &[]));
        assert_ne!(etag(&["v"], &a, &[]), etag(&["w"], &a, &[]));
    }
}
