//! `edgecount proxy` in front of a Redis Cluster of 3 masters and 3 replicas (private
//! redis-servers, `support::cluster`).
//! Run: `cargo test --test proxy_cluster`.

mod support;

use serde_json::{json, Value};
use support::cluster::RedisCluster;
use support::proxy::spawn_proxy_with;

const TOKEN: &str = "cluster-token-81";

async fn post(http: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let r = http
        .post(url)
        .bearer_auth(TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn commands_pipelines_and_transactions_on_a_cluster() {
    let cluster = RedisCluster::start();
    let proxy = spawn_proxy_with(&cluster.urls(), TOKEN, &[], &[]);
    let http = reqwest::Client::new();
    let base = proxy.url().to_string();
    let pipeline = format!("{base}/pipeline");
    let multi = format!("{base}/multi-exec");

    // Keys spread over all three masters.
    for i in 0..30 {
        let (status, body) = post(&http, &base, json!(["SET", format!("key{i}"), i])).await;
        assert_eq!((status, body), (200, json!({"result": "OK"})));
    }
    let per_node: Vec<i64> = cluster
        .masters()
        .iter()
        .map(|n| n.cli(&["DBSIZE"]).parse().unwrap())
        .collect();
    assert!(per_node.iter().all(|&n| n > 0), "{per_node:?}");
    assert_eq!(per_node.iter().sum::<i64>(), 30);
    let (_, body) = post(&http, &base, json!(["GET", "key7"])).await;
    assert_eq!(body, json!({"result": "7"}));

    // A pipeline across slots, in order, with an inline error.
    let cmds: Vec<Value> = (0..30)
        .map(|i| json!(["INCR", format!("key{i}")]))
        .chain([json!(["LPUSH", "key0", "x"])])
        .collect();
    let (status, body) = post(&http, &pipeline, Value::Array(cmds)).await;
    assert_eq!(status, 200);
    let entries = body.as_array().unwrap();
    for (i, e) in entries.iter().take(30).enumerate() {
        assert_eq!(e, &json!({"result": i as i64 + 1}));
    }
    assert!(entries[30]["error"]
        .as_str()
        .unwrap()
        .starts_with("WRONGTYPE"));

    // Transactions on one slot (hash tags) apply atomically.
    let (status, body) = post(
        &http,
        &multi,
        json!([["SET", "{u1}:a", 1], ["INCR", "{u1}:a"], ["GET", "{u1}:a"]]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([{"result": "OK"}, {"result": 2}, {"result": "2"}])
    );
    // Across slots: refused as a whole, nothing written.
    let (status, body) = post(
        &http,
        &multi,
        json!([["SET", "{u2}:a", 1], ["SET", "{u3}:b", 1]]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (_, body) = post(&http, &base, json!(["EXISTS", "{u2}:a"])).await;
    assert_eq!(body, json!({"result": 0}));

    // Multi-key commands across slots are Redis errors, reported as 400 JSON.
    let (status, body) = post(&http, &base, json!(["SUNION", "{a}x", "{b}y"])).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].is_string());
}
