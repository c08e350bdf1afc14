//! Pub/sub and MONITOR over Server-Sent Events (docs/UPSTASH-REST.md §8).
//!
//! Subscriptions share one Redis connection ([`super::hub`]); `/monitor` owns a dedicated one. A
//! stream ends (and gives back its subscriptions, or closes its MONITOR connection) when the
//! client goes away — noticed at the latest on the next heartbeat comment, which fails to write —
//! when Redis drops the connection, or when the proxy shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::watch;

use super::error::ProxyError;
use super::hub::Hub;
use super::metrics::StreamGuard;
use crate::backend::Backend;

/// `subscribe,<ch>,<count>` / `psubscribe,<pat>,<count>`.
pub fn confirmation(pattern: bool, name: &[u8], count: usize) -> String {
    format!(
        "{},{},{}",
        if pattern { "psubscribe" } else { "subscribe" },
        String::from_utf8_lossy(name),
        count
    )
}

/// `message,<ch>,<payload>` or `pmessage,<pat>,<ch>,<payload>`; the payload verbatim (lossy UTF-8).
pub fn message_line(pattern: Option<&[u8]>, channel: &[u8], payload: &[u8]) -> String {
    let channel = String::from_utf8_lossy(channel);
    let payload = String::from_utf8_lossy(payload);
    match pattern {
        Some(p) => format!(
            "pmessage,{},{},{}",
            String::from_utf8_lossy(p),
            channel,
            payload
        ),
        None => format!("message,{channel},{payload}"),
    }
}

fn sse_response<Line: AsRef<str>>(
    events: impl Stream<Item = Line> + Send + 'static,
    heartbeat: Duration,
    mut shutdown: watch::Receiver<bool>,
    open: StreamGuard,
) -> Response {
    let stop = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    // The guard lives as long as the stream: the open-stream gauge drops when the body does.
    let events = events.take_until(stop).map(move |line| {
        let _ = &open;
        Ok::<_, Infallible>(Event::default().data(line))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat))
        .into_response()
}

/// `/subscribe/<ch>…` or `/psubscribe/<pattern>…`.
pub async fn subscribe(
    hub: &Arc<Hub>,
    backend: &Backend,
    names: Vec<Vec<u8>>,
    pattern: bool,
    heartbeat: Duration,
    shutdown: watch::Receiver<bool>,
    open: StreamGuard,
) -> Result<Response, ProxyError> {
    if names.is_empty() {
        return Err(ProxyError::bad_request(
            "ERR give at least one channel: /subscribe/<channel>[/<channel>…]",
        ));
    }
    // Counted per stream, as if each had a connection of its own: after the i-th confirmation
    // the stream is subscribed to i + 1 names.
    let confirmations: Vec<Arc<str>> = names
        .iter()
        .enumerate()
        .map(|(i, name)| confirmation(pattern, name, i + 1).into())
        .collect();
    let messages = hub.subscribe(backend, names, pattern).await?;
    Ok(sse_response(
        stream::iter(confirmations).chain(messages),
        heartbeat,
        shutdown,
        open,
    ))
}

/// `/monitor`: `"OK"`, then one line per command Redis runs.
pub async fn monitor(
    backend: &Backend,
    heartbeat: Duration,
    shutdown: watch::Receiver<bool>,
    open: StreamGuard,
) -> Result<Response, ProxyError> {
    // The connection has already sent MONITOR and read its OK.
    let monitor = backend.monitor().await?;
    let lines = monitor.into_on_message::<String>();
    Ok(sse_response(
        stream::iter([String::from("\"OK\"")]).chain(lines),
        heartbeat,
        shutdown,
        open,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_upstash() {
        assert_eq!(confirmation(false, b"news", 1), "subscribe,news,1");
        assert_eq!(confirmation(true, b"n*", 2), "psubscribe,n*,2");
        assert_eq!(message_line(None, b"news", b"a,b,c"), "message,news,a,b,c");
        assert_eq!(
            message_line(Some(b"n*"), b"news", b"{\"x\":1}"),
            "pmessage,n*,news,{\"x\":1}"
        );
    }
}
