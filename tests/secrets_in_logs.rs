//! No token, admin token or secret reaches a log: the proxy, `edgecount serve` (both the real
//! binary, at debug level) and the worker in workerd, driven through their good and bad paths —
//! wrong tokens, admin routes, a bad command, and Redis gone — then every line they wrote is
//! searched for each secret.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use support::proxy::{spawn_proxy_with, spawn_serve};
use support::workerd::spawn_worker;
use support::RedisServer;

const REST_TOKEN: &str = "rest-tok-Qv81x";
const READ_ONLY_TOKEN: &str = "ro-tok-Lm27c";
const ADMIN_TOKEN: &str = "admin-tok-Hz93k";
const UNIQUES_SECRET: &str = "uniq-sec-Wd55p";
const SECRETS: &[&str] = &[REST_TOKEN, READ_ONLY_TOKEN, ADMIN_TOKEN, UNIQUES_SECRET];

/// Everything a front end can be asked, with and without the right credentials.
async fn drive_front(http: &reqwest::Client, base: &str) {
    let calls: &[(&str, &str, Option<&str>)] = &[
        ("POST", "/hit/docs/home", None),
        ("GET", "/get/docs/home", None),
        ("GET", "/badge/docs/home.svg", None),
        ("POST", "/limit/api/user-1", None),
        (
            "PUT",
            "/limit/api/user-1/override?limit=9&window=1m",
            Some(ADMIN_TOKEN),
        ),
        (
            "PUT",
            "/limit/api/user-1/override?limit=9&window=1m",
            Some(REST_TOKEN),
        ),
        ("PUT", "/deny/203.0.113.0/24", Some(ADMIN_TOKEN)),
        ("PUT", "/deny/203.0.113.7/24", Some(ADMIN_TOKEN)),
        ("DELETE", "/limit/api/user-1", Some("wrong-admin")),
        ("POST", "/create/docs/new", None),
        ("POST", "/lease/conc/user-1", None),
        ("GET", "/healthz", None),
    ];
    for &(method, path, bearer) in calls {
        let mut request = http.request(method.parse().unwrap(), format!("{base}{path}"));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the front answers");
        let _ = response.bytes().await;
    }
}

async fn drive_proxy(http: &reqwest::Client, base: &str) {
    let bodies: &[(&str, &str, &str)] = &[
        ("/", REST_TOKEN, r#"["SET","k","v"]"#),
        ("/", REST_TOKEN, r#"["NOSUCHCOMMAND"]"#),
        ("/", READ_ONLY_TOKEN, r#"["SET","k","v"]"#),
        ("/", "wrong-token", r#"["GET","k"]"#),
        (
            "/pipeline",
            REST_TOKEN,
            r#"[["GET","k"],["CONFIG","GET","*"]]"#,
        ),
        ("/", REST_TOKEN, "not json"),
    ];
    for &(path, token, body) in bodies {
        let response = http
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .expect("the proxy answers");
        let _ = response.bytes().await;
    }
    // The query-string form of the token, right and wrong.
    for token in [REST_TOKEN, "wrong-token"] {
        let response = http
            .get(format!("{base}/get/k?_token={token}"))
            .send()
            .await
            .expect("the proxy answers");
        let _ = response.bytes().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_log() {
    let mut redis = RedisServer::start();
    let debug = [("RUST_LOG", "debug")];
    let proxy = spawn_proxy_with(
        &[redis.url()],
        REST_TOKEN,
        &["--read-only-token", READ_ONLY_TOKEN],
        &debug,
    );
    let limits = "api=sliding:100/1h; conc=concurrency:2/1m";
    let front_env = [
        ("EDGECOUNT_ADMIN_TOKEN", ADMIN_TOKEN),
        ("EDGECOUNT_UNIQUES_SECRET", UNIQUES_SECRET),
        ("EDGECOUNT_RATE_LIMITS", limits),
        ("RUST_LOG", "debug"),
    ];
    let serve = spawn_serve(proxy.url(), REST_TOKEN, &front_env);
    let proxy_url = proxy.url().to_owned();
    let worker = tokio::task::spawn_blocking(move || {
        spawn_worker(&[
            ("UPSTASH_REDIS_REST_URL", proxy_url.as_str()),
            ("UPSTASH_REDIS_REST_TOKEN", REST_TOKEN),
            ("EDGECOUNT_ADMIN_TOKEN", ADMIN_TOKEN),
            ("EDGECOUNT_UNIQUES_SECRET", UNIQUES_SECRET),
            ("EDGECOUNT_RATE_LIMITS", limits),
            ("EDGECOUNT_DEV_CLIENT_IP", "198.51.100.4"),
        ])
    })
    .await
    .expect("start workerd");

    // A worker whose REST URL is broken logs why (and answers 500): that log too.
    let misconfigured = tokio::task::spawn_blocking(|| {
        spawn_worker(&[
            ("UPSTASH_REDIS_REST_URL", "not a url"),
            ("UPSTASH_REDIS_REST_TOKEN", REST_TOKEN),
            ("EDGECOUNT_ADMIN_TOKEN", ADMIN_TOKEN),
            ("EDGECOUNT_UNIQUES_SECRET", UNIQUES_SECRET),
        ])
    })
    .await
    .expect("start workerd");

    let http = reqwest::Client::builder()
        .user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    drive_proxy(&http, proxy.url()).await;
    drive_front(&http, serve.url()).await;
    drive_front(&http, &worker.url()).await;
    drive_front(&http, &misconfigured.url()).await;

    // Redis gone: every layer now has errors to report.
    redis.kill();
    let down = http
        .post(format!("{}/", proxy.url()))
        .bearer_auth(REST_TOKEN)
        .body(r#"["GET","k"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    drive_front(&http, serve.url()).await;
    drive_front(&http, &worker.url()).await;
    // Let the reader threads take in the last lines.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let logs = [
        ("proxy", proxy.log()),
        ("serve", serve.log()),
        ("worker", worker.log()),
        ("misconfigured worker", misconfigured.log()),
    ];
    // The logs say something: the search below would otherwise prove little. (The working
    // worker logs nothing of its own: its errors are answers.)
    assert!(logs[0].1.contains("redis"), "proxy log: {}", logs[0].1);
    assert!(
        logs[1].1.contains("serving the counter API"),
        "serve log: {}",
        logs[1].1
    );
    assert!(
        logs[3].1.contains("misconfigured"),
        "worker log: {}",
        logs[3].1
    );
    for (name, log) in &logs {
        for secret in SECRETS {
            assert!(
                !log.contains(secret),
                "the {name} log shows {secret}:\n{log}"
            );
        }
    }
}
