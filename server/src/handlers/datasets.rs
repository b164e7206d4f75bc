//! `/v1/datasets` and `/v1/datasets/{name}`: metadata of the versions being served.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::{cacheable, etag, json_response};
use crate::auth::Access;
use crate::body::Body;
use crate::dataset::Dataset;
use crate::state::LoopCtx;

/// The datasets the caller may read (their names and versions also make the ETag).
pub fn list(ctx: &LoopCtx, req: &Request<Incoming>, access: &Access) -> Response<Body> {
    let cat = ctx.catalog.borrow();
    let readable = || cat.datasets.values().filter(|d| access.allows(&d.name));
    let infos: Vec<&serde_json::Value> = readable().map(|d| &d.info).collect();
    let versions: Vec<&str> = readable()
        .flat_map(|d| [d.name.as_str(), d.version_hex.as_str()])
        .collect();
    let tag = etag(&versions, req, &[]);
    cacheable(
        ctx,
        req,
        tag,
        "",
        json_response(StatusCode::OK, &json!({"datasets": infos})),
    )
}

pub fn one(ctx: &LoopCtx, req: &Request<Incoming>, ds: &Dataset) -> Response<Body> {
    let tag = etag(&[&ds.version_hex], req, &[]);
    cacheable(ctx, req, tag, "", json_response(StatusCode::OK, &ds.info))
}
