//! `edgecount proxy --replica-url …` in front of a primary and two replicas (private
//! redis-servers): reads go to replicas, a read that presents the sync token of a write never
//! misses that write, and `--durable-writes` acknowledges a write only once replicas have it.
//! Run: `cargo test --test proxy_replicas`.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::proxy::{spawn_proxy_with, ProxyProcess};
use support::RedisServer;

const TOKEN: &str = "replica-token-3c";

/// A primary that feeds new replicas at once (Redis waits 5 s by default, for more replicas to
/// share one diskless transfer).
fn primary() -> RedisServer {
    RedisServer::with_args(&["--repl-diskless-sync-delay", "0"])
}

/// A replica of `primary`, synchronised before it is returned.
fn replica_of(primary: &RedisServer) -> RedisServer {
    let port = primary.port().to_string();
    let replica = RedisServer::with_args(&["--replicaof", "127.0.0.1", &port]);
    // Both ends must agree: the replica's link is up, and the primary counts it online (only
    // then does `WAIT` count its acknowledgements).
    let online = format!("port={},state=online", replica.port());
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(replica
        .cli(&["INFO", "replication"])
        .contains("master_link_status:up")
        && primary.cli(&["INFO", "replication"]).contains(&online))
    {
        assert!(Instant::now() < deadline, "replica did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
    replica
}

fn proxy_with_replicas(
    primary: &RedisServer,
    replicas: &[&RedisServer],
    extra: &[&str],
) -> ProxyProcess {
    let mut args: Vec<String> = Vec::new();
    for r in replicas {
        args.extend(["--replica-url".to_owned(), r.url()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_proxy_with(&[primary.url()], TOKEN, &args, &[])
}

/// One command; its status, JSON body and sync token.
async fn command(
    http: &reqwest::Client,
    proxy: &ProxyProcess,
    body: Value,
    sync_token: Option<&str>,
) -> (u16, Value, String) {
    let mut request = http
        .post(format!("{}/", proxy.url()))
        .bearer_auth(TOKEN)
        .body(body.to_string());
    if let Some(token) = sync_token {
        request = request.header("upstash-sync-token", token);
    }
    let response = request.send().await.expect("proxy answers");
    let status = response.status().as_u16();
    let token = response
        .headers()
        .get("upstash-sync-token")
        .expect("every answer has a sync token")
        .to_str()
        .unwrap()
        .to_owned();
    (status, response.json().await.unwrap(), token)
}

/// `edgecount_proxy_replica_reads_total{served_by=…}` from the proxy's `/metrics`.
async fn replica_reads(http: &reqwest::Client, proxy: &ProxyProcess, served_by: &str) -> u64 {
    let text = http
        .get(format!("{}/metrics", proxy.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("edgecount_proxy_replica_reads_total{{served_by=\"{served_by}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// `cmdstat_<command>` calls on one server.
fn calls(server: &RedisServer, command: &str) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_the_token_of_a_write_always_sees_it() {
    let primary = primary();
    let (r1, r2) = (replica_of(&primary), replica_of(&primary));
    let proxy = proxy_with_replicas(&primary, &[&r1, &r2], &[]);
    let http = reqwest::Client::new();

    // r1 falls behind now and then: `CLIENT PAUSE … WRITE` on a replica stops it applying its
    // primary's stream while it still answers reads (and says `connected`), as a replica under
    // load or across a slow link would.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lag = {
        let (url, stop) = (r1.url(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
            let deadline = Instant::now() + Duration::from_secs(240);
            let mut pauses = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let _: () = redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(40)
                    .arg("WRITE")
                    .query(&mut conn)
                    .unwrap();
                pauses += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            pauses
        })
    };

    // 20 clients × 500: write, then read with the write's token — 10,000 pairs.
    let (clients, rounds) = (20, 500);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let http = http.clone();
            let url = proxy.url().to_owned();
            tokio::spawn(async move {
                let key = format!("ryw{c}");
                let mut stale = Vec::new();
                for round in 1..=rounds {
                    let send = |body: Value, token: Option<String>| {
                        let mut request = http.post(&url).bearer_auth(TOKEN).body(body.to_string());
                        if let Some(token) = token {
                            request = request.header("upstash-sync-token", token);
                        }
                        request.send()
                    };
                    let wrote = send(json!(["INCR", key]), None).await.expect("INCR");
                    assert_eq!(wrote.status(), 200);
                    let token = wrote.headers()["upstash-sync-token"]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    let body: Value = wrote.json().await.unwrap();
                    assert_eq!(body, json!({"result": round}));
                    let read = send(json!(["GET", key]), Some(token)).await.expect("GET");
                    assert_eq!(read.status(), 200);
                    let body: Value = read.json().await.unwrap();
                    if body != json!({"result": round.to_string()}) {
                        stale.push((round, body));
                    }
                }
                stale
            })
        })
        .collect();
    let mut stale = Vec::new();
    for task in tasks {
        stale.extend(
            tokio::time::timeout(Duration::from_secs(240), task)
                .await
                .expect("the pairs finish in time")
                .unwrap(),
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let pauses = lag.await.unwrap();

    let by_replica = replica_reads(&http, &proxy, "replica").await;
    let behind = replica_reads(&http, &proxy, "primary-replica-behind").await;
    let failed = replica_reads(&http, &proxy, "primary-replica-failed").await;
    println!(
        "10,000 write→read pairs, r1 paused {pauses} times: {by_replica} reads by a replica, \
         {behind} by the primary (replica behind the token), {failed} by the primary (replica \
         failed), {} stale",
        stale.len()
    );
    assert!(
        stale.is_empty(),
        "stale reads: {:?}",
        &stale[..stale.len().min(5)]
    );
    assert_eq!(by_replica + behind + failed, 10_000);
    assert_eq!(failed, 0);
    // Both ways were taken: replicas answered, and a replica behind the token was passed over
    // (so the check above is not vacuous).
    assert!(
        by_replica > 1_000,
        "only {by_replica} reads reached a replica"
    );
    assert!(behind > 0, "no read found its replica behind");
    assert!(calls(&r1, "get") > 0 && calls(&r2, "get") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_without_a_token_are_spread_and_tokens_are_offsets() {
    let primary = primary();
    let (r1, mut r2) = (replica_of(&primary), replica_of(&primary));
    let proxy = proxy_with_replicas(&primary, &[&r1, &r2], &[]);
    let http = reqwest::Client::new();

    let (status, body, token) = command(&http, &proxy, json!(["SET", "spread", "v"]), None).await;
    assert_eq!((status, body), (200, json!({"result": "OK"})));
    // The token is the primary's replication offset after the write.
    let offset: u64 = token.parse().expect("a number");
    let now: u64 = primary
        .cli(&["INFO", "replication"])
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        offset > 0 && offset <= now,
        "token {offset}, offset now {now}"
    );

    // Without a token (and with the empty one @upstash/redis sends first): spread over both. No
    // token promises no freshness, so first let both replicas have the write.
    let deadline = Instant::now() + Duration::from_secs(10);
    while [&r1, &r2]
        .iter()
        .any(|r| r.cli(&["EXISTS", "spread"]) != "1")
    {
        assert!(
            Instant::now() < deadline,
            "the replicas did not get the write"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let gets_before = calls(&primary, "get");
    for i in 0..400 {
        let token = (i % 2 == 0).then_some("");
        let (status, body, _) = command(&http, &proxy, json!(["GET", "spread"]), token).await;
        assert_eq!((status, body), (200, json!({"result": "v"})));
    }
    let (on_r1, on_r2) = (calls(&r1, "get"), calls(&r2, "get"));
    println!("400 reads without a token: {on_r1} on one replica, {on_r2} on the other");
    assert_eq!(
        calls(&primary, "get"),
        gets_before,
        "the primary answered reads"
    );
    assert!(
        on_r1 >= 150 && on_r2 >= 150,
        "not spread: {on_r1} and {on_r2}"
    );
    assert_eq!(on_r1 + on_r2, 400);

    // A token that is not an offset is accepted; the primary answers it.
    let (status, body, _) = command(
        &http,
        &proxy,
        json!(["GET", "spread"]),
        Some("my-new-sync-token"),
    )
    .await;
    assert_eq!((status, body), (200, json!({"result": "v"})));
    assert_eq!(calls(&primary, "get"), gets_before + 1);

    // Writes, scripts and pipelines with a write go to the primary; a read-only pipeline to a
    // replica. Every answer's token is an offset.
    let (status, body) = {
        let response = http
            .post(format!("{}/pipeline", proxy.url()))
            .bearer_auth(TOKEN)
            .body(json!([["GET", "spread"], ["STRLEN", "spread"]]).to_string())
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(
        (status, body),
        (200, json!([{"result": "v"}, {"result": 1}]))
    );
    assert_eq!(calls(&primary, "strlen"), 0);
    let (status, body, token) = command(
        &http,
        &proxy,
        json!(["EVAL", "return redis.call('INCR', KEYS[1])", "1", "n"]),
        None,
    )
    .await;
    assert_eq!((status, body), (200, json!({"result": 1})));
    assert!(token.parse::<u64>().unwrap() > offset);

    // A replica that goes away: reads fall back to the primary and still succeed.
    r2.kill();
    for _ in 0..20 {
        let (status, body, _) = command(&http, &proxy, json!(["GET", "spread"]), None).await;
        assert_eq!((status, body), (200, json!({"result": "v"})));
    }
    assert!(replica_reads(&http, &proxy, "primary-replica-failed").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_its_primary_answers_nothing() {
    let primary = primary();
    let (r1, r2) = (replica_of(&primary), replica_of(&primary));
    let proxy = proxy_with_replicas(&primary, &[&r1, &r2], &[]);
    let http = reqwest::Client::new();
    command(&http, &proxy, json!(["SET", "k", "old"]), None).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while r2.cli(&["GET", "k"]) != "old" {
        assert!(Instant::now() < deadline, "replica did not get the write");
        std::thread::sleep(Duration::from_millis(20));
    }
    // r2 now follows a primary that does not exist: its link is down, its data frozen.
    r2.cli(&["REPLICAOF", "127.0.0.1", "1"]);
    let (status, _, token) = command(&http, &proxy, json!(["SET", "k", "new"]), None).await;
    assert_eq!(status, 200);
    let asked_before = calls(&r2, "get");
    for _ in 0..50 {
        let (_, body, _) = command(&http, &proxy, json!(["GET", "k"]), Some(&token)).await;
        assert_eq!(body, json!({"result": "new"}));
    }
    // The proxy asked it (ROLE said it is cut off) but took no answer from it; r1 answered.
    assert!(calls(&r2, "role") > 0);
    assert_eq!(calls(&r2, "get"), asked_before + 25);
    assert_eq!(
        r2.cli(&["GET", "k"]),
        "old",
        "the cut-off replica kept its old data"
    );
    assert!(calls(&r1, "get") >= 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_wait_for_replicas_or_say_they_could_not() {
    let primary = primary();
    let (r1, mut r2) = (replica_of(&primary), replica_of(&primary));
    // Durable writes need no --replica-url: replicas of the primary are enough.
    // A second to confirm: on a loaded CI box a replica's acknowledgement can take a few hundred
    // milliseconds.
    let proxy = spawn_proxy_with(
        &[primary.url()],
        TOKEN,
        &["--durable-writes", "2/1000"],
        &[],
    );
    let http = reqwest::Client::new();
    for n in 1..=20 {
        let (status, body, _) = command(&http, &proxy, json!(["INCR", "money"]), None).await;
        assert_eq!((status, body), (200, json!({"result": n})));
        // Acknowledged means both replicas have it, at once.
        assert_eq!(r1.cli(&["GET", "money"]), n.to_string());
        assert_eq!(r2.cli(&["GET", "money"]), n.to_string());
    }
    // Reads do not wait.
    let (status, body, _) = command(&http, &proxy, json!(["GET", "money"]), None).await;
    assert_eq!((status, body), (200, json!({"result": "20"})));
    assert_eq!(calls(&primary, "wait"), 20);

    // One replica gone: the write happens on the primary but is not confirmed — a 503 that says
    // so, within the WAIT timeout.
    r2.kill();
    let started = Instant::now();
    let (status, body, _) = command(&http, &proxy, json!(["INCR", "money"]), None).await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("only 1 of the 2 replicas"), "{error}");
    // It waited out WAIT's 1 s (not less: the replica never answered), and answered well before
    // the 10 s reply timeout would have cut a hung request off (a bound a loaded box keeps).
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_000) && took < Duration::from_secs(9),
        "{took:?}"
    );
    assert_eq!(primary.cli(&["GET", "money"]), "21");
    // Pipelines and transactions wait too.
    let response = http
        .post(format!("{}/multi-exec", proxy.url()))
        .bearer_auth(TOKEN)
        .body(json!([["INCR", "money"], ["INCR", "money"]]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    drop(r1);
}
