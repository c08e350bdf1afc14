//! Lua scripts with a `#!lua flags=allow-key-locking` shebang (as `@upstash/ratelimit` 2.x sends
//! them) through the real proxy binary to a private redis-server (7.0 refuses that flag): the proxy
//! drops the flag and maps the client's sha to the rewritten script's. Run:
//! `cargo test --test proxy_scripts`.

mod support;

use serde_json::{json, Value};
use support::proxy::spawn_proxy;
use support::RedisServer;

const TOKEN: &str = "scripts-token-7c2e";

const SCRIPT: &str = "#!lua flags=allow-key-locking\n\
    local n = redis.call('INCRBY', KEYS[1], ARGV[1])\n\
    return {n, 'x'}\n";
const RO_SCRIPT: &str =
    "#!lua flags=no-writes,allow-key-locking\r\nreturn redis.call('GET', KEYS[1])\r\n";

fn sha1_hex(s: &str) -> String {
    sha1_smol::Sha1::from(s.as_bytes()).digest().to_string()
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn new(url: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: url.to_string(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes)));
        (status, v)
    }

    /// `POST /` that must succeed: its result.
    async fn ok(&self, cmd: Value) -> Value {
        let (status, v) = self.post("/", cmd.clone()).await;
        assert_eq!(status, 200, "{cmd}: {v}");
        v["result"].clone()
    }
}

#[tokio::test]
async fn shebang_flag_dropped_and_original_sha_works_everywhere() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let api = Api::new(proxy.url());
    let sha = sha1_hex(SCRIPT);

    // Redis itself refuses the script as sent.
    let direct = redis.cli(&["EVAL", SCRIPT, "0"]);
    assert!(direct.contains("Unexpected flag"), "{direct}");

    // EVAL through the proxy works; then EVALSHA of the ORIGINAL sha.
    assert_eq!(
        api.ok(json!(["EVAL", SCRIPT, "1", "c", "2"])).await,
        json!([2, "x"])
    );
    assert_eq!(
        api.ok(json!(["evalsha", sha, "1", "c", "3"])).await,
        json!([5, "x"])
    );
    assert_eq!(
        api.ok(json!(["EVALSHA", sha.to_uppercase(), "1", "c", "1"]))
            .await,
        json!([6, "x"])
    );
    // Path form.
    let r = api
        .http
        .get(format!("{}/evalsha/{sha}/1/c/1", api.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"result": [7, "x"]})
    );

    // Pipeline.
    let (status, v) = api
        .post(
            "/pipeline",
            json!([
                ["EVALSHA", sha, "1", "c", "1"],
                ["GET", "c"],
                ["SCRIPT", "EXISTS", sha]
            ]),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!([{"result": [8, "x"]}, {"result": "8"}, {"result": [1]}])
    );

    // Multi-exec.
    let (status, v) = api
        .post(
            "/multi-exec",
            json!([["EVALSHA", sha, "1", "c", "2"], ["INCR", "c"]]),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!([{"result": [10, "x"]}, {"result": 11}]));

    // SCRIPT EXISTS answers for the original sha (and for shas the proxy never saw).
    let unknown = "ffffffffffffffffffffffffffffffffffffffff";
    assert_eq!(
        api.ok(json!(["SCRIPT", "EXISTS", sha, unknown])).await,
        json!([1, 0])
    );

    // An unknown sha still gets Redis's NOSCRIPT.
    let (status, v) = api.post("/", json!(["EVALSHA", unknown, "0"])).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("NOSCRIPT"), "{v}");
    let (_, v) = api
        .post("/pipeline", json!([["EVALSHA", unknown, "0"]]))
        .await;
    assert!(
        v[0]["error"].as_str().unwrap().starts_with("NOSCRIPT"),
        "{v}"
    );
}

#[tokio::test]
async fn script_load_answers_the_original_sha() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let api = Api::new(proxy.url());
    let ro_sha = sha1_hex(RO_SCRIPT);

    assert_eq!(
        api.ok(json!(["SCRIPT", "LOAD", RO_SCRIPT])).await,
        json!(ro_sha)
    );
    // Redis holds the rewritten script (no-writes kept, CRLF kept), not the original.
    let rewritten = "#!lua flags=no-writes\r\nreturn redis.call('GET', KEYS[1])\r\n";
    assert_eq!(
        redis.cli(&["SCRIPT", "EXISTS", &sha1_hex(rewritten), &ro_sha]),
        "1\n0"
    );
    api.ok(json!(["SET", "k", "v"])).await;
    assert_eq!(
        api.ok(json!(["EVALSHA_RO", ro_sha, "1", "k"])).await,
        json!("v")
    );
    // no-writes survived: the script is allowed under EVAL_RO.
    assert_eq!(
        api.ok(json!(["EVAL_RO", RO_SCRIPT, "1", "k"])).await,
        json!("v")
    );

    // In a pipeline and a transaction too.
    let (_, v) = api
        .post(
            "/pipeline",
            json!([
                ["SCRIPT", "LOAD", SCRIPT],
                ["EVALSHA", sha1_hex(SCRIPT), "1", "p", "4"]
            ]),
        )
        .await;
    assert_eq!(
        v,
        json!([{"result": sha1_hex(SCRIPT)}, {"result": [4, "x"]}])
    );
    let (_, v) = api
        .post(
            "/multi-exec",
            json!([["SCRIPT", "LOAD", SCRIPT], ["GET", "p"]]),
        )
        .await;
    assert_eq!(v, json!([{"result": sha1_hex(SCRIPT)}, {"result": "4"}]));

    // Scripts without the flag are untouched: their sha is Redis's own.
    let plain = "return 42";
    assert_eq!(
        api.ok(json!(["SCRIPT", "LOAD", plain])).await,
        json!(sha1_hex(plain))
    );
    // Other shebang errors still come from Redis.
    let (status, v) = api
        .post(
            "/",
            json!(["EVAL", "#!lua flags=allow-key-locking,bogus\nreturn 1", "0"]),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("Unexpected flag"),
        "{v}"
    );
}

/// A restarted proxy has an empty map: EVALSHA of the original sha gets NOSCRIPT, the client's
/// fallback EVAL works and refills the map.
#[tokio::test]
async fn after_a_restart_the_noscript_fallback_refills_the_map() {
    let redis = RedisServer::start();
    let sha = sha1_hex(SCRIPT);
    {
        let proxy = spawn_proxy(&redis, TOKEN);
        let api = Api::new(proxy.url());
        api.ok(json!(["EVAL", SCRIPT, "1", "r", "1"])).await;
        api.ok(json!(["EVALSHA", sha, "1", "r", "1"])).await;
    }
    let proxy = spawn_proxy(&redis, TOKEN);
    let api = Api::new(proxy.url());
    let (status, v) = api.post("/", json!(["EVALSHA", sha, "1", "r", "1"])).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("NOSCRIPT"), "{v}");
    assert_eq!(
        api.ok(json!(["EVAL", SCRIPT, "1", "r", "1"])).await,
        json!([3, "x"])
    );
    assert_eq!(
        api.ok(json!(["EVALSHA", sha, "1", "r", "1"])).await,
        json!([4, "x"])
    );
}
