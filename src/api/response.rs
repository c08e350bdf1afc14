//! What the API answers: a body that is either whole or a live event stream, the one error type
//! of this boundary, and the cross-cutting decorations (CORS, JSONP).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body::Frame;
use serde::ser::SerializeMap;
use serde::Serialize;

use crate::core::ratelimit::headers::PROBLEM_JSON;
use crate::store::StoreError;

/// A response body: whole bytes, or Server-Sent Events built from a store subscription.
/// Implements [`http_body::Body`], so both axum and the worker crate take it as it is.
pub enum ApiBody<M> {
    Full(Option<Bytes>),
    Events {
        /// An event sent before any message (the current value).
        first: Option<Bytes>,
        messages: M,
    },
}

impl<M> ApiBody<M> {
    /// Whole bytes; an empty body is no body at all (so a forwarded `GET` carries none).
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ApiBody::Full((!bytes.is_empty()).then_some(bytes))
    }

    pub fn empty() -> Self {
        ApiBody::Full(None)
    }

    /// The whole body, when it is not a stream (tests and the JSONP wrapper use it).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            ApiBody::Full(bytes) => Some(bytes.as_deref().unwrap_or_default()),
            ApiBody::Events { .. } => None,
        }
    }
}

/// One SSE event carrying `data`.
pub fn sse_event(data: &[u8]) -> Bytes {
    let mut event = Vec::with_capacity(data.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(data);
    event.extend_from_slice(b"\n\n");
    event.into()
}

impl<M> http_body::Body for ApiBody<M>
where
    M: Stream<Item = Result<Vec<u8>, StoreError>> + Unpin,
{
    type Data = Bytes;
    type Error = StoreError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        match self.get_mut() {
            ApiBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ApiBody::Events { first, messages } => {
                if let Some(event) = first.take() {
                    return Poll::Ready(Some(Ok(Frame::data(event))));
                }
                Pin::new(messages)
                    .poll_next(cx)
                    .map(|item| item.map(|r| r.map(|payload| Frame::data(sse_event(&payload)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ApiBody::Full(None))
    }
}

pub type ApiResponse<M> = Response<ApiBody<M>>;

/// The one error type of the API boundary; becomes `{"error": message, …extra}` with `status`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// More fields of the JSON body (e.g. `"value": null` on a missing counter).
    pub extra: Vec<(&'static str, Extra)>,
    /// The `Allow` header of a 405: the methods the route takes (RFC 9110 asks for it).
    pub allow: Option<String>,
}

/// The value of one of an [`ApiError`]'s extra fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Extra {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            extra: Vec::new(),
            allow: None,
        }
    }

    /// 405: the route exists, the method does not; `Allow` lists those it takes.
    pub fn method_not_allowed(methods: &[http::Method]) -> Self {
        let names: Vec<&str> = methods.iter().map(http::Method::as_str).collect();
        ApiError {
            allow: Some(names.join(", ")),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("use {}", names.join(" or ")),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// One more field of the body.
    pub fn with(mut self, name: &'static str, value: Extra) -> Self {
        self.extra.push((name, value));
        self
    }

    /// The JSON body: `{"error": message, …extra}`.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody(self)
    }

    pub fn into_response<M>(self) -> ApiResponse<M> {
        let response = json_response(self.status, &self.body());
        self.decorate(response)
    }

    /// As RFC 9457 problem details (`application/problem+json`): `type`, `title` (the status's
    /// reason), `status` and `detail`, with `error` (the same message, as every other answer of
    /// the API has it) and the extra fields.
    pub fn into_problem<M>(self) -> ApiResponse<M> {
        let json = serde_json::to_vec(&ProblemError(&self)).expect("answers always serialise");
        let response = bytes_response(self.status, PROBLEM_JSON, json);
        self.decorate(response)
    }

    fn decorate<M>(self, mut response: ApiResponse<M>) -> ApiResponse<M> {
        let headers = response.headers_mut();
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            headers.insert(header::ALLOW, allow);
        }
        // RFC 9110: a 401 says how to authenticate.
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// [`ApiError::into_problem`]'s body, serialised straight from the error.
struct ProblemError<'a>(&'a ApiError);

impl Serialize for ProblemError<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let error = self.0;
        let mut map = serializer.serialize_map(Some(5 + error.extra.len()))?;
        map.serialize_entry("type", "about:blank")?;
        map.serialize_entry("title", error.status.canonical_reason().unwrap_or("Error"))?;
        map.serialize_entry("status", &error.status.as_u16())?;
        map.serialize_entry("detail", &error.message)?;
        map.serialize_entry("error", &error.message)?;
        for (name, value) in &error.extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// [`ApiError::body`], serialised straight from the error.
pub struct ErrorBody<'a>(&'a ApiError);

impl Serialize for ErrorBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1 + self.0.extra.len()))?;
        map.serialize_entry("error", &self.0.message)?;
        for (name, value) in &self.0.extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A JSON object of one field, `{"name": value}`, for the many answers that are just that.
pub struct Field<T>(pub &'static str, pub T);

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &self.1)?;
        map.end()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "redis unavailable")
            }
            // The REST token is ours, not the caller's: a gateway problem, not a 401.
            StoreError::Unauthorized(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "the Redis REST endpoint refused our token",
            ),
            StoreError::Redis(message) | StoreError::Protocol(message) => {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("redis: {message}"))
            }
        }
    }
}

/// `body` as JSON, serialised straight into the answer (no intermediate `Value` for structs).
pub fn json_response<M>(status: StatusCode, body: &impl Serialize) -> ApiResponse<M> {
    let json = serde_json::to_vec(body).expect("answers always serialise");
    bytes_response(status, "application/json", json)
}

pub fn bytes_response<M>(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> ApiResponse<M> {
    // Room for what every answer gets (CORS, Vary) and a rate-limit decision's headers, so the
    // map is allocated once.
    let mut headers = HeaderMap::with_capacity(12);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let mut response = Response::new(ApiBody::full(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A JSONP callback name: a dotted JavaScript identifier path, nothing that could inject code.
pub fn valid_callback(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok =
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$');
    first_ok
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '.'))
        && !name.contains("..")
        && !name.ends_with('.')
}

/// Wrap a JSON answer as `callback(json);` for JSONP.
pub fn into_jsonp<M>(response: ApiResponse<M>, callback: &str) -> ApiResponse<M> {
    let (mut parts, body) = response.into_parts();
    let Some(json) = body.as_bytes() else {
        return Response::from_parts(parts, body);
    };
    let mut wrapped = Vec::with_capacity(json.len() + callback.len() + 8);
    wrapped.extend_from_slice(b"/**/");
    wrapped.extend_from_slice(callback.as_bytes());
    wrapped.push(b'(');
    wrapped.extend_from_slice(json);
    wrapped.extend_from_slice(b");");
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    parts.headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Response::from_parts(parts, ApiBody::full(wrapped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    type Nothing = stream::Empty<Result<Vec<u8>, StoreError>>;

    #[test]
    fn callback_names_are_identifiers_only() {
        for ok in ["cb", "jQuery123_456", "a.b.c", "$x", "_"] {
            assert!(valid_callback(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "a(b)",
            "a;alert(1)",
            "a..b",
            "a.",
            "x-y",
            &"a".repeat(65),
        ] {
            assert!(!valid_callback(bad), "{bad}");
        }
    }

    #[test]
    fn errors_are_json_with_extra_fields() {
        let e = ApiError::not_found("counter not found").with("value", Extra::Null);
        let r: ApiResponse<Nothing> = e.into_response();
        assert_eq!(r.status(), 404);
        let body: serde_json::Value = serde_json::from_slice(r.body().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "counter not found", "value": null})
        );
    }

    #[test]
    fn jsonp_wraps_the_json() {
        let r: ApiResponse<Nothing> = json_response(StatusCode::OK, &Field("value", 1));
        let r = into_jsonp(r, "cb");
        assert_eq!(r.body().as_bytes().unwrap(), b"/**/cb({\"value\":1});");
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/javascript; charset=utf-8"
        );
    }

    #[test]
    fn unavailable_store_is_503() {
        let e: ApiError = StoreError::Unavailable("connect refused".into()).into();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
