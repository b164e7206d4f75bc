//! The one error type of the HTTP layer, mapped to a status in one place and answered as
//! `{"error":{"code","message","param"}}`.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;

/// Everything a request can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// No route matches the path.
    RouteNotFound {
        path: String,
    },
    /// The route exists but not for this method.
    MethodNotAllowed {
        allow: &'static str,
    },
    DatasetNotFound {
        name: String,
    },
    KeyNotFound {
        dataset: String,
    },
    ColumnNotFound {
        column: String,
    },
    /// A query parameter or header is invalid.
    BadRequest {
        code: &'static str,
        message: String,
        param: Option<String>,
    },
    /// An error from quarry-query, carrying its own status.
    Query {
        status: StatusCode,
        code: &'static str,
        message: String,
        param: Option<String>,
    },
    UriTooLong {
        len: usize,
        max: usize,
    },
    /// The request head (request line and headers) is larger than --max-header-bytes.
    HeaderTooLarge {
        len: usize,
        max: usize,
    },
    RangeNotSatisfiable {
        len: u64,
    },
    /// Load shedding: retry later.
    Overloaded {
        reason: &'static str,
        retry_after: Duration,
    },
    /// Datasets are still loading: retry later.
    NotReady {
        retry_after: Duration,
    },
    Internal {
        message: String,
    },
    /// No credential (`reason: None`), or one that was refused and why (never the secret).
    Unauthorized {
        reason: Option<String>,
    },
    /// The file's bytes contradict themselves (possible under `--verify cheap`).
    CorruptData {
        dataset: String,
        column: String,
        row_group: usize,
        detail: String,
    },
    /// A handler panicked; the panic was contained to this request (and logged).
    Panicked,
}

impl ApiError {
    pub fn bad_param(param: &str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code: "invalid_parameter",
            message: message.into(),
            param: Some(param.to_string()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::RouteNotFound { .. }
            | ApiError::DatasetNotFound { .. }
            | ApiError::KeyNotFound { .. }
            | ApiError::ColumnNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Query { status, .. } => *status,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeaderTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Overloaded { .. } | ApiError::NotReady { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Internal { .. } | ApiError::CorruptData { .. } | ApiError::Panicked => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::RouteNotFound { .. } => "route_not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::DatasetNotFound { .. } => "dataset_not_found",
            ApiError::KeyNotFound { .. } => "key_not_found",
            ApiError::ColumnNotFound { .. } => "column_not_found",
            ApiError::BadRequest { code, .. } | ApiError::Query { code, .. } => code,
            ApiError::UriTooLong { .. } => "uri_too_long",
            ApiError::HeaderTooLarge { .. } => "header_too_large",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::NotReady { .. } => "not_ready",
            ApiError::Unauthorized { reason: None } => "unauthorized",
            ApiError::Unauthorized { reason: Some(_) } => "invalid_token",
            ApiError::Internal { .. } | ApiError::Panicked => "internal",
            ApiError::CorruptData { .. } => "corrupt_data",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::RouteNotFound { path } => {
                format!("no route for path {path:?}; see /openapi.json")
            }
            ApiError::MethodNotAllowed { allow } => format!("method not allowed; allowed: {allow}"),
            ApiError::DatasetNotFound { name } => {
                format!("no dataset named {name:?}; see /v1/datasets")
            }
            ApiError::KeyNotFound { dataset } => {
                format!("no row with this key in dataset {dataset:?}")
            }
            ApiError::ColumnNotFound { column } => format!("no column named {column:?}"),
            ApiError::BadRequest { message, .. } | ApiError::Query { message, .. } => {
                message.clone()
            }
            ApiError::UriTooLong { len, max } => {
                format!("request target is {len} bytes; the limit is {max} (--max-uri-bytes)")
            }
            ApiError::HeaderTooLarge { len, max } => {
                format!("request head is {len} bytes; the limit is {max} (--max-header-bytes)")
            }
            ApiError::RangeNotSatisfiable { len } => {
                format!("range outside the {len}-byte representation")
            }
            ApiError::Overloaded { reason, .. } => {
                format!("server overloaded ({reason}); retry later")
            }
            ApiError::NotReady { .. } => {
                "datasets are still loading; retry later (see /healthz)".to_string()
            }
            ApiError::Internal { message } => message.clone(),
            ApiError::Unauthorized { reason: None } => {
                "a bearer token is required: Authorization: Bearer <token>".to_string()
            }
            ApiError::Unauthorized { reason: Some(r) } => format!("credentials refused: {r}"),
            ApiError::CorruptData {
                dataset,
                column,
                row_group,
                detail,
            } => format!(
                "dataset {dataset:?} is corrupt: column {column:?}, row group {row_group}: \
                 {detail}; the file fails verification"
            ),
            ApiError::Panicked => {
                "internal error while answering this request (logged); the server goes on"
                    .to_string()
            }
        }
    }

    pub fn param(&self) -> Option<&str> {
        match self {
            ApiError::BadRequest { param, .. } | ApiError::Query { param, .. } => param.as_deref(),
            ApiError::KeyNotFound { .. } => Some("key"),
            ApiError::ColumnNotFound { .. } => Some("col"),
            ApiError::Unauthorized { .. } => Some("Authorization"),
            _ => None,
        }
    }

    /// Seconds for a `Retry-After` header, when the error is temporary.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Overloaded { retry_after, .. } | ApiError::NotReady { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let v = json!({"error": {"code": self.code(), "message": self.message(), "param": self.param()}});
        let mut out = v.to_string().into_bytes();
        out.push(b'\n');
        out
    }
}
