//! The route table: path -> `Route`, and the templates used as metric labels and matched
//! against `openapi.json` in tests.
//!
//! Matching borrows from the path: a segment without `%` is used as is (no allocation on the
//! lookup hot path); only percent-encoded names are decoded into an owned `String`.

use std::borrow::Cow;

use crate::error::ApiError;

/// A matched route with its path parameters (names percent-decoded; the row key kept raw,
/// because `quarry_query::parse_key` decodes it per key type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Livez,
    Healthz,
    Metrics,
    OpenApi,
    Datasets,
    Dataset {
        name: Cow<'a, str>,
    },
    Rows {
        name: Cow<'a, str>,
    },
    Row {
        name: Cow<'a, str>,
        raw_key: &'a str,
    },
    Column {
        name: Cow<'a, str>,
        column: Cow<'a, str>,
    },
    /// The PostgREST face: a dataset as a table (`handlers/postgrest.rs`).
    Table {
        name: Cow<'a, str>,
    },
    /// PostgREST's RPC path: Quarry has no functions, it answers PostgREST's error.
    Rpc {
        name: Cow<'a, str>,
    },
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
    "/rest/{table}",
    "/rest/rpc/{function}",
];

/// The metric label of a request that matched no route (404, 414).
pub const UNKNOWN_ROUTE: &str = "unknown";

impl Route<'_> {
    /// Index of this route in `TEMPLATES` (metrics are pre-resolved per index).
    pub fn index(&self) -> usize {
        match self {
            Route::Livez => 0,
            Route::Healthz => 1,
            Route::Metrics => 2,
            Route::OpenApi => 3,
            Route::Datasets => 4,
            Route::Dataset { .. } => 5,
            Route::Rows { .. } => 6,
            Route::Row { .. } => 7,
            Route::Column { .. } => 8,
            Route::Table { .. } => 9,
            Route::Rpc { .. } => 10,
        }
    }

    /// The OpenAPI path template (also the `route` metric label).
    pub fn template(&self) -> &'static str {
        TEMPLATES[self.index()]
    }

    /// Probes are never shed and never wait for datasets.
    pub fn is_probe(&self) -> bool {
        matches!(self, Route::Livez | Route::Healthz | Route::Metrics)
    }
}

/// A path segment, percent-decoded by the one decoder (`quarry_query::percent_decode`): a
/// malformed escape is 400 `bad_encoding`, invalid UTF-8 400 `invalid_parameter`, each naming
/// the segment's parameter.
fn decode<'a>(segment: &'a str, param: &str) -> Result<Cow<'a, str>, ApiError> {
    quarry_query::percent_decode(segment, param, "invalid_parameter").map_err(|e| {
        ApiError::BadRequest {
            code: e.code,
            message: e.message,
            param: e.param,
        }
    })
}

/// Matches a path (without query string). Only GET and HEAD exist; the caller checks methods.
pub fn match_path(path: &str) -> Result<Route<'_>, ApiError> {
    let not_found = || ApiError::RouteNotFound {
        path: path.to_string(),
    };
    let Some(rest) = path.strip_prefix('/') else {
        return Err(not_found());
    };
    // At most five segments matter; a sixth means no route. (A byte loop: `str::split` with
    // a char pattern costs several times more on this hot path.)
    let mut segs = [""; 5];
    let mut n = 0;
    let mut start = 0;
    for (i, &b) in rest.as_bytes().iter().enumerate() {
        if b == b'/' {
            if n == segs.len() - 1 {
                return Err(not_found());
            }
            segs[n] = &rest[start..i];
            n += 1;
            start = i + 1;
        }
    }
    segs[n] = &rest[start..];
    n += 1;
    let route = match &segs[..n] {
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
                raw_key: key,
            }
        }
        ["v1", "datasets", name, "columns", col] if !name.is_empty() && !col.is_empty() => {
            Route::Column {
                name: decode(name, "name")?,
                column: decode(col, "col")?,
            }
        }
        ["rest", "rpc", name] if !name.is_empty() => Route::Rpc {
            name: decode(name, "function")?,
        },
        ["rest", name] if !name.is_empty() => Route::Table {
            name: decode(name, "table")?,
        },
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
                raw_key: "x%2Fy"
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
    fn malformed_escapes_in_path_segments_are_400_naming_the_segment() {
        // A `%` not followed by two hex digits is refused, not passed
        // through literally (RFC 3986 2.1).
        for (path, param) in [
            ("/v1/datasets/a%ZZ", "name"),
            ("/v1/datasets/a%", "name"),
            ("/v1/datasets/a%2/rows", "name"),
            ("/v1/datasets/%G1/rows/1", "name"),
            ("/v1/datasets/t/columns/c%", "col"),
            ("/v1/datasets/t/columns/%zz", "col"),
        ] {
            match match_path(path) {
                Err(e @ ApiError::BadRequest { .. }) => {
                    assert_eq!(e.code(), "bad_encoding", "{path}");
                    assert_eq!(e.param(), Some(param), "{path}");
                }
                other => panic!("{path}: expected 400 bad_encoding, got {other:?}"),
            }
        }
        // Well-formed escapes still decode, in either hex case.
        assert_eq!(
            match_path("/v1/datasets/a%2fb%2Fc/rows").ok(),
            Some(Route::Rows {
                name: "a/b/c".into()
            })
        );
    }

    #[test]
    fn plain_segments_are_borrowed_and_extra_segments_do_not_match() {
        match match_path("/v1/datasets/flights/rows/k1") {
            Ok(Route::Row { name, raw_key }) => {
                assert!(matches!(name, Cow::Borrowed("flights")));
                assert_eq!(raw_key, "k1");
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            "/v1/datasets/t/rows/k/x",
            "/v1/datasets/t/rows/k/x/y/z",
            "/v1/datasets/t/columns/c/",
            "//v1/datasets",
        ] {
            assert!(
                matches!(match_path(bad), Err(ApiError::RouteNotFound { .. })),
                "{bad}"
            );
        }
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
            "/rest/n",
            "/rest/rpc/f",
        ];
        let got: Vec<&str> = samples
            .iter()
            .map(|p| match_path(p).map(|r| r.template()).unwrap_or("?"))
            .collect();
        assert_eq!(got, TEMPLATES);
    }
}
