//! `/livez`, `/healthz`, `/metrics`, `/openapi.json`.

use http::{Response, StatusCode};
use serde_json::{json, Map, Value as Json};

use super::{full, json_response};
use crate::body::Body;
use crate::catalog::LoadState;
use crate::state::{LoopCtx, Phase};

/// The OpenAPI document, kept in the repository next to Cargo.toml.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

pub fn livez() -> Response<Body> {
    full(
        StatusCode::OK,
        "application/json",
        &b"{\"status\":\"alive\"}\n"[..],
    )
}

/// `detail`: name each dataset and its state. Off on the API port when auth is on, where the
/// names would tell any client what datasets exist; the admin port always has them.
pub fn healthz(ctx: &LoopCtx, detail: bool) -> Response<Body> {
    let phase = ctx.phase.get();
    let cat = ctx.catalog.borrow();
    let mut datasets = Map::new();
    for (name, state) in cat.states.iter().filter(|_| detail) {
        let version = cat.datasets.get(name).map(|d| d.version_hex.clone());
        let entry = match state {
            LoadState::Loading => json!({"state": "loading", "version": version, "error": null}),
            LoadState::Ready => json!({"state": "ready", "version": version, "error": null}),
            LoadState::Failed { error, .. } => {
                json!({"state": "failed", "version": version, "error": error})
            }
        };
        datasets.insert(name.clone(), entry);
    }
    let reason: Json = match phase {
        Phase::Ready => Json::Null,
        Phase::Draining => "shutting down: draining connections".into(),
        Phase::Starting => {
            let loading: Vec<&str> = cat
                .states
                .iter()
                .filter(|(_, s)| matches!(s, LoadState::Loading))
                .map(|(n, _)| n.as_str())
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
    let reason = match phase {
        Phase::Starting | Phase::Failed if !detail => format!(
            "{}: dataset details on the admin port's /healthz",
            phase.name()
        )
        .into(),
        _ => reason,
    };
    let status = if phase == Phase::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut resp = json_response(
        status,
        &json!({"status": phase.name(), "reason": reason, "datasets": datasets}),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
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
