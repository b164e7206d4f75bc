//! `/livez`, `/healthz`, `/metrics`, `/openapi.json`.

use http::{Response, StatusCode};
use serde_json::{json, Map, Value as Json};

use bytes::Bytes;

use super::full;
use crate::body::Body;
use crate::catalog::{Catalog, LoadState};
use crate::state::{LoopCtx, Phase};

/// The OpenAPI document, kept in the repository next to Cargo.toml.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Alive unless the fetcher thread (`--source`) has stopped: a pod that can no longer follow
/// its source is restarted rather than left serving stale versions as if nothing were wrong.
pub fn livez(ctx: &LoopCtx) -> Response<Body> {
    if let Some(why) = ctx.metrics.fetch.stopped() {
        let mut body = json!({"status": "failed", "reason": why})
            .to_string()
            .into_bytes();
        body.push(b'\n');
        return full(StatusCode::SERVICE_UNAVAILABLE, "application/json", body);
    }
    full(
        StatusCode::OK,
        "application/json",
        &b"{\"status\":\"alive\"}\n"[..],
    )
}

/// Up to this many datasets, `/healthz` lists every one; beyond, only those not ready.
const HEALTHZ_ALL_UP_TO: usize = 1000;
/// Datasets listed by name in `/healthz`, at most.
const HEALTHZ_LISTED: usize = 1000;

/// The body is built once per catalog snapshot (and per drain), never per probe: kubelets and
/// load balancers poll it, and it grows with the number of datasets.
///
/// `detail: false` (the API port under auth): status and a reason naming no dataset, since
/// names would tell any client what exists; the admin port always has the details.
pub fn healthz(ctx: &LoopCtx, detail: bool) -> Response<Body> {
    let phase = ctx.phase();
    let cat = ctx.catalog();
    let body = if !detail {
        let reason: Json = match phase {
            Phase::Ready => Json::Null,
            Phase::Draining => "shutting down: draining connections".into(),
            Phase::Starting | Phase::Failed => format!(
                "{}: dataset details on the admin port's /healthz",
                phase.name()
            )
            .into(),
        };
        let mut body = json!({"status": phase.name(), "reason": reason, "datasets": {}})
            .to_string()
            .into_bytes();
        body.push(b'\n');
        Bytes::from(body)
    } else if ctx.metrics.fetch.active() {
        // `--source`: the fetcher's progress changes between catalog snapshots, so this body
        // is built per probe (O(datasets), like a snapshot's).
        fetch_body(ctx, &cat, phase)
    } else if phase == Phase::Draining {
        health_body(&cat, phase)
    } else {
        cat.health_body
            .get_or_init(|| health_body(&cat, phase))
            .clone()
    };
    let status = if phase == Phase::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut resp = full(status, "application/json", body);
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// `health_body` with the fetcher's `fetch` object, and its reason while it holds readiness.
fn fetch_body(ctx: &LoopCtx, cat: &Catalog, phase: Phase) -> Bytes {
    let body = health_body(cat, phase);
    let mut v: Json = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    let fetch = &ctx.metrics.fetch;
    if phase != Phase::Draining && fetch.holds_readiness(cat).is_some() {
        v["reason"] = fetch.reason().into();
    }
    v["fetch"] = fetch.health_json();
    let mut body = v.to_string().into_bytes();
    body.push(b'\n');
    Bytes::from(body)
}

fn health_body(cat: &Catalog, phase: Phase) -> Bytes {
    let mut datasets = Map::new();
    let all = cat.states.len() <= HEALTHZ_ALL_UP_TO;
    let (mut ready, mut loading, mut failed) = (0usize, 0usize, 0usize);
    for (name, state) in &cat.states {
        let version = cat.datasets.get(name).map(|d| d.version_hex.clone());
        let entry = match state {
            LoadState::Loading => {
                loading += 1;
                json!({"state": "loading", "version": version, "error": null})
            }
            LoadState::Ready => {
                ready += 1;
                if !all {
                    continue;
                }
                json!({"state": "ready", "version": version, "error": null})
            }
            LoadState::Failed { error, .. } | LoadState::Modified { error, .. } => {
                failed += 1;
                json!({"state": "failed", "version": version, "error": error})
            }
        };
        if datasets.len() < HEALTHZ_LISTED {
            datasets.insert(name.to_string(), entry);
        }
    }
    let reason: Json = match phase {
        Phase::Ready => Json::Null,
        Phase::Draining => "shutting down: draining connections".into(),
        Phase::Starting => {
            let loading: Vec<&str> = cat
                .states
                .iter()
                .filter(|(_, s)| matches!(s, LoadState::Loading))
                .take(20)
                .map(|(n, _)| &**n)
                .collect();
            if loading.is_empty() {
                "scanning the data directory".into()
            } else {
                format!("loading datasets: {}", loading.join(", ")).into()
            }
        }
        Phase::Failed => {
            let failures: Vec<String> = cat
                .unserved_failures()
                .iter()
                .map(|(n, e)| format!("{n}: {e}"))
                .collect();
            if failures.is_empty() {
                "the data directory cannot be listed".into()
            } else {
                format!("datasets failed to load: {}", failures.join("; ")).into()
            }
        }
    };
    let mut body = json!({
        "status": phase.name(),
        "reason": reason,
        "counts": {"ready": ready, "loading": loading, "failed": failed},
        "datasets": datasets,
    })
    .to_string()
    .into_bytes();
    body.push(b'\n');
    Bytes::from(body)
}

pub fn metrics(ctx: &LoopCtx) -> Response<Body> {
    full(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ctx.metrics.encode(),
    )
}

pub fn openapi() -> Response<Body> {
    full(StatusCode::OK, "application/json", OPENAPI_JSON.as_bytes())
}
