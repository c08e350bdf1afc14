//! Rate-limit cases beyond the basics, on both fronts: overrides and tiers through the admin
//! routes, the deny list (identities, addresses, IPv4 and IPv6 ranges), shadow policies,
//! per-policy fail modes, a reason on every decision, and bad input that changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{header, send};
use crate::support::edge::{Edge, Stack, ADMIN_TOKEN};

/// Policies and tiers for these cases (`api` as in the base configuration: 3 per hour).
const LIMITS: &str = "api=sliding:3/1h; burst=gcra:50/1s; daily=fixed:5/1d; \
soft=fixed:2/1h shadow; login=fixed:5/1m fail=closed; page=fixed:100/1m fail=open; \
conc=concurrency:2/30s";
const TIERS: &str = "pro: api=sliding:10/1h; pro: daily=fixed:50/1d; free: api=fixed:1/1h";

async fn edge(kind: Stack) -> Edge {
    Edge::start(
        kind,
        &[
            ("EDGECOUNT_RATE_LIMITS", LIMITS),
            ("EDGECOUNT_TIERS", TIERS),
        ],
    )
    .await
}

fn admin(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.bearer_auth(ADMIN_TOKEN)
}

/// A refusal of bad input: the status, problem details (`application/problem+json`, `status`,
/// `detail`) with `needle` in the message.
async fn refused(
    request: reqwest::RequestBuilder,
    status: u16,
    needle: &str,
) -> (reqwest::header::HeaderMap, Value) {
    let (got, headers, body) = send(request).await;
    assert_eq!(got.as_u16(), status, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} not in {body}");
    (headers, body)
}

async fn problem(request: reqwest::RequestBuilder, status: u16, needle: &str) {
    let (headers, body) = refused(request, status, needle).await;
    assert_eq!(
        header(&headers, "content-type"),
        "application/problem+json",
        "{body}"
    );
    assert_eq!(body["status"], status);
    assert_eq!(body["detail"], body["error"]);
}

pub async fn overrides_and_tiers_take_effect_on_the_next_decision(kind: Stack) {
    let edge = edge(kind).await;
    // Admin only.
    problem(
        edge.request(Method::PUT, "/limit/api/u1/override?limit=5&window=1h"),
        401,
        "admin token",
    )
    .await;
    let (status, _, body) = send(admin(
        edge.request(Method::PUT, "/limit/api/u1/override?limit=5&window=1h"),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"policy": "api", "id": "u1", "algorithm": "sliding", "limit": 5,
               "window_ms": 3_600_000, "in_effect": true})
    );
    // The very next decision has the override; its reason and source say so.
    for remaining in (0..5).rev() {
        let (status, headers, body) = send(edge.post("/limit/api/u1")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["limit"], 5);
        assert_eq!(body["remaining"], remaining);
        assert_eq!(body["reason"], "override");
        assert_eq!(body["policies"][0]["source"], "override");
        assert_eq!(header(&headers, "edgecount-reason"), "override");
        assert_eq!(header(&headers, "ratelimit-policy"), r#""api";q=5;w=3600"#);
    }
    let (status, headers, body) = send(edge.post("/limit/api/u1")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["reason"], "override");
    assert_eq!(header(&headers, "edgecount-reason"), "override");
    // Others keep the configured limit.
    let (_, headers, body) = send(edge.post("/limit/api/u2")).await;
    assert_eq!(
        (body["limit"].clone(), body["reason"].clone()),
        (json!(3), json!("limit"))
    );
    assert_eq!(header(&headers, "edgecount-reason"), "limit");
    assert!(body["policies"][0].get("source").is_none(), "{body}");

    let (status, _, body) = send(admin(edge.get("/limit/api/u1/override"))).await;
    assert_eq!((status.as_u16(), body["limit"].clone()), (200, json!(5)));
    // A tier replaces the override: its algorithm, limit and window.
    let (status, _, body) = send(admin(
        edge.request(Method::PUT, "/limit/api/u1/override?tier=pro"),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"policy": "api", "id": "u1", "tier": "pro", "algorithm": "sliding",
               "limit": 10, "window_ms": 3_600_000, "in_effect": true})
    );
    let (_, _, body) = send(edge.post("/limit/api+daily/u1")).await;
    assert_eq!(body["policies"][0]["limit"], 10);
    assert_eq!(body["policies"][0]["source"], "tier");
    // `daily` has no override of u1: configured, even though the tier sets it too.
    assert_eq!(body["policies"][1]["limit"], 5);
    // The free tier changes the algorithm as well.
    send(admin(
        edge.request(Method::PUT, "/limit/api/u3/override?tier=free"),
    ))
    .await;
    let (status, _, body) = send(edge.post("/limit/api/u3")).await;
    assert_eq!((status.as_u16(), body["limit"].clone()), (200, json!(1)));
    assert_eq!(send(edge.post("/limit/api/u3")).await.0, 429);

    // Removing it: back to the configuration on the next decision.
    let (status, _, body) = send(admin(
        edge.request(Method::DELETE, "/limit/api/u1/override"),
    ))
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({"removed": true})));
    let (_, _, body) = send(admin(
        edge.request(Method::DELETE, "/limit/api/u1/override"),
    ))
    .await;
    assert_eq!(body, json!({"removed": false}));
    problem(
        admin(edge.get("/limit/api/u1/override")),
        404,
        "no override",
    )
    .await;
    let (_, _, body) = send(edge.get("/limit/api/u1")).await;
    assert_eq!(
        (body["limit"].clone(), body["reason"].clone()),
        (json!(3), json!("limit"))
    );
}

pub async fn bad_overrides_are_refused_and_change_nothing(kind: Stack) {
    let edge = edge(kind).await;
    send(admin(edge.request(
        Method::PUT,
        "/limit/api/keep/override?limit=7&window=1h",
    )))
    .await;
    send(edge.post("/limit/api+daily/keep")).await;
    let before = edge.redis.snapshot();
    let put =
        |query: &str| admin(edge.request(Method::PUT, &format!("/limit/api/keep/override{query}")));
    problem(put("?tier=gold"), 400, "no tier \"gold\"").await;
    problem(put("?limit=0&window=1h"), 400, "at least 1").await;
    problem(put("?limit=5&window=0s"), 400, "at least 1ms").await;
    problem(put("?limit=-1&window=1h"), 400, "limit").await;
    problem(put("?limit=x&window=1h"), 400, "limit").await;
    problem(put("?limit=99999999999999999999&window=1h"), 400, "limit").await;
    problem(put("?limit=5"), 400, "give limit and window").await;
    problem(
        put("?limit=5&window=1h&tier=pro"),
        400,
        "give limit and window",
    )
    .await;
    problem(put("?limit=5&window=1w"), 400, "unknown unit").await;
    problem(put(""), 400, "give limit and window").await;
    // A tier that does not set this policy.
    problem(
        admin(edge.request(Method::PUT, "/limit/burst/keep/override?tier=pro")),
        400,
        "does not set policy \"burst\"",
    )
    .await;
    problem(
        admin(edge.request(Method::PUT, "/limit/nope/keep/override?limit=1&window=1s")),
        404,
        "nope",
    )
    .await;
    problem(
        admin(edge.request(Method::PUT, "/limit/conc/keep/override?limit=1&window=1s")),
        400,
        "concurrency",
    )
    .await;
    problem(
        admin(edge.request(Method::PUT, "/limit/api+daily/keep/override?tier=pro")),
        404,
        "unknown rate-limit policy",
    )
    .await;
    problem(
        admin(edge.post("/limit/api/keep/override?tier=pro")),
        405,
        "use GET or PUT or DELETE",
    )
    .await;
    problem(
        edge.request(Method::PUT, "/limit/api/keep/override?tier=pro")
            .bearer_auth("wrong"),
        401,
        "admin token",
    )
    .await;
    // Bad decisions too: costs and client addresses.
    for (query, needle) in [
        ("?cost=-1", "cost"),
        ("?cost=1.5", "cost"),
        ("?cost=99999999999999999999", "cost"),
        ("?cost=8", "exceeds the limit 7"),
        ("?ip=203.0.113", "not an IPv4 or IPv6 address"),
    ] {
        problem(edge.post(&format!("/limit/api/keep{query}")), 400, needle).await;
    }
    assert!(edge.redis.snapshot() == before, "a refused request wrote");
}

pub async fn denied_identities_and_ranges_get_403_and_consume_nothing(kind: Stack) {
    let edge = edge(kind).await;
    problem(
        edge.request(Method::PUT, "/deny/mallory"),
        401,
        "admin token",
    )
    .await;
    let (status, _, body) = send(admin(edge.request(Method::PUT, "/deny/mallory"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"target": "mallory", "kind": "identity", "expires_in_ms": null})
    );
    // A range with its slash in the path, one with it encoded, and a single address, for an hour.
    for (path, target) in [
        ("/deny/203.0.113.0/24?ttl=1h", "203.0.113.0/24"),
        ("/deny/2001:db8::%2F32?ttl=1h", "2001:db8::/32"),
        ("/deny/ip:198.51.100.7", "198.51.100.7"),
    ] {
        let (status, _, body) = send(admin(edge.request(Method::PUT, path))).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["target"], target);
        assert_eq!(body["kind"], "network");
    }
    send(edge.post("/limit/api+daily/mallory")).await; // denied: charges nothing
    let before = edge.redis.snapshot();
    for path in [
        "/limit/api+daily/mallory",
        "/limit/api/user-9?ip=203.0.113.9",
        "/limit/api/203.0.113.200",
        "/limit/api/ip:203.0.113.1",
        "/limit/api/user-9?ip=2001:db8:1::5",
        "/limit/api/user-9?ip=::ffff:198.51.100.7",
        "/limit/soft/mallory",
    ] {
        let (status, headers, body) = send(edge.post(path)).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(header(&headers, "content-type"), "application/problem+json");
        assert_eq!(header(&headers, "edgecount-reason"), "deny");
        assert_eq!(body["reason"], "deny");
        assert_eq!(body["title"], "Forbidden");
        assert_eq!(body["allowed"], false);
        // A peek says so too, with 200.
        let (status, _, body) = send(edge.get(path)).await;
        assert_eq!(
            (status.as_u16(), body["reason"].clone()),
            (200, json!("deny"))
        );
    }
    assert!(edge.redis.snapshot() == before, "a denied request consumed");
    for path in [
        "/limit/api/user-9?ip=203.0.114.1",
        "/limit/api/user-10?ip=2001:db9::1",
        "/limit/api/198.51.100.8",
    ] {
        let (status, _, body) = send(edge.post(path)).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // Listing: addresses and ranges (IPv4, then IPv6), then identities.
    let (status, _, body) = send(admin(edge.get("/deny"))).await;
    assert_eq!(status, 200, "{body}");
    let targets: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["198.51.100.7", "203.0.113.0/24", "2001:db8::/32", "mallory"]
    );
    assert_eq!(body["entries"][0]["expires_in_ms"], Value::Null);
    let ttl = body["entries"][2]["expires_in_ms"].as_u64().unwrap();
    assert!((3_500_000..=3_600_000).contains(&ttl), "{ttl}");
    assert_eq!(body["truncated"], false);
    let (status, _, body) = send(admin(edge.get("/deny/203.0.113.0/24"))).await;
    assert_eq!(
        (status.as_u16(), body["kind"].clone()),
        (200, json!("network"))
    );
    problem(
        admin(edge.get("/deny/203.0.113.7")),
        404,
        "not on the deny list",
    )
    .await;
    // Off the list: the next decision goes through.
    let (_, _, body) = send(admin(edge.request(Method::DELETE, "/deny/mallory"))).await;
    assert_eq!(body, json!({"removed": true}));
    let (status, _, body) = send(edge.post("/limit/api/mallory")).await;
    assert_eq!(
        (status.as_u16(), body["reason"].clone()),
        (200, json!("limit"))
    );
    send(admin(
        edge.request(Method::DELETE, "/deny/203.0.113.0%2F24"),
    ))
    .await;
    assert_eq!(send(edge.post("/limit/api/203.0.113.200")).await.0, 200);
    // An entry with a short life expires on its own: refused until its TTL has run (never a
    // moment early, measured from before the PUT was sent), then through, polled rather than
    // guessed so a slow box only makes the test slower. The first refusal is checked whenever
    // the box got there within the TTL (2 s: any box this suite runs on).
    let ttl = std::time::Duration::from_secs(2);
    let put_sent = std::time::Instant::now();
    send(admin(edge.request(Method::PUT, "/deny/brief?ttl=2s"))).await;
    let first = send(edge.post("/limit/api/brief")).await.0;
    assert!(
        first == 403 || put_sent.elapsed() >= ttl,
        "refused while on the list: {first}"
    );
    let through = loop {
        let status = send(edge.post("/limit/api/brief")).await.0;
        let at = put_sent.elapsed();
        if status == 200 {
            break at;
        }
        assert_eq!(status, 403, "refused while on the list");
        assert!(
            at < ttl + std::time::Duration::from_secs(30),
            "still refused after {at:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        through + std::time::Duration::from_millis(50) >= ttl,
        "through {through:?} after the PUT, before its {ttl:?} had run"
    );
    let (_, _, body) = send(admin(edge.get("/deny"))).await;
    assert!(!body.to_string().contains("brief"), "{body}");
}

pub async fn bad_deny_entries_are_refused_and_change_nothing(kind: Stack) {
    let edge = edge(kind).await;
    send(admin(edge.request(Method::PUT, "/deny/keep"))).await;
    let before = edge.redis.snapshot();
    for (path, needle) in [
        ("/deny/203.0.113/24", "not an IP address or CIDR range"),
        ("/deny/203.0.113.0/33", "0 to 32"),
        ("/deny/203.0.113.7/24", "did you mean 203.0.113.0/24"),
        ("/deny/2001:db8::1/32", "did you mean 2001:db8::/32"),
        ("/deny/2001:db8::/129", "0 to 128"),
        ("/deny/ip:nope", "not an IP address"),
        ("/deny/300.1.1.1", "not an IP address"),
        ("/deny/someone?ttl=0s", "at least 1ms"),
        ("/deny/someone?ttl=soon", "ttl"),
        ("/deny/someone?ttl=10", "needs a unit"),
        ("/deny/someone?ttl=99999999999d", "ttl"),
        ("/deny/someone?as=network", "as must be"),
    ] {
        let (got, _, body) = send(admin(edge.request(Method::PUT, path))).await;
        assert_eq!(got, StatusCode::BAD_REQUEST, "{path}: {body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{path}: {needle:?} not in {body}");
    }
    refused(
        edge.request(Method::PUT, "/deny/someone"),
        401,
        "admin token",
    )
    .await;
    refused(
        admin(edge.post("/deny/someone")),
        405,
        "use GET or PUT or DELETE",
    )
    .await;
    refused(
        admin(edge.request(Method::DELETE, "/deny")),
        405,
        "use GET or HEAD",
    )
    .await;
    assert!(edge.redis.snapshot() == before, "a refused request wrote");
    // Address-like text is an identity when the admin says so.
    let (status, _, body) =
        send(admin(edge.request(Method::PUT, "/deny/cafe:1?as=identity"))).await;
    assert_eq!(
        (status.as_u16(), body["kind"].clone()),
        (200, json!("identity"))
    );
    assert_eq!(send(edge.post("/limit/api/cafe:1")).await.0, 403);
}

pub async fn shadow_policies_decide_and_report_but_never_refuse(kind: Stack) {
    let edge = edge(kind).await;
    // `soft` (2 per hour, shadow) beside `api` (3 per hour, enforcing).
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let (status, headers, body) = send(edge.post("/limit/api+soft/u")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["policies"][1]["shadow"], true);
        assert_eq!(header(&headers, "edgecount-reason"), body["reason"]);
        reasons.push(body["reason"].as_str().unwrap().to_owned());
    }
    // The third is over `soft`: allowed, and the reason says a shadow policy would have refused.
    assert_eq!(reasons, ["limit", "limit", "shadow"]);
    let (status, _, body) = send(edge.post("/limit/api+soft/u")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["reason"], "limit");
    assert_eq!(body["violated-policies"], json!(["api"]));
    // Alone, a shadow policy never refuses.
    for _ in 0..5 {
        let (status, _, body) = send(edge.post("/limit/soft/v")).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, _, body) = send(edge.get("/limit/soft/v")).await;
    assert_eq!(
        (body["reason"].clone(), body["allowed"].clone()),
        (json!("shadow"), json!(true))
    );
}

pub async fn each_policy_fails_its_own_way_without_redis(kind: Stack) {
    let mut edge = edge(kind).await;
    edge.redis.kill();
    // The login policy fails closed, the page-view policy open, in one deployment.
    problem(edge.post("/limit/login/u"), 503, "fail mode: closed").await;
    let (_, headers, body) = send(edge.post("/limit/login/u")).await;
    assert_eq!(body["reason"], "fail-closed");
    assert_eq!(header(&headers, "edgecount-reason"), "fail-closed");
    assert_eq!(header(&headers, "edgecount-fail-mode"), "closed");
    let (status, headers, body) = send(edge.post("/limit/page/u")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reason"], "fail-open");
    assert_eq!(body["allowed"], true);
    assert_eq!(header(&headers, "edgecount-reason"), "fail-open");
    assert_eq!(header(&headers, "edgecount-fail-mode"), "open");
    // Together: closed wins.
    assert_eq!(send(edge.post("/limit/page+login/u")).await.0, 503);
    // Without its own option a policy takes EDGECOUNT_FAIL_MODE (open by default).
    assert_eq!(send(edge.post("/limit/api/u")).await.0, 200);
    edge.redis.restart();
}

/// The fields of a decision's body that count down with time.
const TIME_FIELDS: [&str; 2] = ["reset_ms", "retry_after_ms"];

/// `body` without what counts down with time: the time fields (top level and per policy) and the
/// number of seconds in `detail`.
fn timeless(body: &Value) -> Value {
    let mut body = body.clone();
    let strip = |object: &mut serde_json::Map<String, Value>| {
        for field in TIME_FIELDS {
            object.remove(field);
        }
        if let Some(Value::String(detail)) = object.get_mut("detail") {
            detail.retain(|c| !c.is_ascii_digit());
        }
    };
    if let Some(object) = body.as_object_mut() {
        strip(object);
        if let Some(Value::Array(policies)) = object.get_mut("policies") {
            for policy in policies.iter_mut().filter_map(Value::as_object_mut) {
                strip(policy);
            }
        }
    }
    body
}

pub async fn refusals_are_answered_from_memory_until_they_could_end(kind: Stack) {
    let edge = Edge::start(
        kind,
        &[(
            "EDGECOUNT_RATE_LIMITS",
            "tight=fixed:2/1h; brief=fixed:1/2s; uncached=fixed:2/1h cache=off; \
             soft=fixed:1/1h shadow",
        )],
    )
    .await;
    // Warm the script cache (a first call after a flush costs NOSCRIPT, then EVAL).
    send(edge.post("/limit/tight/warm")).await;
    for _ in 0..2 {
        assert_eq!(send(edge.post("/limit/tight/hammer")).await.0, 200);
    }
    // Redis refuses: that answer is the one to repeat.
    let (status, first_headers, first) = send(edge.post("/limit/tight/hammer")).await;
    assert_eq!(status, 429, "{first}");
    assert_eq!(first["reason"], "limit");
    // (Redis counts the test's own reads too, over RESP: the snapshot comes first.)
    let stored = edge.redis.snapshot();
    let before = edge.round_trips().await;
    for _ in 0..200 {
        let (status, headers, body) = send(edge.post("/limit/tight/hammer")).await;
        assert_eq!(status, 429, "{body}");
        // The same answer but for its times, which only count down.
        assert_eq!(timeless(&body), timeless(&first));
        assert_eq!(body["remaining"], 0);
        for field in TIME_FIELDS {
            let (now, then) = (
                body[field].as_u64().unwrap(),
                first[field].as_u64().unwrap(),
            );
            assert!(0 < now && now <= then, "{field}: {now} after {then}");
        }
        for name in [
            "content-type",
            "ratelimit-policy",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "edgecount-reason",
        ] {
            assert_eq!(
                header(&headers, name),
                header(&first_headers, name),
                "{name}"
            );
        }
        let retry: u64 = header(&headers, "retry-after").parse().unwrap();
        assert!(retry >= 1 && retry <= header(&first_headers, "retry-after").parse().unwrap());
    }
    // A cost at least as large is refused from memory too.
    assert_eq!(send(edge.post("/limit/tight/hammer?cost=2")).await.0, 429);
    assert_eq!(
        edge.round_trips().await - before,
        0,
        "refused requests asked Redis"
    );
    assert_eq!(
        edge.redis.snapshot(),
        stored,
        "a refused request changed Redis"
    );
    // A smaller cost is Redis's to decide (here: allowed).
    assert_eq!(send(edge.post("/limit/tight/hammer?cost=0")).await.0, 200);

    // What changes the refusal through this process drops it: a reset …
    let (status, _, body) = send(admin(edge.request(Method::DELETE, "/limit/tight/hammer"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(send(edge.post("/limit/tight/hammer")).await.0, 200);
    // … an override …
    for expected in [200, 429, 429] {
        assert_eq!(send(edge.post("/limit/tight/hammer")).await.0, expected);
    }
    let (status, _, body) = send(admin(edge.request(
        Method::PUT,
        "/limit/tight/hammer/override?limit=10&window=1h",
    )))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(send(edge.post("/limit/tight/hammer")).await.0, 200);
    // … a refund …
    let (status, _, body) = send(admin(edge.request(
        Method::PUT,
        "/limit/tight/hammer/override?limit=3&window=1h",
    )))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(send(edge.post("/limit/tight/hammer")).await.0, 429);
    assert_eq!(send(edge.post("/limit/tight/hammer/refund")).await.0, 200);
    assert_eq!(send(edge.post("/limit/tight/hammer")).await.0, 200);
    // … and a change of the deny list, kept as a refusal while it stands.
    send(admin(edge.request(Method::PUT, "/deny/mallory"))).await;
    let before = edge.round_trips().await;
    for _ in 0..20 {
        let (status, _, body) = send(edge.post("/limit/tight/mallory")).await;
        assert_eq!(
            (status.as_u16(), body["reason"].clone()),
            (403, json!("deny"))
        );
    }
    assert!(edge.round_trips().await - before <= 1);
    send(admin(edge.request(Method::DELETE, "/deny/mallory"))).await;
    assert_eq!(send(edge.post("/limit/tight/mallory")).await.0, 200);

    // Never kept: a policy with cache=off, a list with a shadow policy.
    for (path, allowed) in [("/limit/uncached/u", 2), ("/limit/tight+soft/s", 2)] {
        for _ in 0..allowed {
            assert_eq!(send(edge.post(path)).await.0, 200, "{path}");
        }
        let before = edge.round_trips().await;
        for _ in 0..5 {
            assert_eq!(send(edge.post(path)).await.0, 429, "{path}");
        }
        assert_eq!(edge.round_trips().await - before, 5, "{path}");
    }

    // A refusal ends when its policy could admit again: then Redis decides once more.
    assert_eq!(send(edge.post("/limit/brief/b")).await.0, 200);
    let (status, _, body) = send(edge.post("/limit/brief/b")).await;
    assert_eq!(status, 429, "{body}");
    let wait = body["retry_after_ms"].as_u64().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(wait + 50)).await;
    assert_eq!(send(edge.post("/limit/brief/b")).await.0, 200);
}

pub async fn the_block_cache_can_be_turned_off(kind: Stack) {
    let edge = Edge::start(
        kind,
        &[
            ("EDGECOUNT_RATE_LIMITS", "tight=fixed:1/1h"),
            ("EDGECOUNT_BLOCK_CACHE", "0"),
        ],
    )
    .await;
    assert_eq!(send(edge.post("/limit/tight/u")).await.0, 200);
    let before = edge.round_trips().await;
    for _ in 0..5 {
        assert_eq!(send(edge.post("/limit/tight/u")).await.0, 429);
    }
    assert_eq!(edge.round_trips().await - before, 5);
}
