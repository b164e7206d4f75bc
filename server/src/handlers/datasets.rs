//! `/v1/datasets` and `/v1/datasets/{name}`: metadata of the versions being served.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::{cacheable, etag, json_response};
use crate::body::Body;
use crate::dataset::Dataset;
use crate::state::LoopCtx;

pub fn list(ctx: &LoopCtx, req: &Request<Incoming>) -> Response<Body> {
    let cat = ctx.catalog.borrow();
    let infos: Vec<&serde_json::Value> = cat.datasets.values().map(|d| &d.info).collect();
    let versions: Vec<&str> = cat
        .datasets
        .values()
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
