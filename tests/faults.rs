//! Faults through the HTTP fronts, each in its own process (the `edgecount serve` binary, the
//! wasm worker in workerd, the proxy binary):
//! - a Redis that stops answering (`CLIENT PAUSE`, `DEBUG SLEEP`) gives bounded answers — a 503,
//!   or the policy's fail mode — never a hung client;
//! - a Redis SIGKILLed and restarted under hit load loses no acknowledged hit with AOF
//!   (`always`, and measured with `everysec`) and invents none;
//! - a proxy SIGKILLed and restarted on its port under both fronts: 503s and fail modes meanwhile;
//!
//! and every time the chain recovers without restarting anything else.
//!
//! The figures (attempts, acknowledged, final value, statuses, recovery) go to stderr on lines
//! starting `FIGURES` (`cargo test --test faults -- --nocapture`).

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use support::proxy::{spawn_proxy_with, spawn_serve, ProxyProcess};
use support::workerd::{spawn_worker, WorkerProcess};
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

// ---------------------------------------------------------------------------------------------
// The fronts as processes, and hit load through them.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Serve,
    Worker,
}

/// A front end in its own process: `edgecount serve` (the binary) or the wasm worker in workerd.
enum Front {
    Serve(ProxyProcess),
    Worker(WorkerProcess),
}

impl Front {
    /// Start `kind` in front of the REST endpoint `rest_url` with `TOKEN` and `env`
    /// (`EDGECOUNT_*`): serve gets the endpoint as CLI flags, the worker as its bindings.
    async fn start(kind: Kind, rest_url: &str, env: &[(&str, &str)]) -> Front {
        let rest_url = rest_url.to_owned();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Spawning blocks (and the first worker spawn builds the wasm): off the runtime.
        tokio::task::spawn_blocking(move || {
            let mut pairs: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            match kind {
                Kind::Serve => Front::Serve(spawn_serve(&rest_url, TOKEN, &pairs)),
                Kind::Worker => {
                    pairs.push(("UPSTASH_REDIS_REST_URL", &rest_url));
                    pairs.push(("UPSTASH_REDIS_REST_TOKEN", TOKEN));
                    Front::Worker(spawn_worker(&pairs))
                }
            }
        })
        .await
        .expect("start the front")
    }

    fn url(&self) -> String {
        match self {
            Front::Serve(serve) => serve.url().to_owned(),
            Front::Worker(worker) => worker.url(),
        }
    }

    fn log(&self) -> String {
        match self {
            Front::Serve(serve) => serve.log(),
            Front::Worker(worker) => worker.log(),
        }
    }
}

/// What the load clients see: a browser (bots are not counted), each answer bounded far above
/// what any answer may take (the tests assert a tighter bound on the measured times).
fn load_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(BROWSER)
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// One hit as a load client saw it.
struct Answer {
    started: Instant,
    took: Duration,
    /// `None`: no answer (the request failed or timed out at the client).
    status: Option<u16>,
    body: Value,
}

/// The most hits one load client sends (the load is bounded by time first).
const MAX_HITS_PER_CLIENT: usize = 20_000;

/// `clients` concurrent clients POSTing `url` back to back until `until`.
fn start_hit_load(
    http: &reqwest::Client,
    url: String,
    clients: usize,
    until: Instant,
) -> tokio::task::JoinHandle<Vec<Answer>> {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while Instant::now() < until && answers.len() < MAX_HITS_PER_CLIENT {
                    let started = Instant::now();
                    let (status, body) = match http.post(&url).send().await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            match response.bytes().await {
                                Ok(bytes) => (
                                    Some(status),
                                    serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                                        Value::String(format!(
                                            "not JSON: {}",
                                            String::from_utf8_lossy(&bytes)
                                        ))
                                    }),
                                ),
                                Err(e) => (None, Value::String(format!("body: {e}"))),
                            }
                        }
                        Err(e) => (None, Value::String(format!("request: {e}"))),
                    };
                    answers.push(Answer {
                        started,
                        took: started.elapsed(),
                        status,
                        body,
                    });
                }
                answers
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("load client"));
        }
        all.sort_by_key(|a| a.started);
        all
    })
}

/// The hit load's answers, summed up and checked.
#[derive(Debug)]
struct Summary {
    attempts: usize,
    /// 200 answers (each counted).
    acknowledged: usize,
    /// The highest value a 200 answer reported.
    max_acknowledged_value: i64,
    /// By status (`none` for no answer).
    statuses: BTreeMap<String, usize>,
    max_latency: Duration,
    /// From the fault's end (`back`) to the end of the first 200 answer started after it.
    first_ok_after_back: Option<Duration>,
    /// From `back` to the end of the last answer that was not a 200 (zero when none ended later).
    last_failure_after_back: Duration,
    /// Answers that were neither a counted 200 nor a JSON 503 with an `error` text.
    unexpected: Vec<String>,
}

fn summarize(answers: &[Answer], back: Instant) -> Summary {
    let mut summary = Summary {
        attempts: answers.len(),
        acknowledged: 0,
        max_acknowledged_value: 0,
        statuses: BTreeMap::new(),
        max_latency: Duration::ZERO,
        first_ok_after_back: None,
        last_failure_after_back: Duration::ZERO,
        unexpected: Vec::new(),
    };
    for answer in answers {
        let status = answer
            .status
            .map_or_else(|| "none".to_owned(), |s| s.to_string());
        *summary.statuses.entry(status).or_default() += 1;
        summary.max_latency = summary.max_latency.max(answer.took);
        let ended = answer.started + answer.took;
        match answer.status {
            Some(200) if answer.body["counted"] == true && answer.body["value"].is_i64() => {
                summary.acknowledged += 1;
                summary.max_acknowledged_value = summary
                    .max_acknowledged_value
                    .max(answer.body["value"].as_i64().unwrap());
                if answer.started >= back {
                    let after = ended - back;
                    if summary
                        .first_ok_after_back
                        .is_none_or(|first| after < first)
                    {
                        summary.first_ok_after_back = Some(after);
                    }
                }
                continue;
            }
            Some(503) if answer.body["error"].is_string() => {}
            _ => summary
                .unexpected
                .push(format!("{:?} {}", answer.status, answer.body)),
        }
        summary.last_failure_after_back = summary
            .last_failure_after_back
            .max(ended.saturating_duration_since(back));
    }
    summary
}

/// A counter's value as Redis holds it (0 when the key does not exist).
fn stored_value(redis: &RedisServer, namespace: &str, key: &str) -> i64 {
    let value = redis.cli(&["GET", &format!("ec:{{{namespace}:{key}}}:v")]);
    if value.is_empty() {
        0
    } else {
        value.parse().unwrap_or_else(|_| panic!("GET: {value:?}"))
    }
}

/// A front answers a hit with a 200 again within `limit` (polling); how long it took.
async fn wait_recovered(http: &reqwest::Client, url: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(response) = http.post(url).send().await {
            if response.status() == StatusCode::OK {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < limit,
            "{url} not answering 200 again within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Redis SIGKILLed and restarted under hit load.

/// Every answer during a Redis crash takes less than this (a crash closes Redis's sockets, so
/// the proxy fails at once rather than waiting for its reply timeout).
const CRASH_ANSWER_BOUND: Duration = Duration::from_secs(3);

async fn hits_survive_a_redis_crash_under_load(kind: Kind, appendfsync: &str) {
    let mut redis = RedisServer::with_args(&["--appendonly", "yes", "--appendfsync", appendfsync]);
    // The proxy with its defaults (10 s reply timeout): the bound below must hold without it.
    let proxy = spawn_proxy_with(&[redis.url()], TOKEN, &[], &[]);
    let front = Front::start(kind, proxy.url(), &[("EDGECOUNT_ABUSE_LIMIT", "0")]).await;
    let http = load_client();
    let url = format!("{}/hit/load/page", front.url());
    assert_eq!(http.post(&url).send().await.unwrap().status(), 200);
    let before = stored_value(&redis, "load", "page");

    const CLIENTS: usize = 20;
    let started = Instant::now();
    let until = started + Duration::from_millis(7500);
    let load = start_hit_load(&http, url.clone(), CLIENTS, until);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.kill(); // SIGKILL: only what the AOF has on disk (or in the kernel's cache) remains
    let killed_at = started.elapsed();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    redis.restart(); // same port, same dir: loads the AOF, returns once it answers PING
    let back = Instant::now();
    let back_at = back - started;
    let answers = tokio::time::timeout(Duration::from_secs(30), load)
        .await
        .expect("the load ends (no hung client)")
        .expect("load");
    let summary = summarize(&answers, back);

    let final_value = stored_value(&redis, "load", "page") - before;
    let through_front: Value = http
        .get(format!("{}/get/load/page", front.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lost = (summary.acknowledged as i64 - final_value)
        .max(summary.max_acknowledged_value - before - final_value)
        .max(0);
    eprintln!(
        "FIGURES redis-sigkill front={kind:?} appendfsync={appendfsync}: attempts={} \
         acknowledged={} final={} lost={lost} counted-unacknowledged={} statuses={:?} \
         max_latency={:?} killed_at={killed_at:?} back_at={back_at:?} \
         first_200_after_back={:?} last_failure_after_back={:?}",
        summary.attempts,
        summary.acknowledged,
        final_value,
        (final_value - summary.acknowledged as i64).max(0),
        summary.statuses,
        summary.max_latency,
        summary.first_ok_after_back,
        summary.last_failure_after_back,
    );

    assert!(
        summary.unexpected.is_empty(),
        "answers other than a counted 200 or a JSON 503: {:?}\nfront log:\n{}",
        &summary.unexpected[..summary.unexpected.len().min(10)],
        front.log()
    );
    assert!(
        summary.max_latency < CRASH_ANSWER_BOUND,
        "an answer took {:?}",
        summary.max_latency
    );
    assert!(
        summary.statuses.get("503").copied().unwrap_or(0) > 0,
        "the crash was not seen: {:?}",
        summary.statuses
    );
    // Nothing invented: the counter never counts more hits than were sent.
    assert!(
        final_value <= summary.attempts as i64,
        "{final_value} counted from {} attempts",
        summary.attempts
    );
    assert_eq!(
        through_front["value"].as_i64(),
        Some(final_value + before),
        "{through_front}"
    );
    if appendfsync == "always" {
        // Nothing acknowledged lost: every 200 (and the highest value one reported) survived.
        assert!(
            final_value >= summary.acknowledged as i64,
            "acknowledged {} hits, {final_value} survived",
            summary.acknowledged
        );
        assert!(
            summary.max_acknowledged_value <= final_value + before,
            "a client was told {}, Redis came back with {}",
            summary.max_acknowledged_value,
            final_value + before
        );
    }
    // Recovered without a restart of the proxy or the front, and stayed so: the last second of
    // load was all 200s.
    let first_ok = summary
        .first_ok_after_back
        .expect("no 200 after Redis came back");
    assert!(
        first_ok < Duration::from_secs(3),
        "first 200 after {first_ok:?}"
    );
    assert!(
        back + summary.last_failure_after_back + Duration::from_secs(1) < until,
        "failures until {:?} after Redis came back (load ran {:?} after it)",
        summary.last_failure_after_back,
        until - back
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sigkill_under_load_through_serve_loses_no_acknowledged_hit_aof_always() {
    hits_survive_a_redis_crash_under_load(Kind::Serve, "always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sigkill_under_load_through_the_worker_loses_no_acknowledged_hit_aof_always() {
    hits_survive_a_redis_crash_under_load(Kind::Worker, "always").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sigkill_under_load_through_serve_aof_everysec_measured() {
    hits_survive_a_redis_crash_under_load(Kind::Serve, "everysec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sigkill_under_load_through_the_worker_aof_everysec_measured() {
    hits_survive_a_redis_crash_under_load(Kind::Worker, "everysec").await;
}

// ---------------------------------------------------------------------------------------------
// Decisions and leases while Redis (or the proxy) cannot be asked, through both fronts.

/// Every policy kind with each fail mode; limits high enough that the load never reaches them.
const FAIL_MODE_POLICIES: &str = "page=sliding:1000/1m fail=open; \
    login=fixed:1000/1m fail=closed; jobs=concurrency:50/30s fail=open; \
    locks=concurrency:50/30s fail=closed";

/// A front's answers while the chain behind it is broken: a JSON 503 for a hit, each policy's
/// fail mode for decisions and leases (with `EdgeCount-Fail-Mode`), the release of a lease taken
/// before answered as fail-open — each within `bound`. The requests go out concurrently.
async fn check_outage_answers(http: &reqwest::Client, base: &str, lease: &str, bound: Duration) {
    let requests = vec![
        ("hit", http.post(format!("{base}/hit/outage/page"))),
        ("limit page", http.post(format!("{base}/limit/page/u1"))),
        ("limit login", http.post(format!("{base}/limit/login/u1"))),
        ("lease jobs", http.post(format!("{base}/lease/jobs/u1"))),
        (
            "release jobs",
            http.delete(format!("{base}/lease/jobs/u1/{lease}")),
        ),
        ("lease locks", http.post(format!("{base}/lease/locks/u1"))),
    ];
    let answers =
        futures_util::future::join_all(requests.into_iter().map(|(what, request)| async move {
            let started = Instant::now();
            let response = request.send().await.expect("an answer, not a hung request");
            let fail_mode = response
                .headers()
                .get("edgecount-fail-mode")
                .map(|v| v.to_str().unwrap().to_owned());
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("a JSON answer");
            (what, status, fail_mode, body, started.elapsed())
        }))
        .await;
    for (what, status, fail_mode, body, took) in answers {
        assert!(took < bound, "{base} {what}: {took:?}");
        let fail_mode = fail_mode.as_deref();
        match what {
            "hit" => {
                assert_eq!(status, 503, "{base} {what}: {body}");
                assert_eq!(body["error"], "redis unavailable", "{base} {what}: {body}");
            }
            "limit page" => {
                assert_eq!(
                    (status, fail_mode),
                    (200, Some("open")),
                    "{base} {what}: {body}"
                );
                assert_eq!(body["reason"], "fail-open", "{base} {what}: {body}");
            }
            "limit login" | "lease locks" => {
                assert_eq!(
                    (status, fail_mode),
                    (503, Some("closed")),
                    "{base} {what}: {body}"
                );
                assert_eq!(body["reason"], "fail-closed", "{base} {what}: {body}");
            }
            "lease jobs" => {
                assert_eq!(
                    (status, fail_mode),
                    (200, Some("open")),
                    "{base} {what}: {body}"
                );
                assert_eq!(body["reason"], "fail-open", "{base} {what}: {body}");
                assert!(body["lease"].is_string(), "{base} {what}: {body}");
            }
            "release jobs" => {
                assert_eq!(
                    (status, fail_mode),
                    (200, Some("open")),
                    "{base} {what}: {body}"
                );
                assert_eq!(
                    body,
                    serde_json::json!({"released": false, "reason": "fail-open"}),
                    "{base} {what}"
                );
            }
            _ => unreachable!(),
        }
    }
}

/// Decisions, leases and a release through `base` with Redis answering again.
async fn check_healthy_answers(http: &reqwest::Client, base: &str) {
    let response = http
        .post(format!("{base}/limit/login/u1"))
        .send()
        .await
        .unwrap();
    assert!(!response.headers().contains_key("edgecount-fail-mode"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "limit", "{body}");
    let body: Value = http
        .post(format!("{base}/lease/locks/u1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["reason"], "limit", "{body}");
    let lease = body["lease"].as_str().expect("a lease");
    let body: Value = http
        .delete(format!("{base}/lease/locks/u1/{lease}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"released": true}));
}

/// A lease on `jobs` for `u1`, taken while everything is healthy.
async fn take_lease(http: &reqwest::Client, base: &str) -> String {
    let body: Value = http
        .post(format!("{base}/lease/jobs/u1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["reason"], "limit", "{body}");
    body["lease"].as_str().expect("a lease").to_owned()
}

/// The load through one front, checked: only counted 200s and JSON 503s, each within `bound`;
/// nothing acknowledged lost, nothing invented; its figures printed.
fn check_load(
    test: &str,
    front: &Front,
    redis: &RedisServer,
    key: &str,
    answers: &[Answer],
    back: Instant,
    bound: Duration,
) {
    let summary = summarize(answers, back);
    let final_value = stored_value(redis, "load", key);
    eprintln!(
        "FIGURES {test} front={key}: attempts={} acknowledged={} final={final_value} \
         lost={} counted-unacknowledged={} statuses={:?} max_latency={:?} \
         first_200_after_back={:?} last_failure_after_back={:?}",
        summary.attempts,
        summary.acknowledged,
        (summary.acknowledged as i64 - final_value).max(0),
        (final_value - summary.acknowledged as i64).max(0),
        summary.statuses,
        summary.max_latency,
        summary.first_ok_after_back,
        summary.last_failure_after_back,
    );
    assert!(
        summary.unexpected.is_empty(),
        "{key}: answers other than a counted 200 or a JSON 503: {:?}\nlog:\n{}",
        &summary.unexpected[..summary.unexpected.len().min(10)],
        front.log()
    );
    assert!(
        summary.max_latency < bound,
        "{key}: an answer took {:?}",
        summary.max_latency
    );
    assert!(
        summary.statuses.get("503").copied().unwrap_or(0) > 0,
        "{key}: the fault was not seen: {:?}",
        summary.statuses
    );
    assert!(
        final_value >= summary.acknowledged as i64 && final_value <= summary.attempts as i64,
        "{key}: {final_value} counted, {} acknowledged, {} attempts",
        summary.acknowledged,
        summary.attempts
    );
    assert!(
        summary.max_acknowledged_value <= final_value,
        "{key}: a client was told {}, the counter holds {final_value}",
        summary.max_acknowledged_value
    );
    assert!(
        summary.first_ok_after_back.is_some(),
        "{key}: no 200 after the fault ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_sigkilled_and_restarted_under_serve_and_the_worker() {
    let redis = RedisServer::start();
    let mut proxy = spawn_proxy_with(&[redis.url()], TOKEN, &[], &[]);
    let env = [
        ("EDGECOUNT_ABUSE_LIMIT", "0"),
        ("EDGECOUNT_RATE_LIMITS", FAIL_MODE_POLICIES),
    ];
    let serve = Front::start(Kind::Serve, proxy.url(), &env).await;
    let worker = Front::start(Kind::Worker, proxy.url(), &env).await;
    let fronts = [("serve", &serve), ("worker", &worker)];
    let http = load_client();
    let mut leases = Vec::new();
    for (_, front) in fronts {
        leases.push(take_lease(&http, &front.url()).await);
    }

    let started = Instant::now();
    let until = started + Duration::from_millis(7000);
    let loads: Vec<_> = fronts
        .iter()
        .map(|(key, front)| {
            start_hit_load(&http, format!("{}/hit/load/{key}", front.url()), 8, until)
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    proxy.kill(); // SIGKILL
    let killed = Instant::now();
    // Nothing listens on the proxy's port: connections are refused, answers come at once.
    let bound = Duration::from_secs(2);
    for ((_, front), lease) in fronts.iter().zip(&leases) {
        check_outage_answers(&http, &front.url(), lease, bound).await;
    }
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(killed.elapsed())).await;
    let down_for = killed.elapsed();
    proxy.restart(); // same port: neither front is told anything
    let back = Instant::now();
    let mut recovery = Vec::new();
    for (key, front) in fronts {
        let took = wait_recovered(
            &http,
            &format!("{}/hit/outage/page", front.url()),
            Duration::from_secs(5),
        )
        .await;
        recovery.push((key, took));
    }
    for (_, front) in fronts {
        check_healthy_answers(&http, &front.url()).await;
    }
    eprintln!(
        "FIGURES proxy-sigkill: proxy down {down_for:?}; first 200 after restart {recovery:?}"
    );
    for ((key, front), load) in fronts.into_iter().zip(loads) {
        let answers = tokio::time::timeout(Duration::from_secs(30), load)
            .await
            .expect("the load ends (no hung client)")
            .expect("load");
        check_load("proxy-sigkill", front, &redis, key, &answers, back, bound);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_in_debug_sleep_gives_bounded_answers_through_serve_and_the_worker() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy_with(&[redis.url()], TOKEN, &["--redis-timeout-ms", "300"], &[]);
    let env = [
        ("EDGECOUNT_ABUSE_LIMIT", "0"),
        ("EDGECOUNT_RATE_LIMITS", FAIL_MODE_POLICIES),
    ];
    let serve = Front::start(Kind::Serve, proxy.url(), &env).await;
    let worker = Front::start(Kind::Worker, proxy.url(), &env).await;
    let fronts = [("serve", &serve), ("worker", &worker)];
    let http = load_client();
    let mut leases = Vec::new();
    for (_, front) in fronts {
        leases.push(take_lease(&http, &front.url()).await);
    }

    let sleep = Duration::from_secs(4);
    let started = Instant::now();
    let until = started + Duration::from_millis(500) + sleep + Duration::from_secs(3);
    let loads: Vec<_> = fronts
        .iter()
        .map(|(key, front)| {
            start_hit_load(&http, format!("{}/hit/load/{key}", front.url()), 5, until)
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // DEBUG SLEEP blocks the whole server (connections are accepted by the kernel, nothing is
    // answered); redis-cli returns when it wakes.
    let mut sleeper = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string()])
        .args(["DEBUG", "SLEEP", &sleep.as_secs().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-cli");
    let slept_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The proxy's bound: its 300 ms reply timeout, plus its 1 s connect timeout when it
    // reconnects (the handshake is not answered either).
    let bound = Duration::from_millis(2500);
    for ((_, front), lease) in fronts.iter().zip(&leases) {
        check_outage_answers(&http, &front.url(), lease, bound).await;
    }
    assert!(
        slept_at.elapsed() < sleep,
        "the checks must run inside the sleep (took {:?})",
        slept_at.elapsed()
    );
    let deadline = slept_at + sleep + Duration::from_secs(10);
    while sleeper.try_wait().expect("redis-cli").is_none() {
        assert!(Instant::now() < deadline, "DEBUG SLEEP did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let back = Instant::now();
    let mut recovery = Vec::new();
    for (key, front) in fronts {
        let took = wait_recovered(
            &http,
            &format!("{}/hit/outage/page", front.url()),
            Duration::from_secs(5),
        )
        .await;
        recovery.push((key, took));
    }
    for (_, front) in fronts {
        check_healthy_answers(&http, &front.url()).await;
    }
    eprintln!(
        "FIGURES debug-sleep: slept {:?}; first 200 after it {recovery:?}",
        back - slept_at
    );
    for ((key, front), load) in fronts.into_iter().zip(loads) {
        let answers = tokio::time::timeout(Duration::from_secs(30), load)
            .await
            .expect("the load ends (no hung client)")
            .expect("load");
        check_load("debug-sleep", front, &redis, key, &answers, back, bound);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_loading_its_dataset_is_an_outage_through_serve_and_the_worker() {
    // While Redis loads its dataset (after a restart; here DEBUG RELOAD, slowed down per key) it
    // answers every command `-LOADING …`: an outage like Redis being down — a 503 and the fail
    // modes — not a Redis error passed on as a 502.
    let redis = RedisServer::start();
    redis.cli(&["DEBUG", "POPULATE", "4000", "filler", "100"]);
    redis.cli(&["CONFIG", "SET", "key-load-delay", "1000"]); // µs per key: ~4 s of loading
    redis.cli(&[
        "CONFIG",
        "SET",
        "loading-process-events-interval-bytes",
        "1024",
    ]);
    let proxy = spawn_proxy_with(&[redis.url()], TOKEN, &[], &[]);
    let env = [
        ("EDGECOUNT_ABUSE_LIMIT", "0"),
        ("EDGECOUNT_RATE_LIMITS", FAIL_MODE_POLICIES),
    ];
    let serve = Front::start(Kind::Serve, proxy.url(), &env).await;
    let worker = Front::start(Kind::Worker, proxy.url(), &env).await;
    let fronts = [("serve", &serve), ("worker", &worker)];
    let http = load_client();
    let mut leases = Vec::new();
    for (_, front) in fronts {
        leases.push(take_lease(&http, &front.url()).await);
    }

    let mut reload = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "DEBUG", "RELOAD"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-cli");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis.cli(&["PING"]).starts_with("LOADING") {
        assert!(Instant::now() < deadline, "Redis never reported LOADING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let loading_seen = Instant::now();
    for ((_, front), lease) in fronts.iter().zip(&leases) {
        check_outage_answers(&http, &front.url(), lease, Duration::from_secs(2)).await;
    }
    assert!(
        redis.cli(&["PING"]).starts_with("LOADING"),
        "the checks must run while Redis loads (took {:?})",
        loading_seen.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while reload.try_wait().expect("redis-cli").is_none() {
        assert!(Instant::now() < deadline, "DEBUG RELOAD did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (_, front) in fronts {
        let url = format!("{}/hit/outage/page", front.url());
        wait_recovered(&http, &url, Duration::from_secs(5)).await;
        check_healthy_answers(&http, &front.url()).await;
    }
}
