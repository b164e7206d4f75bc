//! The one error type of the query engine, mapped to an HTTP status by [`QueryError::status`].

use std::fmt;

/// What went wrong, in HTTP terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the query string (or key) is malformed.
    BadRequest,
    /// 404: no such thing.
    NotFound,
    /// 406: no acceptable output format.
    NotAcceptable,
    /// 409: a cursor from another dataset version.
    Conflict,
    /// 422: the query is valid but would examine more rows than allowed (or overflows).
    TooMuchWork,
}

/// An error answered to the client as `{"error":{"code","message","param"}}`.
#[derive(Debug, Clone)]
pub struct QueryError {
    pub kind: ErrorKind,
    /// Stable machine-readable code, e.g. `"bad_filter"`, `"stale_cursor"`.
    pub code: &'static str,
    /// Human-readable: what was expected and what was found.
    pub message: String,
    /// The query parameter at fault, if any (`"limit"`, a column name, `"cursor"`, `"key"`).
    pub param: Option<String>,
}

impl QueryError {
    pub(crate) fn bad(code: &'static str, param: &str, message: impl Into<String>) -> QueryError {
        QueryError {
            kind: ErrorKind::BadRequest,
            code,
            message: message.into(),
            param: Some(param.to_string()),
        }
    }

    pub(crate) fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        QueryError {
            kind,
            code,
            message: message.into(),
            param: None,
        }
    }

    pub(crate) fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.to_string());
        self
    }

    /// The HTTP status code for this error.
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::BadRequest => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::NotAcceptable => 406,
            ErrorKind::Conflict => 409,
            ErrorKind::TooMuchWork => 422,
        }
    }

    /// `{"error":{"code":"...","message":"...","param":"..."|null}}`
    pub fn to_json(&self) -> Vec<u8> {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message, "param": self.param }
        });
        // Serializing a json! value of strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{} (parameter {p:?}): {}", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for QueryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_json_has_the_contract_shape() {
        let e = QueryError::bad("bad_limit", "limit", "expected an integer, found \"x\"");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "bad_limit");
        assert_eq!(v["error"]["param"], "limit");
        assert_eq!(v["error"]["message"], "expected an integer, found \"x\"");
        assert_eq!(e.status(), 400);
        let c = QueryError::new(ErrorKind::Conflict, "stale_cursor", "old");
        let v: serde_json::Value = serde_json::from_slice(&c.to_json()).unwrap();
        assert!(v["error"]["param"].is_null());
        assert_eq!(c.status(), 409);
    }
}
