//! The OpenAPI 3.1 documents: the counter and limit API's (`web/openapi.json`, served at
//! `/openapi.json` by the worker and `edgecount serve`) and the proxy's (`docs/proxy-openapi.json`,
//! served at the proxy's `/openapi.json`). Both cover every route; and schemathesis (PyPI, in
//! `.venv`) fuzzes a real `edgecount serve` from the first, finding no server error and no answer
//! that breaks the document.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::proxy::{spawn_proxy, spawn_serve};
use support::RedisServer;

const TOKEN: &str = "openapi-rest-token";
const ADMIN: &str = "openapi-admin-token";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn document(relative: &str) -> Value {
    let text = std::fs::read_to_string(root().join(relative)).expect("the document");
    let doc: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0", "{relative}");
    doc
}

/// Every `$ref` in `doc` points at something that is there.
fn refs_resolve(doc: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let pointer = target.strip_prefix('#').expect("local refs only");
                assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
            }
            map.values().for_each(|v| refs_resolve(doc, v));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_resolve(doc, v)),
        _ => {}
    }
}

#[test]
fn the_api_document_describes_every_route_and_static_file() {
    let doc = document("web/openapi.json");
    refs_resolve(&doc, &doc);
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for prefix in edgecount::api::route_prefixes() {
        assert!(
            paths.iter().any(|p| p.split('/').nth(1) == Some(prefix)),
            "no path for /{prefix} in web/openapi.json"
        );
    }
    for asset in edgecount::api::assets::ASSETS
        .iter()
        .filter(|a| a.public || a.page)
    {
        assert!(paths.contains(&asset.path), "{} undocumented", asset.path);
    }
    // Operation ids are unique (clients are generated from them).
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operationId");
}

#[tokio::test]
async fn the_proxy_document_describes_its_endpoints_and_is_served_without_a_token() {
    let doc = document("docs/proxy-openapi.json");
    refs_resolve(&doc, &doc);
    for path in [
        "/",
        "/pipeline",
        "/multi-exec",
        "/subscribe/{channel}",
        "/psubscribe/{pattern}",
        "/monitor",
        "/_stats",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let served = reqwest::get(format!("{}/openapi.json", proxy.url()))
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/json");
    assert_eq!(served.json::<Value>().await.unwrap(), doc);
    // Everything else still needs the token.
    let other = reqwest::get(format!("{}/get/x", proxy.url()))
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
}

/// schemathesis from the project's virtualenv (scripts/setup.sh installs it).
fn schemathesis() -> PathBuf {
    let bin = root().join(".venv/bin/schemathesis");
    assert!(
        bin.is_file(),
        "{} is missing: run ./scripts/setup.sh (it installs tests/clients/python/requirements.txt)",
        bin.display()
    );
    bin
}

async fn wait_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let answer = reqwest::get(format!("{url}/healthz")).await;
        if answer.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not become healthy");
}

/// A bounded pass: every operation but the endless event streams, positive and negative data,
/// every check but `positive_data_acceptance` (it expects any schema-valid request to succeed,
/// which a cost above a policy's limit, an overflowing amount or a counter created twice
/// rightly do not). A fixed seed keeps CI repeatable; `EDGECOUNT_SCHEMATHESIS_SEED` and
/// `EDGECOUNT_SCHEMATHESIS_EXAMPLES` explore further.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_breaking_the_document() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let serve = spawn_serve(
        proxy.url(),
        TOKEN,
        &[
            ("EDGECOUNT_ADMIN_TOKEN", ADMIN),
            ("EDGECOUNT_UNIQUES_SECRET", "openapi-uniques"),
            (
                "EDGECOUNT_RATE_LIMITS",
                "api=sliding:100/60s; burst=gcra:5/1s; exports=concurrency:3/30s",
            ),
            ("EDGECOUNT_ABUSE_LIMIT", "0"),
        ],
    );
    wait_healthy(serve.url()).await;
    let seed = std::env::var("EDGECOUNT_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261129".into());
    let examples = std::env::var("EDGECOUNT_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
    let workdir = tempfile::tempdir().unwrap(); // schemathesis keeps a cache in its cwd
    let spec: &Path = &root().join("web/openapi.json");
    let output = Command::new(schemathesis())
        .args(["run", spec.to_str().unwrap(), "--url", serve.url()])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--exclude-path-regex", "stream"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        .args(["--request-timeout", "10", "--no-color"])
        .current_dir(workdir.path())
        .output()
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems (seed {seed}):\n{report}\nserve log:\n{}",
        serve.log()
    );
    assert!(report.contains("Test cases:"), "{report}");
    println!(
        "{}",
        report.lines().rev().take(12).collect::<Vec<_>>().join("\n")
    );
}
