//! The proxy's own figures for `GET /metrics` (Prometheus / OpenMetrics text, behind the REST
//! token): requests by endpoint and status, their latency, commands sent to Redis, Redis
//! failures, open event streams. Upstash's REST API has no metrics of its calls; this stand-in
//! does.
//!
//! Recording is a few atomic operations per request (the label sets are small and fixed), so
//! it stays on in every build.

use std::fmt::Write as _;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use crate::metrics::{StreamGuard, CONTENT_TYPE};

use crate::backend::ReadOutcome;

/// Which REST endpoint a request went to (a small, fixed set: safe as a label).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /` with a JSON command.
    Command,
    Pipeline,
    MultiExec,
    /// The path form, `/SET/k/v`.
    Path,
    Subscribe,
    Monitor,
    /// `/_stats`, `/metrics`, `/openapi.json`: the proxy's own answers.
    Own,
}

impl Endpoint {
    /// The endpoint of a request path, as the proxy routes it.
    pub fn of(path: &str) -> Endpoint {
        let trimmed = path.trim_start_matches('/');
        let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        match (first, rest.is_empty()) {
            ("", _) => Endpoint::Command,
            ("pipeline", true) => Endpoint::Pipeline,
            ("multi-exec", true) => Endpoint::MultiExec,
            ("subscribe" | "psubscribe", _) => Endpoint::Subscribe,
            ("monitor", true) => Endpoint::Monitor,
            ("_stats" | "metrics" | "openapi.json", true) => Endpoint::Own,
            _ => Endpoint::Path,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Command => "command",
            Endpoint::Pipeline => "pipeline",
            Endpoint::MultiExec => "multi-exec",
            Endpoint::Path => "path",
            Endpoint::Subscribe => "subscribe",
            Endpoint::Monitor => "monitor",
            Endpoint::Own => "own",
        }
    }
}

impl EncodeLabelValue for Endpoint {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: Endpoint,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: Endpoint,
}

/// How a request to Redis failed.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Failure {
    /// Redis could not be reached, dropped the connection or did not answer in time (503).
    Unavailable,
    /// Redis answered a command with an error reply (400; inside a pipeline it is that entry's
    /// `{"error"}` and not counted here).
    ErrorReply,
}

impl EncodeLabelValue for Failure {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Failure::Unavailable => "unavailable",
            Failure::ErrorReply => "error-reply",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: Failure,
}

impl EncodeLabelValue for ReadOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            ReadOutcome::Replica => "replica",
            ReadOutcome::Behind => "primary-replica-behind",
            ReadOutcome::ReplicaFailed => "primary-replica-failed",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadLabels {
    served_by: ReadOutcome,
}

/// Everything `/metrics` reports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<EndpointLabels, Histogram>,
    commands: Counter,
    redis_failures: Family<FailureLabels, Counter>,
    replica_reads: Family<ReadLabels, Counter>,
    streams: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_registry(Registry::with_prefix("edgecount_proxy"))
    }
}

impl Metrics {
    /// One database's figures among several: every series labelled `database="<name>"`.
    pub fn for_database(name: &str) -> Metrics {
        Metrics::with_registry(Registry::with_prefix_and_labels(
            "edgecount_proxy",
            [("database".into(), name.to_string().into())].into_iter(),
        ))
    }

    fn with_registry(mut registry: Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "REST requests answered, by endpoint and HTTP status",
            requests.clone(),
        );
        let duration = Family::<EndpointLabels, Histogram>::new_with_constructor(
            crate::metrics::latency_histogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time from the request's arrival to its answer's headers, by endpoint",
            duration.clone(),
        );
        let commands = Counter::default();
        registry.register(
            "commands",
            "Redis commands sent on behalf of clients (a pipeline or transaction counts each)",
            commands.clone(),
        );
        let redis_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "redis_failures",
            "Requests failed by Redis: unavailable (refused, dropped, timed out) or an error reply",
            redis_failures.clone(),
        );
        let replica_reads = Family::<ReadLabels, Counter>::default();
        registry.register(
            "replica_reads",
            "With --replica-url: reads a replica could answer, by who did (the primary when the \
             replica asked was behind the client's sync token, or failed)",
            replica_reads.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "event_streams",
            "Open /subscribe, /psubscribe and /monitor streams (each holds a Redis connection)",
            streams.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            commands,
            redis_failures,
            replica_reads,
            streams,
        }
    }
}

impl Metrics {
    /// One answered request.
    pub fn request(&self, endpoint: Endpoint, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, status })
            .inc();
        self.duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(elapsed.as_secs_f64());
    }

    /// `n` commands about to go to Redis.
    pub fn commands(&self, n: usize) {
        self.commands.inc_by(n as u64);
    }

    pub fn redis_failure(&self, kind: Failure) {
        self.redis_failures
            .get_or_create(&FailureLabels { kind })
            .inc();
    }

    pub fn replica_read(&self, served_by: ReadOutcome) {
        self.replica_reads
            .get_or_create(&ReadLabels { served_by })
            .inc();
    }

    /// Counts an event stream as open until the returned guard is dropped.
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

    #[test]
    fn endpoints_follow_the_router() {
        assert_eq!(Endpoint::of("/"), Endpoint::Command);
        assert_eq!(Endpoint::of("/pipeline"), Endpoint::Pipeline);
        assert_eq!(Endpoint::of("/multi-exec"), Endpoint::MultiExec);
        assert_eq!(Endpoint::of("/subscribe/a/b"), Endpoint::Subscribe);
        assert_eq!(Endpoint::of("/monitor"), Endpoint::Monitor);
        assert_eq!(Endpoint::of("/metrics"), Endpoint::Own);
        assert_eq!(Endpoint::of("/set/k/v"), Endpoint::Path);
        // A key named like an endpoint is still the path form.
        assert_eq!(Endpoint::of("/pipeline/x"), Endpoint::Path);
    }

    #[test]
    fn figures_render_as_openmetrics() {
        let metrics = Metrics::default();
        metrics.request(Endpoint::Command, 200, Duration::from_micros(300));
        metrics.commands(3);
        metrics.redis_failure(Failure::Unavailable);
        let guard = metrics.stream_opened();
        let text = metrics.render();
        assert!(
            text.contains(r#"edgecount_proxy_requests_total{endpoint="command",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains("edgecount_proxy_commands_total 3"), "{text}");
        assert!(text.contains("edgecount_proxy_event_streams 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        drop(guard);
        assert!(metrics.render().contains("edgecount_proxy_event_streams 0"));
    }
}
