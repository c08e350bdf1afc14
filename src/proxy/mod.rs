//! `edgecount proxy`: an Upstash-compatible REST server in front of a real Redis
//! (contract: docs/UPSTASH-REST.md).
//!
//! - [`request`]: JSON bodies and paths → commands; [`reply`]: replies → JSON / base64 / RESP2;
//!   [`commands`]: refused and read-only command tables — all pure and unit-tested.
//! - The connections to Redis (one server, replicas, or a Cluster) are [`crate::backend`]'s;
//!   [`sse`]: pub/sub.
//! - [`error`]: the one [`ProxyError`], always a JSON body (a [`crate::backend::BackendError`]
//!   becomes one).
//!
//! One fallback handler routes everything, so every answer — 404-ish paths and 405s included — is
//! JSON and carries an `Upstash-Sync-Token`.
//!
//! Choices where the contract leaves room (docs/UPSTASH-REST.md §17 lists how they differ):
//! - The read-only token gets **403** `NOPERM …` for commands outside its allow-list; inside a
//!   `/pipeline` the refusal is that entry's `{"error"}`, inside `/multi-exec` it refuses the whole
//!   transaction (403) before anything is sent.
//! - Refused commands (docs/UPSTASH-REST.md §9) inside a `/pipeline` are inline `{"error"}`
//!   entries; inside `/multi-exec` they discard the transaction with a 400 `EXECABORT …` naming
//!   the command.
//! - Administrative commands (`SHUTDOWN`, `CONFIG`, `REPLICAOF`, `ACL`, `MIGRATE`, `SWAPDB`,
//!   `CLUSTER MEET`, …; the list is in [`commands`]) are refused the same way (400), unless the
//!   proxy runs with `--allow-admin-commands`; the read-only token gets `NOPERM` for them either
//!   way. Upstash's REST API does not administer its servers either.
//! - `SELECT 0` is answered `OK` by the proxy; the shared connections never switch databases.
//! - With `Upstash-Response-Format: resp2` a Redis error reply is sent as RESP2 bytes (`-ERR …`)
//!   with status 400; a pipeline is the concatenation of its replies; `/multi-exec` ignores the
//!   header and answers JSON. Errors of the proxy itself (auth, parsing, limits) stay JSON.
//! - An error reply nested inside an array (Lua `redis.error_reply` in a table) becomes its text.
//! - A `POST`/`PUT` path-form request appends its body only when it is not empty.
//! - Lua scripts whose `#!lua` shebang carries `flags=allow-key-locking` (sent by
//!   `@upstash/ratelimit` 2.x; Redis 7.0 refuses the flag) lose that one flag on the way to Redis
//!   (`EVAL`, `EVAL_RO`, `SCRIPT LOAD`); `EVALSHA`/`EVALSHA_RO`/`SCRIPT EXISTS` of the original
//!   sha are translated to the rewritten one, and `SCRIPT LOAD` answers the original sha. The map is
//!   in memory (bounded); after a restart the client's `NOSCRIPT` fallback to `EVAL` refills it.
//!   See [`scripts`].
//! - `GET /_stats` (an extension; no Redis command starts with `_`) answers `{"requests": N}`,
//!   the REST requests answered so far, so tests and benchmarks can count round trips.
//! - `GET /openapi.json` (no token needed) answers this API's OpenAPI 3.1 description.
//! - `GET /metrics` (authenticated, like `/_stats`) answers the proxy's figures as OpenMetrics
//!   text for Prometheus ([`metrics`]); no Redis command is named `METRICS`.

pub mod commands;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod reply;
pub mod request;
pub mod scripts;
pub mod srh;
pub mod sse;
pub mod tenants;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use redis::{Cmd, Value};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::backend::{replicas, Intent};
pub use crate::backend::{Backend, BackendConfig, DurableWrites};
use crate::secret::redact_url;
pub use error::ProxyError;
use reply::Encoding;

/// `GET /_stats` (authenticated): `{"requests": N}`, the REST requests answered so far.
pub const STATS_PATH: &str = "/_stats";

/// `GET /metrics` (authenticated): [`metrics::Metrics`] as OpenMetrics text.
pub const METRICS_PATH: &str = "/metrics";

/// `GET /openapi.json` (no token needed): [`OPENAPI`].
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The OpenAPI 3.1 description of this REST API (`docs/proxy-openapi.json`).
pub const OPENAPI: &str = include_str!("../../docs/proxy-openapi.json");

/// Default body limit: Upstash's 1 MB per request.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

static SYNC_TOKEN: HeaderName = HeaderName::from_static("upstash-sync-token");
static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
static OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// `edgecount proxy` flags (every one also an environment variable).
#[derive(Clone, clap::Args)]
pub struct ProxyArgs {
    /// Redis URL; give several (or `--cluster`) for a Redis Cluster.
    #[arg(
        long = "redis-url",
        env = "EDGECOUNT_REDIS_URL",
        value_delimiter = ',',
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: Vec<String>,
    /// Treat the Redis URL(s) as seeds of a Redis Cluster.
    #[arg(long, env = "EDGECOUNT_REDIS_CLUSTER")]
    pub cluster: bool,
    /// Replicas of the (standalone) primary that serve reads: give one or more. A read that
    /// presents an `Upstash-Sync-Token` is answered by a replica only once it has caught up
    /// with that token (the primary's replication offset after the client's last write), else
    /// by the primary.
    #[arg(
        long = "replica-url",
        env = "EDGECOUNT_REPLICA_URLS",
        value_delimiter = ','
    )]
    pub replica_url: Vec<String>,
    /// `N` or `N/MS`: acknowledge a write only once N replicas have it (Redis WAIT, at most MS
    /// milliseconds, default 1000); else answer 503 saying it is not confirmed. For counters that
    /// are money: a failover that promotes one of those replicas keeps every acknowledged write.
    #[arg(long, env = "EDGECOUNT_DURABLE_WRITES")]
    pub durable_writes: Option<DurableWrites>,
    /// Address to listen on (port 0 picks a free one; the startup line tells which).
    #[arg(long, env = "EDGECOUNT_LISTEN", default_value = "127.0.0.1:8079")]
    pub listen: SocketAddr,
    /// The REST token clients must present (Bearer header or `?_token=`); required unless
    /// `--databases` or `SRH_MODE` gives the tokens.
    #[arg(
        long,
        env = "UPSTASH_REDIS_REST_TOKEN",
        hide_env_values = true,
        default_value = "",
        hide_default_value = true
    )]
    pub token: String,
    /// Optional second token that may run read commands only.
    #[arg(long, env = "EDGECOUNT_READ_ONLY_TOKEN", hide_env_values = true)]
    pub read_only_token: Option<String>,
    /// Largest request body in bytes.
    #[arg(long, env = "EDGECOUNT_MAX_BODY", default_value_t = DEFAULT_MAX_BODY)]
    pub max_body: usize,
    /// Multiplexed connections to a standalone Redis, requests spread round-robin
    /// [default: one per worker thread].
    #[arg(long, env = "EDGECOUNT_REDIS_CONNECTIONS")]
    pub redis_connections: Option<usize>,
    /// Connect timeout to Redis, in milliseconds.
    #[arg(
        long,
        env = "EDGECOUNT_REDIS_CONNECT_TIMEOUT_MS",
        default_value_t = 1000
    )]
    pub redis_connect_timeout_ms: u64,
    /// How long a Redis reply may take, in milliseconds, before the request fails with 503.
    #[arg(long, env = "EDGECOUNT_REDIS_TIMEOUT_MS", default_value_t = 10_000)]
    pub redis_timeout_ms: u64,
    /// Interval of the SSE heartbeat comment, in milliseconds (also bounds how long a vanished
    /// subscriber holds its Redis connection).
    #[arg(long, env = "EDGECOUNT_SSE_HEARTBEAT_MS", default_value_t = 1000)]
    pub sse_heartbeat_ms: u64,
    /// Runtime worker threads [default: half the CPUs, at least 1]. The proxy usually shares the
    /// machine with Redis; on 2 cores one worker measured faster than two (no cross-thread
    /// wake-ups between the HTTP tasks and the Redis connection tasks).
    #[arg(long, env = "EDGECOUNT_THREADS")]
    pub threads: Option<usize>,
    /// Let the token run administrative commands (SHUTDOWN, CONFIG, REPLICAOF, ACL, MIGRATE,
    /// SWAPDB, CLUSTER MEET, …), refused by default. Never for the read-only token.
    #[arg(long, env = "EDGECOUNT_ALLOW_ADMIN_COMMANDS")]
    pub allow_admin_commands: bool,
    /// Also serve `GET /metrics` without a token on this address (keep it private).
    #[arg(long, env = "EDGECOUNT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub connections: crate::http_server::ConnectionArgs,
    #[command(flatten)]
    pub databases: tenants::DatabaseArgs,
}

/// Tokens never reach a log line, not even through `{:?}`.
impl fmt::Debug for ProxyArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyArgs")
            .field(
                "redis_url",
                &self
                    .redis_url
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("cluster", &self.cluster)
            .field(
                "replica_url",
                &self
                    .replica_url
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("durable_writes", &self.durable_writes)
            .field("listen", &self.listen)
            .field("token", &"<redacted>")
            .field(
                "read_only_token",
                &self.read_only_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_body", &self.max_body)
            .field("redis_connections", &self.redis_connections)
            .field("redis_connect_timeout_ms", &self.redis_connect_timeout_ms)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .field("sse_heartbeat_ms", &self.sse_heartbeat_ms)
            .field("threads", &self.threads)
            .field("allow_admin_commands", &self.allow_admin_commands)
            .field("metrics_listen", &self.metrics_listen)
            .field("connections", &self.connections)
            .field("databases", &self.databases)
            .finish()
    }
}

impl ProxyArgs {
    /// The defaults of the CLI for one Redis URL and token (for tests and embedding).
    pub fn new(redis_url: impl Into<String>, token: impl Into<String>) -> ProxyArgs {
        ProxyArgs {
            redis_url: vec![redis_url.into()],
            cluster: false,
            replica_url: Vec::new(),
            durable_writes: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8079)),
            token: token.into(),
            read_only_token: None,
            max_body: DEFAULT_MAX_BODY,
            redis_connections: None,
            redis_connect_timeout_ms: 1000,
            redis_timeout_ms: 10_000,
            sse_heartbeat_ms: 1000,
            threads: None,
            allow_admin_commands: false,
            metrics_listen: None,
            connections: crate::http_server::ConnectionArgs::default(),
            databases: tenants::DatabaseArgs::default(),
        }
    }

    /// Worker threads for the runtime that runs [`run`].
    pub fn worker_threads(&self) -> usize {
        self.threads.filter(|&n| n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| (n.get() / 2).max(1))
                .unwrap_or(1)
        })
    }

    pub fn backend_config(&self) -> BackendConfig {
        BackendConfig {
            urls: self.redis_url.clone(),
            cluster: self.cluster,
            connections: self
                .redis_connections
                .filter(|&n| n > 0)
                .unwrap_or_else(|| self.worker_threads()),
            connect_timeout: Duration::from_millis(self.redis_connect_timeout_ms.max(1)),
            response_timeout: Duration::from_millis(self.redis_timeout_ms.max(1)),
            replica_urls: self.replica_url.clone(),
            durable_writes: self.durable_writes,
        }
    }
}

/// Everything the handlers share.
pub struct ProxyState {
    backend: Backend,
    token: Box<[u8]>,
    read_only_token: Option<Box<[u8]>>,
    /// What the (full) token may run: [`commands::Access::Admin`] with `--allow-admin-commands`.
    token_access: commands::Access,
    max_body: usize,
    heartbeat: Duration,
    /// Sync tokens without replicas: a counter (reads all go to the one server anyway).
    sync: AtomicU64,
    /// Sync tokens with replicas: the highest replication offset seen, for answers that did not
    /// reach Redis.
    offset: AtomicU64,
    /// REST requests answered, `/_stats` and `/metrics` excepted (so a client can count its own
    /// round trips while being watched).
    requests: AtomicU64,
    shutdown: watch::Sender<bool>,
    /// The one pub/sub connection every `/subscribe` stream shares.
    hub: Arc<hub::Hub>,
    /// Original → rewritten sha of scripts whose shebang lost a flag ([`scripts`]).
    scripts: scripts::ScriptMap,
    metrics: metrics::Metrics,
}

impl ProxyState {
    pub fn new(args: &ProxyArgs) -> Result<ProxyState, Box<dyn std::error::Error + Send + Sync>> {
        if args.token.is_empty() {
            return Err("the REST token must not be empty".into());
        }
        if args.read_only_token.as_deref() == Some("") {
            return Err("the read-only token must not be empty".into());
        }
        if args.read_only_token.as_deref() == Some(args.token.as_str()) {
            return Err("the read-only token must differ from the token".into());
        }
        let backend = Backend::new(&args.backend_config())?;
        // Start the sync-token counter at the wall clock so tokens keep increasing across restarts.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        Ok(ProxyState {
            backend,
            token: args.token.as_bytes().into(),
            read_only_token: args.read_only_token.as_ref().map(|t| t.as_bytes().into()),
            token_access: if args.allow_admin_commands {
                commands::Access::Admin
            } else {
                commands::Access::Full
            },
            max_body: args.max_body,
            heartbeat: Duration::from_millis(args.sse_heartbeat_ms.max(10)),
            sync: AtomicU64::new(start),
            offset: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            shutdown: watch::channel(false).0,
            hub: Arc::default(),
            scripts: scripts::ScriptMap::default(),
            metrics: metrics::Metrics::default(),
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// End every SSE stream (graceful shutdown waits for open responses).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// What a known token may run, 401 otherwise. Constant-time comparisons.
    fn authorize(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<commands::Access, ProxyError> {
        let from_query;
        let presented: &[u8] = match headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        {
            Some(t) => t.trim_ascii(),
            None => {
                from_query = request::query_token(query).ok_or(ProxyError::Unauthorized)?;
                &from_query
            }
        };
        if bool::from(presented.ct_eq(&self.token)) {
            return Ok(self.token_access);
        }
        if let Some(ro) = &self.read_only_token {
            if bool::from(presented.ct_eq(ro)) {
                return Ok(commands::Access::ReadOnly);
            }
        }
        Err(ProxyError::Unauthorized)
    }
}

/// What the client asked the reply to look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Format {
    encoding: Encoding,
    resp2: bool,
}

impl Format {
    fn from_headers(headers: &HeaderMap) -> Result<Format, ProxyError> {
        let encoding = match headers.get("upstash-encoding") {
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"base64") => Encoding::Base64,
            _ => Encoding::Utf8,
        };
        let resp2 = match headers.get("upstash-response-format") {
            None => false,
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"json") => false,
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"resp2") => true,
            Some(_) => {
                return Err(ProxyError::bad_request(
                    "ERR invalid Upstash-Response-Format: use json or resp2",
                ))
            }
        };
        if resp2 && encoding == Encoding::Base64 {
            return Err(ProxyError::bad_request(
                "ERR Upstash-Response-Format: resp2 cannot be combined with Upstash-Encoding: base64",
            ));
        }
        Ok(Format { encoding, resp2 })
    }
}

/// The router: one fallback handler for every method and path.
pub fn app(state: ProxyState) -> Router {
    app_with(Arc::new(state))
}

/// Like [`app`], sharing a state the caller keeps (to begin shutdown).
pub fn app_with(state: Arc<ProxyState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let id = crate::request_id::of(request.headers());
    // Boxed: the answer's state machine is several KB, and the router's future layers would
    // otherwise copy it by value (memcpy was a third of the proxy's instructions; callgrind).
    let answering = Box::pin(answer(&state, request));
    let mut response = crate::request_id::scope(id.clone(), answering).await;
    response
        .headers_mut()
        .insert(crate::request_id::X_REQUEST_ID.clone(), id);
    response
}

async fn answer(state: &ProxyState, request: Request) -> Response {
    let started = std::time::Instant::now();
    let sync = state.sync.fetch_add(1, Ordering::Relaxed) + 1;
    let endpoint = metrics::Endpoint::of(request.uri().path());
    if !matches!(request.uri().path(), STATS_PATH | METRICS_PATH) {
        state.requests.fetch_add(1, Ordering::Relaxed);
    }
    let mut response = match dispatch(state, request).await {
        Ok(r) => r,
        Err(e) => {
            match &e {
                ProxyError::Unavailable(_) => {
                    state.metrics.redis_failure(metrics::Failure::Unavailable)
                }
                ProxyError::Redis(_) => state.metrics.redis_failure(metrics::Failure::ErrorReply),
                _ => {}
            }
            if e.status().is_server_error() {
                tracing::warn!(error = %e, "request failed");
            }
            e.into_response()
        }
    };
    state
        .metrics
        .request(endpoint, response.status().as_u16(), started.elapsed());
    // Answers from Redis carry their offset already when there are replicas.
    if !response.headers().contains_key(&SYNC_TOKEN) {
        let token = if state.backend.has_replicas() {
            state.offset.load(Ordering::Relaxed)
        } else {
            sync
        };
        response
            .headers_mut()
            .insert(SYNC_TOKEN.clone(), HeaderValue::from(token));
    }
    response
}

impl ProxyState {
    /// Where the commands of one request may go, given the client's sync token.
    fn intent<'a>(&self, cmds: impl IntoIterator<Item = &'a Cmd>, headers: &HeaderMap) -> Intent {
        if !self.backend.adds_commands() {
            // Nothing to choose: the request goes as it is.
            return Intent::Primary;
        }
        let mut cmds = cmds.into_iter().peekable();
        if cmds.peek().is_some() && cmds.all(crate::backend::commands::reads_from_replica) {
            Intent::Read(replicas::Freshness::of(
                headers.get(&SYNC_TOKEN).map(HeaderValue::as_bytes),
            ))
        } else {
            Intent::Primary
        }
    }

    /// Records how a request was served; its replies and, with replicas, the sync token its
    /// answer carries (the offset).
    fn served<T>(&self, served: crate::backend::Served<T>) -> (T, Option<HeaderValue>) {
        if let Some(outcome) = served.read {
            self.metrics.replica_read(outcome);
        }
        let token = served.offset.map(|offset| {
            self.offset.fetch_max(offset, Ordering::Relaxed);
            HeaderValue::from(offset)
        });
        (served.value, token)
    }
}

/// `response` with the sync token of the Redis exchange behind it, when it has one.
fn with_token(mut response: Response, token: Option<HeaderValue>) -> Response {
    if let Some(token) = token {
        response.headers_mut().insert(SYNC_TOKEN.clone(), token);
    }
    response
}

async fn dispatch(state: &ProxyState, request: Request) -> Result<Response, ProxyError> {
    let method = request.method().clone();
    if !matches!(
        method,
        Method::GET | Method::POST | Method::PUT | Method::HEAD
    ) {
        return Err(ProxyError::MethodNotAllowed);
    }
    let (parts, body) = request.into_parts();
    // The API's description is public (no Redis command is named `openapi.json`).
    if parts.uri.path() == OPENAPI_PATH && method == Method::GET {
        return Ok(([(header::CONTENT_TYPE, APPLICATION_JSON.clone())], OPENAPI).into_response());
    }
    let query = parts.uri.query();
    let access = state.authorize(&parts.headers, query)?;
    let format = Format::from_headers(&parts.headers)?;
    let path = parts.uri.path();
    let trimmed = path.trim_start_matches('/');
    let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    tracing::debug!(%method, endpoint = first, "request");
    let has_body = matches!(method, Method::POST | Method::PUT);
    match first {
        "" => {
            let body = read_body(body, state.max_body).await?;
            let cmd = request::parse_command(&body)?;
            single(state, cmd, access, format, &parts.headers).await
        }
        "pipeline" if rest.is_empty() => {
            let body = read_body(body, state.max_body).await?;
            let cmds = request::parse_pipeline(&body)?;
            pipeline(state, cmds, access, format, &parts.headers).await
        }
        "multi-exec" if rest.is_empty() => {
            let body = read_body(body, state.max_body).await?;
            let cmds = request::parse_pipeline(&body)?;
            multi_exec(state, cmds, access, format.encoding).await
        }
        "subscribe" | "psubscribe" => {
            let names = rest
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| percent_encoding::percent_decode_str(s).collect())
                .collect();
            sse::subscribe(
                &state.hub,
                &state.backend,
                names,
                first == "psubscribe",
                state.heartbeat,
                state.shutdown.subscribe(),
                state.metrics.stream_opened(),
            )
            .await
        }
        // Not a Redis command (none starts with `_`): the proxy's own figures.
        "_stats" if rest.is_empty() => {
            let requests = state.requests.load(Ordering::Relaxed);
            let body = format!(r#"{{"requests":{requests}}}"#);
            Ok(([(header::CONTENT_TYPE, APPLICATION_JSON.clone())], body).into_response())
        }
        "metrics" if rest.is_empty() && matches!(method, Method::GET | Method::HEAD) => Ok((
            [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
            state.metrics.render(),
        )
            .into_response()),
        "monitor" if rest.is_empty() => {
            if access == commands::Access::ReadOnly {
                return Err(ProxyError::NoPerm(
                    "NOPERM this token is read-only and has no permissions to run the 'monitor' command".into(),
                ));
            }
            sse::monitor(
                &state.backend,
                state.heartbeat,
                state.shutdown.subscribe(),
                state.metrics.stream_opened(),
            )
            .await
        }
        _ => {
            let body = if has_body {
                Some(read_body(body, state.max_body).await?)
            } else {
                None
            };
            let cmd = request::parse_path(path, query, body.as_deref())?;
            single(state, cmd, access, format, &parts.headers).await
        }
    }
}

/// Read the body up to `limit` bytes. An oversized body is still read (and dropped) up to a hard
/// cap, so the client gets its 413 instead of a reset connection while it is still sending.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ProxyError> {
    const DRAIN_CAP: usize = 64 * 1024 * 1024;
    let mut stream = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ProxyError::bad_request(format!("ERR reading body: {e}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            if seen > limit.saturating_add(DRAIN_CAP) {
                break;
            }
            continue;
        }
        match first.take() {
            None if buf.is_empty() => first = Some(chunk),
            None => buf.extend_from_slice(&chunk),
            Some(prev) => {
                buf.reserve(prev.len() + chunk.len());
                buf.extend_from_slice(&prev);
                buf.extend_from_slice(&chunk);
            }
        }
    }
    if seen > limit {
        return Err(ProxyError::PayloadTooLarge(limit));
    }
    Ok(match first {
        Some(b) => b,
        None => Bytes::from(buf),
    })
}

fn json_response(body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, APPLICATION_JSON.clone());
    r
}

fn resp2_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, OCTET_STREAM.clone());
    r
}

async fn single(
    state: &ProxyState,
    cmd: Cmd,
    access: commands::Access,
    format: Format,
    headers: &HeaderMap,
) -> Result<Response, ProxyError> {
    let (value, token) = match commands::check(&cmd, access)? {
        commands::Action::ReplyOk => (Value::Okay, None),
        commands::Action::Forward => {
            let (cmd, fix) = state.scripts.prepare(cmd);
            state.metrics.commands(1);
            let intent = state.intent([&cmd], headers);
            let (value, token) = state.served(state.backend.query(&cmd, intent).await?);
            (fix.apply(value), token)
        }
    };
    // Redis loading its data, busy with a script, cut off from its primary or its Cluster: an
    // outage (503, which clients retry and fail modes act on), not a refused command (400).
    if let Value::ServerError(e) = &value {
        let text = crate::backend::error_text(e);
        if matches!(
            crate::store::rest::redis_error(text.clone()),
            crate::store::StoreError::Unavailable(_)
        ) {
            return Err(ProxyError::Unavailable(text));
        }
    }
    if format.resp2 {
        let status = if matches!(value, Value::ServerError(_)) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        let mut out = Vec::new();
        reply::write_resp2(&value, &mut out);
        return Ok(with_token(resp2_response(status, out), token));
    }
    reply::single(&value, format.encoding)
        .map(|body| with_token(json_response(body), token))
        .map_err(ProxyError::Redis)
}

/// Commands answered by the proxy itself (refusals, `SELECT 0`) keep their place among the
/// replies of the commands sent to Redis.
enum Slot {
    Local(Value),
    Remote(scripts::ReplyFix),
}

impl Slot {
    /// Every slot's value, in request order: local answers as they are, Redis's replies in turn.
    fn fill(slots: Vec<Slot>, replies: &mut impl Iterator<Item = Value>) -> Vec<Value> {
        slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Local(v) => v,
                Slot::Remote(fix) => fix.apply(replies.next().unwrap_or(Value::Nil)),
            })
            .collect()
    }
}

fn error_reply(e: &ProxyError) -> Value {
    let line = format!("-{}\r\n", e.to_string().replace(['\r', '\n'], " "));
    redis::parse_redis_value(line.as_bytes()).unwrap_or(Value::Nil)
}

async fn pipeline(
    state: &ProxyState,
    cmds: Vec<Cmd>,
    access: commands::Access,
    format: Format,
    headers: &HeaderMap,
) -> Result<Response, ProxyError> {
    let mut slots = Vec::with_capacity(cmds.len());
    let mut remote = Vec::with_capacity(cmds.len());
    for cmd in cmds {
        match commands::check(&cmd, access) {
            Ok(commands::Action::Forward) => {
                let (cmd, fix) = state.scripts.prepare(cmd);
                slots.push(Slot::Remote(fix));
                remote.push(cmd);
            }
            Ok(commands::Action::ReplyOk) => slots.push(Slot::Local(Value::Okay)),
            Err(e) => slots.push(Slot::Local(error_reply(&e))),
        }
    }
    state.metrics.commands(remote.len());
    let (replies, token) = if remote.is_empty() {
        (Vec::new(), None)
    } else {
        let intent = state.intent(&remote, headers);
        state.served(state.backend.pipeline(remote, intent).await?)
    };
    let values = Slot::fill(slots, &mut replies.into_iter());
    if format.resp2 {
        let mut out = Vec::new();
        for v in &values {
            reply::write_resp2(v, &mut out);
        }
        return Ok(with_token(resp2_response(StatusCode::OK, out), token));
    }
    Ok(with_token(
        json_response(reply::entries(&values, format.encoding)),
        token,
    ))
}

async fn multi_exec(
    state: &ProxyState,
    cmds: Vec<Cmd>,
    access: commands::Access,
    encoding: Encoding,
) -> Result<Response, ProxyError> {
    // Any refusal discards the whole transaction before anything reaches Redis.
    let mut slots = Vec::with_capacity(cmds.len());
    let mut remote = Vec::with_capacity(cmds.len());
    for (i, cmd) in cmds.into_iter().enumerate() {
        match commands::check(&cmd, access) {
            Ok(commands::Action::Forward) => {
                let (cmd, fix) = state.scripts.prepare(cmd);
                slots.push(Slot::Remote(fix));
                remote.push(cmd);
            }
            Ok(commands::Action::ReplyOk) => slots.push(Slot::Local(Value::Okay)),
            Err(ProxyError::NoPerm(text)) => return Err(ProxyError::NoPerm(text)),
            Err(e) => {
                return Err(ProxyError::BadRequest(format!(
                    "EXECABORT Transaction discarded because of previous errors. (command {i}: {e})"
                )))
            }
        }
    }
    state.metrics.commands(remote.len());
    let (exec, token) = if remote.is_empty() {
        (Value::Array(Vec::new()), None)
    } else {
        state.served(state.backend.transaction(remote).await?)
    };
    let Value::Array(replies) = exec else {
        return Err(ProxyError::Internal(format!(
            "ERR unexpected EXEC reply: {exec:?}"
        )));
    };
    let mut replies = replies.into_iter();
    let values = Slot::fill(slots, &mut replies);
    Ok(with_token(
        json_response(reply::entries(&values, encoding)),
        token,
    ))
}

/// Serve until SIGINT/SIGTERM, then finish open requests (SSE streams are ended) and return.
pub async fn run(args: ProxyArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // `--databases` / serverless-redis-http's configuration: one database runs as below.
    let args = match tenants::resolve(&args)? {
        tenants::Resolved::One(args) => *args,
        tenants::Resolved::Several(each) => return tenants::run_several(each).await,
    };
    let state = Arc::new(ProxyState::new(&args)?);
    let cluster = state.backend.is_cluster();
    let render = {
        let state = state.clone();
        move || state.metrics.render()
    };
    serve_until_stopped(
        &args,
        app_with(state.clone()),
        vec![state],
        render,
        |addr| {
            tracing::info!(
                %addr,
                redis = ?args.redis_url.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
                cluster,
                max_body = args.max_body,
                read_only_token = args.read_only_token.is_some(),
                allow_admin_commands = args.allow_admin_commands,
                "edgecount proxy started"
            )
        },
    )
    .await
}

/// What one database and several share: bind `args.listen`, say where, warn about
/// `--allow-admin-commands`, serve `--metrics-listen` with `render_metrics`, then serve `app`
/// until SIGINT/SIGTERM, when every state's event streams are ended and open requests finish.
pub(crate) async fn serve_until_stopped(
    args: &ProxyArgs,
    app: Router,
    states: Vec<Arc<ProxyState>>,
    render_metrics: impl Fn() -> String + Clone + Send + Sync + 'static,
    started: impl FnOnce(SocketAddr),
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let limits = args.connections.limits();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!("edgecount proxy listening on http://{addr}");
    started(addr);
    if args.allow_admin_commands {
        tracing::warn!(
            "--allow-admin-commands is on: whoever holds the token can administer Redis \
             (SHUTDOWN, CONFIG, REPLICAOF, ACL, MIGRATE, …)"
        );
    }
    if let Some(metrics_addr) = args.metrics_listen {
        crate::metrics::listen(metrics_addr, "proxy", limits, render_metrics).await?;
    }
    let stop = async move {
        crate::shutdown::signal().await;
        // Event streams never end by themselves; shutdown waits for open responses.
        for state in &states {
            state.begin_shutdown();
        }
    };
    // Open requests are each bounded by the Redis timeout; the grace caps shutdown anyway.
    crate::http_server::serve(
        listener,
        app.into_make_service(),
        limits,
        stop,
        crate::http_server::SHUTDOWN_GRACE,
    )
    .await;
    tracing::info!("edgecount proxy stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_handler_future_stays_small() {
        let state = ProxyState::new(&ProxyArgs::new("redis://127.0.0.1:1", "t")).unwrap();
        let future = handle(State(Arc::new(state)), Request::new(Body::empty()));
        // The router's future layers move it by value on every request.
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1024, "the handler's future is {size} bytes");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn formats() {
        assert_eq!(
            Format::from_headers(&headers(&[("upstash-encoding", "base64")])).unwrap(),
            Format {
                encoding: Encoding::Base64,
                resp2: false
            }
        );
        assert!(
            Format::from_headers(&headers(&[("upstash-response-format", "resp2")]))
                .unwrap()
                .resp2
        );
        assert!(Format::from_headers(&headers(&[("upstash-response-format", "xml")])).is_err());
        assert!(Format::from_headers(&headers(&[
            ("upstash-response-format", "resp2"),
            ("upstash-encoding", "base64")
        ]))
        .is_err());
    }

    #[test]
    fn debug_output_hides_tokens() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ProxyArgs,
        }
        let cli = Cli::parse_from(["x", "--token", "tok-123", "--read-only-token", "ro-456"]);
        let s = format!("{:?}", cli.args);
        assert!(!s.contains("tok-123") && !s.contains("ro-456"), "{s}");
    }

    #[test]
    fn admin_commands_are_off_unless_asked_for() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ProxyArgs,
        }
        assert!(!ProxyArgs::new("redis://127.0.0.1:1", "t").allow_admin_commands);
        assert!(
            !Cli::parse_from(["x", "--token", "t"])
                .args
                .allow_admin_commands
        );
        let cli = Cli::parse_from(["x", "--token", "t", "--allow-admin-commands"]);
        assert!(cli.args.allow_admin_commands);
        assert!(format!("{:?}", cli.args).contains("allow_admin_commands: true"));
    }
}
