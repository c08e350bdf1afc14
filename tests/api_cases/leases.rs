//! The `/lease` routes (concurrency limits) through both fronts: the lifecycle, 429 at the limit
//! with `Retry-After`, strangers' lease ids, every malformed request refused before Redis is
//! asked, the deny list and shadow policies, the fail modes, and exactness under 500 concurrent
//! HTTP acquirers with a watcher reading the lease set in Redis during the run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{header, send};
use crate::support::edge::{Edge, Stack};

/// The policies of these cases (the `/limit` ones of the other cases are not needed here).
const POLICIES: &str = "api=sliding:3/1h; exports=concurrency:3/30s; \
soft=concurrency:1/30s shadow; strict=concurrency:1/30s fail=closed; burst=concurrency:10/30s";

async fn start(kind: Stack) -> Edge {
    Edge::start(kind, &[("EDGECOUNT_RATE_LIMITS", POLICIES)]).await
}

/// The lease id of a 200 answer, checked to be what the service hands out.
fn lease_of(body: &Value) -> String {
    let lease = body["lease"]
        .as_str()
        .unwrap_or_else(|| panic!("no lease: {body}"));
    assert_eq!(lease.len(), 22, "{lease}");
    assert!(
        lease
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "{lease}"
    );
    lease.to_owned()
}

/// The Redis time (ms), for checking `expires_ms`.
fn redis_now_ms(edge: &Edge) -> u64 {
    let time = edge.redis.cli(&["TIME"]);
    let mut lines = time.lines().map(|l| l.trim().parse::<u64>().unwrap());
    lines.next().unwrap() * 1000 + lines.next().unwrap() / 1000
}

pub async fn lease_acquire_renew_release(kind: Stack) {
    let edge = start(kind).await;
    let before = redis_now_ms(&edge);
    let (status, headers, body) = send(edge.post("/lease/exports/user-1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let lease = lease_of(&body);
    let expires = body["expires_ms"].as_u64().unwrap();
    assert!(
        (before + 30_000..=redis_now_ms(&edge) + 30_000).contains(&expires),
        "{body}"
    );
    assert_eq!(
        body,
        json!({"lease": lease, "expires_ms": expires, "limit": 3, "holders": 1,
               "remaining": 2, "reason": "limit"})
    );
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        r#""exports";q=3;w=30"#
    );
    let ratelimit = header(&headers, "ratelimit");
    assert!(
        [r#""exports";r=2;t=30"#, r#""exports";r=2;t=29"#].contains(&ratelimit),
        "{ratelimit}"
    );
    assert_eq!(header(&headers, "edgecount-reason"), "limit");
    assert!(headers.get("retry-after").is_none());
    // The lease is the member of the identity's lease set, expiring when the answer says.
    assert_eq!(
        edge.redis
            .cli(&["ZSCORE", "rl:{user-1}:exports:lease", &lease]),
        expires.to_string()
    );

    // A second holder; then the first renews: a later expiry, the same lease.
    let (_, _, second) = send(edge.post("/lease/exports/user-1")).await;
    let second = lease_of(&second);
    assert_ne!(second, lease);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, headers, body) =
        send(edge.post(&format!("/lease/exports/user-1/{lease}/renew"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["lease"].as_str(), body["holders"].as_u64()),
        (Some(lease.as_str()), Some(2))
    );
    assert!(body["expires_ms"].as_u64().unwrap() > expires, "{body}");
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        r#""exports";q=3;w=30"#
    );
    assert!(header(&headers, "ratelimit").starts_with(r#""exports";r=1;t="#));

    // Release: once.
    let path = format!("/lease/exports/user-1/{lease}");
    let (status, headers, body) = send(edge.request(Method::DELETE, &path)).await;
    assert_eq!((status.as_u16(), body), (200, json!({"released": true})));
    assert!(header(&headers, "ratelimit").starts_with(r#""exports";r=2;t="#));
    assert_eq!(header(&headers, "edgecount-reason"), "limit");
    let (status, headers, body) = send(edge.request(Method::DELETE, &path)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["released"], false);
    assert!(
        body["error"].as_str().unwrap().contains("not held"),
        "{body}"
    );
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        r#""exports";q=3;w=30"#
    );
    // A released lease cannot be renewed.
    let (status, _, body) = send(edge.post(&format!("{path}/renew"))).await;
    assert_eq!(status, 404, "{body}");

    // One round trip (REST request, or RESP request with serve direct) per lease operation (the
    // script is cached by now).
    for (method, path) in [
        (Method::POST, "/lease/exports/user-1".to_owned()),
        (
            Method::POST,
            format!("/lease/exports/user-1/{second}/renew"),
        ),
        (Method::DELETE, format!("/lease/exports/user-1/{second}")),
    ] {
        let before = edge.round_trips().await;
        let response = edge.request(method.clone(), &path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{method} {path}");
        assert_eq!(edge.round_trips().await - before, 1, "{method} {path}");
    }
    for (key, ttl) in edge.redis.key_pttls("rl:*") {
        assert!(ttl > 0, "{key} has no TTL");
    }
}

pub async fn lease_refuses_at_the_limit_with_retry_after(kind: Stack) {
    let edge = start(kind).await;
    let mut leases = Vec::new();
    for remaining in [2, 1, 0] {
        let (status, _, body) = send(edge.post("/lease/exports/busy")).await;
        assert_eq!(
            (status.as_u16(), body["remaining"].as_u64()),
            (200, Some(remaining))
        );
        leases.push(lease_of(&body));
    }
    let response = edge.post("/lease/exports/busy").send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    // The soonest lease expires in (almost) 30 s: a slot is free by then.
    let retry_after: u64 = header(response.headers(), "retry-after").parse().unwrap();
    assert!((29..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(
        header(response.headers(), "ratelimit"),
        format!(r#""exports";r=0;t={retry_after}"#)
    );
    assert_eq!(header(response.headers(), "edgecount-reason"), "limit");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["title"], "Too Many Requests");
    assert!(
        problem["detail"].as_str().unwrap().contains("exports"),
        "{problem}"
    );
    assert_eq!(problem["violated-policies"], json!(["exports"]));
    assert_eq!(
        (problem["allowed"].clone(), problem["reason"].clone()),
        (json!(false), json!("limit"))
    );
    // Another identity has its own slots.
    let (status, _, _) = send(edge.post("/lease/exports/someone-else")).await;
    assert_eq!(status, 200);
    // A release frees a slot at once.
    let (status, _, _) = send(edge.request(
        Method::DELETE,
        &format!("/lease/exports/busy/{}", leases[1]),
    ))
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = send(edge.post("/lease/exports/busy")).await;
    assert_eq!((status.as_u16(), body["holders"].as_u64()), (200, Some(3)));
}

pub async fn lease_ids_of_others_release_and_renew_nothing(kind: Stack) {
    let edge = start(kind).await;
    let (_, _, body) = send(edge.post("/lease/exports/owner")).await;
    let mine = lease_of(&body);
    let (_, _, body) = send(edge.post("/lease/exports/stranger")).await;
    let theirs = lease_of(&body);
    let never_handed_out = "AAAAAAAAAAAAAAAAAAAAAA";
    let before = edge.redis.cli(&[
        "ZRANGE",
        "rl:{owner}:exports:lease",
        "0",
        "-1",
        "WITHSCORES",
    ]);
    for path in [
        format!("/lease/exports/owner/{theirs}"),
        format!("/lease/exports/owner/{never_handed_out}"),
        format!("/lease/exports/stranger/{mine}"),
        format!("/lease/strict/owner/{mine}"),
    ] {
        let (status, _, body) = send(edge.request(Method::DELETE, &path)).await;
        assert_eq!(
            (status.as_u16(), body["released"].clone()),
            (404, json!(false)),
            "{path}"
        );
        let (status, _, body) = send(edge.post(&format!("{path}/renew"))).await;
        assert_eq!(status, 404, "{path}/renew: {body}");
    }
    assert_eq!(
        edge.redis.cli(&[
            "ZRANGE",
            "rl:{owner}:exports:lease",
            "0",
            "-1",
            "WITHSCORES"
        ]),
        before,
        "the owner's lease is untouched"
    );
    let (status, _, _) =
        send(edge.request(Method::DELETE, &format!("/lease/exports/owner/{mine}"))).await;
    assert_eq!(status, 200);
}

/// Every malformed lease request is answered without asking Redis (and changes nothing).
pub async fn lease_errors_are_clear_and_never_reach_redis(kind: Stack) {
    let edge = start(kind).await;
    let (_, _, body) = send(edge.post("/lease/exports/u")).await;
    let lease = lease_of(&body);
    // The snapshot first: with serve direct, round trips are counted by Redis itself, which
    // would also count the snapshot's own commands.
    let snapshot = edge.redis.snapshot();
    let before = edge.round_trips().await;
    let long_id = "x".repeat(257);
    let cases: Vec<(u16, Option<&str>, reqwest::RequestBuilder)> = vec![
        (404, None, edge.post("/lease/nope/u")),
        (404, None, edge.post("/lease/api+exports/u")),
        (404, None, edge.post("/lease/exports")),
        (404, None, edge.post("/lease")),
        (
            404,
            None,
            edge.post(&format!("/lease/exports/u/{lease}/renew/now")),
        ),
        (
            404,
            None,
            edge.post(&format!("/lease/exports/u/{lease}/extend")),
        ),
        // A rate-limit policy belongs on /limit.
        (400, None, edge.post("/lease/api/u")),
        (400, None, edge.post(&format!("/lease/exports/{long_id}"))),
        (
            400,
            None,
            edge.request(Method::DELETE, "/lease/exports/u/not-a-lease"),
        ),
        (
            400,
            None,
            edge.request(Method::DELETE, "/lease/exports/u/AAAAAAAAAAAAAAAAAAAAAB"),
        ),
        (
            400,
            None,
            edge.request(Method::DELETE, "/lease/exports/u/AAAAAAAAAAAAAAAAAAAAA="),
        ),
        (
            400,
            None,
            edge.post("/lease/exports/u/AAAAAAAAAAAAAAAAAAAAAAAA/renew"),
        ),
        (
            400,
            None,
            edge.request(Method::DELETE, "/lease/exports/u/renew"),
        ),
        // The method is checked first: POST …/{lease} is no route for a lease id, valid or not.
        (405, Some("DELETE"), edge.post("/lease/exports/u/renew")),
        (405, Some("POST"), edge.get("/lease/exports/u")),
        (
            405,
            Some("POST"),
            edge.request(Method::DELETE, "/lease/exports/u"),
        ),
        (
            405,
            Some("POST"),
            edge.request(Method::PUT, "/lease/exports/u"),
        ),
        (
            405,
            Some("DELETE"),
            edge.post(&format!("/lease/exports/u/{lease}")),
        ),
        (
            405,
            Some("DELETE"),
            edge.get(&format!("/lease/exports/u/{lease}")),
        ),
        (
            405,
            Some("POST"),
            edge.get(&format!("/lease/exports/u/{lease}/renew")),
        ),
        (
            405,
            Some("POST"),
            edge.request(Method::DELETE, &format!("/lease/exports/u/{lease}/renew")),
        ),
    ];
    for (expected, allow, request) in cases {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url().path());
        let response = edge.http.execute(request).await.unwrap();
        let status = response.status();
        let allow_header = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(status.as_u16(), expected, "{what}: {body}");
        assert!(body["error"].is_string(), "{what}: {body}");
        assert_eq!(allow_header.as_deref(), allow, "{what}");
    }
    assert_eq!(
        edge.round_trips().await,
        before,
        "no round trip to the store for a refused one"
    );
    let after = edge.redis.snapshot();
    assert_eq!(
        after,
        snapshot,
        "changed: {:?}",
        after.changes_since(&snapshot)
    );
}

pub async fn lease_deny_list_and_shadow_policies(kind: Stack) {
    let edge = start(kind).await;
    edge.redis
        .cli(&["SET", "rl:{blocked}:deny", "1", "EX", "60"]);
    let snapshot = edge.redis.snapshot();
    let response = edge.post("/lease/exports/blocked").send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(
        response.headers().get("retry-after").is_none(),
        "waiting does not help"
    );
    assert_eq!(header(response.headers(), "edgecount-reason"), "deny");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        (problem["status"].clone(), problem["reason"].clone()),
        (json!(403), json!("deny"))
    );
    assert_eq!(
        edge.redis.snapshot(),
        snapshot,
        "a denied acquire writes nothing"
    );

    // `soft` allows 1 at once but is a shadow policy: the second is admitted and says so.
    let (status, headers, body) = send(edge.post("/lease/soft/u")).await;
    assert_eq!(
        (status.as_u16(), body["reason"].clone()),
        (200, json!("limit"))
    );
    assert_eq!(header(&headers, "edgecount-reason"), "limit");
    let (status, headers, body) = send(edge.post("/lease/soft/u")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["reason"].clone(),
            body["holders"].clone(),
            body["remaining"].clone()
        ),
        (json!("shadow"), json!(2), json!(0))
    );
    assert_eq!(header(&headers, "edgecount-reason"), "shadow");
    assert!(headers.get("retry-after").is_none());
}

pub async fn lease_fail_modes_when_redis_is_unreachable(kind: Stack) {
    let mut edge = start(kind).await;
    edge.redis.kill();
    // `exports` fails open (the default): a lease nobody holds, and the answer says so.
    let (status, headers, body) = send(edge.post("/lease/exports/u")).await;
    assert_eq!(status, 200, "{body}");
    let lease = lease_of(&body);
    assert_eq!(
        (body["reason"].clone(), body["holders"].clone()),
        (json!("fail-open"), json!(0))
    );
    assert_eq!(header(&headers, "edgecount-fail-mode"), "open");
    assert_eq!(header(&headers, "edgecount-reason"), "fail-open");
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        r#""exports";q=3;w=30"#
    );
    let (status, headers, body) = send(edge.post(&format!("/lease/exports/u/{lease}/renew"))).await;
    assert_eq!(
        (status.as_u16(), body["reason"].clone()),
        (200, json!("fail-open"))
    );
    assert_eq!(header(&headers, "edgecount-fail-mode"), "open");
    let (status, headers, body) =
        send(edge.request(Method::DELETE, &format!("/lease/exports/u/{lease}"))).await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"released": false, "reason": "fail-open"}))
    );
    assert_eq!(header(&headers, "edgecount-fail-mode"), "open");
    // `strict` fails closed.
    let (status, headers, body) = send(edge.post("/lease/strict/u")).await;
    assert_eq!(
        (status.as_u16(), body["reason"].clone()),
        (503, json!("fail-closed")),
        "{body}"
    );
    assert_eq!(header(&headers, "edgecount-fail-mode"), "closed");
    assert_eq!(header(&headers, "edgecount-reason"), "fail-closed");

    // Back: the fail-open lease was never held by anyone.
    edge.redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = send(edge.get("/healthz")).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _, _) =
        send(edge.request(Method::DELETE, &format!("/lease/exports/u/{lease}"))).await;
    assert_eq!(status, 404);
}

/// Limit 10, 500 concurrent HTTP clients, each: acquire (a few tries), hold briefly, release.
/// A watcher reads the lease set in Redis during the whole run: never more than 10 live.
pub async fn lease_exactness_under_500_concurrent_http_acquirers(kind: Stack) {
    const LIMIT: u64 = 10;
    const ACQUIRERS: usize = 500;
    const TRIES: usize = 4;
    let edge = start(kind).await;
    let key = "rl:{crowd}:burst:lease";
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (url, done) = (edge.redis.url_for_key(key), done.clone());
        std::thread::spawn(move || {
            let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
            let deadline = Instant::now() + Duration::from_secs(240);
            let (mut max_seen, mut samples) = (0, 0u64);
            while !done.load(Ordering::Acquire) && Instant::now() < deadline && samples < 10_000_000
            {
                let live = crate::support::direct::live_leases(&mut conn, key);
                assert!(live <= LIMIT, "{live} leases held at once (limit {LIMIT})");
                max_seen = max_seen.max(live);
                samples += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            (max_seen, samples)
        })
    };
    let (admitted, refused, most_reported) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let start = Arc::new(tokio::sync::Barrier::new(ACQUIRERS));
    let acquire_url = edge.url("/lease/burst/crowd");
    let tasks: Vec<_> = (0..ACQUIRERS)
        .map(|i| {
            let (http, url, start) = (edge.http.clone(), acquire_url.clone(), start.clone());
            let (admitted, refused, most_reported) =
                (admitted.clone(), refused.clone(), most_reported.clone());
            tokio::spawn(async move {
                start.wait().await;
                for attempt in 0..TRIES {
                    let response = http.post(&url).send().await.expect("acquire");
                    match response.status() {
                        StatusCode::OK => {
                            let body: Value = response.json().await.unwrap();
                            admitted.fetch_add(1, Ordering::Relaxed);
                            let holders = body["holders"].as_u64().unwrap();
                            assert!(holders <= LIMIT, "{body}");
                            most_reported.fetch_max(holders, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            let release = format!("{url}/{}", body["lease"].as_str().unwrap());
                            let released = http.delete(&release).send().await.expect("release");
                            assert_eq!(released.status(), 200, "acquirer {i}");
                            return;
                        }
                        StatusCode::TOO_MANY_REQUESTS => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            let wait = 20 + (i * 37 + attempt * 101) % 80;
                            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                        }
                        other => {
                            panic!("acquirer {i}: {other}: {}", response.text().await.unwrap())
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(240), task)
            .await
            .expect("acquirers finish in time")
            .expect("acquirer task");
    }
    done.store(true, Ordering::Release);
    let (max_seen, samples) = watcher.join().expect("watcher");
    let (admitted, refused) = (
        admitted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    println!(
        "{kind:?}: limit {LIMIT}, {ACQUIRERS} HTTP acquirers: {admitted} admitted, {refused} \
         refused (429); the watcher saw at most {max_seen} live leases in {samples} reads; the \
         answers at most {}",
        most_reported.load(Ordering::Relaxed)
    );
    assert!(
        admitted >= LIMIT && refused > 0,
        "{admitted} admitted, {refused} refused"
    );
    assert!(
        samples > 10,
        "the watcher read during the run ({samples} reads)"
    );
    assert_eq!(max_seen, LIMIT, "the slots were all in use at some point");
    let mut conn = redis::Client::open(edge.redis.url_for_key(key))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(
        crate::support::direct::live_leases(&mut conn, key),
        0,
        "every lease was released"
    );
}
