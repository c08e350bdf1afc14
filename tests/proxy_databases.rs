//! Several tokens → several Redis databases, and serverless-redis-http's configuration: the
//! real binary in front of two private redis-servers.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::proxy::spawn_proxy_bare;
use support::redis_server::free_port;
use support::RedisServer;

async fn command(url: &str, token: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the proxy answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn metrics(url: &str, token: &str) -> String {
    reqwest::Client::new()
        .get(format!("{url}/metrics"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn srh_env_mode_serves_one_database_on_srh_port() {
    let redis = RedisServer::start();
    let port = free_port().to_string();
    let proxy = spawn_proxy_bare(
        &[],
        &[
            ("SRH_MODE", "env"),
            ("SRH_TOKEN", "srh-tok"),
            ("SRH_CONNECTION_STRING", &redis.url()),
            ("SRH_PORT", &port),
        ],
    );
    assert!(
        proxy.url().ends_with(&format!(":{port}")),
        "{}",
        proxy.url()
    );
    let url = format!("http://127.0.0.1:{port}");
    let (status, body) = command(&url, "srh-tok", json!(["SET", "srh-k", "v"])).await;
    assert_eq!((status, body), (200, json!({"result": "OK"})));
    assert_eq!(redis.cli(&["GET", "srh-k"]).trim(), "v");
    let (status, _) = command(&url, "other", json!(["GET", "srh-k"])).await;
    assert_eq!(status, 401);
    // One database: the figures carry no database label, as without SRH's configuration.
    let text = metrics(&url, "srh-tok").await;
    assert!(text.contains("edgecount_proxy_commands_total 1"), "{text}");
}

async fn two_databases(url: &str, a: &RedisServer, b: &RedisServer, tok_a: &str, tok_b: &str) {
    let (status, _) = command(url, tok_a, json!(["SET", "only-a", "1"])).await;
    assert_eq!(status, 200);
    let (status, body) = command(url, tok_b, json!(["GET", "only-a"])).await;
    assert_eq!((status, body), (200, json!({"result": null})));
    assert_eq!(a.cli(&["GET", "only-a"]).trim(), "1");
    assert_eq!(b.cli(&["EXISTS", "only-a"]).trim(), "0");
    // A pipeline stays in its token's database too.
    let r = reqwest::Client::new()
        .post(format!("{url}/pipeline"))
        .bearer_auth(tok_b)
        .json(&json!([["SET", "only-b", "2"], ["EXISTS", "only-a"]]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!([{"result": "OK"}, {"result": 0}]));
    assert_eq!(b.cli(&["GET", "only-b"]).trim(), "2");
    assert_eq!(a.cli(&["EXISTS", "only-b"]).trim(), "0");
    let (status, body) = command(url, "nobody", json!(["GET", "only-a"])).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn srh_tokens_file_routes_each_token_to_its_redis() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    std::fs::write(
        &file,
        json!({
            "tok-a": {"srh_id": "alpha", "connection_string": a.url(), "max_connections": 3},
            "tok-b": {"srh_id": "beta", "connection_string": b.url(), "max_connections": 2},
        })
        .to_string(),
    )
    .unwrap();
    let port = free_port().to_string();
    let _proxy = spawn_proxy_bare(
        &[],
        &[
            ("SRH_MODE", "file"),
            ("SRH_CONFIG", file.to_str().unwrap()),
            ("SRH_PORT", &port),
        ],
    );
    let url = format!("http://127.0.0.1:{port}");
    two_databases(&url, &a, &b, "tok-a", "tok-b").await;
    let text = metrics(&url, "tok-a").await;
    assert!(
        text.contains(r#"edgecount_proxy_commands_total{database="alpha"} 1"#),
        "{text}"
    );
    assert!(!text.contains("beta"), "{text}");
    let text = metrics(&url, "tok-b").await;
    assert!(
        text.contains(r#"edgecount_proxy_commands_total{database="beta"} 3"#),
        "{text}"
    );
}

#[tokio::test]
async fn our_databases_file_with_read_only_tokens() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dbs.json");
    std::fs::write(
        &file,
        json!({
            "tok-a": {"name": "a", "redis_url": a.url(), "read_only_token": "ro-a"},
            "tok-b": {"name": "b", "redis_url": b.url(), "connections": 1},
        })
        .to_string(),
    )
    .unwrap();
    let proxy = spawn_proxy_bare(&["--databases", file.to_str().unwrap()], &[]);
    two_databases(proxy.url(), &a, &b, "tok-a", "tok-b").await;
    let (status, body) = command(proxy.url(), "ro-a", json!(["GET", "only-a"])).await;
    assert_eq!((status, body), (200, json!({"result": "1"})));
    let (status, _) = command(proxy.url(), "ro-a", json!(["SET", "only-a", "x"])).await;
    assert_eq!(status, 403);
    assert_eq!(a.cli(&["GET", "only-a"]).trim(), "1");
}

#[test]
fn a_bad_config_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            r#"{"t": {"name": "a", "redis_url": "redis://127.0.0.1:1"}, "u": {"name": "b", "redis_url": "redis://127.0.0.1:1", "read_only_token": "t"}}"#,
            "read-only token is also a token",
        ),
        (
            r#"{"t": {"name": "a", "redis_url": "redis://127.0.0.1:1", "connections": 0}}"#,
            "at least 1",
        ),
        (r#"{"t": {"name": "a", "redis_url": "nope"}}"#, "Redis URL"),
        (
            r#"{"": {"name": "a", "redis_url": "redis://127.0.0.1:1"}}"#,
            "token is empty",
        ),
    ];
    for (i, (config, message)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.json"));
        std::fs::write(&file, config).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_edgecount"));
        cmd.args(["proxy", "--listen", "127.0.0.1:0", "--databases"])
            .arg(&file)
            .env_remove("UPSTASH_REDIS_REST_TOKEN")
            .env_remove("SRH_MODE");
        let out = support::run_with_timeout(cmd, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config}: {stderr}");
        assert!(stderr.contains(message), "{config}: {stderr}");
    }
}
