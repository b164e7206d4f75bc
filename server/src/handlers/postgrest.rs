//! The PostgREST face: `/rest/{table}` answers a dataset as PostgREST answers a table, so a
//! PostgREST client given `http://HOST/rest` works unchanged (`client.from_("flights")`).
//!
//! Same engine as `/v1/datasets/{name}/rows` (`Dialect::PostgRest`: nulls first for desc,
//! aggregates keyed by function name); what differs is the HTTP shape:
//! - the body is a bare JSON array, or one object for `Accept: application/vnd.pgrst.object+json`
//!   (406 `PGRST116` unless exactly one row);
//! - no default page size: up to `--max-limit` rows unless `limit=`/`Range` says fewer;
//! - `Range: a-b` (`Range-Unit: items`) or `offset=`/`limit=` page; `Content-Range:
//!   first-last/total` (`*` without a count), 206 when a counted page is not everything;
//! - `Prefer: count=exact|planned|estimated` all count exactly (the data is immutable and the
//!   count is part of the scan);
//! - errors are PostgREST's `{code, message, details, hint}`, with PostgREST's or PostgreSQL's
//!   code where one exists (`PGRST100` parse errors, `42703` unknown column, `PGRST116`,
//!   `PGRST205` unknown table, `PGRST202` RPC, `25006` writes), else Quarry's own code;
//! - a `Link: rel="next"` header carries a cursor (`?cursor=` alone continues the query), the
//!   way past `Limits::max_offset`.

use std::rc::Rc;
use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use quarry_query::{negotiate, parse_rows_query_in, Dialect, Encoder, JsonShape, OutputFormat};
use serde_json::json;

use super::rows::{limits, EncodeFrames};
use super::{cacheable, etag};
use crate::body::Body;
use crate::dataset::Dataset;
use crate::error::ApiError;
use crate::state::LoopCtx;

/// A PostgREST error object as a response.
fn pg_error(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Option<String>,
    hint: Option<&str>,
) -> Response<Body> {
    let v = json!({"code": code, "message": message, "details": details, "hint": hint});
    let mut body = v.to_string().into_bytes();
    body.push(b'\n');
    let mut resp = super::full(status, "application/json; charset=utf-8", body);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Any error of a `/rest` request in PostgREST's form. `table` names the dataset for messages.
pub fn error(e: ApiError, table: &str) -> Response<Body> {
    let status = e.status();
    let message = e.message();
    let details = e.param().map(|p| format!("query parameter: {p}"));
    let (code, hint): (String, Option<&str>) = match (&e, e.code()) {
        (ApiError::DatasetNotFound { name }, _) => {
            return pg_error(
                StatusCode::NOT_FOUND,
                "PGRST205",
                &format!("Could not find the table 'public.{name}' in the schema cache"),
                None,
                Some("the tables are the datasets listed at /v1/datasets"),
            )
        }
        (_, "unknown_parameter") => {
            let col = e.param().unwrap_or("");
            return pg_error(
                StatusCode::BAD_REQUEST,
                "42703",
                &format!("column {table}.{col} does not exist"),
                Some(message),
                None,
            );
        }
        (_, "bad_select" | "bad_order" | "bad_filter") if message.contains("unknown column") => {
            ("42703".into(), None)
        }
        (_, "bad_select") if message.contains("embedding") => ("PGRST200".into(), None),
        // PostgREST: no credentials and anonymous access off / a refused JWT.
        (ApiError::Unauthorized { reason: None }, _) => ("PGRST302".into(), None),
        (ApiError::Unauthorized { .. }, _) => ("PGRST301".into(), None),
        (_, "offset_too_large") => {
            return pg_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "PGRST103",
                &message,
                details,
                Some("follow the cursor of the Link: rel=\"next\" header (/rest/TABLE?cursor=...)"),
            )
        }
        (_, "not_acceptable") => ("PGRST107".into(), None),
        (_, "sum_overflow") => ("22003".into(), None),
        (_, "stale_cursor" | "cursor_mismatch" | "bad_cursor") => (
            e.code().into(),
            Some("send the cursor alone (?cursor=...) to continue its query"),
        ),
        (_, code) if code.starts_with("PGRST") => (code.into(), None),
        _ if status == StatusCode::BAD_REQUEST => ("PGRST100".into(), None),
        (_, code) => (code.into(), None),
    };
    let mut resp = pg_error(status, &code, &message, details, hint);
    if let Some(after) = e.retry_after() {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(after.as_secs().max(1)),
        );
    }
    resp
}

/// POST, PATCH, PUT, DELETE: the data is read-only; PostgREST answers a write in a read-only
/// transaction (SQLSTATE 25006) with 405. `allow`: the methods the path has.
pub fn read_only(method: &Method, allow: &'static str) -> Response<Body> {
    let verb = match *method {
        Method::POST => "INSERT",
        Method::PATCH | Method::PUT => "UPDATE",
        Method::DELETE => "DELETE",
        _ => method.as_str(),
    };
    let mut resp = pg_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "25006",
        &format!("cannot execute {verb} in a read-only transaction"),
        Some("Quarry serves immutable datasets; publish a new version with quarry-etl".into()),
        None,
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// `/rest/rpc/{function}`: there are no functions.
pub fn no_function(name: &str) -> Response<Body> {
    pg_error(
        StatusCode::NOT_FOUND,
        "PGRST202",
        &format!(
            "Could not find the function public.{name} without parameters in the schema cache"
        ),
        Some("Quarry has no functions (RPC); query the datasets as tables".into()),
        None,
    )
}

fn header_str<'a>(req: &'a Request<Incoming>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| ApiError::BadRequest {
            code: "bad_header",
            message: format!("{name} header is not visible ASCII"),
            param: Some(name.to_string()),
        }),
    }
}

/// What the request asked for beyond the query string.
struct Ask {
    format: OutputFormat,
    single: bool,
    /// `Prefer: count=...` as given, echoed in `Preference-Applied`.
    count: Option<&'static str>,
    /// `Range: first-[last]` -> (offset, limit).
    range: Option<(usize, Option<usize>)>,
}

fn ask(req: &Request<Incoming>) -> Result<Ask, ApiError> {
    for profile in ["accept-profile", "content-profile"] {
        if let Some(p) = header_str(req, profile)? {
            if p.trim() != "public" {
                return Err(ApiError::Query {
                    status: StatusCode::NOT_ACCEPTABLE,
                    code: "PGRST106",
                    message: "The schema must be one of the following: public".into(),
                    param: Some(profile.into()),
                });
            }
        }
    }
    let accept = header_str(req, "accept")?;
    let mut single = false;
    let format = match accept.map(str::trim) {
        Some(a) if a.contains("nulls=stripped") => {
            return Err(ApiError::Query {
                status: StatusCode::NOT_ACCEPTABLE,
                code: "not_acceptable",
                message: "nulls=stripped is not supported; nulls are sent as null".into(),
                param: Some("Accept".into()),
            })
        }
        Some(a) if a.starts_with("application/vnd.pgrst.object+json") => {
            single = true;
            OutputFormat::Json
        }
        Some(a) if a.starts_with("application/vnd.pgrst.array+json") => OutputFormat::Json,
        other => negotiate(other)?,
    };
    let mut count = None;
    for v in req.headers().get_all("prefer") {
        let s = v.to_str().unwrap_or("");
        for p in s.split([',', ';']).map(str::trim) {
            count = match p {
                "count=exact" => Some("count=exact"),
                "count=planned" => Some("count=planned"),
                "count=estimated" => Some("count=estimated"),
                _ => count,
            };
        }
    }
    let range = match header_str(req, "range")? {
        None => None,
        Some(r) => {
            if let Some(unit) = header_str(req, "range-unit")? {
                if !unit.trim().eq_ignore_ascii_case("items") {
                    return Err(ApiError::bad_param(
                        "Range-Unit",
                        format!("expected Range-Unit: items, found {unit:?}"),
                    ));
                }
            }
            Some(parse_range(r)?)
        }
    };
    Ok(Ask {
        format,
        single,
        count,
        range,
    })
}

/// `a-b` or `a-` (an `items=` prefix is accepted too) -> (offset, limit).
fn parse_range(r: &str) -> Result<(usize, Option<usize>), ApiError> {
    let bad = || {
        ApiError::bad_param(
            "Range",
            format!(
                "expected Range: first-last or first- (items, 0-based, last >= first), found {r:?}"
            ),
        )
    };
    let spec = r.trim();
    let spec = spec.strip_prefix("items=").unwrap_or(spec);
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let first: usize = a.trim().parse().map_err(|_| bad())?;
    let last: Option<usize> = match b.trim() {
        "" => None,
        b => Some(b.parse().map_err(|_| bad())?),
    };
    match last {
        Some(l) if l < first => Err(bad()),
        Some(l) => Ok((first, Some(l - first + 1))),
        None => Ok((first, None)),
    }
}

/// PostgREST has no default page size: without `limit=` (or `Range`) a page holds up to the
/// server's `--max-limit` rows (like PostgREST's `db-max-rows`), and `Content-Range` and the
/// `Link` header show where it stopped.
fn face_limits(ctx: &LoopCtx) -> quarry_query::Limits {
    let l = limits(ctx);
    quarry_query::Limits {
        default_limit: l.max_limit,
        ..l
    }
}

/// `GET /rest/{table}`: errors come back as PostgREST objects.
pub async fn scan(ctx: &Rc<LoopCtx>, req: &Request<Incoming>, ds: Arc<Dataset>) -> Response<Body> {
    match scan_inner(ctx, req, &ds).await {
        Ok(r) => r,
        Err(e) => error(e, &ds.name),
    }
}

async fn scan_inner(
    ctx: &Rc<LoopCtx>,
    req: &Request<Incoming>,
    ds: &Arc<Dataset>,
) -> Result<Response<Body>, ApiError> {
    let ask = ask(req)?;
    let raw = req.uri().query().unwrap_or("");
    let mut raw_query = raw.to_string();
    if let Some((offset, limit)) = ask.range {
        let given = |name: &str| {
            raw.split('&')
                .any(|p| p.split_once('=').map_or(p, |(n, _)| n) == name)
        };
        if given("offset") || given("limit") {
            return Err(ApiError::bad_param(
                "Range",
                "give either a Range header or offset=/limit= parameters, not both",
            ));
        }
        let sep = if raw_query.is_empty() { "" } else { "&" };
        raw_query.push_str(&format!("{sep}offset={offset}"));
        if let Some(l) = limit {
            // A range wider than a page is served up to a page, as PostgREST's max-rows does;
            // Content-Range says where it stopped.
            let l = l.min(ctx.config.max_limit);
            raw_query.push_str(&format!("&limit={l}"));
        }
    }
    let mut query = parse_rows_query_in(
        &raw_query,
        ds.file.schema(),
        ds.file.version(),
        &face_limits(ctx),
        Dialect::PostgRest,
    )?;
    query.count_exact(ask.count.is_some());
    if ask.single {
        // Two rows tell "exactly one" from "more than one".
        query.cap_limit(2);
    }

    let vary = [
        header::ACCEPT,
        HeaderName::from_static("prefer"),
        header::RANGE,
        HeaderName::from_static("range-unit"),
    ];
    let tag = etag(&[&ds.version_hex], req, &vary);
    if super::not_modified(req.headers(), &tag) {
        return Ok(cacheable(
            ctx,
            req,
            tag,
            "Accept, Prefer, Range, Range-Unit",
            Response::new(Body::empty()),
        ));
    }

    let (page, charge) = super::rows::run_scan(ctx, req, &query, ds).await?;
    let total = page.total;
    let shape = if ask.single {
        JsonShape::Object
    } else {
        JsonShape::Array
    };
    let encoder = Encoder::new(&query, page, ask.format).with_json_shape(shape);
    let n = encoder.len();
    if ask.single && n != 1 {
        let rows = match (n, total) {
            (_, Some(t)) => format!("{t} rows"),
            (0, None) => "0 rows".to_string(),
            _ => "more than 1 row".to_string(),
        };
        return Ok(pg_error(
            StatusCode::NOT_ACCEPTABLE,
            "PGRST116",
            "JSON object requested, multiple (or no) rows returned",
            Some(format!("The result contains {rows}")),
            None,
        ));
    }

    let offset = query.offset();
    let fault_in_body = crate::panic::wants_fault(req.headers(), "body");
    let frames = EncodeFrames::new(ctx, ds.clone(), query, encoder, charge, fault_in_body)?;
    let mut resp = Response::new(Body::empty());
    let partial = total.is_some_and(|t| (offset as u64).saturating_add(n as u64) < t || offset > 0);
    if partial && !ask.single {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    let h = resp.headers_mut();
    let content_type = match ask.format {
        OutputFormat::Json if ask.single => "application/vnd.pgrst.object+json; charset=utf-8",
        OutputFormat::Json => "application/json; charset=utf-8",
        f => f.content_type(),
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let range = if n == 0 {
        "*".to_string()
    } else {
        format!("{}-{}", offset, offset + n - 1)
    };
    let total_text = total.map_or("*".to_string(), |t| t.to_string());
    if let Ok(v) = HeaderValue::from_str(&format!("{range}/{total_text}")) {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Some(c) = ask.count {
        h.insert("preference-applied", HeaderValue::from_static(c));
    }
    if let Some(cursor) = frames.encoder.next_cursor() {
        let name =
            percent_encoding::utf8_percent_encode(&ds.name, percent_encoding::NON_ALPHANUMERIC);
        if let Ok(v) =
            HeaderValue::from_str(&format!("</rest/{name}?cursor={cursor}>; rel=\"next\""))
        {
            h.insert(header::LINK, v);
        }
    }
    *resp.body_mut() = Body::stream(Box::new(frames));
    Ok(cacheable(
        ctx,
        req,
        tag,
        "Accept, Prefer, Range, Range-Unit",
        resp,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("0-9").ok(), Some((0, Some(10))));
        assert_eq!(parse_range("items=5-5").ok(), Some((5, Some(1))));
        assert_eq!(parse_range("7-").ok(), Some((7, None)));
        for bad in ["", "-", "x-1", "5-4", "-3", "1-2-3"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
