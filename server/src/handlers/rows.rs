//! `/v1/datasets/{name}/rows/{key}` (point lookup) and `/v1/datasets/{name}/rows` (scans).
//!
//! A scan runs in two phases on the loop: `Scan::step`s of `SCAN_STEP_ROWS` rows, yielding to
//! the loop after each time slice (`SLICE_SHARED`), until the page is known (so the `Link`
//! header and the total can go in the head); then the body streams one `Encoder::step` of at
//! most `FRAME_BYTES` per frame, so a large page never sits in memory whole. The scan, then the
//! page, then each frame until written, are charged to the memory budgets (`crate::memory`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use quarry_query::{
    negotiate, parse_key, parse_rows_query, Encoder, Limits, Page, RowsQuery, Scan,
};

use super::{cacheable, etag, full, ApiResult};
use crate::body::{Body, BodyAborted, FrameSource};
use crate::dataset::Dataset;
use crate::error::ApiError;
use crate::memory::{Charge, OverBudget};
use crate::state::LoopCtx;

/// Rows per `Scan::step`: small beside a time slice even for the costliest aggregation, so a
/// slice overruns its time budget by at most one step.
const SCAN_STEP_ROWS: u64 = 4_096;
/// A scan's time on the loop between yields while other connections are open. The loop serves
/// every ready lookup between two slices, so this bounds what a scan adds to their latency; a
/// shorter slice trades the scans' share of the core for lookup latency
/// (`bench/lookups_beside_aggregations.sh`; figures in docs/bench/server-history.md).
const SLICE_SHARED: Duration = Duration::from_micros(150);
/// The same when this scan's connection is the loop's only one: nothing else can be waiting
/// but a new connection (a probe), and each yield costs a driver poll.
const SLICE_ALONE: Duration = Duration::from_millis(5);
/// Encoded bytes per body frame.
pub(super) const FRAME_BYTES: usize = 64 << 10;

pub fn one(ctx: &LoopCtx, req: &Request<Incoming>, ds: &Arc<Dataset>, raw_key: &str) -> ApiResult {
    let key = parse_key(raw_key, ds.file.schema())?;
    let row = ds
        .file
        .find_key(key.as_key_ref())
        .ok_or_else(|| ApiError::KeyNotFound {
            dataset: ds.name.clone(),
        })?;
    let mut body = Vec::new();
    ds.row_json.write(&ds.file, row, &mut body);
    body.push(b'\n');
    let tag = etag(&[&ds.version_hex], req, &[]);
    Ok(cacheable(
        ctx,
        req,
        tag,
        "",
        full(StatusCode::OK, "application/json", body),
    ))
}

pub(super) fn limits(ctx: &LoopCtx) -> Limits {
    Limits {
        default_limit: ctx.config.default_limit,
        max_limit: ctx.config.max_limit,
        max_scan_rows: ctx.config.max_scan_rows,
        max_offset: Limits::default().max_offset,
    }
}

/// `Prefer: count=exact` (RFC 7240 preferences, comma- or semicolon-separated).
fn prefers_exact_count(req: &Request<Incoming>) -> bool {
    req.headers().get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split([',', ';'])
                .any(|p| p.trim().eq_ignore_ascii_case("count=exact"))
        })
    })
}

pub async fn scan(ctx: &Rc<LoopCtx>, req: &Request<Incoming>, ds: Arc<Dataset>) -> ApiResult {
    let accept = match req.headers().get(header::ACCEPT) {
        Some(v) => Some(v.to_str().map_err(|_| ApiError::BadRequest {
            code: "bad_header",
            message: "Accept header is not visible ASCII".to_string(),
            param: Some("Accept".to_string()),
        })?),
        None => None,
    };
    let format = negotiate(accept)?;
    let raw_query = req.uri().query().unwrap_or("");
    let mut query = parse_rows_query(raw_query, ds.file.schema(), ds.file.version(), &limits(ctx))?;
    let count = prefers_exact_count(req);
    query.count_exact(count);

    let tag = etag(
        &[&ds.version_hex],
        req,
        &[header::ACCEPT, header::HeaderName::from_static("prefer")],
    );
    if super::not_modified(req.headers(), &tag) {
        return Ok(cacheable(
            ctx,
            req,
            tag,
            "Accept, Prefer",
            Response::new(Body::empty()),
        ));
    }

    let (page, charge) = run_scan(ctx, req, &query, &ds).await?;
    let total = page.total;
    let encoder = Encoder::new(&query, page, format);
    let fault_in_body = crate::panic::wants_fault(req.headers(), "body");
    let frames = EncodeFrames::new(ctx, ds, query, encoder, charge, fault_in_body)?;

    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Some(cursor) = frames.encoder.next_cursor() {
        let link = next_link(req, &frames.ds.name, cursor);
        if let Ok(v) = HeaderValue::from_str(&link) {
            h.insert(header::LINK, v);
        }
    }
    if let Some(total) = total {
        // PostgREST's form: first-last/total; we only know the total.
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("*/{total}")).unwrap_or(HeaderValue::from_static("*/*")),
        );
        h.insert(
            "preference-applied",
            HeaderValue::from_static("count=exact"),
        );
    }
    *resp.body_mut() = Body::stream(Box::new(frames));
    Ok(cacheable(ctx, req, tag, "Accept, Prefer", resp))
}

fn memory_rejected(ctx: &LoopCtx, budget: &'static str) {
    ctx.metrics
        .memory_rejections
        .get_or_create(&crate::metrics::BudgetLabel { budget })
        .inc();
}

/// `</v1/datasets/{name}/rows?{query without cursor}&cursor=...>; rel="next"`.
fn next_link(req: &Request<Incoming>, name: &str, cursor: &str) -> String {
    let mut q: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
        .collect();
    let cursor_piece = format!("cursor={cursor}");
    q.push(&cursor_piece);
    let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("</v1/datasets/{name}/rows?{}>; rel=\"next\"", q.join("&"))
}

/// Streams the encoded page; holds the dataset version the scan ran on. The page stays charged
/// to the process budget while the body lives, and every frame until hyper has written it.
pub(super) struct EncodeFrames {
    ctx: Rc<LoopCtx>,
    pub(super) ds: Arc<Dataset>,
    query: RowsQuery,
    pub(super) encoder: Encoder,
    _charge: Charge,
    /// Tests only (`panic::wants_fault`): panic while producing a frame.
    fault_in_body: bool,
}

impl EncodeFrames {
    /// Moves the scan's charge onto what the body holds (the page): a 503 before the head when
    /// the page and room for one frame do not fit in the process budget (a frame that does not
    /// fit later aborts the response, its head being out).
    pub(super) fn new(
        ctx: &Rc<LoopCtx>,
        ds: Arc<Dataset>,
        query: RowsQuery,
        encoder: Encoder,
        mut charge: Charge,
        fault_in_body: bool,
    ) -> Result<EncodeFrames, ApiError> {
        let page = encoder.memory_bytes() as u64;
        if let Err(over) = charge.set(page.saturating_add(FRAME_BYTES as u64)) {
            return Err(shed(ctx, &ds, &over));
        }
        // Only the page stays charged: each frame carries its own charge.
        let _ = charge.set(page);
        Ok(EncodeFrames {
            ctx: ctx.clone(),
            ds,
            query,
            encoder,
            _charge: charge,
            fault_in_body,
        })
    }
}

impl FrameSource for EncodeFrames {
    fn next_frame(&mut self) -> Result<Option<Bytes>, BodyAborted> {
        if self.fault_in_body {
            panic!("injected fault at body");
        }
        let Some(buf) = self
            .encoder
            .step_buf(&self.query, &self.ds.file, FRAME_BYTES)
        else {
            return Ok(None);
        };
        match crate::memory::charged_frame(&self.ctx.budget, buf) {
            Ok(frame) => Ok(Some(frame)),
            Err(over) => {
                memory_rejected(&self.ctx, "process");
                self.ctx
                    .metrics
                    .responses_aborted
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: "memory_budget",
                    })
                    .inc();
                tracing::warn!(
                    loop_index = self.ctx.index,
                    dataset = %self.ds.name,
                    charged = over.charged,
                    memory_budget = over.limit,
                    "response aborted: its next frame does not fit in the process memory budget"
                );
                Err(BodyAborted::OverBudget)
            }
        }
    }
}

/// A request shed because the process budget is used up: 503 + Retry-After, counted, logged.
fn shed(ctx: &LoopCtx, ds: &Dataset, over: &OverBudget) -> ApiError {
    memory_rejected(ctx, "process");
    tracing::warn!(
        loop_index = ctx.index,
        dataset = %ds.name,
        charged = over.charged,
        memory_budget = over.limit,
        "request shed: the process memory budget is used up"
    );
    ApiError::Overloaded {
        reason: "memory budget of the process used up by requests in flight (--memory-budget)",
        retry_after: Duration::from_secs(1),
    }
}

impl From<quarry_query::QueryError> for ApiError {
    fn from(e: quarry_query::QueryError) -> ApiError {
        let status =
            http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
        ApiError::Query {
            status,
            code: e.code,
            message: e.message,
            param: e.param,
        }
    }
}

/// Runs a parsed query's scan to the end in time slices, yielding to the loop between them,
/// within the request's and the process's memory budgets: every scan, `/v1` or `/rest`, goes
/// through here. The charge it returns still holds the scan's last size: hand it on to what
/// keeps the page ([`EncodeFrames::new`]).
pub(super) async fn run_scan(
    ctx: &Rc<LoopCtx>,
    req: &Request<Incoming>,
    query: &RowsQuery,
    ds: &Arc<Dataset>,
) -> Result<(Page, Charge), ApiError> {
    let mut scan = Scan::new(query, &ds.file);
    scan.set_memory_limit(usize::try_from(ctx.config.max_request_memory).unwrap_or(usize::MAX));
    let mut charge = Charge::new(ctx.budget.clone());
    ctx.turn_end.write_all();
    let mut slice_start = Instant::now();
    loop {
        let done = scan.step(query, &ds.file, SCAN_STEP_ROWS);
        let done = match done {
            Ok(d) => d,
            Err(e) => {
                ctx.metrics.rows_examined.inc_by(scan.rows_examined());
                if e.code == "too_much_memory" {
                    memory_rejected(ctx, "request");
                }
                return Err(e.into());
            }
        };
        if let Err(over) = charge.set(scan.memory_bytes() as u64) {
            ctx.metrics.rows_examined.inc_by(scan.rows_examined());
            return Err(shed(ctx, ds, &over));
        }
        crate::panic::inject(req.headers(), "scan");
        if done {
            break;
        }
        let budget = if ctx.connections.get() > 1 {
            SLICE_SHARED
        } else {
            SLICE_ALONE
        };
        if slice_start.elapsed() >= budget {
            ctx.next_slice().await;
            slice_start = Instant::now();
        }
    }
    ctx.metrics.rows_examined.inc_by(scan.rows_examined());
    Ok((scan.finish(), charge))
}
