//! `/v1/datasets` and `/v1/datasets/{name}`: metadata of the versions being served.
//!
//! Each dataset's document is serialized once, when its version is loaded; a list page is the
//! concatenation of at most `limit` of them, found by a range over the catalog's sorted names
//! (`prefix`, `cursor`), and its ETag depends only on the catalog's digest and the request
//! target, so a 304 or a HEAD costs O(log datasets + page), never O(datasets).

use std::ops::Bound;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{cacheable, etag, full, not_modified};
use crate::auth::Access;
use crate::body::Body;
use crate::dataset::Dataset;
use crate::error::ApiError;
use crate::state::LoopCtx;

/// Datasets per page without `limit`.
pub const DEFAULT_PAGE: usize = 100;
/// Largest accepted `limit`.
pub const MAX_PAGE: usize = 1000;

struct ListQuery {
    limit: usize,
    cursor: Option<String>,
    prefix: String,
}

fn parse_list_query(query: &str) -> Result<ListQuery, ApiError> {
    let mut q = ListQuery {
        limit: DEFAULT_PAGE,
        cursor: None,
        prefix: String::new(),
    };
    for (name, value) in quarry_query::decode_query(query)? {
        match name.as_str() {
            "limit" => {
                q.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        ApiError::bad_param(
                            "limit",
                            format!("limit must be an integer from 1 to {MAX_PAGE}, got {value:?}"),
                        )
                    })?;
            }
            "cursor" => q.cursor = Some(value),
            "prefix" => q.prefix = value,
            _ => {}
        }
    }
    Ok(q)
}

/// A page of the datasets the caller may read; under auth the ETag also depends on what the
/// caller's grant lets it see.
pub fn list(
    ctx: &LoopCtx,
    req: &Request<Incoming>,
    access: &Access,
) -> Result<Response<Body>, ApiError> {
    let q = parse_list_query(req.uri().query().unwrap_or(""))?;
    let cat = ctx.catalog();
    let digest = format!("{:032x}", cat.list_digest);
    let tag = match access.principal() {
        None => etag(&[&digest], req, &[]),
        Some(p) => etag(&[&digest, &p.datasets.digest_hex()], req, &[]),
    };
    if not_modified(req.headers(), &tag) {
        return Ok(cacheable(ctx, req, tag, "", Response::new(Body::empty())));
    }
    let start = match &q.cursor {
        Some(c) if c.as_str() >= q.prefix.as_str() => Bound::Excluded(c.as_str()),
        _ => Bound::Included(q.prefix.as_str()),
    };
    let mut page: Vec<&Arc<Dataset>> = Vec::with_capacity(q.limit.min(64));
    let mut more = false;
    for (name, ds) in cat
        .datasets
        .range::<str, _>((start, Bound::Unbounded))
        .take_while(|(n, _)| n.starts_with(q.prefix.as_str()))
        .filter(|(n, _)| access.allows(n))
    {
        if page.len() == q.limit {
            more = true;
            break;
        }
        debug_assert_eq!(&**name, ds.name.as_str());
        page.push(ds);
    }
    let len: usize = page.iter().map(|d| d.info_json.len() + 1).sum();
    let mut body = Vec::with_capacity(len + 64);
    body.extend_from_slice(b"{\"datasets\":[");
    for (i, ds) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&ds.info_json);
    }
    body.extend_from_slice(b"],\"next\":");
    match page.last() {
        Some(last) if more => {
            let next = serde_json::to_string(&last.name).unwrap_or_else(|_| "null".into());
            body.extend_from_slice(next.as_bytes());
        }
        _ => body.extend_from_slice(b"null"),
    }
    body.extend_from_slice(b"}\n");
    Ok(cacheable(
        ctx,
        req,
        tag,
        "",
        full(StatusCode::OK, "application/json", body),
    ))
}

pub fn one(ctx: &LoopCtx, req: &Request<Incoming>, ds: &Dataset) -> Response<Body> {
    let tag = etag(&[&ds.version_hex], req, &[]);
    if not_modified(req.headers(), &tag) {
        return cacheable(ctx, req, tag, "", Response::new(Body::empty()));
    }
    let mut body = Vec::with_capacity(ds.info_json.len() + 1);
    body.extend_from_slice(&ds.info_json);
    body.push(b'\n');
    cacheable(
        ctx,
        req,
        tag,
        "",
        full(StatusCode::OK, "application/json", body),
    )
}
