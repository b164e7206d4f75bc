//! Request entry point: limits, load shedding, routing, methods, errors, conditional requests.

mod columns;
mod datasets;
mod probes;
mod rows;

use std::convert::Infallible;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::Body;
use crate::dataset::Dataset;
use crate::error::ApiError;
use crate::metrics::{ConnActivity, RequestGuard};
use crate::routes::{match_path, Route};
use crate::state::{LoopCtx, Phase};

pub use probes::OPENAPI_JSON;

pub type ApiResult = Result<Response<Body>, ApiError>;

/// The hyper service: never fails, every error becomes a JSON response.
pub async fn serve(
    ctx: Rc<LoopCtx>,
    conn: Rc<ConnActivity>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let mut guard = RequestGuard::new(ctx.metrics.clone(), ctx.in_flight.clone(), conn);
    let is_head = req.method() == Method::HEAD;
    let result = route_and_handle(&ctx, &req, &mut guard).await;
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
    Ok(resp)
}

async fn route_and_handle(
    ctx: &Rc<LoopCtx>,
    req: &Request<Incoming>,
    guard: &mut RequestGuard,
) -> ApiResult {
    let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > ctx.config.max_uri_bytes {
        return Err(ApiError::UriTooLong {
            len: target_len,
            max: ctx.config.max_uri_bytes,
        });
    }
    let route = match_path(req.uri().path())?;
    guard.set_route(route.template());
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" });
    }
    if !route.is_probe() {
        shed_if_overloaded(ctx)?;
    }
    match route {
        Route::Livez => Ok(probes::livez()),
        Route::Healthz => Ok(probes::healthz(ctx)),
        Route::Metrics => Ok(probes::metrics(ctx)),
        Route::OpenApi => Ok(probes::openapi()),
        Route::Datasets => Ok(datasets::list(ctx, req)),
        Route::Dataset { name } => {
            let ds = dataset(ctx, &name)?;
            Ok(datasets::one(ctx, req, &ds))
        }
        Route::Row { name, raw_key } => {
            let ds = dataset(ctx, &name)?;
            rows::one(ctx, req, &ds, &raw_key)
        }
        Route::Rows { name } => rows::scan(ctx, req, dataset(ctx, &name)?).await,
        Route::Column { name, column } => {
            let ds = dataset(ctx, &name)?;
            columns::raw(ctx, req, &ds, &column)
        }
    }
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

/// The version being served now; the request keeps it to the end.
fn dataset(ctx: &LoopCtx, name: &str) -> Result<Arc<Dataset>, ApiError> {
    if let Some(ds) = ctx.catalog.borrow().get(name) {
        return Ok(ds);
    }
    if ctx.phase.get() == Phase::Starting {
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
    if let Some(after) = e.retry_after() {
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(after.as_secs().max(1)),
        );
    }
    resp
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

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = value.to_string().into_bytes();
    body.push(b'\n');
    full(status, "application/json", body)
}

/// Strong ETag from the data versions a response depends on and the normalized request target
/// (query pieces sorted, so parameter order does not matter) plus the headers it varies on.
pub fn etag(
    versions: &[&str],
    req: &Request<Incoming>,
    vary: &[header::HeaderName],
) -> HeaderValue {
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
    let tag = format!("\"{:032x}\"", h.digest128());
    // Quoted hex is always a valid header value.
    HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\""))
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
    if !ctx.config.cache_control.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&ctx.config.cache_control) {
            h.insert(header::CACHE_CONTROL, v);
        }
    }
    if !vary.is_empty() {
        h.insert(header::VARY, HeaderValue::from_static(vary));
    }
    resp
}
