//! `X-Request-Id` on the proxy and `edgecount serve` (the binaries): a sane client id is kept and
//! echoed, others are replaced by fresh ones, and the log lines a request causes carry its id —
//! serve passes its id on to the REST endpoint, so one id follows a hit through both.

mod support;

use std::time::Duration;

use support::proxy::{spawn_proxy, spawn_proxy_with, spawn_serve, ProxyProcess};
use support::RedisServer;

const TOKEN: &str = "request-id-token";

async fn id_of(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.expect("an answer");
    let id = response
        .headers()
        .get("x-request-id")
        .expect("every answer has an id")
        .to_str()
        .unwrap()
        .to_owned();
    (response.status().as_u16(), id)
}

/// The process's log once it has a line containing both `needles` (bounded wait: the log is
/// read by a thread).
async fn log_line_with(process: &ProxyProcess, needles: [&str; 2]) -> String {
    for _ in 0..50 {
        let log = process.log();
        if let Some(line) = log
            .lines()
            .find(|line| needles.iter().all(|n| line.contains(n)))
        {
            return line.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no log line with {needles:?}:\n{}", process.log());
}

fn is_fresh(id: &str) -> bool {
    let (prefix, n) = id.split_once('-').unwrap_or_default();
    prefix.len() == 8 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) && n.parse::<u64>().is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_keeps_echoes_and_logs_request_ids() {
    let mut redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let http = reqwest::Client::new();
    let post = || {
        http.post(format!("{}/", proxy.url()))
            .bearer_auth(TOKEN)
            .body(r#"["INCR","ids"]"#)
    };

    let (status, id) = id_of(post().header("x-request-id", "client-17:a/b.c_d")).await;
    assert_eq!((status, id.as_str()), (200, "client-17:a/b.c_d"));
    let (_, first) = id_of(post()).await;
    let (_, second) = id_of(post()).await;
    assert!(is_fresh(&first) && is_fresh(&second), "{first} {second}");
    assert_ne!(first, second);
    // Not a sane id (a space, or far too long): replaced, never echoed.
    let (_, replaced) = id_of(post().header("x-request-id", "two words")).await;
    assert!(is_fresh(&replaced), "{replaced}");
    let (_, replaced) = id_of(post().header("x-request-id", "x".repeat(300))).await;
    assert!(is_fresh(&replaced), "{replaced}");
    // Errors and refusals carry one too.
    let (status, id) = id_of(
        http.post(format!("{}/", proxy.url()))
            .header("x-request-id", "no-token-1"),
    )
    .await;
    assert_eq!((status, id.as_str()), (401, "no-token-1"));

    // A request that fails on Redis logs a warning: with its id.
    redis.kill();
    let (status, _) = id_of(post().header("x-request-id", "trace-me-42")).await;
    assert_eq!(status, 503);
    let line = log_line_with(&proxy, ["trace-me-42", "request failed"]).await;
    assert!(line.contains("WARN"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_echoes_and_logs_request_ids() {
    let redis = RedisServer::start();
    // At debug level the proxy logs every request it is sent.
    let proxy = spawn_proxy_with(&[redis.url()], TOKEN, &[], &[("RUST_LOG", "debug")]);
    // Gateway mode towards a port nothing listens on: forwarding fails and is logged.
    let serve = spawn_serve(
        proxy.url(),
        TOKEN,
        &[
            ("EDGECOUNT_ORIGIN", "http://127.0.0.1:9"),
            ("EDGECOUNT_RATE_LIMITS", "site=sliding:100/1m"),
        ],
    );
    let http = reqwest::Client::new();
    let (status, id) = id_of(
        http.get(format!("{}/get/docs/home", serve.url()))
            .header("x-request-id", "page-view-9"),
    )
    .await;
    assert_eq!((status, id.as_str()), (404, "page-view-9"));
    let (_, fresh) = id_of(http.get(format!("{}/healthz", serve.url()))).await;
    assert!(is_fresh(&fresh), "{fresh}");

    // The REST request serve makes for a request goes out under that request's id.
    let (status, _) = id_of(
        http.post(format!("{}/hit/docs/home", serve.url()))
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Firefox/133.0",
            )
            .header("x-request-id", "hop-to-proxy-3"),
    )
    .await;
    assert_eq!(status, 200);
    let line = log_line_with(&proxy, ["hop-to-proxy-3", "method=POST"]).await;
    assert!(line.contains("request{id=hop-to-proxy-3}"), "{line}");

    let (status, _) = id_of(
        http.get(format!("{}/some/page", serve.url()))
            .header("x-request-id", "trace-serve-7"),
    )
    .await;
    assert_eq!(status, 502);
    let line = log_line_with(&serve, ["trace-serve-7", "origin unreachable"]).await;
    assert!(line.contains("WARN"), "{line}");
}
