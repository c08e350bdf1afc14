//! The edge worker end to end, for real: the wasm built by `scripts/build-worker.sh` running in
//! workerd, calling the real `edgecount proxy` over Upstash REST (the runtime's fetch()), in front of a
//! private redis-server. Run: `cargo test --test worker_smoke` (builds the wasm first if needed;
//! `-- --nocapture` shows the workerd start times).

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::proxy::spawn_proxy;
use support::redis_server::free_port;
use support::workerd::{spawn_js_worker, spawn_worker, WorkerProcess};
use support::RedisServer;

const TOKEN: &str = "worker-smoke-token-8d2e";

async fn get(worker: &WorkerProcess, path: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", worker.url()))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}\nworkerd log:\n{}", worker.log()));
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "GET {path}: not JSON ({e}): {:?}\nworkerd log:\n{}",
            String::from_utf8_lossy(&bytes),
            worker.log()
        )
    });
    (status, body)
}

fn timed_spawn(env: &[(&str, &str)]) -> WorkerProcess {
    support::workerd::built_worker_dir(); // build outside the timing
    let started = Instant::now();
    let worker = spawn_worker(env);
    eprintln!(
        "workerd with the wasm worker listening after {:?}",
        started.elapsed()
    );
    worker
}

#[tokio::test]
async fn healthz_pings_redis_through_the_proxy() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let worker = timed_spawn(&[
        ("UPSTASH_REDIS_REST_URL", proxy.url()),
        ("UPSTASH_REDIS_REST_TOKEN", TOKEN),
    ]);

    let started = Instant::now();
    let (status, body) = get(&worker, "/healthz").await;
    eprintln!(
        "first /healthz (isolate + wasm instantiation + one REST round trip) took {:?}",
        started.elapsed()
    );
    assert_eq!(status, StatusCode::OK, "{body}\n{}", worker.log());
    assert_eq!(body, json!({"ok": true}));

    let (status, body) = get(&worker, "/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn healthz_is_503_when_the_rest_endpoint_is_down() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let worker = timed_spawn(&[
        ("UPSTASH_REDIS_REST_URL", &dead),
        ("UPSTASH_REDIS_REST_TOKEN", TOKEN),
    ]);
    let (status, body) = get(&worker, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ok"], json!(false), "{body}");
}

#[tokio::test]
async fn healthz_is_503_when_the_token_is_wrong() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let worker = spawn_worker(&[
        ("UPSTASH_REDIS_REST_URL", proxy.url()),
        ("UPSTASH_REDIS_REST_TOKEN", "not-the-token"),
    ]);
    let (status, body) = get(&worker, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn two_workers_share_one_proxy() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let env = [
        ("UPSTASH_REDIS_REST_URL", proxy.url()),
        ("UPSTASH_REDIS_REST_TOKEN", TOKEN),
    ];
    let a = spawn_worker(&env);
    let b = spawn_worker(&env);
    assert_ne!(a.port(), b.port());
    let ((status_a, _), (status_b, _)) = tokio::join!(get(&a, "/healthz"), get(&b, "/healthz"));
    assert_eq!((status_a, status_b), (StatusCode::OK, StatusCode::OK));
}

/// The JavaScript path of the harness (used by the benchmarks): a module worker that uses the
/// official `@upstash/redis` client against our proxy, bundled by esbuild.
#[tokio::test]
async fn js_worker_with_the_upstash_client_reaches_the_proxy() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ping.mjs");
    std::fs::write(
        &script,
        r#"import { Redis } from "@upstash/redis/cloudflare";
export default {
  async fetch(request, env) {
    const redis = Redis.fromEnv(env);
    const pong = await redis.ping();
    await redis.set("js-worker", "hello");
    return Response.json({ pong, value: await redis.get("js-worker") });
  },
};
"#,
    )
    .unwrap();
    let started = Instant::now();
    let worker = spawn_js_worker(
        &script,
        &[
            ("UPSTASH_REDIS_REST_URL", proxy.url()),
            ("UPSTASH_REDIS_REST_TOKEN", TOKEN),
        ],
    );
    eprintln!(
        "esbuild + workerd with the JS worker listening after {:?}",
        started.elapsed()
    );
    let (status, body) = get(&worker, "/").await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", worker.log());
    assert_eq!(body, json!({"pong": "PONG", "value": "hello"}));
    assert_eq!(redis.cli(&["GET", "js-worker"]), "hello");
}
