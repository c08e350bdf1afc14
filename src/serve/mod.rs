//! `edgecount serve`: the counter and rate-limit API natively, on axum — the same [`Api`] the
//! worker runs, so self-hosters get the same answers — over Upstash REST (`--rest-url`: a real
//! Upstash database, or `edgecount proxy`) or straight to Redis over RESP (`--redis-url`, also a
//! Redis Cluster with `--cluster`), see [`ServeStore`].

pub mod hot;
pub mod metrics;
pub mod store;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use crate::api::assets::ASSETS;
use crate::api::{
    Api, ApiError, ApiRequest, Asset, Client, Config, Forward, Handled, Platform, MAX_BODY,
};
use crate::secret::redact_url;
use crate::store::http_native::NativeRestStore;
use crate::store::redis::{RedisConfig, RedisStore};
pub use hot::HotStore;
pub use store::ServeStore;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "EDGECOUNT_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// The Upstash REST endpoint (a real Upstash database, or `edgecount proxy`). Give this or
    /// `--redis-url`, not both.
    #[arg(long, env = "UPSTASH_REDIS_REST_URL")]
    pub rest_url: Option<String>,
    /// The REST token (with `--rest-url`).
    #[arg(long, env = "UPSTASH_REDIS_REST_TOKEN", hide_env_values = true)]
    pub rest_token: Option<String>,
    /// Talk RESP straight to this Redis instead of REST (one process next to its Redis); give
    /// several (or `--cluster`) for a Redis Cluster. The same variable as the proxy's Redis.
    #[arg(long = "redis-url", env = "EDGECOUNT_REDIS_URL", value_delimiter = ',')]
    pub redis_url: Vec<String>,
    /// Treat the Redis URL(s) as seeds of a Redis Cluster.
    #[arg(long, env = "EDGECOUNT_REDIS_CLUSTER")]
    pub cluster: bool,
    /// Multiplexed (auto-pipelined) connections to a standalone Redis, used round robin.
    #[arg(long, env = "EDGECOUNT_REDIS_CONNECTIONS", default_value_t = 1)]
    pub redis_connections: usize,
    /// Connect timeout to Redis, in milliseconds (with `--redis-url`).
    #[arg(
        long,
        env = "EDGECOUNT_REDIS_CONNECT_TIMEOUT_MS",
        default_value_t = 1000
    )]
    pub redis_connect_timeout_ms: u64,
    /// How long a Redis reply may take, in milliseconds, before the call counts as Redis
    /// unavailable (503, or the policy's fail mode) (with `--redis-url`).
    #[arg(long, env = "EDGECOUNT_REDIS_TIMEOUT_MS", default_value_t = 10_000)]
    pub redis_timeout_ms: u64,
    /// Take the client IP from the first `X-Forwarded-For` entry (only behind a trusted proxy).
    #[arg(long, env = "EDGECOUNT_TRUST_FORWARDED")]
    pub trust_forwarded: bool,
    /// Also serve `GET /metrics` without a token on this address (keep it private).
    #[arg(long, env = "EDGECOUNT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Runtime worker threads [default: half the CPUs, at least 1]. serve usually shares the
    /// machine with Redis (and the proxy, over REST); on 2 cores one worker measured faster
    /// than two, in both modes (no cross-thread wake-ups between the HTTP tasks and the
    /// connection tasks).
    #[arg(long, env = "EDGECOUNT_THREADS")]
    pub threads: Option<usize>,
    /// Coalesce concurrent reads of one counter's value and serve them from a cache at most
    /// this many milliseconds old; hits through this process drop it (0: every read goes to
    /// Redis). Overrides `EDGECOUNT_READ_CACHE_MS` (default 250; at most 60000, as there).
    /// See [`hot`].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub read_cache_ms: Option<u64>,
    #[command(flatten)]
    pub connections: crate::http_server::ConnectionArgs,
}

/// The REST token never reaches a log line, not even through `{:?}`; URLs lose any password.
impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("listen", &self.listen)
            .field("rest_url", &self.rest_url.as_deref().map(redact_url))
            .field(
                "rest_token",
                &self.rest_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "redis_url",
                &self
                    .redis_url
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("cluster", &self.cluster)
            .field("redis_connections", &self.redis_connections)
            .field("redis_connect_timeout_ms", &self.redis_connect_timeout_ms)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .field("trust_forwarded", &self.trust_forwarded)
            .field("metrics_listen", &self.metrics_listen)
            .field("threads", &self.threads)
            .field("read_cache_ms", &self.read_cache_ms)
            .field("connections", &self.connections)
            .finish()
    }
}

impl ServeArgs {
    /// Worker threads for the runtime that runs [`run`] (the proxy's rule).
    pub fn worker_threads(&self) -> usize {
        self.threads.filter(|&n| n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| (n.get() / 2).max(1))
                .unwrap_or(1)
        })
    }

    /// The store these flags ask for: REST with `--rest-url`, RESP with `--redis-url`. Refuses
    /// both at once (which one was meant cannot be guessed), neither, and half-configurations.
    pub fn store(&self) -> Result<ServeStore, String> {
        let rest_url = self.rest_url.as_deref().filter(|u| !u.trim().is_empty());
        let redis_urls: Vec<String> = self
            .redis_url
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        match (rest_url, redis_urls.is_empty()) {
            (Some(_), false) => Err(
                "both a REST URL (--rest-url / UPSTASH_REDIS_REST_URL) and a Redis URL \
                 (--redis-url / EDGECOUNT_REDIS_URL) are set: serve talks to one store, give \
                 only one of them"
                    .into(),
            ),
            (None, true) => Err(
                "no store: give --rest-url (UPSTASH_REDIS_REST_URL, with --rest-token) for \
                 Upstash REST, or --redis-url (EDGECOUNT_REDIS_URL) for Redis over RESP"
                    .into(),
            ),
            (Some(url), true) => {
                if self.cluster {
                    return Err("--cluster (EDGECOUNT_REDIS_CLUSTER) is for --redis-url; \
                         with --rest-url the REST server reaches the Cluster"
                        .into());
                }
                let token = self
                    .rest_token
                    .as_deref()
                    .filter(|t| !t.is_empty())
                    .ok_or("--rest-url needs --rest-token (UPSTASH_REDIS_REST_TOKEN)")?;
                NativeRestStore::connect(url, token)
                    .map(ServeStore::Rest)
                    .map_err(|e| e.to_string())
            }
            (None, false) => RedisStore::connect(RedisConfig {
                urls: redis_urls,
                cluster: self.cluster,
                connections: self.redis_connections.max(1),
                connect_timeout: std::time::Duration::from_millis(
                    self.redis_connect_timeout_ms.max(1),
                ),
                response_timeout: std::time::Duration::from_millis(self.redis_timeout_ms.max(1)),
            })
            .map(ServeStore::Redis)
            .map_err(|e| e.to_string()),
        }
    }
}

struct ServeState {
    api: Api<HotStore<ServeStore>>,
    trust_forwarded: bool,
    /// Forwards gateway-mode requests to `EDGECOUNT_ORIGIN`.
    origin_client: reqwest::Client,
    metrics: Arc<metrics::Metrics>,
}

/// The axum app: every path goes to the shared API (reads cached for the configuration's
/// `read_cache`, subscriptions shared: see [`hot`]).
pub fn app(api: Api<ServeStore>, trust_forwarded: bool) -> Router {
    let read_cache = api.config().read_cache;
    app_read_cache(api, trust_forwarded, read_cache)
}

/// Like [`app`], with another read-cache window (`Duration::ZERO`: off).
pub fn app_read_cache(
    api: Api<ServeStore>,
    trust_forwarded: bool,
    read_cache: std::time::Duration,
) -> Router {
    let api = api.map_store(|store| HotStore::new(store, read_cache));
    app_with(api, trust_forwarded, Arc::default())
}

/// Like [`app`], with figures the caller also reads (`--metrics-listen`).
fn app_with(
    api: Api<HotStore<ServeStore>>,
    trust_forwarded: bool,
    metrics: Arc<metrics::Metrics>,
) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(ServeState {
            api,
            trust_forwarded,
            origin_client: reqwest::Client::new(),
            metrics,
        }))
        .layer(axum::middleware::from_fn(crate::request_id::layer))
}

/// `GET /metrics` (serve's own, not the API's): behind the admin token.
const METRICS_PATH: &str = "/metrics";

async fn handle(State(state): State<Arc<ServeState>>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let path = request.uri().path();
    let route = metrics::route_of(path, state.api.config().origin.is_some());
    let mut response = if path == METRICS_PATH {
        metrics_answer(&state, &request)
    } else {
        // Boxed: the API's state machine is kilobytes, and the router's future layers would
        // otherwise copy it by value on every request (callgrind: memcpy was a quarter of
        // serve's instructions).
        Box::pin(answer(&state, request)).await
    };
    let status = response.status().as_u16();
    state
        .metrics
        .request(route, status, response.headers(), started.elapsed());
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        // The gauge counts the stream until its body is dropped (the client left or it ended).
        let open = state.metrics.stream_opened();
        let body = std::mem::take(response.body_mut()).into_data_stream();
        *response.body_mut() =
            Body::from_stream(futures_util::StreamExt::map(body, move |chunk| {
                let _ = &open;
                chunk
            }));
    }
    response
}

fn metrics_answer(state: &ServeState, request: &Request) -> Response {
    let refuse = |e: ApiError| (e.status, axum::Json(e.body())).into_response();
    if !matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
        return refuse(ApiError::method_not_allowed(&[
            http::Method::GET,
            http::Method::HEAD,
        ]));
    }
    let Some(expected) = state.api.config().admin_token.as_deref() else {
        return refuse(ApiError::new(
            StatusCode::FORBIDDEN,
            "/metrics needs EDGECOUNT_ADMIN_TOKEN to be configured",
        ));
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        presented,
        expected.as_bytes(),
    )) {
        return refuse(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "admin token required (Authorization: Bearer …)",
        ));
    }
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

async fn answer(state: &ServeState, request: Request) -> Response {
    // Absent when the app is driven without a socket (tests with `oneshot`).
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let e = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_BODY} bytes"),
            );
            return (e.status, axum::Json(e.body())).into_response();
        }
    };
    let forwarded = state
        .trust_forwarded
        .then(|| {
            parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|ip| ip.trim().parse().ok())
        })
        .flatten();
    let client = forwarded.or(peer).map(Client::at).unwrap_or_default();
    let request = ApiRequest {
        method: parts.method.clone(),
        target: parts
            .uri
            .path_and_query()
            .map_or("/", |target| target.as_str())
            .to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value.as_bytes())))
            .collect(),
        body: body.clone(),
    };
    match state.api.serve(request, client).await {
        Handled::Respond(response) => response.map(Body::new),
        Handled::Asset(asset) => static_file(asset, &parts),
        // Only a binary built without the `management` feature gets here.
        Handled::Delegate => {
            let e = ApiError::not_found("this build has no management routes");
            (e.status, axum::Json(e.body())).into_response()
        }
        Handled::Forward(forward) => {
            forward_to_origin(&state.origin_client, parts, body, *forward).await
        }
    }
}

/// The files of `web/`, embedded in the binary so `edgecount serve` is one file to deploy.
fn embedded(file: &str) -> Option<&'static [u8]> {
    Some(match file {
        "index.html" => include_bytes!("../../web/index.html"),
        "dashboard.js" => include_bytes!("../../web/dashboard.js"),
        "dashboard.css" => include_bytes!("../../web/dashboard.css"),
        "favicon.svg" => include_bytes!("../../web/favicon.svg"),
        "embed.js" => include_bytes!("../../web/embed.js"),
        "openapi.json" => include_bytes!("../../web/openapi.json"),
        _ => return None,
    })
}

/// A strong validator of `bytes`.
fn tag_of(bytes: &[u8]) -> HeaderValue {
    let tag = format!("\"{}\"", hex::encode(&Sha256::digest(bytes)[..12]));
    HeaderValue::from_str(&tag).expect("quoted hex is a valid header value")
}

/// The validator of an embedded file, computed once (its bytes never change while we run).
fn etag(asset: &Asset, bytes: &[u8]) -> HeaderValue {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| tag_of(embedded(a.file).unwrap_or_default()))
            .collect()
    });
    ASSETS
        .iter()
        .position(|a| a == asset)
        .map_or_else(|| tag_of(bytes), |i| tags[i].clone())
}

fn static_file(asset: &'static Asset, request: &http::request::Parts) -> Response {
    let Some(bytes) = embedded(asset.file) else {
        let e = ApiError::not_found(format!("static file {} is not embedded", asset.file));
        return (e.status, axum::Json(e.body())).into_response();
    };
    let tag = etag(asset, bytes);
    let fresh = request
        .headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|seen| {
            seen.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii() == tag.as_bytes())
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if request.method == http::Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(bytes))
    };
    let headers = response.headers_mut();
    for (name, value) in asset.headers() {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(header::ETAG, tag);
    response
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded; `host` is the origin's own.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

async fn forward_to_origin(
    client: &reqwest::Client,
    parts: http::request::Parts,
    body: bytes::Bytes,
    forward: Forward,
) -> Response {
    let mut outgoing = client.request(parts.method, &forward.url).body(body);
    for (name, value) in &parts.headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "origin unreachable");
            let e = ApiError::new(StatusCode::BAD_GATEWAY, "origin unreachable");
            return (e.status, axum::Json(e.body())).into_response();
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    let mut response = response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
    response.headers_mut().extend(forward.response_headers);
    response
}

/// Run until SIGINT/SIGTERM, then finish open requests (for at most
/// [`SHUTDOWN_GRACE`](crate::http_server::SHUTDOWN_GRACE)) and return.
pub async fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_lookup(|name| std::env::var(name).ok())?;
    let store = args.store()?;
    let limits = args.connections.limits();
    let backend = store.describe();
    let read_cache = args
        .read_cache_ms
        .map_or(config.read_cache, std::time::Duration::from_millis);
    let api = Api::new(HotStore::new(store, read_cache), config, Platform::std());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!("edgecount serve listening on http://{addr}");
    tracing::info!(%addr, store = %backend, read_cache_ms = read_cache.as_millis() as u64, "serving the counter API");
    let figures = Arc::new(metrics::Metrics::default());
    if let Some(metrics_addr) = args.metrics_listen {
        let figures = figures.clone();
        crate::metrics::listen(metrics_addr, "serve", limits, move || figures.render()).await?;
    }
    crate::http_server::serve(
        listener,
        // The handler reads the peer (`ConnectInfo`): the client, unless `--trust-forwarded`.
        app_with(api, args.trust_forwarded, figures)
            .into_make_service_with_connect_info::<SocketAddr>(),
        limits,
        crate::shutdown::signal(),
        crate::http_server::SHUTDOWN_GRACE,
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn args(argv: &[&str]) -> ServeArgs {
        Cli::parse_from(std::iter::once("x").chain(argv.iter().copied())).args
    }

    #[test]
    fn debug_output_hides_the_token_and_the_url_password() {
        let shown = format!(
            "{:?}",
            args(&[
                "--rest-url",
                "https://user:pw-Zq81@rest.example",
                "--rest-token",
                "tok-Kx42",
                "--redis-url",
                "redis://:pw-Rd77@127.0.0.1:7000",
            ])
        );
        assert!(
            !shown.contains("pw-Zq81") && !shown.contains("tok-Kx42") && !shown.contains("pw-Rd77"),
            "{shown}"
        );
        assert!(
            shown.contains("rest.example") && shown.contains("127.0.0.1:7000"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn one_store_and_only_one() {
        let refused = |argv: &[&str], says: &str| {
            let e = args(argv).store().err().expect("refused");
            assert!(e.contains(says), "{argv:?}: {e}");
        };
        refused(
            &[
                "--rest-url",
                "http://127.0.0.1:1",
                "--rest-token",
                "t",
                "--redis-url",
                "redis://127.0.0.1:1",
            ],
            "both a REST URL",
        );
        refused(&[], "no store");
        refused(&["--rest-url", "http://127.0.0.1:1"], "needs --rest-token");
        refused(
            &[
                "--rest-url",
                "http://127.0.0.1:1",
                "--rest-token",
                "t",
                "--cluster",
            ],
            "--cluster",
        );
        refused(&["--redis-url", "nonsense://x"], "Redis URL");
        let rest = args(&["--rest-url", "http://127.0.0.1:1", "--rest-token", "t"]);
        assert!(matches!(rest.store(), Ok(ServeStore::Rest(_))));
        // A token next to a Redis URL is not ambiguous (an environment shared with the proxy
        // has one): it is not used.
        let direct = args(&[
            "--redis-url",
            "redis://:pw@127.0.0.1:1",
            "--rest-token",
            "t",
        ]);
        let store = direct.store().expect("direct store");
        assert!(matches!(store, ServeStore::Redis(_)));
        assert_eq!(
            store.describe(),
            "Redis at redis://:redacted@127.0.0.1:1 (RESP)"
        );
        let cluster = args(&["--redis-url", "redis://127.0.0.1:1,redis://127.0.0.1:2"]);
        assert!(cluster
            .store()
            .unwrap()
            .describe()
            .starts_with("Redis Cluster at"));
    }
}
