//! The route table: path -> `Route`, and the templates used as metric labels and matched
//! against `openapi.json` in tests.

use percent_encoding::percent_decode_str;

use crate::error::ApiError;

/// A matched route with its path parameters (names percent-decoded; the row key kept raw,
/// because `quarry_query::parse_key` decodes it per key type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Livez,
    Healthz,
    Metrics,
    OpenApi,
    Datasets,
    Dataset { name: String },
    Rows { name: String },
    Row { name: String, raw_key: String },
    Column { name: String, column: String },
}

/// Every route's OpenAPI path template, in the order of `Route`.
pub const TEMPLATES: &[&str] = &[
    "/livez",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/v1/datasets",
    "/v1/datasets/{name}",
    "/v1/datasets/{name}/rows",
    "/v1/datasets/{name}/rows/{key}",
    "/v1/datasets/{name}/columns/{col}",
];

impl Route {
    /// The OpenAPI path template (also the `route` metric label).
    pub fn template(&self) -> &'static str {
        let i = match self {
            Route::Livez => 0,
            Route::Healthz => 1,
            Route::Metrics => 2,
            Route::OpenApi => 3,
            Route::Datasets => 4,
            Route::Dataset { .. } => 5,
            Route::Rows { .. } => 6,
            Route::Row { .. } => 7,
            Route::Column { .. } => 8,
        };
        TEMPLATES[i]
    }

    /// Probes are never shed and never wait for datasets.
    pub fn is_probe(&self) -> bool {
        matches!(self, Route::Livez | Route::Healthz | Route::Metrics)
    }
}

fn decode(segment: &str, param: &str) -> Result<String, ApiError> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            ApiError::bad_param(
                param,
                format!("path segment {segment:?} is not UTF-8 after percent-decoding"),
            )
        })
}

/// Matches a path (without query string). Only GET and HEAD exist; the caller checks methods.
pub fn match_path(path: &str) -> Result<Route, ApiError> {
    let not_found = || ApiError::RouteNotFound {
        path: path.to_string(),
    };
    let segments: Vec<&str> = match path.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None => return Err(not_found()),
    };
    let route = match segments.as_slice() {
        ["livez"] => Route::Livez,
        ["healthz"] => Route::Healthz,
        ["metrics"] => Route::Metrics,
        ["openapi.json"] => Route::OpenApi,
        ["v1", "datasets"] => Route::Datasets,
        ["v1", "datasets", name] if !name.is_empty() => Route::Dataset {
            name: decode(name, "name")?,
        },
        ["v1", "datasets", name, "rows"] if !name.is_empty() => Route::Rows {
            name: decode(name, "name")?,
        },
        ["v1", "datasets", name, "rows", key] if !name.is_empty() && !key.is_empty() => {
            Route::Row {
                name: decode(name, "name")?,
                raw_key: (*key).to_string(),
            }
        }
        ["v1", "datasets", name, "columns", col] if !name.is_empty() && !col.is_empty() => {
            Route::Column {
                name: decode(name, "name")?,
                column: decode(col, "col")?,
            }
        }
        _ => return Err(not_found()),
    };
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_routes_and_decode_names() {
        assert_eq!(match_path("/livez").ok(), Some(Route::Livez));
        assert_eq!(
            match_path("/v1/datasets/a%20b/rows/x%2Fy").ok(),
            Some(Route::Row {
                name: "a b".into(),
                raw_key: "x%2Fy".into()
            })
        );
        assert_eq!(
            match_path("/v1/datasets/t/columns/c").ok(),
            Some(Route::Column {
                name: "t".into(),
                column: "c".into()
            })
        );
        for bad in [
            "",
            "/",
            "/livez/",
            "/v1/datasets/",
            "/v1/datasets//rows",
            "/v2/datasets",
            "/v1/datasets/t/rows/",
        ] {
            assert!(
                matches!(match_path(bad), Err(ApiError::RouteNotFound { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            match_path("/v1/datasets/%FF"),
            Err(ApiError::BadRequest { .. })
        ));
    }

    #[test]
    fn every_template_is_reachable() {
        let samples = [
            "/livez",
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/v1/datasets",
            "/v1/datasets/n",
            "/v1/datasets/n/rows",
            "/v1/datasets/n/rows/k",
            "/v1/datasets/n/columns/c",
        ];
        let got: Vec<&str> = samples
            .iter()
            .map(|p| match_path(p).map(|r| r.template()).unwrap_or("?"))
            .collect();
        assert_eq!(got, TEMPLATES);
    }
}
