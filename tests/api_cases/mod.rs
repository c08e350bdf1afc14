//! The counter and rate-limit API cases, written once against HTTP and run against both fronts:
//! `tests/api_serve.rs` (native `edgecount serve`) and `tests/worker_e2e.rs` (the wasm worker in
//! workerd). Each case starts its own stack (private redis-server, real proxy, front end).

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::backend::Backend;
use crate::support::edge::{Edge, Kind, Stack, ADMIN_TOKEN};
use crate::support::redis_server::Snapshot;

mod leases;
mod limits;
pub use leases::*;
pub use limits::*;

/// Generate one `#[tokio::test]` per case for a front end (a `Kind`, over one redis-server) or a
/// `Stack` (a front end over a backend).
#[macro_export]
macro_rules! api_cases {
    ($kind:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                api_cases::$case($kind.into()).await;
            }
        )*
    };
}

/// Every case, for `api_cases!(kind; all…)`.
#[macro_export]
macro_rules! all_api_cases {
    ($kind:expr) => {
        api_cases!($kind;
            hit_creates_counts_and_names_the_path,
            get_reads_without_changing_and_404s_as_json,
            abacus_create_and_admin_lifecycle,
            countapi_create_with_reset_and_bounds,
            bad_names_and_numbers_are_json_400s,
            idempotent_retries_count_once,
            bots_head_prefetch_and_owner_are_not_counted,
            uniques_count_visitors_not_hits,
            info_and_stats_describe_the_counter,
            badge_renders_svg_and_can_count,
            batch_runs_many_operations_with_per_index_results,
            stream_sends_the_value_then_every_change,
            stream_lets_go_of_redis_when_its_client_leaves,
            cors_preflight_and_jsonp,
            abuse_limit_stops_one_client_inflating_a_counter,
            rate_limit_consumes_peeks_refunds_and_resets,
            rate_limit_policies_combine_atomically,
            rate_limit_errors_are_clear,
            concurrent_hits_are_all_counted,
            healthz_reports_redis,
            unknown_routes_and_methods_are_json_errors,
            one_rest_request_per_hit_read_and_decision,
            hot_reads_are_cached_briefly_and_see_own_hits,
            static_files_are_served_with_their_headers,
            refused_requests_change_nothing,
            namespace_tokens_listings_and_live_changes,
            export_then_import_round_trips_every_bucket,
            badges_take_themes_abbreviation_and_a_sparkline,
            shields_endpoint_answers_shields_json,
            configured_policies_are_listed,
            the_page_parameter_names_the_counter,
            overrides_and_tiers_take_effect_on_the_next_decision,
            bad_overrides_are_refused_and_change_nothing,
            denied_identities_and_ranges_get_403_and_consume_nothing,
            bad_deny_entries_are_refused_and_change_nothing,
            shadow_policies_decide_and_report_but_never_refuse,
            refusals_are_answered_from_memory_until_they_could_end,
            the_block_cache_can_be_turned_off,
            each_policy_fails_its_own_way_without_redis,
            lease_acquire_renew_release,
            lease_refuses_at_the_limit_with_retry_after,
            lease_ids_of_others_release_and_renew_nothing,
            lease_errors_are_clear_and_never_reach_redis,
            lease_deny_list_and_shadow_policies,
            lease_fail_modes_when_redis_is_unreachable,
            lease_exactness_under_500_concurrent_http_acquirers,
        );
    };
}

async fn json_of(response: reqwest::Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}), status {status}: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, headers, body)
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    json_of(request.send().await.expect("request")).await
}

/// The first client IP the worker sees (`CF-Connecting-IP`, set by Cloudflare in production);
/// `serve` takes the socket peer instead.
fn from_ip(request: reqwest::RequestBuilder, ip: &str) -> reqwest::RequestBuilder {
    request.header("cf-connecting-ip", ip)
}

pub async fn hit_creates_counts_and_names_the_path(kind: Stack) {
    // Its "today" figures need every step in one UTC day: never within minutes of midnight.
    crate::support::eventually::clear_of_utc_midnight(crate::support::eventually::DAY_MARGIN);
    let edge = Edge::start(kind, &[]).await;
    for expected in 1..=3 {
        let (status, headers, body) = send(edge.post("/hit/blog/home")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["value"], expected);
        assert_eq!(body["today"], expected);
        assert_eq!(body["counted"], true);
        assert_eq!(headers["x-path"], "blog/home");
        assert_eq!(headers["content-type"], "application/json");
    }
    // GET hits too; one segment means the `default` namespace.
    let (_, headers, body) = send(edge.get("/hit/solo-key")).await;
    assert_eq!(body["value"], 1);
    assert_eq!(headers["x-path"], "default/solo-key");
    assert_eq!(edge.redis.cli(&["GET", "ec:{blog:home}:v"]), "3");
}

pub async fn get_reads_without_changing_and_404s_as_json(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    let (status, _, body) = send(edge.get("/get/blog/missing")).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"error": "counter not found", "value": null}));
    send(edge.post("/hit/blog/page")).await;
    for _ in 0..3 {
        let (status, headers, body) = send(edge.get("/get/blog/page")).await;
        assert_eq!((status.as_u16(), body), (200, json!({"value": 1})));
        assert_eq!(headers["x-path"], "blog/page");
    }
    // A read never creates anything.
    assert_eq!(edge.redis.cli(&["EXISTS", "ec:{blog:missing}:v"]), "0");
}

pub async fn abacus_create_and_admin_lifecycle(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    let (status, _, created) = send(edge.post("/create/shop/stock?initializer=10")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["namespace"], "shop");
    assert_eq!(created["key"], "stock");
    assert_eq!(created["value"], 10);
    let admin_key = created["admin_key"].as_str().unwrap().to_owned();
    assert!(admin_key.len() >= 32);
    // Stored only as a hash.
    let meta = edge.redis.cli(&["HGETALL", "ec:{shop:stock}:m"]);
    assert!(!meta.contains(&admin_key), "{meta}");

    let (status, _, body) = send(edge.post("/create/shop/stock")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].is_string());

    // Set needs the admin key (enable_reset is off for Abacus counters): 403 with or without
    // credentials, as CountAPI answers on its routes (set, update).
    let (status, headers, body) = send(edge.post("/set/shop/stock?value=99")).await;
    assert_eq!(status, 403, "{body}");
    assert!(headers.get("www-authenticate").is_none());
    let (status, _, body) = send(
        edge.post("/set/shop/stock?value=99")
            .bearer_auth("wrong-key"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = send(
        edge.post("/set/shop/stock?value=42")
            .bearer_auth(&admin_key),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"old_value": 10, "value": 42}))
    );

    // Update: anyone within the default bounds (-1..1), the admin beyond them.
    let (status, _, body) = send(edge.post("/update/shop/stock?amount=1")).await;
    assert_eq!((status.as_u16(), body), (200, json!({"value": 43})));
    let (status, _, body) = send(edge.post("/update/shop/stock?amount=-5")).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = send(
        edge.post("/update/shop/stock?value=-5")
            .bearer_auth(&admin_key),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({"value": 38})));
    // The service admin token works on every counter.
    let (status, _, body) = send(
        edge.post("/update/shop/stock?amount=100")
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({"value": 138})));

    let (status, _, body) = send(edge.post("/reset/shop/stock")).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = send(edge.post("/reset/shop/stock").bearer_auth(&admin_key)).await;
    assert_eq!((status.as_u16(), body), (200, json!({"value": 0})));

    let (status, _, body) = send(
        edge.request(Method::DELETE, "/delete/shop/stock")
            .bearer_auth(&admin_key),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({"deleted": true})));
    let (status, _, _) = send(edge.get("/get/shop/stock")).await;
    assert_eq!(status, 404);
    // Re-created, the old admin key is worthless.
    let (status, _, _) = send(edge.post("/create/shop/stock")).await;
    assert_eq!(status, 201);
    let (status, _, _) = send(edge.post("/reset/shop/stock").bearer_auth(&admin_key)).await;
    assert_eq!(status, 403);
}

pub async fn countapi_create_with_reset_and_bounds(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    let (status, headers, body) = send(edge.get(
        "/create?namespace=site&key=visits&value=5&enable_reset=1&update_lowerbound=-2&update_upperbound=3",
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], 5);
    assert_eq!(headers["x-path"], "site/visits");
    // enable_reset lets anyone set.
    let (status, _, body) = send(edge.get("/set/site/visits?value=7")).await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"old_value": 5, "value": 7}))
    );
    let (_, _, body) = send(edge.get("/update/site/visits?amount=3")).await;
    assert_eq!(body, json!({"value": 10}));
    // countapi-js 1.0.2's own expectations: an update beyond the bounds and a set on a counter
    // without enable_reset are 403, not 401 (CountAPI's status codes are the contract here).
    let (status, _, body) = send(edge.get("/update/site/visits?amount=4")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bounds"), "{body}");
    let (status, _, body) = send(edge.get("/create?namespace=site&key=fixed&value=1")).await;
    assert_eq!(status, 200, "{body}");
    let (status, headers, body) = send(edge.get("/set/site/fixed?value=9")).await;
    assert_eq!(status, 403, "{body}");
    assert!(headers.get("www-authenticate").is_none());
    assert_eq!(edge.redis.cli(&["GET", "ec:{site:fixed}:v"]), "1");
    let (_, _, info) = send(edge.get("/info/site/visits")).await;
    assert_eq!(info["enable_reset"], true);
    assert_eq!(info["update_lowerbound"], -2);
    assert_eq!(info["update_upperbound"], 3);
    // Defaults: namespace `default`, a random UUID key.
    let (status, _, body) = send(edge.get("/create")).await;
    assert_eq!(status, 200);
    assert_eq!(body["namespace"], "default");
    assert_eq!(body["key"].as_str().unwrap().len(), 36);
    // CountAPI's own validation messages.
    let (status, _, body) = send(edge.get("/create?key=abc&update_upperbound=-1")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "update_upperbound must be positive");
    let (status, _, body) = send(edge.get("/create?key=abcd&update_lowerbound=1")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "update_lowerbound must be negative");
    let (status, _, body) = send(edge.get("/create?namespace=x&key=y")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Malformed Namespace/Key");
}

pub async fn bad_names_and_numbers_are_json_400s(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    for path in [
        "/hit/ab/home",
        "/hit/blog/h",
        "/hit/blog/has%20space",
        &format!("/hit/blog/{}", "k".repeat(65)),
        "/get/bl%7Bog/home",
    ] {
        let (status, _, body) = send(edge.post(path)).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "Malformed Namespace/Key", "{path}");
    }
    send(edge.post("/create/blog/num")).await;
    for path in [
        "/update/blog/num?amount=x",
        "/update/blog/num?amount=1.5",
        "/set/blog/num?value=99999999999999999999",
        "/set/blog/num",
        "/stats/blog/num?days=0",
        "/stats/blog/num?days=abc",
    ] {
        let (status, _, body) = send(edge.request(
            if path.starts_with("/stats") {
                Method::GET
            } else {
                Method::POST
            },
            path,
        ))
        .await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}"
        );
    }
    // Nothing changed.
    assert_eq!(edge.redis.cli(&["GET", "ec:{blog:num}:v"]), "0");
}

pub async fn idempotent_retries_count_once(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    send(edge.post("/hit/blog/idem")).await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        let (_, _, body) = send(
            edge.post("/hit/blog/idem")
                .header("idempotency-key", "req-7"),
        )
        .await;
        answers.push(body["value"].clone());
    }
    assert_eq!(answers, [json!(2), json!(2), json!(2), json!(2)]);
    let (_, _, body) = send(edge.post("/hit/blog/idem?rid=other")).await;
    assert_eq!(body["value"], 3);
    let (_, _, body) = send(edge.get("/get/blog/idem")).await;
    assert_eq!(body["value"], 3);
    let (status, _, _) = send(
        edge.post("/hit/blog/idem")
            .header("idempotency-key", "bad key"),
    )
    .await;
    assert_eq!(status, 400);
}

pub async fn bots_head_prefetch_and_owner_are_not_counted(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    send(edge.post("/hit/blog/filter")).await;
    let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let (_, _, body) = send(edge.post("/hit/blog/filter").header("user-agent", bot)).await;
    assert_eq!(body["counted"], false);
    assert_eq!(body["value"], 1);
    let (_, _, body) = send(
        edge.get("/hit/blog/filter")
            .header("sec-purpose", "prefetch"),
    )
    .await;
    assert_eq!(body["counted"], false);
    let (_, _, body) = send(
        edge.get("/hit/blog/filter")
            .header("cookie", "edgecount_exclude=1"),
    )
    .await;
    assert_eq!(body["counted"], false);
    let head = edge
        .request(Method::HEAD, "/hit/blog/filter")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let (_, _, body) = send(edge.get("/get/blog/filter")).await;
    assert_eq!(body["value"], 1);
}

pub async fn uniques_count_visitors_not_hits(kind: Stack) {
    // Its "today" figures need every step in one UTC day: never within minutes of midnight.
    crate::support::eventually::clear_of_utc_midnight(crate::support::eventually::DAY_MARGIN);
    let edge = Edge::start(kind, &[]).await;
    // The worker reads CF-Connecting-IP; serve sees one socket peer, so there the user agent
    // tells the visitors apart.
    for (ip, ua) in [
        ("198.51.100.1", "A"),
        ("198.51.100.1", "A"),
        ("198.51.100.2", "B"),
    ] {
        let request = edge
            .post("/hit/blog/uniq")
            .header("user-agent", format!("Mozilla/5.0 {ua}"));
        send(from_ip(request, ip)).await;
    }
    let (_, _, body) = send(
        edge.post("/hit/blog/uniq")
            .header("user-agent", "Mozilla/5.0 A"),
    )
    .await;
    assert_eq!(body["value"], 4);
    assert_eq!(body["today"], 4);
    let uniques = body["uniques_today"].as_i64().unwrap();
    if kind.front == Kind::Worker {
        // A (ip 1), B (ip 2), and A again without CF-Connecting-IP (not counted as a visitor).
        assert_eq!(uniques, 2, "{body}");
    } else {
        assert_eq!(uniques, 2, "{body}");
    }
    // No IP anywhere in Redis.
    let keys = edge.redis.keys("*").join("\n");
    assert!(!keys.contains("198.51.100"), "{keys}");
}

pub async fn info_and_stats_describe_the_counter(kind: Stack) {
    // Its "today" figures need every step in one UTC day: never within minutes of midnight.
    crate::support::eventually::clear_of_utc_midnight(crate::support::eventually::DAY_MARGIN);
    let edge = Edge::start(kind, &[]).await;
    for _ in 0..3 {
        send(edge.post("/hit/blog/stats")).await;
    }
    let (status, _, info) = send(edge.get("/info/blog/stats")).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["namespace"], "blog");
    assert_eq!(info["key"], "stats");
    assert_eq!(info["value"], 3);
    assert!(
        info["created"].as_i64().unwrap() > 1_700_000_000_000,
        "{info}"
    );
    for field in [
        "expires_in",
        "enable_reset",
        "update_lowerbound",
        "update_upperbound",
    ] {
        assert!(info.get(field).is_some(), "{field} missing: {info}");
    }
    let (status, _, stats) = send(edge.get("/stats/blog/stats?days=7")).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], 3);
    let days = stats["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    assert_eq!(days.last().unwrap()["hits"], 3);
    assert!(days.last().unwrap()["date"].as_str().unwrap().len() == 10);
    let hours = stats["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 48);
    assert_eq!(
        hours
            .iter()
            .map(|h| h["hits"].as_i64().unwrap())
            .sum::<i64>(),
        3
    );
    // Service-wide figures.
    let (status, _, global) = send(edge.get("/stats")).await;
    assert_eq!(status, 200, "{global}");
    assert_eq!(global["counters"], 1);
    assert_eq!(global["hits_today"], 3);
    let (status, _, _) = send(edge.get("/info/blog/nothing")).await;
    assert_eq!(status, 404);
}

pub async fn badge_renders_svg_and_can_count(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    let response = edge
        .get("/badge/blog/badge.svg?label=readers&color=green&style=for-the-badge&count=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    assert_eq!(
        response.headers()["cache-control"],
        "no-cache, no-store, must-revalidate"
    );
    let svg = response.text().await.unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("READERS") || svg.contains("readers"), "{svg}");
    let (_, _, body) = send(edge.get("/get/blog/badge")).await;
    assert_eq!(body["value"], 1);
    // Without count=1 it only reads.
    let svg = edge
        .get("/badge/blog/badge.svg")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(svg.contains(">1<"), "{svg}");
    let (_, _, body) = send(edge.get("/get/blog/badge")).await;
    assert_eq!(body["value"], 1);
    // Bad colours and styles are refused, not injected.
    let (status, _, body) = send(edge.get("/badge/blog/badge.svg?color=%22%3E%3Cscript%3E")).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = send(edge.get("/badge/blog/badge.svg?style=round")).await;
    assert_eq!(status, 400);
}

pub async fn batch_runs_many_operations_with_per_index_results(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    send(edge.post("/create/shop/items")).await;
    let ops = json!([
        {"op": "hit", "namespace": "blog", "key": "batch"},
        {"op": "hit", "namespace": "blog", "key": "batch"},
        {"op": "update", "namespace": "shop", "key": "items", "amount": 1},
        {"op": "update", "namespace": "shop", "key": "items", "amount": 50},
        {"op": "update", "namespace": "shop", "key": "missing", "amount": 1},
    ]);
    let (status, _, body) = send(edge.post("/batch").json(&ops)).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["value"], 1);
    assert_eq!(results[1]["value"], 2);
    assert_eq!(results[2]["value"], 1);
    assert_eq!(results[3]["status"], 403);
    assert_eq!(results[4]["status"], 404);
    assert_eq!(body["failed"], json!([3, 4]));
    // One malformed operation refuses the whole batch, naming it; nothing runs.
    let before = edge.redis.cli(&["GET", "ec:{blog:batch}:v"]);
    for bad in [
        json!({"op": "hit", "namespace": "b", "key": "x"}),
        json!({"op": "explode", "key": "x"}),
        json!({"op": "update", "key": "items", "amount": 1.5}),
    ] {
        let ops = json!([{"op": "hit", "namespace": "blog", "key": "batch"}, bad]);
        let (status, _, body) = send(edge.post("/batch").json(&ops)).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("operation 1: "),
            "{body}"
        );
    }
    assert_eq!(edge.redis.cli(&["GET", "ec:{blog:batch}:v"]), before);
    // Bad bodies.
    let (status, _, _) = send(edge.post("/batch").body("not json")).await;
    assert_eq!(status, 400);
    let (status, _, _) = send(edge.post("/batch").json(&json!([]))).await;
    assert_eq!(status, 400);
    let too_many: Vec<Value> = (0..501)
        .map(|_| json!({"op": "hit", "key": "many"}))
        .collect();
    let (status, _, _) = send(edge.post("/batch").json(&too_many)).await;
    assert_eq!(status, 400);
    let five_hundred: Vec<Value> = (0..500)
        .map(|_| json!({"op": "hit", "key": "many"}))
        .collect();
    let (status, _, body) = send(edge.post("/batch").json(&five_hundred)).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][499]["value"], 500);
}

pub async fn stream_sends_the_value_then_every_change(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    send(edge.post("/hit/blog/live")).await;
    let response = edge.get("/stream/blog/live").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = response.bytes_stream();
    let mut seen = String::new();
    let mut next_event = async || -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = seen.find("\n\n") {
                let event: String = seen.drain(..end + 2).collect();
                if event.starts_with(':') {
                    continue; // a heartbeat comment, as SSE clients skip it
                }
                return event.trim().to_owned();
            }
            let chunk = tokio::time::timeout_at(deadline, events.next())
                .await
                .expect("an event within 10 s")
                .expect("stream open")
                .expect("chunk");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    assert_eq!(next_event().await, r#"data: {"value":1}"#);
    send(edge.post("/hit/blog/live")).await;
    assert_eq!(next_event().await, r#"data: {"value":2}"#);
    send(edge.post("/update/blog/live?amount=1")).await;
    assert_eq!(next_event().await, r#"data: {"value":3}"#);
    let (status, _, _) = send(edge.get("/stream/blog/nothing")).await;
    assert_eq!(status, 404);
}

/// A reader that goes away must not keep a Redis subscription (a dedicated connection in the
/// proxy) open: natively the server sees the socket close; the worker finds out on its next write,
/// which its heartbeat comments make happen within seconds even on a counter nobody hits.
pub async fn stream_lets_go_of_redis_when_its_client_leaves(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    send(edge.post("/hit/blog/quiet")).await;
    let subscribers = || edge.redis.subscribers("ec:{blog:quiet}:live");
    let wait_for = async |wanted: u64, within: Duration| {
        let deadline = tokio::time::Instant::now() + within;
        while subscribers() != wanted {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} subscribers after {within:?}, expected {wanted}",
                subscribers()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let response = edge.get("/stream/blog/quiet").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut events = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the first event within 10 s")
        .expect("stream open")
        .expect("chunk");
    assert!(String::from_utf8_lossy(&first).contains(r#"{"value":1}"#));
    wait_for(1, Duration::from_secs(5)).await;
    drop(events);
    wait_for(0, Duration::from_secs(20)).await;
}

pub async fn cors_preflight_and_jsonp(kind: Stack) {
    let edge = Edge::start(kind, &[("EDGECOUNT_ALLOWED_ORIGINS", "https://my.site")]).await;
    let preflight = edge
        .request(Method::OPTIONS, "/hit/blog/home")
        .header("origin", "https://my.site")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://my.site"
    );
    assert!(preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let (_, headers, _) = send(
        edge.post("/hit/blog/home")
            .header("origin", "https://my.site"),
    )
    .await;
    assert_eq!(headers["access-control-allow-origin"], "https://my.site");
    let varies_on_origin = |headers: &reqwest::header::HeaderMap| {
        headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Origin"))
    };
    assert!(varies_on_origin(&headers), "{headers:?}");
    let (_, headers, _) = send(
        edge.post("/hit/blog/home")
            .header("origin", "https://evil.example"),
    )
    .await;
    assert!(headers.get("access-control-allow-origin").is_none());
    // Refused or absent, the origin still decided the answer: every answer says so.
    assert!(varies_on_origin(&headers), "{headers:?}");
    let (_, headers, _) = send(edge.get("/get/blog/home")).await;
    assert!(varies_on_origin(&headers), "{headers:?}");
    let (_, headers, _) = send(edge.get("/no/such/route")).await;
    assert!(varies_on_origin(&headers), "{headers:?}");

    // JSONP escapes CORS (any site's <script> loads it), so with an allow-list only the listed
    // sites get it, known by Referer (a classic script sends no Origin).
    let response = edge
        .get("/get/blog/home?callback=show.count")
        .header("referer", "https://my.site/blog/home")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(
        response.text().await.unwrap(),
        r#"/**/show.count({"value":2});"#
    );
    let (status, _, _) = send(
        edge.get("/get/blog/home?callback=alert(1)")
            .header("referer", "https://my.site/"),
    )
    .await;
    assert_eq!(status, 400);
    for referer in [Some("https://evil.example/page"), None] {
        // A counting JSONP request from elsewhere is refused before it counts.
        let mut request = edge.get("/hit/blog/home?callback=show.count");
        if let Some(referer) = referer {
            request = request.header("referer", referer);
        }
        let (status, _, body) = send(request).await;
        assert_eq!(status, 403, "{referer:?}: {body}");
        assert!(body["error"].as_str().unwrap().contains("JSONP"), "{body}");
    }
    let (_, _, body) = send(edge.get("/get/blog/home")).await;
    assert_eq!(body["value"], 2, "refused JSONP requests counted nothing");
}

pub async fn abuse_limit_stops_one_client_inflating_a_counter(kind: Stack) {
    let edge = Edge::start(kind, &[("EDGECOUNT_ABUSE_LIMIT", "3")]).await;
    // The limit counts per clock minute: all five hits in one.
    edge.redis.wait_clear_of_minute_boundary(10);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = from_ip(edge.post("/hit/blog/abuse"), "203.0.113.5")
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["value"], 3);
            assert_eq!(body["counted"], false);
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let (_, _, body) = send(edge.get("/get/blog/abuse")).await;
    assert_eq!(body["value"], 3);
    // Another counter has its own budget.
    let response = from_ip(edge.post("/hit/blog/other"), "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing: {headers:?}"))
        .to_str()
        .unwrap()
}

pub async fn rate_limit_consumes_peeks_refunds_and_resets(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    for remaining in [2, 1, 0] {
        let (status, headers, body) = send(edge.post("/limit/api/user-1")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["allowed"], true);
        assert_eq!(body["limit"], 3);
        assert_eq!(body["remaining"], remaining);
        assert_eq!(body["policy"], "api");
        assert_eq!(header(&headers, "ratelimit-policy"), r#""api";q=3;w=3600"#);
        assert!(header(&headers, "ratelimit").starts_with(&format!(r#""api";r={remaining};t="#)));
        assert_eq!(header(&headers, "x-ratelimit-limit"), "3");
        assert_eq!(
            header(&headers, "x-ratelimit-remaining"),
            remaining.to_string()
        );
    }
    let response = edge.post("/limit/api/user-1").send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let retry_after: u64 = header(response.headers(), "retry-after").parse().unwrap();
    // Sliding window: the full window's weight still counts into the next window, so the wait
    // can exceed the window (at most two windows).
    assert!((1..=7200).contains(&retry_after), "{retry_after}");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["violated-policies"], json!(["api"]));
    // Peek never consumes and never answers 429.
    let (status, _, body) = send(edge.get("/limit/api/user-1")).await;
    assert_eq!(
        (
            status.as_u16(),
            body["allowed"].clone(),
            body["remaining"].clone()
        ),
        (200, json!(false), json!(0))
    );
    // Another identity is untouched.
    let (_, _, body) = send(edge.get("/limit/api/user-2")).await;
    assert_eq!(body["remaining"], 3);
    // Refund gives back, never above the limit.
    let (status, _, body) = send(edge.post("/limit/api/user-1/refund?cost=2")).await;
    assert_eq!(
        (status.as_u16(), body["remaining"].clone()),
        (200, json!(2))
    );
    let (_, _, body) = send(edge.post("/limit/api/user-1/refund?cost=3")).await;
    assert_eq!(body["remaining"], 3);
    // Weighted cost.
    let (status, _, body) = send(edge.post("/limit/api/user-1?cost=3")).await;
    assert_eq!(
        (status.as_u16(), body["remaining"].clone()),
        (200, json!(0))
    );
    // Reset is for admins.
    let (status, _, _) = send(edge.request(Method::DELETE, "/limit/api/user-1")).await;
    assert_eq!(status, 401);
    let (status, _, body) = send(
        edge.request(Method::DELETE, "/limit/api/user-1")
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!((status.as_u16(), body), (200, json!({"reset": true})));
    let (_, _, body) = send(edge.get("/limit/api/user-1")).await;
    assert_eq!(body["remaining"], 3);
    // Every key the limiter wrote has a TTL.
    for (key, ttl) in edge.redis.key_pttls("rl:*") {
        assert!(ttl > 0, "{key} has no TTL");
    }
}

pub async fn rate_limit_policies_combine_atomically(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    // `daily` allows 5, `fixed` 3: the third consume exhausts `fixed`, the fourth is refused by
    // it, and `daily` must not have been charged for the refused one.
    for _ in 0..3 {
        let (status, _, _) = send(edge.post("/limit/fixed+daily/u")).await;
        assert_eq!(status, 200);
    }
    let response = edge.post("/limit/fixed+daily/u").send().await.unwrap();
    assert_eq!(response.status(), 429);
    let policy = header(response.headers(), "ratelimit-policy").to_owned();
    assert!(
        policy.contains(r#""fixed";q=3;w=3600"#) && policy.contains(r#""daily";q=5;w=86400"#),
        "{policy}"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["violated-policies"], json!(["fixed"]));
    let (_, _, body) = send(edge.get("/limit/daily/u")).await;
    assert_eq!(
        body["remaining"], 2,
        "the refused request must not be charged: {body}"
    );
}

pub async fn rate_limit_errors_are_clear(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    let (status, _, body) = send(edge.post("/limit/nope/u")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("nope"));
    let (status, _, _) = send(edge.post("/limit/api+api/u")).await;
    assert_eq!(status, 400);
    let (status, _, _) = send(edge.post("/limit/api/u?cost=x")).await;
    assert_eq!(status, 400);
    let (status, _, _) = send(edge.post("/limit/api/u?cost=4")).await;
    assert_eq!(status, 400);
    let (status, _, _) = send(edge.request(Method::PUT, "/limit/api/u")).await;
    assert_eq!(status, 405);
}

pub async fn concurrent_hits_are_all_counted(kind: Stack) {
    let edge = Edge::start(kind, &[("EDGECOUNT_ABUSE_LIMIT", "0")]).await;
    const CLIENTS: usize = 50;
    const HITS_PER_CLIENT: usize = 100;
    let url = edge.url("/hit/load/page");
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let http = edge.http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                for _ in 0..HITS_PER_CLIENT {
                    let response = http.post(&url).send().await.expect("hit");
                    assert_eq!(response.status(), 200);
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(240), task)
            .await
            .expect("hits finish in time")
            .expect("client task");
    }
    let (_, _, body) = send(edge.get("/get/load/page")).await;
    assert_eq!(body["value"], (CLIENTS * HITS_PER_CLIENT) as i64);
}

pub async fn healthz_reports_redis(kind: Stack) {
    let mut edge = Edge::start(kind, &[]).await;
    let (status, _, body) = send(edge.get("/healthz")).await;
    assert_eq!((status.as_u16(), body), (200, json!({"ok": true})));
    edge.redis.kill();
    let (status, _, body) = send(edge.get("/healthz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ok"], false);
    // Counter routes say so too, as JSON.
    let (status, _, body) = send(edge.post("/hit/blog/down")).await;
    assert_eq!(status, 503, "{body}");
    edge.redis.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = send(edge.get("/healthz")).await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn unknown_routes_and_methods_are_json_errors(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    let (status, _, body) = send(edge.get("/nope")).await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
    let (status, _, body) = send(edge.request(Method::PUT, "/hit/blog/home")).await;
    assert_eq!(status, 405, "{body}");
    let (status, _, _) = send(edge.post("/get/blog/home")).await;
    assert_eq!(status, 405);
    let (status, _, _) = send(edge.get("/hit/a/b/c/d")).await;
    assert_eq!(status, 404);
}

pub async fn one_rest_request_per_hit_read_and_decision(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    // Warm the script cache: the first call of a script after a flush costs one extra round trip
    // (EVALSHA answers NOSCRIPT, then EVAL).
    send(edge.post("/hit/blog/warm")).await;
    send(edge.post("/limit/api+daily/warm")).await;
    if edge.redis.backend() == Backend::Cluster {
        // Each master has a script cache of its own: warm the one holding these keys too.
        send(edge.post("/hit/blog/trips")).await;
        send(edge.post("/limit/api+daily/trips")).await;
    }
    let cases: [(Method, &str); 7] = [
        (Method::POST, "/hit/blog/trips"),
        (Method::GET, "/hit/blog/trips"),
        (Method::GET, "/get/blog/trips"),
        (Method::GET, "/badge/blog/trips.svg?count=1"),
        (Method::POST, "/limit/api/trips"),
        (Method::GET, "/limit/api/trips"),
        (Method::POST, "/limit/api+daily/trips"),
    ];
    // Over RESP a Cluster is reached node by node: a hit's script runs on its counter's node while
    // its service-wide figures go, in the same step, to theirs. There a request is one round trip
    // to each node it needs, in parallel: at most one read per master, never two on one.
    let per_node = edge.front() == Kind::ServeDirect && edge.redis.backend() == Backend::Cluster;
    for (method, path) in cases {
        if per_node {
            let before = edge.reads_by_master().await;
            let response = edge.request(method.clone(), path).send().await.unwrap();
            assert!(response.status().is_success(), "{method} {path}");
            let after = edge.reads_by_master().await;
            let reads: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
            assert!(
                reads.iter().all(|&n| n <= 1) && reads.iter().sum::<u64>() >= 1,
                "{method} {path}: requests read by each master {reads:?}"
            );
            continue;
        }
        let before = edge.round_trips().await;
        let response = edge.request(method.clone(), path).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
        let after = edge.round_trips().await;
        assert_eq!(
            after - before,
            1,
            "{method} {path} took {} round trips (REST or RESP requests)",
            after - before
        );
    }
}

/// A hot counter's reads (a badge in a viral README) cost a few Redis calls, not one each: one
/// read answers the others for the read-cache window (250 ms by default); a hit through the same
/// process (isolate) is seen by the next read; a write from elsewhere shows once the window is
/// over; `EDGECOUNT_READ_CACHE_MS=0` sends every read to Redis.
pub async fn hot_reads_are_cached_briefly_and_see_own_hits(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    let (_, _, body) = send(edge.post("/hit/readme/badge")).await;
    assert_eq!(body["value"], 1, "{body}");
    let read = |edge: &Edge| edge.get("/get/readme/badge").send();
    let before = edge.round_trips().await;
    let mut reads = 0;
    for _ in 0..30 {
        let wave = futures_util::future::join_all((0..10).map(|_| read(&edge))).await;
        for response in wave {
            let body: Value = response.unwrap().json().await.unwrap();
            assert_eq!(body["value"], 1, "{body}");
            reads += 1;
        }
    }
    let calls = edge.round_trips().await - before;
    assert!(calls * 5 <= reads, "{calls} Redis calls for {reads} reads");
    for expected in 2..=4 {
        let (_, _, hit) = send(edge.post("/hit/readme/badge")).await;
        assert_eq!(hit["value"], expected, "{hit}");
        let (_, _, got) = send(edge.get("/get/readme/badge")).await;
        assert_eq!(got["value"], expected, "{got}");
    }
    edge.redis.cli(&["SET", "ec:{readme:badge}:v", "100"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, _, got) = send(edge.get("/get/readme/badge")).await;
    assert_eq!(got["value"], 100, "{got}");
    drop(edge);

    let edge = Edge::start(kind, &[("EDGECOUNT_READ_CACHE_MS", "0")]).await;
    send(edge.post("/hit/readme/badge")).await;
    let before = edge.round_trips().await;
    for _ in 0..20 {
        let (status, _, _) = send(edge.get("/get/readme/badge")).await;
        assert_eq!(status, 200);
    }
    assert_eq!(edge.round_trips().await - before, 20);
}

/// The dashboard, the embed script and the OpenAPI document come from `web/` (embedded in serve,
/// the ASSETS disk service in workerd) with the headers `src/api/assets.rs` gives them.
pub async fn static_files_are_served_with_their_headers(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    for asset in edgecount::api::assets::ASSETS {
        let response = edge.get(asset.path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", asset.path);
        for (name, value) in asset.headers() {
            assert_eq!(response.headers()[name], value, "{} {name}", asset.path);
        }
        let on_disk = std::fs::read(root.join(asset.file)).unwrap();
        assert_eq!(response.bytes().await.unwrap(), on_disk, "{}", asset.path);
    }
    let page = edge.get("/").send().await.unwrap();
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    // HEAD answers the headers alone; other methods get a JSON 405 that says which work.
    let head = edge
        .request(Method::HEAD, "/embed.js")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["cache-control"], "public, max-age=604800");
    let (status, headers, body) = send(edge.post("/embed.js")).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(headers["allow"], "GET, HEAD");
}

/// Server-sent events of one answer, event by event (heartbeat comments skipped).
struct Events {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    seen: String,
}

impl Events {
    fn of(response: reqwest::Response) -> Events {
        Events {
            stream: Box::pin(response.bytes_stream()),
            seen: String::new(),
        }
    }

    /// The next event's `data:` payload that is not one of `late`.
    async fn next_skipping(&mut self, late: &[&str]) -> String {
        loop {
            let event = self.next().await;
            if !late.contains(&event.as_str()) {
                return event;
            }
        }
    }

    /// The next event's `data:` payload, within 10 s.
    async fn next(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = self.seen.find("\n\n") {
                let event: String = self.seen.drain(..end + 2).collect();
                if event.starts_with(':') {
                    continue;
                }
                return event.trim().trim_start_matches("data: ").to_owned();
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("an event within 10 s")
                .expect("stream open")
                .expect("chunk");
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Every refusal the API has, each checked against the whole keyspace: a refused request must
/// leave Redis byte for byte as it was (values, encodings and expiry times alike).
pub async fn refused_requests_change_nothing(kind: Stack) {
    let edge = Edge::start(kind, &[("EDGECOUNT_ABUSE_LIMIT", "2")]).await;
    // The abuse limit counts per clock minute: set it up and refuse within one.
    edge.redis.wait_clear_of_minute_boundary(20);
    // Something to refuse changes to: counters with admin keys, history, uniques, a namespace
    // token, a used-up rate limit, a client at its abuse limit.
    let (_, _, created) = send(edge.post("/create/site/home?initializer=5")).await;
    let ns_token = created["namespace_token"]
        .as_str()
        .expect("a namespace token")
        .to_owned();
    send(edge.post("/create/site/locked")).await;
    send(edge.get("/create?namespace=site&key=bounded&update_lowerbound=-1&update_upperbound=1"))
        .await;
    for ip in ["198.51.100.7", "198.51.100.7"] {
        send(from_ip(edge.post("/hit/site/busy"), ip)).await;
    }
    send(edge.post("/hit/site/home")).await;
    for _ in 0..3 {
        send(edge.post("/limit/fixed/someone")).await;
    }
    let big = vec![b' '; edgecount::api::MAX_BODY + 1];
    let bad_import = "{\"namespace\":\"site\",\"key\":\"fresh\",\"value\":1}\n{\"namespace\":\"site\",\"key\":\"x\"}\n";
    let refusals: Vec<(u16, reqwest::RequestBuilder)> = vec![
        // 400: names, numbers, options, callbacks, duplicates, malformed bodies.
        (400, edge.post("/hit/ab/home")),
        (400, edge.post("/hit/site/new-page?rid=has%20space")),
        (400, edge.get("/hit/site/new-page?callback=1bad")),
        (400, edge.get("/hit/site/new-page?callback=%3Cscript%3E")),
        (400, edge.get("/create/site/new-page?callback=1bad")),
        (
            400,
            edge.get("/create?namespace=site&key=new-page&callback=1bad"),
        ),
        (
            400,
            edge.post("/create/site/new-page?update_lowerbound=5&update_upperbound=-5"),
        ),
        (
            400,
            edge.get(
                "/create?namespace=site&key=new-page&update_lowerbound=5&update_upperbound=-5",
            ),
        ),
        (400, edge.post("/create/site/new-page?initializer=1e3")),
        (400, edge.post("/create/site/new-page?enable_reset=maybe")),
        (400, edge.post("/hit/site/new-page?rid=a&rid=b")),
        (
            400,
            edge.post("/update/site/home?amount=x")
                .bearer_auth(ADMIN_TOKEN),
        ),
        (400, edge.post("/set/site/home").bearer_auth(ADMIN_TOKEN)),
        (
            400,
            edge.post("/set/site/home?value=99999999999999999999")
                .bearer_auth(ADMIN_TOKEN),
        ),
        (400, edge.get("/badge/site/new-page.svg?count=1&color=nope")),
        (
            400,
            edge.get("/badge/site/new-page.svg?count=1&style=round"),
        ),
        (
            400,
            edge.get("/badge/site/new-page.svg?count=1&theme=sepia"),
        ),
        (
            400,
            edge.get("/badge/site/new-page.svg?count=1&abbreviate=yes"),
        ),
        (400, edge.get("/badge/site/new-page.svg?count=1&graph=7d")),
        (400, edge.get("/badge/site/new-page.svg?count=2")),
        (
            400,
            edge.get("/shields/site/new-page.json?count=1&color=nope"),
        ),
        (
            400,
            edge.post("/batch")
                .json(&json!([{"op": "hit", "key": "new-page"}, {"op": "boom"}])),
        ),
        (400, edge.post("/batch").body("not json")),
        (400, edge.post("/limit/api/someone?cost=x")),
        (400, edge.get("/ns/site?limit=0").bearer_auth(&ns_token)),
        (
            400,
            edge.post("/import")
                .bearer_auth(ADMIN_TOKEN)
                .body(bad_import),
        ),
        // 401 and 403: no token, or the wrong one.
        (401, edge.get("/ns/site")),
        (401, edge.get("/export/site")),
        (401, edge.post("/import").body(bad_import)),
        (401, edge.post("/ns/site/token")),
        (401, edge.request(Method::DELETE, "/limit/api/someone")),
        (403, edge.get("/ns/site").bearer_auth("not-a-token")),
        (403, edge.post("/ns/site/token").bearer_auth(&ns_token)),
        (
            403,
            edge.post("/import").bearer_auth(&ns_token).body(bad_import),
        ),
        // CountAPI's routes: 403 with or without credentials.
        (403, edge.post("/set/site/locked?value=1")),
        (
            403,
            edge.post("/set/site/locked?value=1").bearer_auth("wrong"),
        ),
        (403, edge.post("/update/site/bounded?amount=5")),
        (
            403,
            edge.post("/update/site/bounded?amount=5")
                .bearer_auth("wrong"),
        ),
        (401, edge.post("/reset/site/locked")),
        (
            403,
            edge.post("/reset/site/locked").bearer_auth("wrong-token"),
        ),
        (401, edge.request(Method::DELETE, "/delete/site/locked")),
        (
            400,
            edge.post("/hit/site/new-page?rid=has%20space")
                .header("idempotency-key", "fine"),
        ),
        (405, edge.post("/embed.js")),
        (
            403,
            edge.request(Method::DELETE, "/delete/site/locked")
                .bearer_auth("wrong"),
        ),
        // 404, 405, 409, 413, 429.
        (404, edge.get("/get/site/missing")),
        (
            404,
            edge.post("/set/site/missing?value=1")
                .bearer_auth(ADMIN_TOKEN),
        ),
        (404, edge.post("/limit/nope/someone")),
        (404, edge.get("/nope")),
        (405, edge.request(Method::PUT, "/hit/site/home")),
        (405, edge.post("/get/site/home")),
        (409, edge.post("/create/site/home")),
        (409, edge.get("/create?namespace=site&key=home")),
        (413, edge.post("/batch").body(big)),
        (429, from_ip(edge.post("/hit/site/busy"), "198.51.100.7")),
        (429, edge.post("/limit/fixed/someone")),
    ];
    let mut before = edge.redis.snapshot();
    assert!(
        before.len() > 10,
        "the store should hold something: {before:?}"
    );
    for (expected, request) in refusals {
        let request = request.build().unwrap();
        let what = format!("{} {}", request.method(), request.url().path());
        let response = edge.http.execute(request).await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{what}");
        let after: Snapshot = edge.redis.snapshot();
        assert_eq!(
            after.changes_since(&before),
            Vec::<String>::new(),
            "{what} ({expected}) changed Redis"
        );
        before = after;
    }
}

pub async fn namespace_tokens_listings_and_live_changes(kind: Stack) {
    // Its "today" figures need every step in one UTC day: never within minutes of midnight.
    crate::support::eventually::clear_of_utc_midnight(crate::support::eventually::DAY_MARGIN);
    let edge = Edge::start(kind, &[]).await;
    // The first create in a namespace hands out its token (once); later ones do not.
    let (status, _, first) = send(edge.post("/create/site/home")).await;
    assert_eq!(status, 201, "{first}");
    let token = first["namespace_token"]
        .as_str()
        .expect("namespace_token")
        .to_owned();
    assert!(token.len() >= 32);
    assert!(!edge.redis.cli(&["GET", "ec:{site}:auth"]).contains(&token));
    let (_, _, second) = send(edge.post("/create/site/about")).await;
    assert!(second.get("namespace_token").is_none(), "{second}");
    // A namespace that is already in use (counters hit into being) cannot be taken over by
    // creating one more counter in it.
    send(edge.post("/hit/taken/page")).await;
    let (_, _, late) = send(edge.post("/create/taken/mine")).await;
    assert!(late.get("namespace_token").is_none(), "{late}");

    for (path, hits) in [
        ("/hit/site/home", 3),
        ("/hit/site/contact", 2),
        ("/hit/site/about", 1),
    ] {
        for _ in 0..hits {
            send(edge.post(path)).await;
        }
    }
    let (status, _, body) = send(edge.get("/ns/site")).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = send(edge.get("/ns/site").bearer_auth("nope")).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, listing) = send(edge.get("/ns/site").bearer_auth(&token)).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(
        listing,
        json!({"namespace": "site", "count": 3, "truncated": false, "counters": [
            {"key": "home", "value": 3, "today": 3},
            {"key": "contact", "value": 2, "today": 2},
            {"key": "about", "value": 1, "today": 1},
        ]})
    );
    let (_, _, top) = send(edge.get("/ns/site?limit=1").bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!(top["counters"].as_array().unwrap().len(), 1);
    assert_eq!(top["count"], 3);

    // The token administers its namespace's counters, and no other namespace's.
    let (status, _, body) = send(edge.post("/set/site/contact?value=10").bearer_auth(&token)).await;
    assert_eq!((status.as_u16(), body["value"].clone()), (200, json!(10)));
    let (_, _, other) = send(edge.post("/create/other/page")).await;
    let other_token = other["namespace_token"].as_str().unwrap().to_owned();
    let (status, _, _) = send(
        edge.post("/set/site/contact?value=1")
            .bearer_auth(&other_token),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = send(edge.get("/ns/site").bearer_auth(&other_token)).await;
    assert_eq!(status, 403);

    // Every change in the namespace, live.
    let response = edge
        .get("/ns/site/stream")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = Events::of(response);
    // On a Cluster a change's PUBLISH reaches the node this stream listens on over the cluster
    // bus, a little later: the changes made just before the stream opened may still come first.
    // Those, and only those, are let through.
    let made_before = [
        r#"{"key":"home","value":1}"#,
        r#"{"key":"home","value":2}"#,
        r#"{"key":"home","value":3}"#,
        r#"{"key":"contact","value":1}"#,
        r#"{"key":"contact","value":2}"#,
        r#"{"key":"contact","value":10}"#,
        r#"{"key":"about","value":1}"#,
    ];
    let late = if edge.redis.backend() == Backend::Cluster {
        &made_before[..]
    } else {
        &[]
    };
    send(edge.post("/hit/site/home")).await;
    assert_eq!(
        events.next_skipping(late).await,
        r#"{"key":"home","value":4}"#
    );
    send(edge.post("/update/site/about?amount=1")).await;
    assert_eq!(events.next().await, r#"{"key":"about","value":2}"#);
    send(
        edge.request(Method::DELETE, "/delete/site/about")
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(events.next().await, r#"{"key":"about","deleted":true}"#);
    let (status, _, _) = send(edge.get("/ns/site/stream")).await;
    assert_eq!(status, 401);

    // A deleted counter leaves the listing; a minted token replaces the old one.
    let (_, _, listing) = send(edge.get("/ns/site").bearer_auth(&token)).await;
    assert_eq!(listing["count"], 2, "{listing}");
    let (status, _, minted) = send(edge.post("/ns/site/token").bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{minted}");
    let new_token = minted["namespace_token"].as_str().unwrap();
    let (status, _, _) = send(edge.get("/ns/site").bearer_auth(&token)).await;
    assert_eq!(status, 403);
    let (status, _, _) = send(edge.get("/ns/site").bearer_auth(new_token)).await;
    assert_eq!(status, 200);
    // Batch hits join the listing too.
    let ops = json!([{"op": "hit", "namespace": "batched", "key": "page"}]);
    send(edge.post("/batch").json(&ops)).await;
    let (_, _, listing) = send(edge.get("/ns/batched").bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!(listing["counters"][0]["key"], "page", "{listing}");
}

/// An NDJSON line of a counter with `days` days of history ending at `last_day` (unix days),
/// some with a HyperLogLog of `uniques` visitors.
fn history_line(key: &str, last_day: i64, days: i64) -> String {
    let days: Vec<Value> = (0..days)
        .map(|i| {
            let day = last_day - i;
            let (y, m, d) = edgecount::core::counter::calendar::civil_from_days(day);
            json!({"date": format!("{y:04}-{m:02}-{d:02}"), "hits": i + 1})
        })
        .collect();
    json!({
        "namespace": "moved", "key": key, "value": 1234, "created": 1_700_000_000_000i64,
        "enable_reset": true, "update_lowerbound": -3, "update_upperbound": 7,
        "admin_key_hash": "a".repeat(64), "days": days,
    })
    .to_string()
}

pub async fn export_then_import_round_trips_every_bucket(kind: Stack) {
    // Its "today" figures need every step in one UTC day: never within minutes of midnight.
    crate::support::eventually::clear_of_utc_midnight(crate::support::eventually::DAY_MARGIN);
    let source = Edge::start(kind, &[]).await;
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 86_400;
    // A year of history (imported, as no test can wait a year) plus live hits with uniques.
    let body = [
        history_line("old", today - 1, 390),
        history_line("recent", today - 1, 3),
    ]
    .join("\n");
    let (status, _, body) = send(source.post("/import").bearer_auth(ADMIN_TOKEN).body(body)).await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"imported": 2, "skipped": 0}))
    );
    let (_, _, created) = send(source.post("/create/moved/live?initializer=40")).await;
    let admin_key = created["admin_key"].as_str().unwrap().to_owned();
    for (ip, agent) in [
        ("198.51.100.1", "A"),
        ("198.51.100.2", "B"),
        ("198.51.100.2", "B"),
    ] {
        let hit = source
            .post("/hit/moved/live")
            .header("user-agent", format!("Mozilla/5.0 {agent}"));
        send(from_ip(hit, ip)).await;
    }
    let exported = source
        .get("/export/moved")
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(exported.status(), 200);
    assert_eq!(exported.headers()["content-type"], "application/x-ndjson");
    let export = exported.text().await.unwrap();
    assert_eq!(export.lines().count(), 3, "{export}");
    let live: Value = serde_json::from_str(
        export
            .lines()
            .find(|l| l.contains(r#""key":"live""#))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(live["days"].as_array().unwrap().len(), 1, "{live}");
    assert!(live["days"][0]["uniques_hll"].is_string(), "{live}");

    // Into a fresh Redis: everything equal, twice (the second import changes nothing).
    let target = Edge::start(kind, &[]).await;
    let (status, _, body) = send(
        target
            .post("/import")
            .bearer_auth(ADMIN_TOKEN)
            .body(export.clone()),
    )
    .await;
    assert_eq!(
        (status.as_u16(), body),
        (200, json!({"imported": 3, "skipped": 0}))
    );
    let imported = target.redis.snapshot();
    let (_, _, again) = send(
        target
            .post("/import")
            .bearer_auth(ADMIN_TOKEN)
            .body(export.clone()),
    )
    .await;
    assert_eq!(again, json!({"imported": 0, "skipped": 3}));
    assert_eq!(
        target.redis.snapshot().changes_since(&imported),
        Vec::<String>::new()
    );
    for key in ["old", "recent", "live"] {
        for path in [
            format!("/stats/moved/{key}?days=400"),
            format!("/info/moved/{key}"),
        ] {
            let (_, _, there) = send(source.get(&path)).await;
            let (_, _, here) = send(target.get(&path)).await;
            assert_eq!(here, there, "{path}");
        }
    }
    let (_, _, stats) = send(target.get("/stats/moved/old?days=400")).await;
    let with_hits = stats["days"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["hits"] != 0)
        .count();
    assert_eq!(with_hits, 390);
    let (_, _, live_stats) = send(target.get("/stats/moved/live?days=1")).await;
    assert_eq!(live_stats["days"][0]["uniques"], 2, "{live_stats}");
    // The owner's admin key still works where the counter moved.
    let (status, _, _) = send(target.post("/reset/moved/live").bearer_auth(&admin_key)).await;
    assert_eq!(status, 200);
    let (_, _, export_again) = send(target.get("/ns/moved").bearer_auth(ADMIN_TOKEN)).await;
    assert_eq!(export_again["count"], 3);
}

pub async fn badges_take_themes_abbreviation_and_a_sparkline(kind: Stack) {
    let edge = Edge::start(kind, &[("EDGECOUNT_ABUSE_LIMIT", "0")]).await;
    send(edge.post("/create/blog/popular?initializer=1233")).await;
    let svg = |path: &'static str| {
        let request = edge.get(path);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["content-type"], "image/svg+xml");
            response.text().await.unwrap()
        }
    };
    // Full numbers unless asked to abbreviate; counting first.
    let plain = svg("/badge/blog/popular.svg?count=1").await;
    assert!(plain.contains(">1234<"), "{plain}");
    let short = svg("/badge/blog/popular.svg?abbreviate=1").await;
    assert!(short.contains(">1.2k<"), "{short}");
    let auto = svg("/badge/blog/popular.svg?theme=auto").await;
    assert!(
        auto.contains("@media (prefers-color-scheme:dark)"),
        "{auto}"
    );
    let dark = svg("/badge/blog/popular.svg?theme=dark").await;
    assert!(dark.contains(r##"fill="#30363d""##), "{dark}");
    let light = svg("/badge/blog/popular.svg?theme=light").await;
    assert!(light.contains(r##"fill="#eaeef2""##), "{light}");
    let graph = svg("/badge/blog/popular.svg?graph=30d").await;
    let points = graph
        .split("points=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a sparkline");
    assert_eq!(points.split(' ').count(), 30, "{graph}");
    // Today's hit is the highest day, drawn at the top of the line; earlier days at the bottom.
    assert!(points.ends_with(",4"), "{points}");
    assert!(points.starts_with(&format!("{},16", points.split(',').next().unwrap())));
    let missing = svg("/badge/blog/nothing.svg?graph=30d").await;
    assert!(
        missing.contains(">0<") && missing.contains("<polyline"),
        "{missing}"
    );
    let (_, _, body) = send(edge.get("/get/blog/popular")).await;
    assert_eq!(body["value"], 1234);
}

pub async fn shields_endpoint_answers_shields_json(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    send(edge.post("/create/blog/shield?initializer=4567")).await;
    let (status, headers, body) = send(edge.get("/shields/blog/shield.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        json!({"schemaVersion": 1, "label": "views", "message": "4567", "color": "007ec6"})
    );
    let (_, _, body) =
        send(edge.get("/shields/blog/shield.json?label=readers&color=green&abbreviate=1&count=1"))
            .await;
    assert_eq!(
        body,
        json!({"schemaVersion": 1, "label": "readers", "message": "4.5k", "color": "97ca00"})
    );
    let (_, _, body) = send(edge.get("/get/blog/shield")).await;
    assert_eq!(body["value"], 4568);
    let (_, _, body) = send(edge.get("/shields/blog/none.json")).await;
    assert_eq!(body["message"], "0");
}

pub async fn configured_policies_are_listed(kind: Stack) {
    let edge = Edge::start(
        kind,
        &[(
            "EDGECOUNT_RATE_LIMITS",
            "api=sliding:100/60s; burst=gcra:10/1s",
        )],
    )
    .await;
    let (status, _, body) = send(edge.get("/limit")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"policies": [
            {"name": "api", "algorithm": "sliding", "limit": 100, "window_ms": 60000},
            {"name": "burst", "algorithm": "gcra", "limit": 10, "window_ms": 1000},
        ]})
    );
    let (status, _, _) = send(edge.post("/limit")).await;
    assert_eq!(status, 405);
}

/// The embed script sends the page it runs on as `?page=` (a cross-origin Referer carries no
/// path): `:HOST:` and `:PATH:` come from it.
pub async fn the_page_parameter_names_the_counter(kind: Stack) {
    let edge = Edge::start(kind, &[]).await;
    let (status, headers, body) = send(
        edge.post("/hit/:HOST:/:PATH:?page=https%3A%2F%2Fblog.example%2Fposts%2Fhello%2F")
            .header("origin", "https://blog.example")
            .header("referer", "https://blog.example/"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-path"], "blog.example/posts.hello");
    // Without it, the origin-only Referer names the site's root.
    let (_, headers, _) = send(
        edge.post("/hit/:HOST:/:PATH:")
            .header("origin", "https://blog.example")
            .header("referer", "https://blog.example/"),
    )
    .await;
    assert_eq!(headers["x-path"], "blog.example/index");
}
