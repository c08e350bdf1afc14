//! `GET /metrics` on the proxy and on `edgecount serve` (the binaries): behind their tokens,
//! parseable by a Prometheus text parser that is not ours (`prometheus-parse`), and every figure
//! moves by exactly what the traffic between two scrapes did.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use support::proxy::{spawn_proxy, spawn_serve};
use support::RedisServer;

const TOKEN: &str = "metrics-test-token";

/// One scrape, parsed: sample name + sorted labels → value.
struct Scrape(Vec<prometheus_parse::Sample>);

impl Scrape {
    async fn take(http: &reqwest::Client, base: &str) -> Scrape {
        Scrape::take_with(http, base, TOKEN).await
    }

    async fn take_with(http: &reqwest::Client, base: &str, token: &str) -> Scrape {
        let response = http
            .get(format!("{base}/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let parsed =
            prometheus_parse::Scrape::parse(lines).expect("a Prometheus text parser reads it");
        assert!(!parsed.samples.is_empty(), "{text}");
        Scrape(parsed.samples)
    }

    /// The value of the sample `name` whose labels include `labels` (0 when absent: a counter
    /// that has not moved yet is not listed).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<f64> = self
            .0
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref buckets) => {
                    buckets.last().map(|b| b.count).unwrap_or(0.0)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            })
            .collect();
        assert!(matching.len() <= 1, "{name} {labels:?}: {matching:?}");
        matching.first().copied().unwrap_or(0.0)
    }
}

async fn post(http: &reqwest::Client, url: &str, token: &str, body: &str) -> StatusCode {
    http.post(url)
        .bearer_auth(token)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_authenticated_parseable_and_move_with_traffic() {
    let mut redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let base = proxy.url().to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let anonymous = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let before = Scrape::take(&http, &base).await;
    for _ in 0..7 {
        assert_eq!(
            post(&http, &format!("{base}/"), TOKEN, r#"["INCR","m"]"#).await,
            200
        );
    }
    for _ in 0..2 {
        let three = r#"[["INCR","m"],["GET","m"],["CONFIG","GET","*"]]"#;
        assert_eq!(
            post(&http, &format!("{base}/pipeline"), TOKEN, three).await,
            200
        );
    }
    let error_reply = post(&http, &format!("{base}/"), TOKEN, r#"["INCR","m","x"]"#).await;
    assert_eq!(error_reply, 400);
    assert_eq!(
        post(&http, &format!("{base}/"), "wrong", r#"["GET","m"]"#).await,
        401
    );
    let path_form = http
        .get(format!("{base}/get/m"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(path_form.status(), 200);

    // An open subscription is an open stream until its client goes away.
    let subscription = http
        .get(format!("{base}/subscribe/news"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(subscription.status(), 200);
    let during = Scrape::take(&http, &base).await;
    assert_eq!(during.value("edgecount_proxy_event_streams", &[]), 1.0);
    drop(subscription);

    let after = Scrape::take(&http, &base).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let requests = "edgecount_proxy_requests_total";
    assert_eq!(
        moved(requests, &[("endpoint", "command"), ("status", "200")]),
        7.0
    );
    assert_eq!(
        moved(requests, &[("endpoint", "pipeline"), ("status", "200")]),
        2.0
    );
    assert_eq!(
        moved(requests, &[("endpoint", "command"), ("status", "400")]),
        1.0
    );
    assert_eq!(
        moved(requests, &[("endpoint", "command"), ("status", "401")]),
        1.0
    );
    assert_eq!(
        moved(requests, &[("endpoint", "path"), ("status", "200")]),
        1.0
    );
    assert_eq!(
        moved(requests, &[("endpoint", "subscribe"), ("status", "200")]),
        1.0
    );
    // The scrapes themselves: `before`'s own request is counted after it was rendered.
    assert_eq!(
        moved(requests, &[("endpoint", "own"), ("status", "200")]),
        2.0
    );
    // 7 single commands, 2 × 2 pipeline entries (CONFIG is refused by the proxy, not sent),
    // the failing INCR and the path-form GET.
    assert_eq!(moved("edgecount_proxy_commands_total", &[]), 13.0);
    assert_eq!(
        moved(
            "edgecount_proxy_redis_failures_total",
            &[("kind", "error-reply")]
        ),
        1.0
    );
    let latency = "edgecount_proxy_request_duration_seconds";
    assert_eq!(
        moved(&format!("{latency}_count"), &[("endpoint", "command")]),
        9.0
    );
    assert!(moved(&format!("{latency}_sum"), &[("endpoint", "command")]) > 0.0);

    // The stream's end reaches the gauge once the proxy notices the client left (its next
    // heartbeat write fails; 1 s by default).
    let mut streams = after.value("edgecount_proxy_event_streams", &[]);
    for _ in 0..50 {
        if streams == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        streams = Scrape::take(&http, &base)
            .await
            .value("edgecount_proxy_event_streams", &[]);
    }
    assert_eq!(streams, 0.0);

    // Redis gone: the failure is counted as unavailable.
    let before = Scrape::take(&http, &base).await;
    redis.kill();
    assert_eq!(
        post(&http, &format!("{base}/"), TOKEN, r#"["GET","m"]"#).await,
        503
    );
    let after = Scrape::take(&http, &base).await;
    assert_eq!(
        after.value(
            "edgecount_proxy_redis_failures_total",
            &[("kind", "unavailable")]
        ) - before.value(
            "edgecount_proxy_redis_failures_total",
            &[("kind", "unavailable")]
        ),
        1.0
    );
}

const ADMIN_TOKEN: &str = "metrics-admin-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_counts_requests_decisions_and_live_streams() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let serve = spawn_serve(
        proxy.url(),
        TOKEN,
        &[
            ("EDGECOUNT_ADMIN_TOKEN", ADMIN_TOKEN),
            (
                "EDGECOUNT_RATE_LIMITS",
                "api=fixed:3/1h; soft=fixed:1/1h shadow",
            ),
        ],
    );
    let base = serve.url().to_owned();
    let http = reqwest::Client::builder()
        .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let anonymous = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let rest_token = http
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rest_token.status(), StatusCode::UNAUTHORIZED);

    let take = || Scrape::take_with(&http, &base, ADMIN_TOKEN);
    let before = take().await;
    for _ in 0..4 {
        let hit = http
            .post(format!("{base}/hit/docs/home"))
            .send()
            .await
            .unwrap();
        assert_eq!(hit.status(), 200);
    }
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let decision = http
            .post(format!("{base}/limit/api/user-1"))
            .send()
            .await
            .unwrap();
        statuses.push(decision.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // A shadow policy over its limit: allowed, reason shadow.
    for _ in 0..2 {
        let decision = http
            .post(format!("{base}/limit/soft/user-2"))
            .send()
            .await
            .unwrap();
        assert_eq!(decision.status(), 200);
    }
    let deny = http
        .put(format!("{base}/deny/user:bad"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deny.status(), 200);
    let denied = http
        .post(format!("{base}/limit/api/user:bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let unknown = http
        .get(format!("{base}/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let stream = http
        .get(format!("{base}/stream/docs/home"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let during = take().await;
    assert_eq!(during.value("edgecount_live_streams", &[]), 1.0);
    drop(stream);

    let after = take().await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let requests = "edgecount_requests_total";
    assert_eq!(moved(requests, &[("route", "hit"), ("status", "200")]), 4.0);
    assert_eq!(
        moved(requests, &[("route", "limit"), ("status", "200")]),
        5.0
    );
    assert_eq!(
        moved(requests, &[("route", "limit"), ("status", "429")]),
        2.0
    );
    assert_eq!(
        moved(requests, &[("route", "limit"), ("status", "403")]),
        1.0
    );
    assert_eq!(
        moved(requests, &[("route", "deny"), ("status", "200")]),
        1.0
    );
    assert_eq!(
        moved(requests, &[("route", "other"), ("status", "404")]),
        1.0
    );
    assert_eq!(
        moved(requests, &[("route", "stream"), ("status", "200")]),
        1.0
    );
    assert_eq!(
        moved(requests, &[("route", "metrics"), ("status", "200")]),
        2.0
    );
    let decisions = "edgecount_rate_decisions_total";
    assert_eq!(
        moved(decisions, &[("policy", "api"), ("reason", "limit")]),
        5.0
    );
    assert_eq!(
        moved(decisions, &[("policy", "soft"), ("reason", "shadow")]),
        1.0
    );
    assert_eq!(
        moved(decisions, &[("policy", "soft"), ("reason", "limit")]),
        1.0
    );
    assert_eq!(moved(decisions, &[("reason", "deny")]), 1.0);
    let latency = "edgecount_request_duration_seconds";
    assert_eq!(
        moved(&format!("{latency}_count"), &[("route", "limit")]),
        8.0
    );

    let mut streams = after.value("edgecount_live_streams", &[]);
    for _ in 0..100 {
        if streams == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        streams = take().await.value("edgecount_live_streams", &[]);
    }
    assert_eq!(streams, 0.0, "the stream's end reaches the gauge");
}

/// The `… metrics on URL` line a process printed (its stdout is in its log).
async fn metrics_url(process: &support::proxy::ProxyProcess) -> String {
    for _ in 0..100 {
        if let Some(url) = process.log().lines().find_map(|line| {
            line.split_once(" metrics on ")
                .map(|(_, url)| url.trim().to_owned())
        }) {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no metrics address printed:\n{}", process.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_metrics_address_needs_no_token_and_serves_nothing_else() {
    let redis = RedisServer::start();
    let proxy = support::proxy::spawn_proxy_with(
        &[redis.url()],
        TOKEN,
        &["--metrics-listen", "127.0.0.1:0"],
        &[],
    );
    let serve = spawn_serve(
        proxy.url(),
        TOKEN,
        &[
            ("EDGECOUNT_ADMIN_TOKEN", ADMIN_TOKEN),
            ("EDGECOUNT_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    );
    let http = reqwest::Client::builder()
        .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let hit = http
        .post(format!("{}/hit/docs/home", serve.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(hit.status(), StatusCode::OK);

    for (process, figure, labels) in [
        (
            &proxy,
            "edgecount_proxy_requests_total",
            ("endpoint", "command"),
        ),
        (&serve, "edgecount_requests_total", ("route", "hit")),
    ] {
        let url = metrics_url(process).await;
        assert!(url.ends_with("/metrics"), "{url}");
        let answer = http.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let text = answer.text().await.unwrap();
        let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("a Prometheus text parser reads it");
        let moved = parsed
            .samples
            .iter()
            .any(|s| s.metric == figure && s.labels.get(labels.0) == Some(labels.1));
        assert!(moved, "{figure} with {labels:?} in:\n{text}");
        // Nothing but /metrics there: not the API, not Redis.
        let other = http
            .get(url.replace("/metrics", "/get/docs/home"))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), StatusCode::NOT_FOUND);
    }
}
