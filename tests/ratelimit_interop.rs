//! Shared limits with @upstash/ratelimit: a JavaScript service using the npm package, unmodified,
//! and edgecount (the wasm worker in workerd, and `edgecount serve`) limit ONE identifier together
//! through the same proxy and Redis. `upstash-sliding`, `upstash-fixed` and `upstash-token`
//! policies keep the library's key layout and rules, so with a limit of 100 in an hour-long
//! window and 500 attempts split between the two, exactly 100 are admitted in total.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::edge::{burst, clear_of_hour_boundary, Edge, Kind, TOKEN};

const POLICIES: &str = "sliding=upstash-sliding:100/1h; fixed=upstash-fixed:100/1h; \
token=upstash-token:100/1h refill=100";
const LIMIT: usize = 100;
const ATTEMPTS_EACH: usize = 250;
const CLIENTS_EACH: usize = 10;

/// The library's side, in node: (allowed, refused).
async fn library_side(edge: &Edge, algorithm: &str, id: &str) -> (usize, usize) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/upstash_ratelimit_client.mjs"
    );
    let child = tokio::process::Command::new("node")
        .arg(script)
        .args([edge.proxy.url(), TOKEN, algorithm])
        .arg(LIMIT.to_string())
        .arg(id)
        .arg(ATTEMPTS_EACH.to_string())
        .arg(CLIENTS_EACH.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("node (installed by scripts/setup.sh)");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the library's side finishes in time")
        .expect("node runs");
    assert!(
        output.status.success(),
        "node: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("node prints JSON");
    (
        result["allowed"].as_u64().unwrap() as usize,
        result["refused"].as_u64().unwrap() as usize,
    )
}

async fn shared_limit(kind: Kind, algorithm: &str) {
    let edge = Edge::start(kind, &[("EDGECOUNT_RATE_LIMITS", POLICIES)]).await;
    clear_of_hour_boundary(Duration::from_secs(180)).await;
    let id = format!("shared-{algorithm}");
    let path = format!("/limit/{algorithm}/{id}");
    let url = edge.url(&path);
    let (ours, theirs) = tokio::join!(
        burst(
            &edge.http,
            std::slice::from_ref(&url),
            CLIENTS_EACH,
            ATTEMPTS_EACH
        ),
        library_side(&edge, algorithm, &id),
    );
    assert_eq!(ours.0 + ours.1, ATTEMPTS_EACH);
    assert_eq!(theirs.0 + theirs.1, ATTEMPTS_EACH);
    assert_eq!(
        ours.0 + theirs.0,
        LIMIT,
        "{algorithm}: edgecount admitted {}, @upstash/ratelimit {}",
        ours.0,
        theirs.0
    );
    // Both sides see the one state: the next attempts on either are refused, and edgecount's
    // peek reports nothing left.
    assert_eq!(burst(&edge.http, &[url], 1, 1).await, (0, 1));
    assert_eq!(
        library_side(&edge, algorithm, &id).await,
        (0, ATTEMPTS_EACH)
    );
    let peek: Value = edge.get(&path).send().await.unwrap().json().await.unwrap();
    assert_eq!(peek["remaining"], 0, "{peek}");
    // The state lives under the library's own keys (its default prefix), nowhere else.
    let keys: Vec<String> = edge
        .redis
        .key_pttls("*")
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert!(
        !keys.is_empty()
            && keys
                .iter()
                .all(|k| k.starts_with(&format!("@upstash/ratelimit:{id}"))),
        "{keys:?}"
    );
}

macro_rules! shared_limit_tests {
    ($($name:ident: $kind:expr, $algorithm:literal;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                shared_limit($kind, $algorithm).await;
            }
        )*
    };
}

shared_limit_tests! {
    sliding_window_shared_through_the_worker: Kind::Worker, "sliding";
    fixed_window_shared_through_the_worker: Kind::Worker, "fixed";
    token_bucket_shared_through_the_worker: Kind::Worker, "token";
    sliding_window_shared_through_serve: Kind::Serve, "sliding";
    fixed_window_shared_through_serve: Kind::Serve, "fixed";
    token_bucket_shared_through_serve: Kind::Serve, "token";
}
