//! Rate limits end to end: exactness under concurrency for every algorithm through the real wasm
//! worker, two worker instances sharing one limit, the IETF header grammar, fail-open and
//! fail-closed with Redis stopped, and gateway mode in front of an origin (worker and serve).

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use support::edge::{burst, clear_of_hour_boundary, spawn_origin, Edge, Kind};

/// Policies of exactly 100 per hour, one per algorithm.
const EXACT_POLICIES: &str = "fixed100=fixed:100/1h; sliding100=sliding:100/1h; \
token100=token:100/1h; gcra100=gcra:100/1h";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_limit_under_concurrency_for_every_algorithm() {
    let edge = Edge::start(Kind::Worker, &[("EDGECOUNT_RATE_LIMITS", EXACT_POLICIES)]).await;
    clear_of_hour_boundary(Duration::from_secs(120)).await;
    for policy in ["fixed100", "sliding100", "token100", "gcra100"] {
        let url = edge.url(&format!("/limit/{policy}/shared-user"));
        let (allowed, refused) = burst(&edge.http, &[url], 50, 500).await;
        assert_eq!((allowed, refused), (100, 400), "{policy}");
    }
    for (key, ttl) in edge.redis.key_pttls("rl:*") {
        assert!(ttl > 0, "{key} has no TTL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_instances_share_one_limit() {
    let edge = Edge::start(Kind::Worker, &[("EDGECOUNT_RATE_LIMITS", EXACT_POLICIES)]).await;
    let second = edge.another_worker().await;
    clear_of_hour_boundary(Duration::from_secs(120)).await;
    let urls = [
        edge.url("/limit/gcra100/two-edges"),
        format!("{}/limit/gcra100/two-edges", second.url()),
    ];
    let (allowed, refused) = burst(&edge.http, &urls, 20, 300).await;
    assert_eq!((allowed, refused), (100, 200));
}

/// `RateLimit-Policy: "name";q=N;w=N, …` and `RateLimit: "name";r=N;t=N, …`: structured-field
/// lists of strings with non-negative integer parameters (draft-ietf-httpapi-ratelimit-headers).
fn assert_header_grammar(value: &str, params: [&str; 2]) {
    for member in value.split(", ") {
        let mut parts = member.split(';');
        let name = parts.next().unwrap();
        assert!(
            name.len() > 2 && name.starts_with('"') && name.ends_with('"'),
            "policy name must be an sf-string: {value}"
        );
        let keys: Vec<&str> = parts
            .map(|p| {
                let (k, v) = p.split_once('=').expect("key=value parameter");
                assert!(
                    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()),
                    "{value}"
                );
                assert!(v.len() <= 15, "sf-integer has at most 15 digits: {value}");
                k
            })
            .collect();
        assert_eq!(keys, params, "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_follow_the_draft_grammar() {
    let edge = Edge::start(Kind::Worker, &[]).await;
    for path in ["/limit/api/h", "/limit/api+daily/h", "/limit/token+gcra/h"] {
        for _ in 0..4 {
            let response = edge.post(path).send().await.unwrap();
            let headers = response.headers();
            assert_header_grammar(headers["ratelimit-policy"].to_str().unwrap(), ["q", "w"]);
            assert_header_grammar(headers["ratelimit"].to_str().unwrap(), ["r", "t"]);
            for legacy in [
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
            ] {
                let v = headers[legacy].to_str().unwrap();
                assert!(v.bytes().all(|b| b.is_ascii_digit()), "{legacy}: {v}");
            }
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                let retry = headers["retry-after"].to_str().unwrap();
                assert!(retry.parse::<u64>().unwrap() >= 1, "{retry}");
            } else {
                assert!(headers.get("retry-after").is_none());
            }
        }
    }
}

async fn with_redis_stopped(fail_mode: &str) -> (Edge, reqwest::Response) {
    let mut edge = Edge::start(Kind::Worker, &[("EDGECOUNT_FAIL_MODE", fail_mode)]).await;
    let first = edge.post("/limit/api/fm").send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("edgecount-fail-mode").is_none());
    edge.redis.kill();
    let started = std::time::Instant::now();
    let response = edge.post("/limit/api/fm").send().await.unwrap();
    // Answered well before the proxy's 10 s reply timeout: Redis being gone is noticed (a refused
    // connection), not waited out; a bound a loaded box keeps.
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    (edge, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_allows_and_says_so() {
    let (_edge, response) = with_redis_stopped("open").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["edgecount-fail-mode"], "open");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["allowed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_and_says_so() {
    let (mut edge, response) = with_redis_stopped("closed").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["edgecount-fail-mode"], "closed");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("closed"));
    // Back to normal when Redis is.
    edge.redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = edge.post("/limit/api/fm-after").send().await.unwrap();
        if response.status() == 200 {
            assert!(response.headers().get("edgecount-fail-mode").is_none());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn gateway_limits_then_forwards(kind: Kind) {
    let (origin, _server) = spawn_origin().await;
    let edge = Edge::start(
        kind,
        &[
            ("EDGECOUNT_ORIGIN", origin.as_str()),
            ("EDGECOUNT_GATEWAY_POLICIES", "api"),
            ("EDGECOUNT_GATEWAY_KEY", "header:x-api-key"),
        ],
    )
    .await;
    for remaining in ["2", "1", "0"] {
        let response = edge
            .get("/some/page?x=1")
            .header("x-api-key", "alice")
            .send()
            .await
            .unwrap();
        if response.status() != 200 {
            panic!(
                "{}: {}\n{}",
                response.status(),
                response.text().await.unwrap(),
                edge.log()
            );
        }
        assert_eq!(response.headers()["x-origin"], "yes");
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
        assert!(response.headers().contains_key("ratelimit"));
        assert_eq!(
            response.text().await.unwrap(),
            "origin saw GET /some/page?x=1"
        );
    }
    let refused = edge
        .post("/some/page")
        .header("x-api-key", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(
        refused.headers().get("x-origin").is_none(),
        "the origin must not be reached"
    );
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    // Another key has its own budget; API routes are answered, not forwarded.
    let other = edge
        .post("/form")
        .header("x-api-key", "bob")
        .body("a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(other.text().await.unwrap(), "origin saw POST /form");
    let hit = edge.post("/hit/blog/gateway-hit").send().await.unwrap();
    assert!(hit.headers().get("x-origin").is_none());
    let body: Value = hit.json().await.unwrap();
    assert_eq!(body["value"], 1, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_through_the_worker() {
    gateway_limits_then_forwards(Kind::Worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_through_serve() {
    gateway_limits_then_forwards(Kind::Serve).await;
}

/// `/login*` and `/api/*` get their own policies, `/static/*` none, everything else `site`; the
/// deny list's ranges apply to the client's address whatever the gateway key.
async fn gateway_routes_pick_the_policies(kind: Kind) {
    let (origin, _server) = spawn_origin().await;
    let edge = Edge::start(
        kind,
        &[
            ("EDGECOUNT_ORIGIN", origin.as_str()),
            (
                "EDGECOUNT_RATE_LIMITS",
                "login=fixed:2/1h; api=sliding:3/1h; daily=fixed:5/1d; site=fixed:4/1h",
            ),
            (
                "EDGECOUNT_GATEWAY_ROUTES",
                "/login*=login; /api/*=api+daily; /static/*=-; *=site",
            ),
            ("EDGECOUNT_GATEWAY_KEY", "header:x-api-key"),
        ],
    )
    .await;
    // The worker's client address comes from Cloudflare's header, serve's from the socket.
    let client = match kind {
        Kind::Worker => "203.0.113.5",
        Kind::Serve | Kind::ServeDirect => "127.0.0.1",
    };
    let get = |path: &str| {
        edge.get(path)
            .header("x-api-key", "alice")
            .header("cf-connecting-ip", client)
    };
    let policy_of = |response: &reqwest::Response| {
        response
            .headers()
            .get("ratelimit-policy")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for (path, policy) in [
        ("/login", Some(r#""login";q=2;w=3600"#)),
        ("/login/reset", Some(r#""login";q=2;w=3600"#)),
        (
            "/api/v1/users",
            Some(r#""api";q=3;w=3600, "daily";q=5;w=86400"#),
        ),
        ("/static/app.js", None),
        ("/", Some(r#""site";q=4;w=3600"#)),
        ("/about", Some(r#""site";q=4;w=3600"#)),
    ] {
        let response = get(path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(policy_of(&response).as_deref(), policy, "{path}");
        assert_eq!(response.headers()["x-origin"], "yes");
    }
    // The login budget is its own: the third login is refused, pages still go through.
    let refused = get("/login").send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("x-origin").is_none());
    assert_eq!(get("/pricing").send().await.unwrap().status(), 200);
    // Static files are never limited (nor checked: no Redis round trip at all).
    for _ in 0..6 {
        assert_eq!(get("/static/app.js").send().await.unwrap().status(), 200);
    }

    // Block the client's range: limited paths answer 403 before the origin.
    let range = match kind {
        Kind::Worker => "203.0.113.0/24",
        Kind::Serve | Kind::ServeDirect => "127.0.0.0/8",
    };
    let put = edge
        .request(reqwest::Method::PUT, &format!("/deny/{range}"))
        .bearer_auth(support::edge::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let before = edge.redis.snapshot();
    let denied = get("/about").send().await.unwrap();
    assert_eq!(denied.status(), 403);
    assert!(denied.headers().get("x-origin").is_none());
    assert_eq!(denied.headers()["edgecount-reason"], "deny");
    assert_eq!(denied.headers()["content-type"], "application/problem+json");
    assert!(edge.redis.snapshot() == before, "a denied request consumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_routes_through_the_worker() {
    gateway_routes_pick_the_policies(Kind::Worker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_routes_through_serve() {
    gateway_routes_pick_the_policies(Kind::Serve).await;
}

/// Configurations that cannot work are refused at start-up, naming the variable and the token.
const BAD_CONFIGURATIONS: &[(&str, &str, &str)] = &[
    (
        "EDGECOUNT_RATE_LIMITS",
        "api=sliding:100/60s shadw",
        "shadw",
    ),
    (
        "EDGECOUNT_RATE_LIMITS",
        "api=fixed:1/1s fail=sometimes",
        "sometimes",
    ),
    ("EDGECOUNT_RATE_LIMITS", "api=sliding:-5/60s", "-5"),
    ("EDGECOUNT_RATE_LIMITS", "api=sliding:5/0s", "at least 1ms"),
    ("EDGECOUNT_TIERS", "pro: nope=sliding:1/1s", "nope"),
    ("EDGECOUNT_TIERS", "pro api=sliding:1/1s", "pro api"),
    ("EDGECOUNT_GATEWAY_ROUTES", "/api/*=api+nope", "nope"),
    ("EDGECOUNT_GATEWAY_ROUTES", "/a*b=api", "/a*b=api"),
];

#[test]
fn serve_refuses_a_bad_configuration_at_start_up() {
    for &(name, value, token) in BAD_CONFIGURATIONS {
        let mut env = vec![("EDGECOUNT_RATE_LIMITS", "api=sliding:100/60s")];
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_edgecount"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--rest-url", "http://127.0.0.1:9", "--rest-token", "t"])
            .env_remove("EDGECOUNT_TIERS")
            .env_remove("EDGECOUNT_GATEWAY_ROUTES")
            .envs(env)
            .stdin(std::process::Stdio::null());
        let output = support::run_with_timeout(command, Duration::from_secs(20));
        assert!(!output.status.success(), "{name}={value} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(name) && stderr.contains(token),
            "{name}={value}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_badly_configured_worker_logs_what_is_wrong_and_tells_the_client_only_that_it_is() {
    for &(name, value, token) in &BAD_CONFIGURATIONS[..3] {
        let vars = [
            ("UPSTASH_REDIS_REST_URL", "http://127.0.0.1:9"),
            ("UPSTASH_REDIS_REST_TOKEN", "t"),
            (name, value),
        ];
        let worker = tokio::task::spawn_blocking(move || support::workerd::spawn_worker(&vars))
            .await
            .unwrap();
        let response = reqwest::get(format!("{}/limit/api/u", worker.url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("misconfigured")),
            "{name}={value}: {body}"
        );
        assert!(
            !body.to_string().contains(name) && !body.to_string().contains(token),
            "the answer must not describe the configuration: {body}"
        );
        // workerd's output reaches the log through a reader thread: give it a moment.
        let mut log = worker.log();
        for _ in 0..50 {
            if log.contains("misconfigured") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            log = worker.log();
        }
        assert!(
            log.contains(name) && log.contains(token),
            "{name}={value}: {log}"
        );
    }
}
