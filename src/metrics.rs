//! What the native servers' `/metrics` share (the proxy's `proxy::metrics`, serve's
//! `serve::metrics`): the text format, the latency buckets, and open-stream accounting.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The `Content-Type` of the OpenMetrics text `render` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// 100 µs … ~6.5 s, doubling: a loopback round trip is ~0.1–1 ms, one to Upstash tens of ms,
/// and a slow Redis reaches the upper buckets before the 10 s timeouts turn it into a 503.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// The OpenMetrics text of every figure in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .expect("writing to a String cannot fail");
    text
}

/// Counts one open stream on a gauge until it is dropped (the stream's body ended or its client
/// left): move it into the body.
pub struct StreamGuard(Gauge);

impl StreamGuard {
    pub fn open(gauge: &Gauge) -> StreamGuard {
        gauge.inc();
        StreamGuard(gauge.clone())
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `--metrics-listen`: binds `addr`, says where on stdout (`edgecount <server> metrics on URL`)
/// and serves `GET /metrics` alone there, without a token, until the process exits (keep the
/// address private: loopback or an internal network). Through the same accept loop as the
/// server's (`limits`' timeouts), with a few connections at most: scrapers need one each, and
/// clients held here would take the server's descriptors.
pub async fn listen(
    addr: std::net::SocketAddr,
    server: &str,
    limits: crate::http_server::Limits,
    render: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "edgecount {server} metrics on http://{}/metrics",
        listener.local_addr()?
    );
    let limits = crate::http_server::Limits {
        max_connections: limits.max_connections.min(METRICS_CONNECTIONS),
        ..limits
    };
    tokio::spawn(serve_on(listener, limits, render));
    Ok(())
}

/// Open connections at most on the `--metrics-listen` address.
const METRICS_CONNECTIONS: usize = 16;

async fn serve_on(
    listener: tokio::net::TcpListener,
    limits: crate::http_server::Limits,
    render: impl Fn() -> String + Clone + Send + Sync + 'static,
) {
    use axum::response::IntoResponse;
    let scrape = move || {
        let render = render.clone();
        async move { ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], render()) }
    };
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .fallback(|| async {
            (
                http::StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": "only GET /metrics is served here"})),
            )
                .into_response()
        });
    // Until the process exits: nothing to finish on shutdown.
    crate::http_server::serve(
        listener,
        app.into_make_service(),
        limits,
        std::future::pending(),
        std::time::Duration::ZERO,
    )
    .await;
}
