//! `edgecount serve`'s figures for `GET /metrics` (OpenMetrics text, behind the admin token):
//! requests by route and status, their latency, rate-limit decisions by policy and reason, open
//! live streams. Read off each answer (its status, `EdgeCount-Reason`, `RateLimit`), so the API
//! that the worker shares needs no hooks.

use std::time::Duration;

use http::HeaderMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::{self, Asset};

pub use crate::metrics::{StreamGuard, CONTENT_TYPE};

/// The route label of a request path: the API's first path segment (`hit`, `limit`, …),
/// `static` for the embedded files, `metrics`, `gateway` for what gateway mode forwards, or
/// `other` — a fixed set, whatever clients send.
pub fn route_of(path: &str, gateway: bool) -> &'static str {
    let first = path
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    if let Some(route) = api::route_prefixes().find(|route| *route == first) {
        return route;
    }
    if Asset::at(path).is_some() {
        "static"
    } else if first == "metrics" {
        "metrics"
    } else if gateway {
        "gateway"
    } else {
        "other"
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    /// The binding policy (the first in the `RateLimit` header): a configured name.
    policy: String,
    reason: String,
}

/// Everything `/metrics` reports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    decisions: Family<DecisionLabels, Counter>,
    streams: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("edgecount");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route and HTTP status",
            requests.clone(),
        );
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            crate::metrics::latency_histogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time from the request's arrival to its answer's headers, by route",
            duration.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "rate_decisions",
            "Rate-limit decisions (limit routes and gateway mode), by binding policy and reason \
             (limit, deny, shadow, override, fail-open, fail-closed)",
            decisions.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "live_streams",
            "Open /stream responses (each holds a subscription at the REST server)",
            streams.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            decisions,
            streams,
        }
    }
}

impl Metrics {
    /// One answered request, and the rate-limit decision its headers carry, if any.
    pub fn request(
        &self,
        route: &'static str,
        status: u16,
        headers: &HeaderMap,
        elapsed: Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        self.duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
        let reason = headers
            .get("edgecount-reason")
            .and_then(|v| v.to_str().ok());
        if let Some(reason) = reason {
            // `RateLimit: "api";r=2;t=30, …`: the first item is the binding policy.
            let policy = headers
                .get("ratelimit")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split('"').nth(1))
                .unwrap_or("");
            self.decisions
                .get_or_create(&DecisionLabels {
                    policy: policy.to_owned(),
                    reason: reason.to_owned(),
                })
                .inc();
        }
    }

    /// Counts a live stream as open until the returned guard is dropped.
    pub fn stream_opened(&self) -> StreamGuard {
        StreamGuard::open(&self.streams)
    }

    /// The OpenMetrics text of every figure.
    pub fn render(&self) -> String {
        crate::metrics::render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn routes_are_a_fixed_set() {
        assert_eq!(route_of("/hit/docs/home", false), "hit");
        assert_eq!(route_of("/limit/api/user-1?cost=2", false), "limit");
        assert_eq!(route_of("/", false), "static");
        assert_eq!(route_of("/metrics", false), "metrics");
        assert_eq!(route_of("/wp-login.php", false), "other");
        assert_eq!(route_of("/wp-login.php", true), "gateway");
    }

    #[test]
    fn a_decision_is_read_off_its_headers() {
        let metrics = Metrics::default();
        let mut headers = HeaderMap::new();
        headers.insert(
            "ratelimit",
            HeaderValue::from_static(r#""api";r=0;t=30, "daily";r=10;t=3600"#),
        );
        headers.insert("edgecount-reason", HeaderValue::from_static("limit"));
        metrics.request("limit", 429, &headers, Duration::from_millis(2));
        metrics.request("hit", 200, &HeaderMap::new(), Duration::from_millis(1));
        let text = metrics.render();
        assert!(
            text.contains(r#"edgecount_rate_decisions_total{policy="api",reason="limit"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"edgecount_requests_total{route="hit",status="200"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"reason="""#), "{text}");
    }
}
