//! `edgecount serve --redis-url` as users run it: the binary talking RESP straight to a private
//! redis-server (with a password, which never reaches the log), configured by flags or by the
//! environment; refusing a REST URL and a Redis URL at once; and answering bounded 503s while
//! Redis is gone, recovering by itself when it is back.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use support::proxy::{spawn_serve_with, ProxyProcess};
use support::RedisServer;

const PASSWORD: &str = "direct-pw-Qe71";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(BROWSER)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post(http: &reqwest::Client, serve: &ProxyProcess, path: &str) -> (StatusCode, Value) {
    let response = http
        .post(format!("{}{path}", serve.url()))
        .send()
        .await
        .expect("serve answers");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

fn url_with_password(redis: &RedisServer) -> String {
    format!("redis://:{PASSWORD}@127.0.0.1:{}", redis.port())
}

fn get(redis: &RedisServer, key: &str) -> String {
    redis.cli(&["--no-auth-warning", "--pass", PASSWORD, "GET", key])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_talks_resp_to_redis_from_flags_or_the_environment() {
    let redis = RedisServer::start();
    // After the start: the helper's readiness check pings without a password.
    assert_eq!(redis.cli(&["CONFIG", "SET", "requirepass", PASSWORD]), "OK");
    let http = client();
    let from_flag = spawn_serve_with(&["--redis-url", &url_with_password(&redis)], &[]);
    let from_env = spawn_serve_with(&[], &[("EDGECOUNT_REDIS_URL", &url_with_password(&redis))]);
    for (expected, serve) in [(1, &from_flag), (2, &from_flag), (3, &from_env)] {
        let (status, body) = post(&http, serve, "/hit/direct/page").await;
        assert_eq!(status, 200, "{body}\n{}", serve.log());
        assert_eq!(body["value"], expected, "{body}");
        assert_eq!(body["counted"], true, "{body}");
    }
    assert_eq!(get(&redis, "ec:{direct:page}:v"), "3");
    let (status, body) = post(&http, &from_env, "/limit/nothing-configured/x").await;
    assert_eq!(status, 404, "{body}");
    let health = http
        .get(format!("{}/healthz", from_flag.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    for serve in [&from_flag, &from_env] {
        let log = serve.log();
        assert!(!log.contains(PASSWORD), "{log}");
        assert!(
            log.contains("Redis at redis://:redacted@127.0.0.1:") && log.contains("(RESP)"),
            "the startup line says where it counts: {log}"
        );
    }
}

/// Arguments and environment of one `edgecount serve`.
type Launch<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

#[test]
fn serve_refuses_a_rest_url_and_a_redis_url_at_once() {
    // The same question by flags, by the environment, and mixed: which store was meant cannot be
    // guessed, so serve does not start.
    let cases: [Launch; 3] = [
        (
            &[
                "--rest-url",
                "http://127.0.0.1:9",
                "--rest-token",
                "t",
                "--redis-url",
                "redis://127.0.0.1:9",
            ],
            &[],
        ),
        (
            &[],
            &[
                ("UPSTASH_REDIS_REST_URL", "http://127.0.0.1:9"),
                ("UPSTASH_REDIS_REST_TOKEN", "t"),
                ("EDGECOUNT_REDIS_URL", "redis://127.0.0.1:9"),
            ],
        ),
        (
            &["--redis-url", "redis://127.0.0.1:9"],
            &[
                ("UPSTASH_REDIS_REST_URL", "http://127.0.0.1:9"),
                ("UPSTASH_REDIS_REST_TOKEN", "t"),
            ],
        ),
    ];
    for (args, env) in cases {
        let mut command = Command::new(env!("CARGO_BIN_EXE_edgecount"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("UPSTASH_REDIS_REST_URL")
            .env_remove("UPSTASH_REDIS_REST_TOKEN")
            .env_remove("EDGECOUNT_REDIS_URL")
            .envs(env.iter().copied());
        let output = support::run_with_timeout(command, Duration::from_secs(10));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?}: started");
        assert!(!stdout.contains("listening"), "{stdout}");
        assert!(
            stderr.contains("both a REST URL")
                && stderr.contains("--rest-url")
                && stderr.contains("--redis-url"),
            "{args:?} {env:?}: {stderr}"
        );
    }
}

/// Time `request` until it answers, failing beyond `limit`.
async fn timed(request: reqwest::RequestBuilder, limit: Duration) -> (StatusCode, Value) {
    let started = Instant::now();
    let response = request.send().await.expect("an answer");
    let elapsed = started.elapsed();
    assert!(elapsed < limit, "answered after {elapsed:?}");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_while_redis_is_gone_and_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let http = client();
    let redis_url = redis.url();
    let serve = spawn_serve_with(
        &[
            "--redis-url",
            &redis_url,
            "--redis-timeout-ms",
            "300",
            "--redis-connect-timeout-ms",
            "300",
        ],
        &[(
            "EDGECOUNT_RATE_LIMITS",
            "open=fixed:100/1h fail=open; closed=fixed:100/1h fail=closed",
        )],
    );
    let url = |path: &str| format!("{}{path}", serve.url());
    let (status, body) = post(&http, &serve, "/hit/gone/page").await;
    assert_eq!((status.as_u16(), &body["value"]), (200, &Value::from(1)));

    redis.kill();
    let limit = Duration::from_millis(2500);
    let (status, body) = timed(http.post(url("/hit/gone/page")), limit).await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = timed(http.get(url("/healthz")), limit).await;
    assert_eq!((status.as_u16(), &body["ok"]), (503, &Value::Bool(false)));
    let (status, body) = timed(http.post(url("/limit/open/u")), limit).await;
    assert_eq!(status, 200, "fail open: {body}");
    let (status, body) = timed(http.post(url("/limit/closed/u")), limit).await;
    assert_eq!(status, 503, "fail closed: {body}");

    // Back on the same port, empty: the next requests reconnect (bounded wait, no restart).
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = post(&http, &serve, "/hit/gone/page").await;
        if status == 200 {
            assert_eq!(body["value"], 1, "a fresh Redis: {body}");
            break;
        }
        assert!(Instant::now() < deadline, "still {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(redis.cli(&["GET", "ec:{gone:page}:v"]), "1");
}
