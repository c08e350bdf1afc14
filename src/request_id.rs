//! `X-Request-Id` for the native servers (proxy and serve): the client's id when it sent a sane
//! one, else a fresh one; echoed on the answer, and every log line written while the request is
//! handled carries it (a `request{id=…}` span). While a request is handled its id is also
//! [`current`], so `edgecount serve` passes it on to the REST endpoint and one id follows a hit
//! through serve and the proxy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue};
use tracing::Instrument;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: HeaderValue;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<HeaderValue> {
    CURRENT.try_with(HeaderValue::clone).ok()
}

/// Longest client id kept; a longer one (or one with other characters than
/// [`is_sane`] allows) is replaced, so an id cannot flood or forge log lines.
const MAX_LEN: usize = 128;

fn is_sane(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

/// `<process prefix>-<counter>`: unique within the process, and across restarts and replicas by
/// the random prefix; no clock or RNG call per request.
fn fresh() -> HeaderValue {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        // A prefix without randomness still gives ids unique within the process.
        let _ = getrandom::getrandom(&mut bytes);
        hex::encode(bytes)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix}-{n}")).expect("hex and digits are a header value")
}

/// The middleware (`axum::middleware::from_fn(request_id::layer)`).
pub async fn layer(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| is_sane(v.as_bytes()))
        .cloned()
        .unwrap_or_else(fresh);
    request
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), id.clone());
    let span = tracing::info_span!("request", id = %id.to_str().unwrap_or_default());
    let mut response = CURRENT
        .scope(id.clone(), next.run(request).instrument(span))
        .await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_client_ids_are_kept() {
        assert!(is_sane(b"3f2a-17"));
        assert!(is_sane(b"req_01H:abc/2.x"));
        assert!(!is_sane(b""));
        assert!(!is_sane(b"has space"));
        assert!(!is_sane(b"quote\"d"));
        assert!(!is_sane("ünï".as_bytes()));
        assert!(!is_sane(&[b'a'; MAX_LEN + 1]));
    }

    #[test]
    fn fresh_ids_differ() {
        let (a, b) = (fresh(), fresh());
        assert_ne!(a, b);
        assert!(is_sane(a.as_bytes()));
    }
}
