//! The whole stack for API tests: a private redis-server (or a private Redis Cluster), the real
//! proxy binary in front of it, and in front of that either `edgecount serve` (the real axum app on
//! a loopback socket, in this process) or the real wasm worker in workerd. The same cases run
//! against every combination.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;

use edgecount::api::{Api, Config, Platform};
use edgecount::serve::ServeStore;
use edgecount::store::http_native::NativeRestStore;
use edgecount::store::redis::{RedisConfig, RedisStore};

use super::backend::{Backend, TestRedis};
use super::proxy::{spawn_proxy_with, ProxyProcess};
use super::workerd::{spawn_worker, WorkerProcess};

pub const TOKEN: &str = "edge-test-token-5b1f";
pub const ADMIN_TOKEN: &str = "edge-admin-token-77c2";
/// A browser's user agent: requests without one are not counted (scripts and bots).
pub const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Serve,
    Worker,
    /// `edgecount serve` talking RESP straight to the Redis (`--redis-url`, `--cluster`), no
    /// REST hop. The proxy still runs (idle) so every stack has the same parts.
    ServeDirect,
}

/// A front end over a backend: what [`Edge::start`] builds. A [`Kind`] alone is that front over
/// one redis-server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    pub front: Kind,
    pub backend: Backend,
}

impl Stack {
    /// `front` over a Redis Cluster (3 masters, 3 replicas).
    pub fn cluster(front: Kind) -> Stack {
        Stack {
            front,
            backend: Backend::Cluster,
        }
    }
}

impl From<Kind> for Stack {
    fn from(front: Kind) -> Stack {
        Stack {
            front,
            backend: Backend::Single,
        }
    }
}

enum Front {
    Serve(tokio::task::JoinHandle<()>),
    Worker(WorkerProcess),
}

pub struct Edge {
    pub redis: TestRedis,
    pub proxy: ProxyProcess,
    front: Front,
    url: String,
    /// The configuration the front end got (for starting another instance like it).
    vars: HashMap<String, String>,
    pub http: reqwest::Client,
    /// What the front end is.
    kind: Kind,
    /// With [`Kind::ServeDirect`]: one connection per Redis master, for [`Edge::round_trips`].
    masters: std::sync::Mutex<Vec<redis::Connection>>,
}

/// The configuration every edge gets unless a test overrides it.
pub fn base_env() -> Vec<(&'static str, String)> {
    vec![
        ("EDGECOUNT_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        (
            "EDGECOUNT_UNIQUES_SECRET",
            "uniques-secret-for-tests".to_owned(),
        ),
        (
            "EDGECOUNT_RATE_LIMITS",
            "api=sliding:3/1h; fixed=fixed:3/1h; token=token:3/1h; gcra=gcra:3/1h; \
             daily=fixed:5/1d"
                .to_owned(),
        ),
    ]
}

impl Edge {
    /// Start the stack with [`base_env`] plus `env` (later pairs win).
    pub async fn start(stack: impl Into<Stack>, env: &[(&str, &str)]) -> Edge {
        Self::start_with(stack, env, &[]).await
    }

    /// [`Edge::start`] with extra flags for the proxy (e.g. `["--redis-timeout-ms", "500"]`).
    pub async fn start_with(
        stack: impl Into<Stack>,
        env: &[(&str, &str)],
        proxy_args: &[&str],
    ) -> Edge {
        let stack = stack.into();
        // Six nodes and their handshakes block: off the runtime.
        let redis = tokio::task::spawn_blocking(move || TestRedis::start(stack.backend))
            .await
            .expect("start redis");
        let proxy = spawn_proxy_with(&redis.urls(), TOKEN, proxy_args, &[]);
        let mut vars: HashMap<String, String> = base_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        vars.insert("UPSTASH_REDIS_REST_URL".into(), proxy.url().to_owned());
        vars.insert("UPSTASH_REDIS_REST_TOKEN".into(), TOKEN.into());
        for (k, v) in env {
            vars.insert(k.to_string(), v.to_string());
        }
        let (front, url) = match stack.front {
            Kind::Serve | Kind::ServeDirect => {
                let config = Config::from_lookup(|name| vars.get(name).cloned())
                    .expect("valid test configuration");
                let store: ServeStore = if stack.front == Kind::ServeDirect {
                    let config = RedisConfig::new(redis.urls(), stack.backend == Backend::Cluster);
                    RedisStore::connect(config).expect("store").into()
                } else {
                    NativeRestStore::connect(proxy.url(), TOKEN)
                        .expect("store")
                        .into()
                };
                let api = Api::new(store, config, Platform::std());
                let app = edgecount::serve::app(api, false);
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
                (Front::Serve(server), url)
            }
            Kind::Worker => {
                // Building the wasm and starting workerd block: keep them off the runtime.
                let worker = start_worker(vars.clone()).await;
                let url = worker.url();
                (Front::Worker(worker), url)
            }
        };
        let http = reqwest::Client::builder()
            .user_agent(BROWSER)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Edge {
            redis,
            proxy,
            front,
            url,
            vars,
            http,
            kind: stack.front,
            masters: Default::default(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path))
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// REST requests the proxy has answered so far (its `/_stats`).
    pub async fn rest_requests(&self) -> u64 {
        let stats: serde_json::Value = self
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

    /// Round trips to the store so far: REST requests the proxy answered ([`Edge::rest_requests`]),
    /// or with [`Kind::ServeDirect`] the requests Redis read from its clients, counted by Redis
    /// itself (see [`request_reads`]). A pipeline is one round trip either way.
    pub async fn round_trips(&self) -> u64 {
        if self.kind != Kind::ServeDirect {
            return self.rest_requests().await;
        }
        self.reads_by_master().await.iter().sum()
    }

    /// What the front end is.
    pub fn front(&self) -> Kind {
        self.kind
    }

    /// With [`Kind::ServeDirect`]: the requests each Redis master has read from its clients so
    /// far (see [`request_reads`]), in a fixed order.
    pub async fn reads_by_master(&self) -> Vec<u64> {
        let mut masters = self.masters.lock().unwrap();
        if masters.is_empty() {
            for url in self.redis.urls() {
                let mut conn = redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection())
                    .expect("connect to a test Redis");
                let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).unwrap();
                if matches!(&role[0], redis::Value::BulkString(b) if b == b"master") {
                    masters.push(conn);
                }
            }
        }
        masters.iter_mut().map(request_reads).collect()
    }

    /// Another wasm worker instance with the same configuration (same proxy, same Redis).
    pub async fn another_worker(&self) -> WorkerProcess {
        start_worker(self.vars.clone()).await
    }

    /// What the front end logged (workerd's output; empty for serve).
    pub fn log(&self) -> String {
        match &self.front {
            Front::Serve(_) => String::new(),
            Front::Worker(worker) => worker.log(),
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Front::Serve(server) = &self.front {
            server.abort();
        }
    }
}

/// What one Redis has read from its clients so far (`total_reads_processed`), less what it
/// read for this count itself (every `INFO`, on this one kept-open connection: no connection
/// opens or closes in between) and its replicas' `REPLCONF ACK`s (a Cluster's masters get one per
/// replica per second). On loopback a request — one command, or a pipeline written at once —
/// arrives in one read, so this counts round trips as Redis saw them. Valid while nothing else
/// (redis-cli, a snapshot) talks to the server in between.
fn request_reads(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .arg("commandstats")
        .query(conn)
        .expect("INFO");
    let field = |line: &str, name: &str| -> u64 {
        line.split([':', ','])
            .skip_while(|part| !part.starts_with(name))
            .find_map(|part| part.strip_prefix(name)?.parse().ok())
            .unwrap_or(0)
    };
    let mut reads = 0;
    let mut not_requests = 0;
    for line in info.lines() {
        if let Some(n) = line.strip_prefix("total_reads_processed:") {
            reads = n.trim().parse::<u64>().expect("total_reads_processed");
        } else if line.starts_with("cmdstat_info:") || line.starts_with("cmdstat_replconf:") {
            not_requests += field(line, "calls=");
        }
    }
    reads - not_requests
}

/// Building the wasm and starting workerd block: keep them off the async runtime.
async fn start_worker(vars: HashMap<String, String>) -> WorkerProcess {
    tokio::task::spawn_blocking(move || {
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        spawn_worker(&pairs)
    })
    .await
    .expect("start workerd")
}

/// A stand-in origin for gateway mode: answers every request with `origin saw <METHOD> <path>`
/// and an `x-origin: yes` header, on a loopback port of this process.
pub async fn spawn_origin() -> (String, tokio::task::JoinHandle<()>) {
    use axum::response::IntoResponse;
    async fn echo(request: axum::extract::Request) -> axum::response::Response {
        let text = format!(
            "origin saw {} {}",
            request.method(),
            request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        ([("x-origin", "yes")], text).into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(echo);
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, server)
}

/// Wait until at least `margin` is left before the next hour boundary (of Redis's clock, which is
/// this machine's), so a burst cannot straddle two fixed or sliding windows.
pub async fn clear_of_hour_boundary(margin: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into_hour = Duration::from_millis((now.as_millis() % 3_600_000) as u64);
    let left = Duration::from_secs(3600) - into_hour;
    if left < margin {
        tokio::time::sleep(left + Duration::from_secs(1)).await;
    }
}

/// Fire `attempts` consumes at `urls` (round robin) from `clients` concurrent clients; count
/// the 200s and 429s.
pub async fn burst(
    http: &reqwest::Client,
    urls: &[String],
    clients: usize,
    attempts: usize,
) -> (usize, usize) {
    let per_client = attempts / clients;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let http = http.clone();
            let url = urls[c % urls.len()].clone();
            tokio::spawn(async move {
                let (mut allowed, mut refused) = (0, 0);
                for _ in 0..per_client {
                    let response = http.post(&url).send().await.expect("limit request");
                    match response.status() {
                        StatusCode::OK => allowed += 1,
                        StatusCode::TOO_MANY_REQUESTS => refused += 1,
                        other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
                    }
                }
                (allowed, refused)
            })
        })
        .collect();
    let mut totals = (0, 0);
    for task in tasks {
        let (a, r) = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("burst finishes in time")
            .unwrap();
        totals.0 += a;
        totals.1 += r;
    }
    totals
}
