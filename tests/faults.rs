//! Faults through the HTTP fronts (the binaries): a Redis that stops answering (`CLIENT PAUSE`)
//! gives bounded answers — a 503, or the policy's fail mode — never a hung client, and the chain
//! recovers without restarting anything.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use support::proxy::{spawn_proxy_with, spawn_serve};
use support::RedisServer;

const TOKEN: &str = "faults-token";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// Status, body and how long the answer took.
async fn timed(request: reqwest::RequestBuilder) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let response = request.send().await.expect("an answer, not a hung request");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_gives_bounded_answers_and_the_chain_recovers() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy_with(&[redis.url()], TOKEN, &["--redis-timeout-ms", "300"], &[]);
    let serve = spawn_serve(
        proxy.url(),
        TOKEN,
        &[(
            "EDGECOUNT_RATE_LIMITS",
            "page=sliding:100/1m fail=open; login=fixed:5/1m fail=closed",
        )],
    );
    let http = reqwest::Client::builder()
        .user_agent(BROWSER)
        // The bound the test enforces on every answer; far above what a healthy one takes.
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let command = || {
        http.post(format!("{}/", proxy.url()))
            .bearer_auth(TOKEN)
            .body(r#"["INCR","paused"]"#)
    };
    let hit = || http.post(format!("{}/hit/docs/home", serve.url()));
    assert_eq!(timed(command()).await.0, StatusCode::OK);
    assert_eq!(timed(hit()).await.0, StatusCode::OK);

    let paused_at = Instant::now();
    let pause_ms = 8000;
    redis.cli(&["CLIENT", "PAUSE", &pause_ms.to_string(), "ALL"]);
    // Every answer while Redis is silent: bounded, and what the fail modes say. The proxy's
    // bound is its reply timeout (300 ms) plus, when it reconnects, its connect timeout (1 s: a
    // paused Redis accepts the connection but not its handshake).
    let bound = Duration::from_millis(2500);
    let (status, body, took) = timed(command()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(took < bound, "the proxy took {took:?}");
    let (status, body, took) = timed(hit()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(took < bound, "serve took {took:?} for a hit");
    let (status, body, took) = timed(http.post(format!("{}/limit/page/u1", serve.url()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reason"], "fail-open", "{body}");
    assert!(took < bound, "serve took {took:?} for a fail-open decision");
    let (status, body, took) = timed(http.post(format!("{}/limit/login/u1", serve.url()))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["reason"], "fail-closed", "{body}");
    assert!(
        took < bound,
        "serve took {took:?} for a fail-closed decision"
    );
    assert!(
        paused_at.elapsed() < Duration::from_millis(pause_ms),
        "the checks above must run inside the pause"
    );

    // Redis answers again: so does everything, without a restart.
    tokio::time::sleep(Duration::from_millis(pause_ms).saturating_sub(paused_at.elapsed())).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (proxy_status, _, _) = timed(command()).await;
        let (serve_status, _, _) = timed(hit()).await;
        if proxy_status == StatusCode::OK && serve_status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered: proxy {proxy_status}, serve {serve_status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body, _) = timed(http.post(format!("{}/limit/login/u1", serve.url()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reason"], "limit", "{body}");
}
