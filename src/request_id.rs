//! `X-Request-Id` for the native servers (proxy and serve): the client's id when it sent a sane
//! one, else a fresh one; echoed on the answer. While a request is handled its id is
//! [`current`] (a task-local): every log line written meanwhile carries it ([`LogFormat`] writes
//! `request{id=…}`), and `edgecount serve` passes it on to the REST endpoint, so one id follows a
//! hit through serve and the proxy. A task-local rather than a tracing span: a span per request
//! cost the proxy ~10% of its instructions (callgrind), the task-local next to nothing.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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

/// The id of a request with these headers: the client's when it is sane, else a fresh one.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&X_REQUEST_ID)
        .filter(|v| is_sane(v.as_bytes()))
        .cloned()
        .unwrap_or_else(fresh)
}

/// Run `handling` as the handling of the request `id`: [`current`] meanwhile.
pub async fn scope<F: Future>(id: HeaderValue, handling: F) -> F::Output {
    CURRENT.scope(id, handling).await
}

/// The middleware for routers (`axum::middleware::from_fn(request_id::layer)`); the proxy,
/// one handler for everything, calls [`of`] and [`scope`] itself.
pub async fn layer(mut request: Request, next: Next) -> Response {
    let id = of(request.headers());
    request
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), id.clone());
    let mut response = scope(id.clone(), next.run(request)).await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    response
}

/// The log line format of the native binaries: tracing-subscriber's usual one (time, level,
/// target, message and fields), with `request{id=…}: ` before the target on every line written
/// while a request is handled.
pub struct LogFormat;

impl<S, N> FormatEvent<S, N> for LogFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        SystemTime.format_time(&mut writer)?;
        let meta = event.metadata();
        write!(writer, " {:>5} ", meta.level())?;
        if let Some(id) = current() {
            write!(writer, "request{{id={}}}: ", id.to_str().unwrap_or("?"))?;
        }
        write!(writer, "{}: ", meta.target())?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
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
