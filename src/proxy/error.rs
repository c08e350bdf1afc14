//! The proxy's one error type: every failure becomes a JSON `{"error": "…"}` body with a status.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use crate::backend::BackendError;

/// The text Upstash answers for a missing or wrong token (its troubleshooting page).
pub const WRONGPASS: &str = "WRONGPASS invalid or missing auth token";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Missing or wrong token: 401.
    #[error("{WRONGPASS}")]
    Unauthorized,
    /// The request itself is malformed or asks for something the proxy refuses: 400.
    #[error("{0}")]
    BadRequest(String),
    /// Redis answered with an error reply; the text is passed through verbatim: 400.
    #[error("{0}")]
    Redis(String),
    /// The read-only token tried a command outside the read-only set: 403.
    #[error("{0}")]
    NoPerm(String),
    /// Body over the configured limit: 413.
    #[error("ERR max request size exceeded (limit {0} bytes)")]
    PayloadTooLarge(usize),
    /// A method other than HEAD, GET, POST, PUT: 405.
    #[error("ERR method not allowed (use HEAD, GET, POST or PUT)")]
    MethodNotAllowed,
    /// Redis cannot be reached (refused, dropped, timed out): 503.
    #[error("{0}")]
    Unavailable(String),
    /// A reply the proxy cannot turn into JSON or the client broke the protocol: 500.
    #[error("{0}")]
    Internal(String),
}

impl ProxyError {
    pub fn bad_request(text: impl Into<String>) -> Self {
        ProxyError::BadRequest(text.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unauthorized => StatusCode::UNAUTHORIZED,
            ProxyError::BadRequest(_) | ProxyError::Redis(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoPerm(_) => StatusCode::FORBIDDEN,
            ProxyError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `{"error":"…"}`.
    pub fn body(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
        }
        let text = self.to_string();
        serde_json::to_vec(&ErrorBody { error: &text })
            .unwrap_or_else(|_| br#"{"error":"ERR internal error"}"#.to_vec())
    }

    /// Map a client-side error of the redis crate (not an error reply) to a status.
    pub fn from_redis(e: &redis::RedisError) -> Self {
        BackendError::from_redis(e).into()
    }
}

/// A failure of the backend as the proxy answers it: an error reply 400, Redis unreachable (or a
/// write not confirmed by enough replicas) 503, anything else 500; the body is the text.
impl From<BackendError> for ProxyError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Redis(text) => ProxyError::Redis(text),
            BackendError::Unavailable(text) => ProxyError::Unavailable(text),
            BackendError::Internal(text) => ProxyError::Internal(text),
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body()));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(self, ProxyError::MethodNotAllowed) {
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("HEAD, GET, POST, PUT"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_with_the_verbatim_text() {
        let e = ProxyError::Redis("ERR wrong number of arguments for 'get' command".into());
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "ERR wrong number of arguments for 'get' command"})
        );
        let v: serde_json::Value =
            serde_json::from_slice(&ProxyError::Unauthorized.body()).unwrap();
        assert_eq!(v["error"], WRONGPASS);
        assert_eq!(
            ProxyError::PayloadTooLarge(10).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn quotes_and_control_characters_are_escaped() {
        let e = ProxyError::bad_request("ERR \"x\"\n\u{1}");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"], "ERR \"x\"\n\u{1}");
    }
}
