//! Contract tests for `edgecount proxy` against docs/UPSTASH-REST.md, section by section: the real
//! binary (`support::proxy::spawn_proxy`) in front of a private redis-server, driven by reqwest
//! over loopback. Run: `cargo test --test proxy_contract`.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::proxy::{spawn_proxy, spawn_proxy_with, ProxyProcess};
use support::RedisServer;

const TOKEN: &str = "test-token-3f9a1c";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("not base64: {s:?}: {e}"))
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}), status {}: {:?}",
                self.status,
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    fn sync_token(&self) -> String {
        self.headers
            .get("upstash-sync-token")
            .expect("every response carries Upstash-Sync-Token")
            .to_str()
            .unwrap()
            .to_string()
    }

    fn content_type(&self) -> String {
        self.headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// Status 200 and `{"result": …}`: the result.
    fn result(&self) -> Value {
        let body = self.json();
        assert_eq!(self.status, StatusCode::OK, "body: {body}");
        assert!(body.get("error").is_none(), "{body}");
        body.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("no result key: {body}"))
    }

    /// An error status and `{"error": "…"}` without `result`: the text.
    fn error(&self, status: StatusCode) -> String {
        let body = self.json();
        assert_eq!(self.status, status, "body: {body}");
        assert!(body.get("result").is_none(), "{body}");
        body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error text: {body}"))
            .to_string()
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(proxy: &ProxyProcess) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: proxy.url().to_string(),
            token: proxy.token().to_string(),
        }
    }

    fn with_token(proxy: &ProxyProcess, token: &str) -> Api {
        let mut api = Api::new(proxy);
        api.token = token.to_string();
        api
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request reaches the proxy");
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            bytes: resp.bytes().await.expect("body").to_vec(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(self.request(Method::POST, path).body(body)).await
    }

    async fn cmd(&self, args: Value) -> Reply {
        self.post("", args.to_string()).await
    }

    async fn cmd_b64(&self, args: Value) -> Reply {
        self.send(
            self.request(Method::POST, "")
                .header("Upstash-Encoding", "base64")
                .body(args.to_string()),
        )
        .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }
}

fn setup() -> (RedisServer, ProxyProcess, Api) {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let api = Api::new(&proxy);
    (redis, proxy, api)
}

// §1 endpoints and request forms ----------------------------------------------------------------

#[tokio::test]
async fn single_command_with_and_without_trailing_slash() {
    let (redis, _proxy, api) = setup();
    let r = api.cmd(json!(["SET", "k", "v", "EX", 100])).await;
    assert_eq!(r.result(), json!("OK"));
    assert!(r.content_type().starts_with("application/json"));
    assert_eq!(api.post("/", r#"["GET","k"]"#).await.result(), json!("v"));
    let ttl: i64 = redis.cli(&["TTL", "k"]).parse().unwrap();
    assert!((1..=100).contains(&ttl), "{ttl}");
    // `result` is present even when null.
    let r = api.cmd(json!(["GET", "missing"])).await;
    assert_eq!(r.json(), json!({"result": null}));
}

#[tokio::test]
async fn json_scalars_are_stringified_and_big_integers_keep_their_digits() {
    let (redis, _proxy, api) = setup();
    api.cmd(json!(["SET", "f", 1.25])).await.result();
    assert_eq!(redis.cli(&["GET", "f"]), "1.25");
    api.cmd(json!(["SET", "b", true])).await.result();
    assert_eq!(redis.cli(&["GET", "b"]), "true");
    // Beyond 2^64: written by hand since serde_json would not keep it.
    api.post("", r#"["SET","big",123456789012345678901234567890]"#)
        .await
        .result();
    assert_eq!(redis.cli(&["GET", "big"]), "123456789012345678901234567890");
    // Beyond 2^53, inside i64: exact both ways.
    let r = api.cmd(json!(["INCRBY", "n", 9007199254740993i64])).await;
    assert_eq!(r.result(), json!(9007199254740993i64));
    api.cmd(json!(["SET", "max", "9223372036854775806"]))
        .await
        .result();
    let r = api.cmd(json!(["INCR", "max"])).await;
    assert_eq!(r.result().as_i64(), Some(i64::MAX));
    assert!(String::from_utf8_lossy(&r.bytes).contains("9223372036854775807"));
    let r = api
        .cmd(json!(["DECRBY", "neg", "9223372036854775807"]))
        .await;
    assert_eq!(r.result().as_i64(), Some(-i64::MAX));
}

#[tokio::test]
async fn path_form_with_body_query_and_percent_decoding() {
    let (redis, _proxy, api) = setup();
    assert_eq!(api.get("/set/k1/v1").await.result(), json!("OK"));
    assert_eq!(api.get("/GET/k1").await.result(), json!("v1"));
    // POST body appended raw as the last argument, then query parameters as name value.
    let r = api.post("/set/k2?EX=100", "raw value, not JSON").await;
    assert_eq!(r.result(), json!("OK"));
    assert_eq!(redis.cli(&["GET", "k2"]), "raw value, not JSON");
    let ttl: i64 = redis.cli(&["TTL", "k2"]).parse().unwrap();
    assert!((1..=100).contains(&ttl));
    // A value-less parameter appends the name only.
    assert_eq!(api.post("/set/k3?NX", "a").await.result(), json!("OK"));
    assert_eq!(api.post("/set/k3?NX", "b").await.result(), json!(null));
    assert_eq!(redis.cli(&["GET", "k3"]), "a");
    // PUT behaves like POST.
    let r = api
        .send(api.request(Method::PUT, "/set/k4").body("put"))
        .await;
    assert_eq!(r.result(), json!("OK"));
    // Percent-decoded segments.
    assert_eq!(api.get("/set/a%20b/c%2Fd").await.result(), json!("OK"));
    assert_eq!(redis.cli(&["GET", "a b"]), "c/d");
    // HEAD: same status, no body.
    let r = api.send(api.request(Method::HEAD, "/get/k1")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.bytes.is_empty());
    assert!(!r.sync_token().is_empty());
}

#[tokio::test]
async fn no_content_type_requirement() {
    let (_redis, _proxy, api) = setup();
    let r = api
        .send(
            api.request(Method::POST, "")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(r#"["ECHO","hi"]"#),
        )
        .await;
    assert_eq!(r.result(), json!("hi"));
}

#[tokio::test]
async fn other_methods_are_405_json() {
    let (_redis, _proxy, api) = setup();
    for method in [Method::DELETE, Method::PATCH, Method::OPTIONS] {
        let r = api.send(api.request(method.clone(), "/get/k")).await;
        let text = r.error(StatusCode::METHOD_NOT_ALLOWED);
        assert!(!text.is_empty(), "{method}");
        assert!(!r.sync_token().is_empty());
    }
}

// §2 authentication ------------------------------------------------------------------------------

#[tokio::test]
async fn missing_or_wrong_token_is_401_wrongpass() {
    let (_redis, proxy, api) = setup();
    let anon = reqwest::Client::new();
    let wrongpass = json!({"error": "WRONGPASS invalid or missing auth token"});
    let r = api.send(anon.post(proxy.url()).body(r#"["PING"]"#)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json(), wrongpass);
    assert!(!r.sync_token().is_empty());
    let r = api
        .send(
            anon.post(proxy.url())
                .bearer_auth("wrong")
                .body(r#"["PING"]"#),
        )
        .await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::UNAUTHORIZED, wrongpass.clone())
    );
    // A prefix of the right token is still wrong.
    let r = api
        .send(
            anon.post(proxy.url())
                .bearer_auth(&TOKEN[..TOKEN.len() - 1])
                .body(r#"["PING"]"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api
        .send(anon.get(format!("{}/ping?_token=nope", proxy.url())))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // ?_token= works on every form.
    let r = api
        .send(anon.get(format!("{}/echo/x?_token={TOKEN}", proxy.url())))
        .await;
    assert_eq!(r.result(), json!("x"));
    let r = api
        .send(
            anon.post(format!("{}/pipeline?_token={TOKEN}", proxy.url()))
                .body(r#"[["PING"]]"#),
        )
        .await;
    assert_eq!(r.json(), json!([{"result": "PONG"}]));
}

#[tokio::test]
async fn read_only_token_reads_and_gets_noperm_for_writes() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy_with(
        &[redis.url()],
        TOKEN,
        &["--read-only-token", "ro-token-77"],
        &[],
    );
    let rw = Api::new(&proxy);
    let ro = Api::with_token(&proxy, "ro-token-77");
    rw.cmd(json!(["SET", "k", "v"])).await.result();
    assert_eq!(ro.cmd(json!(["GET", "k"])).await.result(), json!("v"));
    assert_eq!(ro.get("/get/k").await.result(), json!("v"));
    for args in [
        json!(["SET", "k", "x"]),
        json!(["DEL", "k"]),
        json!(["KEYS", "*"]),
        json!(["SCAN", 0]),
        json!(["EVAL", "return 1", 0]),
        json!(["FLUSHALL"]),
    ] {
        let r = ro.cmd(args.clone()).await;
        let text = r.error(StatusCode::FORBIDDEN);
        assert!(text.starts_with("NOPERM"), "{args}: {text}");
    }
    let r = ro
        .post("/pipeline", r#"[["GET","k"],["SET","k","y"]]"#)
        .await;
    let body = r.json();
    assert_eq!(body[0], json!({"result": "v"}));
    assert!(body[1]["error"].as_str().unwrap().starts_with("NOPERM"));
    let r = ro
        .post("/multi-exec", r#"[["GET","k"],["SET","k","y"]]"#)
        .await;
    assert!(r.error(StatusCode::FORBIDDEN).starts_with("NOPERM"));
    assert_eq!(redis.cli(&["GET", "k"]), "v");
}

// §3 response bodies and status codes -----------------------------------------------------------

#[tokio::test]
async fn redis_errors_are_400_with_the_verbatim_text() {
    let (_redis, _proxy, api) = setup();
    let r = api.cmd(json!(["GET"])).await;
    assert_eq!(
        r.error(StatusCode::BAD_REQUEST),
        "ERR wrong number of arguments for 'get' command"
    );
    let r = api.cmd(json!(["NOSUCHCOMMAND", "a"])).await;
    assert!(r
        .error(StatusCode::BAD_REQUEST)
        .starts_with("ERR unknown command 'NOSUCHCOMMAND'"));
    api.cmd(json!(["LPUSH", "l", "x"])).await.result();
    let r = api.cmd(json!(["GET", "l"])).await;
    assert!(r.error(StatusCode::BAD_REQUEST).starts_with("WRONGTYPE "));
    let r = api
        .cmd(json!([
            "EVALSHA",
            "0123456789012345678901234567890123456789",
            0
        ]))
        .await;
    assert!(r.error(StatusCode::BAD_REQUEST).starts_with("NOSCRIPT "));
}

#[tokio::test]
async fn malformed_bodies_are_400_json() {
    let (_redis, _proxy, api) = setup();
    for body in [
        "not json",
        "",
        "[]",
        "{}",
        "\"PING\"",
        r#"["SET","k",{"a":1}]"#,
        r#"["SET","k",["nested"]]"#,
        r#"["SET","k",null]"#,
        r#"["GET","k""#,
    ] {
        let r = api.post("", body.to_string()).await;
        let text = r.error(StatusCode::BAD_REQUEST);
        assert!(!text.is_empty(), "{body:?}");
    }
    for body in [
        "[]",
        "[[]]",
        r#"["GET","k"]"#,
        r#"[["GET","k"],"x"]"#,
        "nope",
    ] {
        for path in ["/pipeline", "/multi-exec"] {
            let r = api.post(path, body.to_string()).await;
            r.error(StatusCode::BAD_REQUEST);
        }
    }
}

#[tokio::test]
async fn body_limit_413_json_and_900_kib_passes() {
    let (redis, _proxy, api) = setup();
    let big = "x".repeat(900 * 1024);
    let r = api.cmd(json!(["SET", "big", big])).await;
    assert_eq!(r.result(), json!("OK"));
    assert_eq!(redis.cli(&["STRLEN", "big"]), (900 * 1024).to_string());
    let r = api.post("/set/big2", big.clone()).await;
    assert_eq!(r.result(), json!("OK"));
    // Over 1 MB: a JSON 413, not a dropped socket.
    let huge = "y".repeat(2 * 1024 * 1024);
    let r = api.cmd(json!(["SET", "huge", huge])).await;
    assert!(!r.error(StatusCode::PAYLOAD_TOO_LARGE).is_empty());
    let r = api
        .post("/pipeline", format!("[[\"SET\",\"h\",\"{huge}\"]]"))
        .await;
    r.error(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(redis.cli(&["EXISTS", "huge"]), "0");
    // The proxy is still fine afterwards.
    assert_eq!(api.cmd(json!(["PING"])).await.result(), json!("PONG"));
}

#[tokio::test]
async fn configurable_body_limit() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy_with(&[redis.url()], TOKEN, &["--max-body", "100"], &[]);
    let api = Api::new(&proxy);
    assert_eq!(
        api.cmd(json!(["SET", "k", "small"])).await.result(),
        json!("OK")
    );
    let r = api.cmd(json!(["SET", "k", "z".repeat(200)])).await;
    r.error(StatusCode::PAYLOAD_TOO_LARGE);
}

// §4 RESP → JSON -------------------------------------------------------------------------------

#[tokio::test]
async fn resp_shapes_map_to_json() {
    let (_redis, _proxy, api) = setup();
    assert_eq!(api.cmd(json!(["PING"])).await.result(), json!("PONG"));
    api.cmd(json!(["SET", "s", "v"])).await.result();
    assert_eq!(
        api.cmd(json!(["TYPE", "s"])).await.result(),
        json!("string")
    );
    // Floats stay strings.
    assert_eq!(
        api.cmd(json!(["INCRBYFLOAT", "fl", "1.5"])).await.result(),
        json!("1.5")
    );
    api.cmd(json!(["ZADD", "z", 2.5, "m"])).await.result();
    assert_eq!(
        api.cmd(json!(["ZSCORE", "z", "m"])).await.result(),
        json!("2.5")
    );
    assert_eq!(
        api.cmd(json!(["ZRANGE", "z", 0, -1, "WITHSCORES"]))
            .await
            .result(),
        json!(["m", "2.5"])
    );
    // Nil inside arrays stays null.
    assert_eq!(
        api.cmd(json!(["MGET", "s", "missing"])).await.result(),
        json!(["v", null])
    );
    // HGETALL is a flat array (RESP2), not an object.
    api.cmd(json!(["HSET", "h", "f", "1"])).await.result();
    assert_eq!(
        api.cmd(json!(["HGETALL", "h"])).await.result(),
        json!(["f", "1"])
    );
    // Nested arrays: XRANGE and a Lua table (false becomes nil).
    api.cmd(json!(["XADD", "st", "1-1", "a", "1"]))
        .await
        .result();
    assert_eq!(
        api.cmd(json!(["XRANGE", "st", "-", "+"])).await.result(),
        json!([["1-1", ["a", "1"]]])
    );
    let r = api
        .cmd(json!(["EVAL", "return {1, {2, 'x', {false}}, 'y'}", 0]))
        .await;
    assert_eq!(r.result(), json!([1, [2, "x", [null]], "y"]));
    // An error reply nested in a Lua table surfaces as its text.
    let r = api
        .cmd(json!([
            "EVAL",
            "return {1, redis.error_reply('MYERR boom')}",
            0
        ]))
        .await;
    assert_eq!(r.result(), json!([1, "MYERR boom"]));
    // Invalid UTF-8 becomes U+FFFD without base64.
    api.post("/set/bin", vec![0xffu8, b'a']).await.result();
    assert_eq!(
        api.cmd(json!(["GET", "bin"])).await.result(),
        json!("\u{fffd}a")
    );
}

// §5 base64 ---------------------------------------------------------------------------------------

#[tokio::test]
async fn base64_encodes_every_string_at_every_depth() {
    let (_redis, _proxy, api) = setup();
    assert_eq!(
        api.cmd_b64(json!(["PING"])).await.result(),
        json!("UE9ORw==")
    );
    assert_eq!(
        api.cmd_b64(json!(["SET", "k", "hello"])).await.result(),
        json!("OK")
    );
    assert_eq!(
        api.cmd_b64(json!(["GET", "k"])).await.result(),
        json!(b64(b"hello"))
    );
    assert_eq!(
        api.cmd_b64(json!(["INCR", "n"])).await.result(),
        json!(1),
        "integers untouched"
    );
    assert_eq!(
        api.cmd_b64(json!(["MGET", "k", "missing"])).await.result(),
        json!([b64(b"hello"), null])
    );
    api.cmd(json!(["XADD", "st", "1-1", "f", "v"]))
        .await
        .result();
    assert_eq!(
        api.cmd_b64(json!(["XRANGE", "st", "-", "+"]))
            .await
            .result(),
        json!([[b64(b"1-1"), [b64(b"f"), b64(b"v")]]])
    );
    // Errors are never encoded.
    let r = api.cmd_b64(json!(["GET"])).await;
    assert_eq!(
        r.error(StatusCode::BAD_REQUEST),
        "ERR wrong number of arguments for 'get' command"
    );
    // Pipelines: results encoded, errors not.
    let r = api
        .send(
            api.request(Method::POST, "/pipeline")
                .header("Upstash-Encoding", "base64")
                .body(r#"[["GET","k"],["INCR","k"],["TYPE","k"]]"#),
        )
        .await;
    assert_eq!(
        r.json(),
        json!([
            {"result": b64(b"hello")},
            {"error": "ERR value is not an integer or out of range"},
            {"result": b64(b"string")}
        ])
    );
}

#[tokio::test]
async fn binary_values_round_trip() {
    let (redis, _proxy, api) = setup();
    let bytes: Vec<u8> = (0u8..=255).chain([0, 13, 10, 0]).collect();
    assert_eq!(
        api.post("/set/bin", bytes.clone()).await.result(),
        json!("OK")
    );
    assert_eq!(redis.cli(&["STRLEN", "bin"]), bytes.len().to_string());
    let got = api.cmd_b64(json!(["GET", "bin"])).await.result();
    assert_eq!(unb64(got.as_str().unwrap()), bytes);
    // BITOP NOT produces bytes that are not UTF-8.
    api.cmd(json!(["SET", "plain", "AB"])).await.result();
    api.cmd(json!(["BITOP", "NOT", "inv", "plain"]))
        .await
        .result();
    let got = api.cmd_b64(json!(["GET", "inv"])).await.result();
    assert_eq!(unb64(got.as_str().unwrap()), vec![!b'A', !b'B']);
    // DUMP / RESTORE through base64 and the path form.
    let dump = api.cmd_b64(json!(["DUMP", "bin"])).await.result();
    let dump = unb64(dump.as_str().unwrap());
    let r = api.post("/restore/bin2/0", dump).await;
    assert_eq!(r.result(), json!("OK"));
    let got = api.cmd_b64(json!(["GET", "bin2"])).await.result();
    assert_eq!(unb64(got.as_str().unwrap()), bytes);
}

// §1/§3 pipeline and multi-exec -------------------------------------------------------------------

#[tokio::test]
async fn pipeline_entries_have_result_or_error_never_both() {
    let (_redis, _proxy, api) = setup();
    let r = api
        .post(
            "/pipeline",
            json!([
                ["SET", "a", 1],
                ["INCR", "a"],
                ["LPUSH", "a", "x"],
                ["GET", "a"],
                ["GET", "missing"],
                ["NOSUCH"],
                ["MULTI"],
                ["SELECT", 0]
            ])
            .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    let entries = body.as_array().unwrap();
    assert_eq!(entries.len(), 8);
    assert_eq!(entries[0], json!({"result": "OK"}));
    assert_eq!(entries[1], json!({"result": 2}));
    assert!(entries[2]["error"]
        .as_str()
        .unwrap()
        .starts_with("WRONGTYPE"));
    assert_eq!(entries[3], json!({"result": "2"}));
    assert_eq!(entries[4], json!({"result": null}));
    assert!(entries[5]["error"]
        .as_str()
        .unwrap()
        .starts_with("ERR unknown command"));
    assert!(entries[6]["error"].is_string());
    assert_eq!(entries[7], json!({"result": "OK"}));
    for e in entries {
        let obj = e.as_object().unwrap();
        assert_eq!(obj.len(), 1, "{e}");
        assert!(obj.contains_key("result") ^ obj.contains_key("error"));
    }
    // The refused MULTI never reached the shared connection.
    assert_eq!(api.cmd(json!(["GET", "a"])).await.result(), json!("2"));
}

#[tokio::test]
async fn multi_exec_applies_atomically_with_inline_exec_errors() {
    let (redis, _proxy, api) = setup();
    let r = api
        .post(
            "/multi-exec",
            json!([
                ["SET", "s", "text"],
                ["INCR", "s"],
                ["SET", "t", 1],
                ["GET", "t"]
            ])
            .to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body[0], json!({"result": "OK"}));
    assert_eq!(
        body[1],
        json!({"error": "ERR value is not an integer or out of range"})
    );
    assert_eq!(body[2], json!({"result": "OK"}));
    assert_eq!(body[3], json!({"result": "1"}));
    assert!(!r.sync_token().is_empty());
    assert_eq!(redis.cli(&["GET", "t"]), "1");
}

#[tokio::test]
async fn multi_exec_execabort_writes_nothing() {
    let (redis, _proxy, api) = setup();
    for bad in [
        json!(["NOSUCHCOMMAND"]),
        json!(["GET"]),
        json!(["SUBSCRIBE", "c"]),
    ] {
        let r = api
            .post(
                "/multi-exec",
                json!([["SET", "x", "1"], bad.clone(), ["SET", "y", "2"]]).to_string(),
            )
            .await;
        let text = r.error(StatusCode::BAD_REQUEST);
        assert!(text.starts_with("EXECABORT"), "{bad}: {text}");
        assert!(r.json().is_object(), "a single error object");
        assert_eq!(redis.cli(&["EXISTS", "x", "y"]), "0", "{bad}");
    }
    // The connection is still healthy and not stuck in MULTI.
    assert_eq!(
        api.cmd(json!(["SET", "z", "1"])).await.result(),
        json!("OK")
    );
    assert_eq!(api.cmd(json!(["GET", "z"])).await.result(), json!("1"));
}

#[tokio::test]
async fn multi_exec_is_atomic_under_concurrency() {
    let (_redis, _proxy, api) = setup();
    let api = std::sync::Arc::new(api);
    // Each transaction increments two counters; readers inside transactions must see them equal.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let r = api
                    .post("/multi-exec", r#"[["INCR","a"],["INCR","b"]]"#)
                    .await;
                assert_eq!(r.status, StatusCode::OK);
                let r = api
                    .post("/multi-exec", r#"[["GET","a"],["GET","b"]]"#)
                    .await;
                let body = r.json();
                assert_eq!(body[0]["result"], body[1]["result"], "{body}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(api.cmd(json!(["GET", "a"])).await.result(), json!("200"));
}

// §6 Upstash-Response-Format ------------------------------------------------------------------

#[tokio::test]
async fn resp2_response_format() {
    let (_redis, _proxy, api) = setup();
    api.cmd(json!(["SET", "k", "v"])).await.result();
    let fmt = |path: &str, body: &str, value: &str| {
        api.request(Method::POST, path)
            .header("Upstash-Response-Format", value)
            .body(body.to_string())
    };
    let r = api.send(fmt("", r#"["GET","k"]"#, "resp2")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type(), "application/octet-stream");
    assert_eq!(r.bytes, b"$1\r\nv\r\n");
    let r = api.send(fmt("", r#"["MGET","k","nope"]"#, "resp2")).await;
    assert_eq!(r.bytes, b"*2\r\n$1\r\nv\r\n$-1\r\n");
    let r = api
        .send(fmt("/pipeline", r#"[["PING"],["INCR","n"]]"#, "resp2"))
        .await;
    assert_eq!(r.bytes, b"+PONG\r\n:1\r\n");
    let r = api.send(fmt("", r#"["GET","k"]"#, "json")).await;
    assert_eq!(r.result(), json!("v"));
    let r = api.send(fmt("", r#"["GET","k"]"#, "xml")).await;
    r.error(StatusCode::BAD_REQUEST);
    let r = api
        .send(fmt("", r#"["GET","k"]"#, "resp2").header("Upstash-Encoding", "base64"))
        .await;
    r.error(StatusCode::BAD_REQUEST);
}

// §7 Upstash-Sync-Token -----------------------------------------------------------------------

#[tokio::test]
async fn sync_token_on_every_response_and_changes_after_writes() {
    let (_redis, proxy, api) = setup();
    let mut seen = std::collections::HashSet::new();
    let replies = vec![
        api.send(
            api.request(Method::POST, "")
                .header("upstash-sync-token", "")
                .body(r#"["SET","k","v"]"#),
        )
        .await,
        api.send(
            api.request(Method::POST, "")
                .header("upstash-sync-token", "my-new-sync-token")
                .body(r#"["INCR","n"]"#),
        )
        .await,
        api.post("/pipeline", r#"[["INCR","n"]]"#).await,
        api.post("/multi-exec", r#"[["INCR","n"]]"#).await,
        api.cmd(json!([
            "EVAL",
            "return redis.call('INCR', KEYS[1])",
            1,
            "n"
        ]))
        .await,
        api.cmd(json!(["GET"])).await,
        api.send(reqwest::Client::new().post(proxy.url()).body("[]"))
            .await,
    ];
    for r in &replies {
        let token = r.sync_token();
        assert!(!token.is_empty());
        assert!(seen.insert(token), "a fresh token per response");
    }
    assert_eq!(replies[0].status, StatusCode::OK);
    assert_eq!(replies[1].status, StatusCode::OK);
}

// §8 pub/sub over SSE -------------------------------------------------------------------------

/// Read SSE `data:` lines from a streaming response until `want` lines arrived or time is up.
async fn read_data_lines(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
    want: usize,
) -> Vec<String> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut lines = Vec::new();
    loop {
        while let Some(pos) = buf.find('\n') {
            let line: String = buf.drain(..=pos).collect();
            if let Some(data) = line.trim_end().strip_prefix("data: ") {
                lines.push(data.to_string());
                if lines.len() == want {
                    return lines;
                }
            }
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => buf.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("SSE stream ended or timed out after {lines:?}: {other:?}"),
        }
    }
}

fn numsub(redis: &RedisServer, channel: &str) -> String {
    redis
        .cli(&["PUBSUB", "NUMSUB", channel])
        .lines()
        .nth(1)
        .unwrap_or("")
        .to_string()
}

fn numpat(redis: &RedisServer) -> String {
    redis.cli(&["PUBSUB", "NUMPAT"])
}

#[tokio::test]
async fn subscribe_streams_messages_and_releases_the_connection_on_disconnect() {
    let (redis, _proxy, api) = setup();
    let resp = api
        .request(Method::POST, "/subscribe/news/sport")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(resp.headers().contains_key("upstash-sync-token"));
    let mut stream = Box::pin(resp.bytes_stream());
    let mut buf = String::new();
    assert_eq!(
        read_data_lines(&mut stream, &mut buf, 2).await,
        ["subscribe,news,1", "subscribe,sport,2"]
    );
    assert_eq!(numsub(&redis, "news"), "1");
    // PUBLISH through the proxy (path form) returns the receiver count; commas pass verbatim.
    assert_eq!(api.get("/publish/news/a%2Cb%2Cc").await.result(), json!(1));
    api.cmd(json!(["PUBLISH", "sport", "{\"x\":1}"]))
        .await
        .result();
    assert_eq!(
        read_data_lines(&mut stream, &mut buf, 2).await,
        ["message,news,a,b,c", "message,sport,{\"x\":1}"]
    );
    // The client goes away: its subscription is released within a heartbeat or two.
    drop(stream);
    let r = &redis;
    support::eventually_async(
        "PUBSUB NUMSUB news to drop to 0",
        support::PATIENCE,
        || async move { numsub(r, "news") == "0" },
    )
    .await;
}

#[tokio::test]
async fn psubscribe_streams_pattern_messages() {
    let (redis, _proxy, api) = setup();
    let resp = api
        .request(Method::GET, "/psubscribe/ne*")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = Box::pin(resp.bytes_stream());
    let mut buf = String::new();
    assert_eq!(
        read_data_lines(&mut stream, &mut buf, 1).await,
        ["psubscribe,ne*,1"]
    );
    assert_eq!(
        api.cmd(json!(["PUBLISH", "news", "hi"])).await.result(),
        json!(1)
    );
    assert_eq!(
        read_data_lines(&mut stream, &mut buf, 1).await,
        ["pmessage,ne*,news,hi"]
    );
    drop(stream);
    let r = &redis;
    support::eventually_async(
        "PUBSUB NUMPAT to drop to 0",
        support::PATIENCE,
        || async move { numpat(r) == "0" },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_a_channel_share_one_subscription() {
    let (redis, _proxy, api) = setup();
    let clients_before: i64 = connected_clients(&redis);
    let mut readers = Vec::new();
    for _ in 0..100 {
        let resp = api
            .request(Method::POST, "/subscribe/live")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let mut stream = Box::pin(resp.bytes_stream());
        let mut buf = String::new();
        assert_eq!(
            read_data_lines(&mut stream, &mut buf, 1).await,
            ["subscribe,live,1"]
        );
        readers.push((stream, buf));
    }
    // One subscription, one connection (beside the proxy's command connection), for 100 readers.
    assert_eq!(numsub(&redis, "live"), "1");
    assert!(connected_clients(&redis) <= clients_before + 1);
    // Every reader gets every message, in order. Redis counts one receiver: the proxy.
    for i in 0..20 {
        let r = api.cmd(json!(["PUBLISH", "live", format!("m{i}")])).await;
        assert_eq!(r.result(), json!(1));
    }
    let want: Vec<String> = (0..20).map(|i| format!("message,live,m{i}")).collect();
    for (stream, buf) in &mut readers {
        assert_eq!(read_data_lines(stream, buf, 20).await, want);
    }
    // All but one leave: the subscription stays for the last reader.
    let (mut last, mut last_buf) = readers.pop().unwrap();
    drop(readers);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(numsub(&redis, "live"), "1");
    api.cmd(json!(["PUBLISH", "live", "still"])).await.result();
    assert_eq!(
        read_data_lines(&mut last, &mut last_buf, 1).await,
        ["message,live,still"]
    );
    // The last one leaves: unsubscribed; a new reader subscribes again.
    drop(last);
    let r = &redis;
    support::eventually_async(
        "PUBSUB NUMSUB live to drop to 0",
        support::PATIENCE,
        || async move { numsub(r, "live") == "0" },
    )
    .await;
    let resp = api
        .request(Method::POST, "/subscribe/live")
        .send()
        .await
        .unwrap();
    let mut stream = Box::pin(resp.bytes_stream());
    let mut buf = String::new();
    assert_eq!(
        read_data_lines(&mut stream, &mut buf, 1).await,
        ["subscribe,live,1"]
    );
    api.cmd(json!(["PUBLISH", "live", "again"])).await.result();
    assert_eq!(
        read_data_lines(&mut stream, &mut buf, 1).await,
        ["message,live,again"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_redis_goes_and_subscribe_works_when_it_is_back() {
    let (mut redis, _proxy, api) = setup();
    let resp = api
        .request(Method::POST, "/subscribe/gone")
        .send()
        .await
        .unwrap();
    let mut stream = Box::pin(resp.bytes_stream());
    let mut buf = String::new();
    assert_eq!(
        read_data_lines(&mut stream, &mut buf, 1).await,
        ["subscribe,gone,1"]
    );
    redis.restart();
    // The stream ends (the client reconnects, as EventSource does).
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream did not end when Redis went away");
    let deadline = Instant::now() + Duration::from_secs(10);
    let resp = loop {
        let resp = api
            .request(Method::POST, "/subscribe/gone")
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::OK {
            break resp;
        }
        assert!(
            Instant::now() < deadline,
            "no subscription after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stream = Box::pin(resp.bytes_stream());
    let mut buf = String::new();
    assert_eq!(
        read_data_lines(&mut stream, &mut buf, 1).await,
        ["subscribe,gone,1"]
    );
    api.cmd(json!(["PUBLISH", "gone", "back"])).await.result();
    assert_eq!(
        read_data_lines(&mut stream, &mut buf, 1).await,
        ["message,gone,back"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_holds_bounded_memory() {
    let (_redis, proxy, api) = setup();
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid().unwrap()))
            .expect("the proxy's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    };
    let resp = api
        .request(Method::POST, "/subscribe/firehose")
        .send()
        .await
        .unwrap();
    let mut stream = Box::pin(resp.bytes_stream());
    let mut buf = String::new();
    read_data_lines(&mut stream, &mut buf, 1).await;
    let before = rss();
    // 64 MB of messages to a reader that reads none of them.
    let payload = "x".repeat(2048);
    for _ in 0..64 {
        let batch: Vec<Value> = (0..500)
            .map(|_| json!(["PUBLISH", "firehose", payload]))
            .collect();
        let r = api.post("/pipeline", Value::Array(batch).to_string()).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown_kib = rss().saturating_sub(before);
    println!("64 MB published to a reader that reads nothing: the proxy grew by {grown_kib} KiB");
    // The socket buffers and the subscription's backlog of 1024 messages (~1 MB): far below the
    // 64 MB published.
    assert!(grown_kib < 24 * 1024, "the proxy grew by {grown_kib} KiB");
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_redis_is_a_503_not_a_400() {
    let (redis, _proxy, api) = setup();
    redis.cli(&["CONFIG", "SET", "busy-reply-threshold", "100"]);
    // A script that keeps Redis busy until it is killed (at most 60 s), on a connection of its
    // own. The request goes only once Redis says it is busy, and the script ends only when the
    // test kills it: nothing depends on when the thread gets to run.
    let port = redis.port().to_string();
    let busy = std::thread::spawn(move || {
        std::process::Command::new("redis-cli")
            .args(["-p", &port, "EVAL"])
            .arg("local t = redis.call('TIME')[1] while redis.call('TIME')[1] - t < 60 do end return 1")
            .arg("0")
            .output()
            .expect("redis-cli")
    });
    support::eventually("Redis busy with the script", support::PATIENCE, || {
        redis.cli(&["PING"]).starts_with("BUSY")
    });
    let r = api.cmd(json!(["GET", "k"])).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.json());
    assert!(
        r.json()["error"].as_str().unwrap().starts_with("BUSY"),
        "{:?}",
        r.json()
    );
    assert_eq!(redis.cli(&["SCRIPT", "KILL"]), "OK");
    let ended = busy.join().unwrap();
    assert!(
        String::from_utf8_lossy(&ended.stdout).contains("killed"),
        "the script ran until killed: {ended:?}"
    );
    assert_eq!(api.cmd(json!(["GET", "k"])).await.status, StatusCode::OK);
}

fn connected_clients(redis: &RedisServer) -> i64 {
    redis
        .cli(&["INFO", "clients"])
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("connected_clients")
}

// §9 refused commands ----------------------------------------------------------------------------

#[tokio::test]
async fn state_and_blocking_commands_are_refused_and_the_connection_stays_clean() {
    let (_redis, _proxy, api) = setup();
    for args in [
        json!(["MULTI"]),
        json!(["EXEC"]),
        json!(["DISCARD"]),
        json!(["WATCH", "k"]),
        json!(["UNWATCH"]),
        json!(["SELECT", 1]),
        json!(["AUTH", "x"]),
        json!(["HELLO", 3]),
        json!(["RESET"]),
        json!(["QUIT"]),
        json!(["CLIENT", "SETNAME", "x"]),
        json!(["SUBSCRIBE", "c"]),
        json!(["PSUBSCRIBE", "c*"]),
        json!(["MONITOR"]),
        json!(["BLPOP", "l", 0]),
        json!(["BRPOP", "l", 0]),
        json!(["BLMOVE", "a", "b", "LEFT", "LEFT", 0]),
        json!(["BRPOPLPUSH", "a", "b", 0]),
        json!(["BLMPOP", 0, 1, "l", "LEFT"]),
        json!(["BZPOPMIN", "z", 0]),
        json!(["BZPOPMAX", "z", 0]),
        json!(["BZMPOP", 0, 1, "z", "MIN"]),
        json!(["WAIT", 1, 0]),
        json!(["XREAD", "BLOCK", 0, "STREAMS", "s", "$"]),
        json!([
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            0,
            "STREAMS",
            "s",
            ">"
        ]),
    ] {
        let r = api.cmd(args.clone()).await;
        let text = r.error(StatusCode::BAD_REQUEST);
        assert!(text.starts_with("ERR"), "{args}: {text}");
    }
    // Also via the path form.
    api.get("/multi").await.error(StatusCode::BAD_REQUEST);
    // SELECT 0 is fine; the connection was never poisoned.
    assert_eq!(api.cmd(json!(["SELECT", 0])).await.result(), json!("OK"));
    for i in 0..5 {
        assert_eq!(
            api.cmd(json!(["SET", "k", i])).await.result(),
            json!("OK"),
            "not QUEUED"
        );
    }
    assert_eq!(api.cmd(json!(["GET", "k"])).await.result(), json!("4"));
    assert_eq!(
        api.cmd(json!(["XREAD", "COUNT", 1, "STREAMS", "s", "0"]))
            .await
            .result(),
        json!(null)
    );
}

// Backend behaviour ------------------------------------------------------------------------------

#[tokio::test]
async fn concurrent_requests_share_the_multiplexed_connections() {
    let (redis, _proxy, api) = setup();
    let api = std::sync::Arc::new(api);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                api.cmd(json!(["INCR", "c"])).await.result();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(redis.cli(&["GET", "c"]), "500");
    // Only a handful of Redis connections, not one per request.
    let clients: usize = redis
        .cli(&["INFO", "clients"])
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(clients <= 4, "{clients} connections");
}

#[tokio::test]
async fn redis_outage_is_503_json_fast_and_heals_after_restart() {
    let (mut redis, _proxy, api) = setup();
    assert_eq!(
        api.cmd(json!(["SET", "k", "v"])).await.result(),
        json!("OK")
    );
    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let r = api.cmd(json!(["GET", "k"])).await;
        let took = started.elapsed();
        assert!(r.status.is_server_error(), "status {}", r.status);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!r.error(StatusCode::SERVICE_UNAVAILABLE).is_empty());
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        assert!(!r.sync_token().is_empty());
    }
    let r = api.post("/pipeline", r#"[["PING"]]"#).await;
    r.error(StatusCode::SERVICE_UNAVAILABLE);
    let r = api.post("/subscribe/ch", "").await;
    r.error(StatusCode::SERVICE_UNAVAILABLE);
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = api.cmd(json!(["PING"])).await;
        if r.status == StatusCode::OK {
            assert_eq!(r.result(), json!("PONG"));
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {}", r.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every connection of the pool healed.
    for _ in 0..6 {
        assert_eq!(api.cmd(json!(["PING"])).await.result(), json!("PONG"));
    }
}

#[tokio::test]
async fn proxy_starts_while_redis_is_down() {
    let mut redis = RedisServer::start();
    redis.kill();
    let proxy = spawn_proxy(&redis, TOKEN);
    let api = Api::new(&proxy);
    api.cmd(json!(["PING"]))
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE);
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.cmd(json!(["PING"])).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// Process behaviour ------------------------------------------------------------------------------

#[tokio::test]
async fn sigterm_exits_cleanly_even_with_an_open_sse_stream() {
    let (_redis, mut proxy, api) = setup();
    assert_eq!(api.cmd(json!(["PING"])).await.result(), json!("PONG"));
    let resp = api
        .request(Method::POST, "/subscribe/c")
        .send()
        .await
        .unwrap();
    let mut stream = Box::pin(resp.bytes_stream());
    let mut buf = String::new();
    read_data_lines(&mut stream, &mut buf, 1).await;
    proxy.signal(libc::SIGTERM);
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("the proxy exits within 5 s of SIGTERM");
    assert!(status.success(), "{status:?}\n{}", proxy.log());
}

#[tokio::test]
async fn tokens_never_reach_the_log() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy_with(
        &[redis.url()],
        TOKEN,
        &["--read-only-token", "ro-secret-5521"],
        &[("RUST_LOG", "trace")],
    );
    let api = Api::new(&proxy);
    let anon = reqwest::Client::new();
    api.cmd(json!(["SET", "k", "v"])).await.result();
    api.send(anon.get(format!("{}/get/k?_token={TOKEN}", proxy.url())))
        .await
        .result();
    api.send(anon.get(format!("{}/get/k?_token=ro-secret-5521", proxy.url())))
        .await
        .result();
    api.send(anon.get(format!("{}/get/k?_token=wrong-guess-991", proxy.url())))
        .await;
    api.send(
        anon.post(proxy.url())
            .bearer_auth("wrong-guess-992")
            .body("[]"),
    )
    .await;
    let r = api
        .send(
            anon.post(proxy.url())
                .bearer_auth("ro-secret-5521")
                .body(r#"["SET","k","x"]"#),
        )
        .await;
    r.error(StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = proxy.log();
    assert!(log.contains("edgecount proxy listening on"), "{log}");
    for secret in [
        TOKEN,
        "ro-secret-5521",
        "wrong-guess-991",
        "wrong-guess-992",
    ] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
}
