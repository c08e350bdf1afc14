//! Hot counters through `edgecount serve` (in this process, in front of the real proxy and a
//! private redis-server): concurrent reads of one counter are coalesced and cached for at most
//! the read-cache window (REST calls counted by the proxy's `/_stats`), a hit through serve is
//! seen by the next read through it, the cache switched off sends every read to Redis, and many
//! `/stream` readers of one counter share one subscription.

mod support;

use std::time::Duration;

use edgecount::api::{Api, Config, Platform};
use edgecount::serve::ServeStore;
use edgecount::store::http_native::NativeRestStore;
use edgecount::store::redis::{RedisConfig, RedisStore};
use futures_util::StreamExt;
use serde_json::Value;
use support::proxy::{spawn_proxy, ProxyProcess};
use support::RedisServer;

const TOKEN: &str = "serve-hot-token-3c9e";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

struct Stack {
    redis: RedisServer,
    proxy: ProxyProcess,
    url: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start(read_cache: Duration) -> Stack {
    start_on(read_cache, false).await
}

/// With `direct`, serve talks RESP to the Redis (`--redis-url`) instead of REST to the proxy.
async fn start_on(read_cache: Duration, direct: bool) -> Stack {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let config = Config::from_lookup(|_| None).expect("configuration");
    let store: ServeStore = if direct {
        RedisStore::connect(RedisConfig::new(vec![redis.url()], false))
            .expect("store")
            .into()
    } else {
        NativeRestStore::connect(proxy.url(), TOKEN)
            .expect("store")
            .into()
    };
    let app = edgecount::serve::app_read_cache(
        Api::new(store, config, Platform::std()),
        false,
        read_cache,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let http = reqwest::Client::builder()
        .user_agent(BROWSER)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Stack {
        redis,
        proxy,
        url,
        http,
        server,
    }
}

impl Stack {
    async fn rest_requests(&self) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/_stats", self.proxy.url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("proxy stats")
            .json()
            .await
            .expect("stats JSON");
        stats["requests"].as_u64().expect("requests count")
    }

    async fn hit(&self, path: &str) -> i64 {
        let body: Value = self
            .http
            .post(format!("{}/hit/{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["value"].as_i64().expect("hit value")
    }

    async fn value(&self, path: &str) -> i64 {
        let response = self
            .http
            .get(format!("{}/get/{path}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["value"].as_i64().expect("value")
    }

    /// `readers` tasks reading `/get/{path}` `each` times; every value seen.
    async fn read_concurrently(&self, path: &str, readers: usize, each: usize) -> Vec<i64> {
        let tasks: Vec<_> = (0..readers)
            .map(|_| {
                let (http, url) = (self.http.clone(), format!("{}/get/{path}", self.url));
                tokio::spawn(async move {
                    let mut seen = Vec::with_capacity(each);
                    for _ in 0..each {
                        let body: Value =
                            http.get(&url).send().await.unwrap().json().await.unwrap();
                        seen.push(body["value"].as_i64().expect("value"));
                    }
                    seen
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reads_are_coalesced_cached_briefly_and_see_own_hits() {
    let stack = start(Duration::from_millis(250)).await;
    assert_eq!(stack.hit("readme/badge").await, 1);
    // Many concurrent reads of one counter: a few REST calls, not one each.
    let before = stack.rest_requests().await;
    let seen = stack.read_concurrently("readme/badge", 50, 40).await;
    let calls = stack.rest_requests().await - before;
    assert_eq!(seen.len(), 2000);
    assert!(seen.iter().all(|v| *v == 1), "{seen:?}");
    let per_read = calls as f64 / seen.len() as f64;
    eprintln!("{calls} REST calls for 2000 concurrent reads ({per_read} per read)");
    assert!(per_read <= 0.1, "{calls} REST calls for 2000 reads");
    // A hit through this process drops the cached value: the next read sees it.
    for expected in 2..=6 {
        assert_eq!(stack.hit("readme/badge").await, expected);
        assert_eq!(stack.value("readme/badge").await, expected);
        // Badges and shields read the same value.
        let shield: Value = stack
            .http
            .get(format!("{}/shields/readme/badge", stack.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(shield["message"], expected.to_string(), "{shield}");
    }
    // A write by another process (straight to Redis) shows within the window, no later.
    stack.redis.cli(&["SET", "ec:{readme:badge}:v", "100"]);
    tokio::time::sleep(Duration::from_millis(260)).await;
    assert_eq!(stack.value("readme/badge").await, 100);
    // Under load too: every value read after the window is the new one.
    let _ = stack.read_concurrently("readme/badge", 10, 5).await;
    stack.redis.cli(&["SET", "ec:{readme:badge}:v", "200"]);
    tokio::time::sleep(Duration::from_millis(260)).await;
    let seen = stack.read_concurrently("readme/badge", 20, 10).await;
    assert!(seen.iter().all(|v| *v == 200), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cache_every_read_reaches_redis() {
    let stack = start(Duration::ZERO).await;
    assert_eq!(stack.hit("readme/badge").await, 1);
    let before = stack.rest_requests().await;
    let seen = stack.read_concurrently("readme/badge", 20, 20).await;
    let calls = stack.rest_requests().await - before;
    assert_eq!(seen.len(), 400);
    assert!(calls >= 400, "{calls} REST calls for 400 reads");
    // And a write straight to Redis is seen at once.
    stack.redis.cli(&["SET", "ec:{readme:badge}:v", "50"]);
    assert_eq!(stack.value("readme/badge").await, 50);
}

/// The `data:` payloads of an SSE body, until `count` of them came (or 20 s passed).
async fn events(response: reqwest::Response, count: usize) -> Vec<String> {
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while out.len() < count {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await else {
            break;
        };
        seen.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = seen.find("\n\n") {
            let event: String = seen.drain(..end + 2).collect();
            if let Some(data) = event.trim().strip_prefix("data: ") {
                out.push(data.to_owned());
            }
        }
    }
    out
}

fn info_field(info: &str, field: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in {info}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_readers_of_one_counter_share_one_subscription_over_rest() {
    stream_readers_share_one_subscription(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_readers_of_one_counter_share_one_subscription_over_resp() {
    stream_readers_share_one_subscription(true).await;
}

async fn stream_readers_share_one_subscription(direct: bool) {
    let readers: usize = std::env::var("EDGECOUNT_TEST_STREAM_READERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let stack = start_on(Duration::from_millis(250), direct).await;
    assert_eq!(stack.hit("readme/live").await, 1);
    let rest_before = stack.rest_requests().await;
    let started = std::time::Instant::now();
    let changes = 3;
    let (opened, mut ready) = tokio::sync::mpsc::channel::<()>(readers);
    let tasks: Vec<_> = (0..readers)
        .map(|_| {
            // One connection per reader, as browsers' EventSources would hold.
            let http = stack.http.clone();
            let url = format!("{}/stream/readme/live", stack.url);
            let opened = opened.clone();
            tokio::spawn(async move {
                let response = http.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                let _ = opened.send(()).await;
                events(response, 1 + changes).await
            })
        })
        .collect();
    drop(opened);
    for _ in 0..readers {
        tokio::time::timeout(Duration::from_secs(60), ready.recv())
            .await
            .expect("every reader connected within 60 s")
            .expect("reader");
    }
    // One upstream subscription (and a cached read for the first events), not one each.
    let rest_calls = stack.rest_requests().await - rest_before;
    if !direct {
        // Without sharing: one /subscribe per reader. With it: one, and the first events' reads
        // (one per read-cache window while readers arrive).
        assert!(
            rest_calls as usize * 10 <= readers,
            "{rest_calls} REST calls to open {readers} streams"
        );
    }
    eprintln!(
        "{readers} readers connected in {:?} ({rest_calls} REST calls)",
        started.elapsed()
    );
    let numsub = stack
        .redis
        .cli(&["PUBSUB", "NUMSUB", "ec:{readme:live}:live"]);
    assert!(numsub.trim().ends_with('1'), "PUBSUB NUMSUB: {numsub}");
    let clients = info_field(&stack.redis.cli(&["INFO", "clients"]), "connected_clients");
    // The proxy's command and pub/sub connections (or serve's command and pub/sub ones), and
    // redis-cli asking.
    eprintln!("{clients} Redis connections for {readers} readers");
    assert!(
        clients <= 4,
        "{clients} Redis connections for {readers} readers"
    );
    for _ in 0..changes {
        stack.hit("readme/live").await;
    }
    for task in tasks {
        let seen = task.await.unwrap();
        assert_eq!(
            seen,
            [
                r#"{"value":1}"#,
                r#"{"value":2}"#,
                r#"{"value":3}"#,
                r#"{"value":4}"#
            ],
        );
    }
}
