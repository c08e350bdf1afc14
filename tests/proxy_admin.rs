//! Administrative commands through `edgecount proxy`: refused by default through every door,
//! allowed with `--allow-admin-commands` (flag or environment) for the token only, and the Redis
//! ACL recipe from the README that closes the path the proxy cannot see (Lua scripts). The real
//! binary in front of private redis-servers; every refused command carries arguments that would do
//! real damage if it reached Redis, and the checks afterwards look for that damage.
//! Run: `cargo test --test proxy_admin`.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::proxy::{spawn_proxy_with, ProxyProcess};
use support::RedisServer;

const TOKEN: &str = "admin-test-token-5c2e";
const READ_ONLY_TOKEN: &str = "admin-test-ro-token-91b7";

fn refusal(command: &str) -> String {
    format!(
        "ERR {command} is an administrative command, disabled on this proxy (start it with --allow-admin-commands to allow it)"
    )
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(proxy: &ProxyProcess, token: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            base: proxy.url().to_string(),
            token: token.to_string(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request reaches the proxy");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}), status {status}: {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, body)
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).body(body))
            .await
    }

    async fn cmd(&self, args: &Value) -> (StatusCode, Value) {
        self.post("/", args.to_string()).await
    }

    /// `POST /` that must succeed: the result.
    async fn result(&self, args: Value) -> Value {
        let (status, body) = self.cmd(&args).await;
        assert_eq!(status, StatusCode::OK, "{args}: {body}");
        body["result"].clone()
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }
}

/// `/ARG/ARG…` with every argument percent-encoded.
fn path_of(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("/{}", utf8_percent_encode(a, NON_ALPHANUMERIC)))
        .collect()
}

fn strings(args: &Value) -> Vec<String> {
    args.as_array()
        .unwrap()
        .iter()
        .map(|a| match a {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// Refused through `POST /`, `/pipeline` (inline entry, its neighbours still run), `/multi-exec`
/// (the whole transaction, nothing sent), the path form with GET, and the path form with POST (the
/// last argument as the body). Each answer comes before one `DEBUG SLEEP` could have ended (30 s,
/// so a loaded box has room): it never ran (and `assert_never_reached` checks Redis saw none).
/// How long the refused `DEBUG SLEEP` would block Redis: far beyond five refusals on any box.
const DEBUG_SLEEP_S: u64 = 30;

async fn assert_refused_everywhere(api: &Api, args: &Value, named: &str) {
    let expected = refusal(named);
    let started = Instant::now();

    let (status, body) = api.cmd(args).await;
    assert_eq!(
        (status, &body),
        (StatusCode::BAD_REQUEST, &json!({ "error": expected })),
        "POST / {args}"
    );

    let pipeline = json!([["SET", "door", "pipeline"], args, ["GET", "door"]]);
    let (status, body) = api.post("/pipeline", pipeline.to_string()).await;
    assert_eq!(status, StatusCode::OK, "/pipeline {args}: {body}");
    assert_eq!(
        body,
        json!([{"result": "OK"}, {"error": expected}, {"result": "pipeline"}]),
        "/pipeline {args}"
    );

    let transaction = json!([["SET", "multi-exec-ran", "1"], args]);
    let (status, body) = api.post("/multi-exec", transaction.to_string()).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "/multi-exec {args}: {body}"
    );
    let text = body["error"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("EXECABORT") && text.contains(&expected),
        "/multi-exec {args}: {body}"
    );
    assert_eq!(
        api.result(json!(["EXISTS", "multi-exec-ran"])).await,
        json!(0),
        "/multi-exec {args} sent its first command"
    );

    let parts = strings(args);
    let (status, body) = api.get(&path_of(&parts)).await;
    assert_eq!(
        (status, &body),
        (StatusCode::BAD_REQUEST, &json!({ "error": expected })),
        "GET {}",
        path_of(&parts)
    );

    let (last, head) = parts.split_last().unwrap();
    let (path, post_body) = if head.is_empty() {
        (path_of(&parts), String::new())
    } else {
        (path_of(head), last.clone())
    };
    let (status, body) = api.post(&path, post_body.clone()).await;
    assert_eq!(
        (status, &body),
        (StatusCode::BAD_REQUEST, &json!({ "error": expected })),
        "POST {path} with body {post_body:?}"
    );

    assert!(
        started.elapsed() < Duration::from_secs(DEBUG_SLEEP_S),
        "{args}: the five refusals took {:?}",
        started.elapsed()
    );
}

/// Settings an administrative command would change, as `CONFIG GET` shows them.
const WATCHED_SETTINGS: &[&str] = &[
    "maxmemory",
    "maxmemory-policy",
    "save",
    "appendonly",
    "dir",
    "requirepass",
    "replica-read-only",
];

fn settings(redis: &RedisServer) -> Vec<String> {
    WATCHED_SETTINGS
        .iter()
        .map(|name| redis.cli(&["CONFIG", "GET", name]))
        .collect()
}

#[tokio::test]
async fn administrative_commands_are_refused_through_every_door_and_change_nothing() {
    // Redis 7 refuses DEBUG and MODULE itself unless told otherwise: tell it, so they would bite.
    let redis = RedisServer::with_args(&[
        "--enable-debug-command",
        "yes",
        "--enable-module-command",
        "yes",
    ]);
    let elsewhere = RedisServer::start();
    let proxy = spawn_proxy_with(
        &[redis.url()],
        TOKEN,
        &["--read-only-token", READ_ONLY_TOKEN],
        &[],
    );
    let api = Api::new(&proxy, TOKEN);
    let read_only = Api::new(&proxy, READ_ONLY_TOKEN);
    assert_eq!(
        api.result(json!(["SET", "precious", "v"])).await,
        json!("OK")
    );
    let settings_before = settings(&redis);
    let elsewhere_port = elsewhere.port().to_string();

    // (arguments, the name in the refusal, its INFO commandstats entry had it reached Redis;
    // CONFIG GET is left out there because the checks below use it).
    let refused: Vec<(Value, &str, &str)> = vec![
        (json!(["SHUTDOWN", "NOSAVE"]), "SHUTDOWN", "shutdown"),
        (json!(["shutdown"]), "SHUTDOWN", "shutdown"),
        (
            json!(["REPLICAOF", "127.0.0.1", elsewhere_port]),
            "REPLICAOF",
            "replicaof",
        ),
        (
            json!(["slaveof", "127.0.0.1", elsewhere_port]),
            "SLAVEOF",
            "slaveof",
        ),
        (json!(["FAILOVER"]), "FAILOVER", "failover"),
        (
            json!(["MIGRATE", "127.0.0.1", elsewhere_port, "precious", 0, 5000]),
            "MIGRATE",
            "migrate",
        ),
        (
            json!([
                "MIGRATE",
                "127.0.0.1",
                elsewhere_port,
                "",
                0,
                5000,
                "COPY",
                "KEYS",
                "precious"
            ]),
            "MIGRATE",
            "migrate",
        ),
        (json!(["SWAPDB", 0, 1]), "SWAPDB", "swapdb"),
        (
            json!(["CONFIG", "SET", "maxmemory", "1mb"]),
            "CONFIG",
            "config|set",
        ),
        (
            json!(["config", "set", "dir", "/tmp", "save", "1 1"]),
            "CONFIG",
            "config|set",
        ),
        (json!(["CONFIG", "GET", "requirepass"]), "CONFIG", ""),
        (json!(["CONFIG", "REWRITE"]), "CONFIG", "config|rewrite"),
        (json!(["CONFIG", "RESETSTAT"]), "CONFIG", "config|resetstat"),
        (
            json!(["ACL", "SETUSER", "evil", "on", ">pw", "~*", "&*", "+@all"]),
            "ACL",
            "acl|setuser",
        ),
        (json!(["ACL", "LIST"]), "ACL", "acl|list"),
        (
            json!(["MODULE", "LOAD", "/nonexistent.so"]),
            "MODULE",
            "module|load",
        ),
        (json!(["SAVE"]), "SAVE", "save"),
        (json!(["BGSAVE"]), "BGSAVE", "bgsave"),
        (json!(["BGREWRITEAOF"]), "BGREWRITEAOF", "bgrewriteaof"),
        (json!(["DEBUG", "SLEEP", DEBUG_SLEEP_S]), "DEBUG", "debug"),
        (json!(["DEBUG", "RELOAD"]), "DEBUG", "debug"),
        (json!(["DEBUG", "SEGFAULT"]), "DEBUG", "debug"),
        (json!(["PFSELFTEST"]), "PFSELFTEST", "pfselftest"),
        (json!(["SLOWLOG", "RESET"]), "SLOWLOG", "slowlog|reset"),
        (json!(["LATENCY", "RESET"]), "LATENCY", "latency|reset"),
        (
            json!(["CLUSTER", "RESET", "HARD"]),
            "CLUSTER RESET",
            "cluster|reset",
        ),
        (
            json!(["cluster", "meet", "127.0.0.1", elsewhere_port]),
            "CLUSTER MEET",
            "cluster|meet",
        ),
        (
            json!(["CLUSTER", "ADDSLOTS", 1, 2, 3]),
            "CLUSTER ADDSLOTS",
            "cluster|addslots",
        ),
        (
            json!(["CLUSTER", "FLUSHSLOTS"]),
            "CLUSTER FLUSHSLOTS",
            "cluster|flushslots",
        ),
    ];
    for (args, named, _) in &refused {
        assert_refused_everywhere(&api, args, named).await;
        // The read-only token hears NOPERM, not about a flag that would not help it.
        let (status, body) = read_only.cmd(args).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "read-only {args}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("NOPERM"),
            "read-only {args}: {body}"
        );
    }

    // Nothing reached Redis: it never counted them (it counts even the calls it rejects), it is
    // up, still a master, has one user, the same settings, the key where it was (not swapped
    // away, not migrated), and no dump or AOF file in its directory.
    let stats: Vec<&str> = refused
        .iter()
        .map(|(_, _, stat)| *stat)
        .filter(|stat| !stat.is_empty())
        .collect();
    assert_never_reached(&redis, &stats);
    assert!(redis.ping(), "redis is down");
    assert_eq!(redis.cli(&["ROLE"]).lines().next(), Some("master"));
    let users = redis.cli(&["ACL", "LIST"]);
    assert_eq!(users.lines().count(), 1, "{users}");
    assert!(users.starts_with("user default "), "{users}");
    assert_eq!(settings(&redis), settings_before);
    assert_eq!(redis.cli(&["GET", "precious"]), "v");
    assert_eq!(redis.cli(&["-n", "1", "DBSIZE"]), "0");
    assert_eq!(elsewhere.cli(&["DBSIZE"]), "0");
    assert_eq!(elsewhere.cli(&["ROLE"]).lines().nth(2), None, "a replica");
    let files: Vec<_> = std::fs::read_dir(redis.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(files.is_empty(), "redis wrote {files:?}");
    // And the proxy still serves the data.
    assert_eq!(api.result(json!(["GET", "precious"])).await, json!("v"));
}

#[tokio::test]
async fn data_and_informational_commands_still_pass() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy_with(&[redis.url()], TOKEN, &[], &[]);
    let api = Api::new(&proxy, TOKEN);
    api.result(json!(["SET", "k", "v"])).await;
    // DUMP's payload is binary: base64 out, the raw bytes back in as a path-form body.
    let (status, body) = api
        .send(
            api.http
                .post(&api.base)
                .header("Upstash-Encoding", "base64")
                .body(json!(["DUMP", "k"]).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dump = base64::engine::general_purpose::STANDARD
        .decode(body["result"].as_str().unwrap())
        .unwrap();
    let (status, body) = api.post("/restore/k2/0", dump).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": "OK"})));
    assert_eq!(api.result(json!(["GET", "k2"])).await, json!("v"));
    assert_eq!(
        api.result(json!(["ROLE"])).await[0],
        json!("master"),
        "ROLE"
    );
    assert!(api.result(json!(["LASTSAVE"])).await.is_i64());
    assert!(api
        .result(json!(["INFO", "server"]))
        .await
        .as_str()
        .unwrap()
        .contains("redis_version"));
    assert_eq!(api.result(json!(["SCRIPT", "FLUSH"])).await, json!("OK"));
    assert_eq!(api.result(json!(["FUNCTION", "FLUSH"])).await, json!("OK"));
    assert_eq!(api.result(json!(["FLUSHDB"])).await, json!("OK"));
    assert_eq!(api.result(json!(["FLUSHALL"])).await, json!("OK"));
    // CLUSTER's informational subcommands reach Redis (which answers that cluster mode is off).
    let (status, body) = api.cmd(&json!(["CLUSTER", "INFO"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("cluster support"),
        "{body}"
    );
}

/// The `INFO commandstats` line of each command (`config|set`) must be absent: Redis counts even
/// the calls it rejects, so an absent line means the command never reached it.
fn assert_never_reached(redis: &RedisServer, stats: &[&str]) {
    let seen = redis.cli(&["INFO", "commandstats"]);
    for stat in stats {
        assert!(
            !seen.contains(&format!("cmdstat_{stat}:")),
            "{stat} reached Redis:\n{seen}"
        );
    }
}

/// One `CLUSTER INFO` field, e.g. `cluster_slots_assigned`.
fn cluster_info(node: &RedisServer, field: &str) -> String {
    node.cli(&["CLUSTER", "INFO"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in CLUSTER INFO"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn cluster_topology_commands_are_refused_and_informational_ones_answered() {
    // A one-node cluster that serves every slot, so the proxy can use it like a standalone Redis.
    let node = RedisServer::with_args(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ]);
    assert_eq!(node.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), "OK");
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster_info(&node, "cluster_state") != "ok" {
        assert!(
            Instant::now() < deadline,
            "the one-node cluster did not become ok"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let elsewhere = RedisServer::start();
    let proxy = spawn_proxy_with(&[node.url()], TOKEN, &[], &[]);
    let api = Api::new(&proxy, TOKEN);
    let myid = node.cli(&["CLUSTER", "MYID"]);
    let epoch = cluster_info(&node, "cluster_current_epoch");
    let elsewhere_port = elsewhere.port().to_string();
    let refused = [
        (
            json!(["CLUSTER", "RESET", "HARD"]),
            "CLUSTER RESET",
            "cluster|reset",
        ),
        (
            json!(["CLUSTER", "FLUSHSLOTS"]),
            "CLUSTER FLUSHSLOTS",
            "cluster|flushslots",
        ),
        (
            json!(["CLUSTER", "DELSLOTSRANGE", 0, 16383]),
            "CLUSTER DELSLOTSRANGE",
            "cluster|delslotsrange",
        ),
        (
            json!(["CLUSTER", "DELSLOTS", 1, 2]),
            "CLUSTER DELSLOTS",
            "cluster|delslots",
        ),
        (
            json!(["CLUSTER", "SETSLOT", 5, "MIGRATING", myid]),
            "CLUSTER SETSLOT",
            "cluster|setslot",
        ),
        (
            json!(["CLUSTER", "ADDSLOTS", 1]),
            "CLUSTER ADDSLOTS",
            "cluster|addslots",
        ),
        (
            json!(["cluster", "meet", "127.0.0.1", elsewhere_port]),
            "CLUSTER MEET",
            "cluster|meet",
        ),
        (
            json!(["CLUSTER", "FORGET", myid]),
            "CLUSTER FORGET",
            "cluster|forget",
        ),
        (
            json!(["CLUSTER", "REPLICATE", myid]),
            "CLUSTER REPLICATE",
            "cluster|replicate",
        ),
        (
            json!(["CLUSTER", "FAILOVER", "TAKEOVER"]),
            "CLUSTER FAILOVER",
            "cluster|failover",
        ),
        (
            json!(["CLUSTER", "BUMPEPOCH"]),
            "CLUSTER BUMPEPOCH",
            "cluster|bumpepoch",
        ),
        (
            json!(["CLUSTER", "SET-CONFIG-EPOCH", 7]),
            "CLUSTER SET-CONFIG-EPOCH",
            "cluster|set-config-epoch",
        ),
        (
            json!(["CLUSTER", "SAVECONFIG"]),
            "CLUSTER SAVECONFIG",
            "cluster|saveconfig",
        ),
    ];
    for (args, named, _) in &refused {
        assert_refused_everywhere(&api, args, named).await;
    }
    let stats: Vec<&str> = refused.iter().map(|(_, _, stat)| *stat).collect();
    assert_never_reached(&node, &stats);
    assert_eq!(node.cli(&["CLUSTER", "MYID"]), myid);
    assert_eq!(cluster_info(&node, "cluster_slots_assigned"), "16384");
    assert_eq!(cluster_info(&node, "cluster_known_nodes"), "1");
    assert_eq!(cluster_info(&node, "cluster_current_epoch"), epoch);
    assert_eq!(cluster_info(&node, "cluster_state"), "ok");

    // What cluster-aware clients ask still passes.
    let info = api.result(json!(["CLUSTER", "INFO"])).await;
    assert!(
        info.as_str()
            .unwrap()
            .contains("cluster_slots_assigned:16384"),
        "{info}"
    );
    assert_eq!(api.result(json!(["CLUSTER", "MYID"])).await, json!(myid));
    assert_eq!(
        api.result(json!(["cluster", "keyslot", "k"])).await,
        json!(7629)
    );
    let slots = api.result(json!(["CLUSTER", "SLOTS"])).await;
    assert_eq!(
        (&slots[0][0], &slots[0][1]),
        (&json!(0), &json!(16383)),
        "{slots}"
    );
    assert!(api
        .result(json!(["CLUSTER", "NODES"]))
        .await
        .as_str()
        .unwrap()
        .contains(&myid));
    assert!(api.result(json!(["CLUSTER", "SHARDS"])).await.is_array());
    assert_eq!(
        api.result(json!(["CLUSTER", "COUNTKEYSINSLOT", 7629]))
            .await,
        json!(0)
    );
}

/// Poll the proxy's log for `needle` (its tracing lines come right after the listening line).
async fn wait_for_log(proxy: &ProxyProcess, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if proxy.log().contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn allow_admin_commands_flag_lets_the_token_administer_but_not_the_read_only_token() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy_with(
        &[redis.url()],
        TOKEN,
        &[
            "--allow-admin-commands",
            "--read-only-token",
            READ_ONLY_TOKEN,
        ],
        &[],
    );
    assert!(
        wait_for_log(&proxy, "--allow-admin-commands is on").await,
        "no startup warning:\n{}",
        proxy.log()
    );
    assert!(proxy.log().contains("WARN"), "{}", proxy.log());
    let api = Api::new(&proxy, TOKEN);
    assert_eq!(
        api.result(json!(["CONFIG", "GET", "maxmemory"])).await,
        json!(["maxmemory", "0"])
    );
    assert_eq!(api.result(json!(["ACL", "WHOAMI"])).await, json!("default"));
    let (status, body) = api.get("/acl/whoami").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"result": "default"}))
    );
    let (status, body) = api
        .post(
            "/pipeline",
            json!([["ACL", "WHOAMI"], ["CLUSTER", "COUNT-FAILURE-REPORTS", "x"]]).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0], json!({"result": "default"}));
    // Reached Redis: its own answer, not the proxy's refusal.
    assert!(
        body[1]["error"]
            .as_str()
            .unwrap()
            .contains("cluster support"),
        "{body}"
    );
    let (status, body) = api
        .post("/multi-exec", json!([["ACL", "WHOAMI"]]).to_string())
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!([{"result": "default"}]))
    );

    let read_only = Api::new(&proxy, READ_ONLY_TOKEN);
    for args in [
        json!(["CONFIG", "GET", "maxmemory"]),
        json!(["ACL", "WHOAMI"]),
        json!(["SHUTDOWN", "NOSAVE"]),
    ] {
        let (status, body) = read_only.cmd(&args).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{args}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("NOPERM"),
            "{args}: {body}"
        );
    }
    let (status, body) = read_only.get("/config/get/maxmemory").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(redis.ping(), "the read-only SHUTDOWN reached Redis");
}

#[tokio::test]
async fn allow_admin_commands_environment_variable() {
    let redis = RedisServer::start();
    let on = spawn_proxy_with(
        &[redis.url()],
        TOKEN,
        &[],
        &[("EDGECOUNT_ALLOW_ADMIN_COMMANDS", "true")],
    );
    let api = Api::new(&on, TOKEN);
    assert_eq!(api.result(json!(["ACL", "WHOAMI"])).await, json!("default"));
    assert!(wait_for_log(&on, "--allow-admin-commands is on").await);

    let off = spawn_proxy_with(
        &[redis.url()],
        TOKEN,
        &[],
        &[("EDGECOUNT_ALLOW_ADMIN_COMMANDS", "false")],
    );
    let (status, body) = Api::new(&off, TOKEN).cmd(&json!(["ACL", "WHOAMI"])).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({ "error": refusal("ACL") }))
    );
    assert!(!off.log().contains("--allow-admin-commands is on"));
}

/// The README's recipe for the path the proxy cannot see. As Redis's default user a script can
/// still call SWAPDB and MIGRATE (Redis 7.0 marks neither `noscript`); as a user made with
/// `ACL SETUSER edgecount on >PASSWORD ~* &* +@all -@admin -migrate -swapdb` it cannot, and
/// everything a REST client does still works.
#[tokio::test]
async fn the_readme_acl_recipe_closes_the_lua_path() {
    const SWAPDB_SCRIPT: &str = "return redis.call('SWAPDB',0,1)";
    let redis = RedisServer::start();
    let elsewhere = RedisServer::start();
    let migrate_script = format!(
        "return redis.call('MIGRATE','127.0.0.1',{},'precious',0,5000,'COPY')",
        elsewhere.port()
    );

    // Without the recipe: the script path is open (this is why the README recipe exists).
    {
        let proxy = spawn_proxy_with(&[redis.url()], TOKEN, &[], &[]);
        let api = Api::new(&proxy, TOKEN);
        api.result(json!(["SET", "precious", "v"])).await;
        assert_eq!(
            api.result(json!(["EVAL", SWAPDB_SCRIPT, 0])).await,
            json!("OK")
        );
        assert_eq!(
            redis.cli(&["-n", "1", "GET", "precious"]),
            "v",
            "SWAPDB ran"
        );
        assert_eq!(
            api.result(json!(["EVAL", SWAPDB_SCRIPT, 0])).await,
            json!("OK")
        );
        assert_eq!(
            api.result(json!(["EVAL", &migrate_script, 0])).await,
            json!("OK")
        );
        assert_eq!(elsewhere.cli(&["GET", "precious"]), "v", "MIGRATE ran");
        assert_eq!(elsewhere.cli(&["FLUSHALL"]), "OK");
    }

    let created = redis.cli(&[
        "ACL",
        "SETUSER",
        "edgecount",
        "on",
        ">recipe-pw-4411",
        "~*",
        "&*",
        "+@all",
        "-@admin",
        "-migrate",
        "-swapdb",
    ]);
    assert_eq!(created, "OK");
    let url = format!(
        "redis://edgecount:recipe-pw-4411@127.0.0.1:{}",
        redis.port()
    );
    let proxy = spawn_proxy_with(&[url], TOKEN, &["--allow-admin-commands"], &[]);
    let api = Api::new(&proxy, TOKEN);
    for script in [SWAPDB_SCRIPT, migrate_script.as_str()] {
        let (status, body) = api.cmd(&json!(["EVAL", script, 0])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{script}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("can't run this command"),
            "{script}: {body}"
        );
    }
    // Even with --allow-admin-commands the ACL user cannot administer the server directly.
    for args in [
        json!(["SWAPDB", 0, 1]),
        json!(["CONFIG", "SET", "maxmemory", "1mb"]),
        json!(["ACL", "SETUSER", "evil", "on", ">pw", "+@all"]),
        json!(["SHUTDOWN", "NOSAVE"]),
    ] {
        let (status, body) = api.cmd(&args).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{args}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("NOPERM"),
            "{args}: {body}"
        );
    }
    assert!(redis.ping());
    assert_eq!(redis.cli(&["GET", "precious"]), "v");
    assert_eq!(redis.cli(&["-n", "1", "DBSIZE"]), "0");
    assert_eq!(elsewhere.cli(&["DBSIZE"]), "0");
    assert_eq!(redis.cli(&["CONFIG", "GET", "maxmemory"]), "maxmemory\n0");
    assert_eq!(redis.cli(&["ACL", "USERS"]), "default\nedgecount");

    // What REST clients do still works as that user.
    assert_eq!(api.result(json!(["INCR", "hits"])).await, json!(1));
    assert_eq!(
        api.result(json!([
            "EVAL",
            "return redis.call('INCR', KEYS[1])",
            1,
            "hits"
        ]))
        .await,
        json!(2)
    );
    let sha = api.result(json!(["SCRIPT", "LOAD", "return 7"])).await;
    assert_eq!(api.result(json!(["EVALSHA", sha, 0])).await, json!(7));
    let (status, body) = api
        .post("/pipeline", r#"[["SET","a","1"],["GET","a"]]"#)
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!([{"result": "OK"}, {"result": "1"}]))
    );
    let (status, body) = api
        .post("/multi-exec", r#"[["INCR","a"],["GET","a"]]"#)
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!([{"result": 2}, {"result": "2"}]))
    );
    assert_eq!(api.result(json!(["PUBLISH", "news", "x"])).await, json!(0));
    assert_eq!(api.result(json!(["FLUSHDB"])).await, json!("OK"));
}

/// Redis hashes a command name whole but compares it only up to a NUL byte, so one in a few
/// hundred of `CONFIG\0<n>` finds CONFIG. The proxy must read names the way Redis does.
#[tokio::test]
async fn a_nul_byte_does_not_smuggle_a_command_past_the_tables() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy_with(&[redis.url()], TOKEN, &[], &[]);
    let api = Api::new(&proxy, TOKEN);
    let pipeline: Vec<Value> = (0..3000)
        .map(|n| json!([format!("CONFIG\u{0}{n}"), "SET", "maxmemory", "1mb"]))
        .collect();
    let (status, body) = api.post("/pipeline", json!(pipeline).to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let expected = json!({ "error": refusal("CONFIG") });
    let passed: Vec<_> = body
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, entry)| **entry != expected)
        .collect();
    let ran = passed
        .iter()
        .filter(|(_, e)| e.get("result").is_some())
        .count();
    assert!(
        passed.is_empty(),
        "{} not refused, {ran} of them ran as CONFIG SET; the first: {:?}",
        passed.len(),
        passed.first()
    );
    assert_eq!(redis.cli(&["CONFIG", "GET", "maxmemory"]), "maxmemory\n0");
    let (status, body) = api.cmd(&json!(["SHUTDOWN\u{0}", "NOSAVE"])).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": refusal("SHUTDOWN") })
        )
    );
    // The same reading keeps a blocking XREAD off the shared connections.
    let (status, body) = api
        .cmd(&json!(["XREAD", "BLOCK\u{0}x", 0, "STREAMS", "s", "$"]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(redis.ping());
}
