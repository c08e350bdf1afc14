//! How the native servers reach Redis (`edgecount proxy`, and `edgecount serve --redis-url` for a
//! Cluster, transactions and pub/sub): one standalone server over a few multiplexed
//! (auto-pipelined) connections, or a Redis Cluster through the redis crate's async cluster
//! client. Callers only see [`Backend`].
//!
//! Two options add commands behind a request's own, on the same connection and in the same
//! round trip: with `--replica-url`, `ROLE` (the primary's replication offset, which becomes the
//! answer's sync token, see [`replicas`]) and reads go to replicas; with
//! `--durable-writes`, `WAIT` (the write is confirmed by that many replicas before it is
//! acknowledged). Without them a request is sent exactly as before.
//!
//! Every connection speaks RESP2 whatever the URL says (floats stay strings, HGETALL stays a flat
//! array: [`resp2_info`]). Each operation is bounded by the response timeout; a refused or dropped
//! connection surfaces at once as [`BackendError::Unavailable`] (the proxy's 503) and the
//! connection manager reconnects on the next request, so the proxy heals by itself when Redis
//! comes back. [`commands`] holds the tables this needs: which commands only read, where a
//! command's key is.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion, Value};
use tokio::sync::OnceCell;

pub mod commands;
mod error;
pub mod replicas;

pub use error::{error_text, error_words, BackendError};
use replicas::Freshness;

/// A URL as connection info, forced to RESP2 (floats stay strings, HGETALL a flat array: the
/// replies the core reads over REST too). Serve's RESP store connects with it too.
pub fn resp2_info(url: &str) -> Result<ConnectionInfo, redis::RedisError> {
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP2);
    Ok(info.set_redis_settings(settings))
}

/// The text Redis sends when EXEC finds a transaction spoiled at queue time.
const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// One URL for a standalone server; several (or `cluster`) for a Redis Cluster.
    pub urls: Vec<String>,
    pub cluster: bool,
    /// Multiplexed connections to a standalone server (requests are spread round-robin).
    pub connections: usize,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// Replicas of a standalone primary that serve reads (read-your-writes by sync token).
    pub replica_urls: Vec<String>,
    pub durable_writes: Option<DurableWrites>,
}

/// `--durable-writes N[/MS]`: a write is acknowledged only once `replicas` replicas have it
/// (Redis `WAIT`, at most `timeout`); else the client gets a 503 saying so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableWrites {
    pub replicas: u32,
    pub timeout: Duration,
}

impl std::str::FromStr for DurableWrites {
    type Err = String;

    /// `N` or `N/MS` (default 1000 ms).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, ms) = s.split_once('/').unwrap_or((s, "1000"));
        let replicas = n
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{n:?}: the number of replicas must be a whole number ≥ 1"))?;
        let ms = ms
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&ms| ms > 0)
            .ok_or_else(|| format!("{ms:?}: the timeout must be a whole number of ms ≥ 1"))?;
        Ok(DurableWrites {
            replicas,
            timeout: Duration::from_millis(ms),
        })
    }
}

/// What a request does, which decides where it may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Only commands a replica can answer ([`commands::reads_from_replica`]), with what
    /// the client's sync token asks of the data.
    Read(Freshness),
    /// Anything else, plain reads included when they may not go to a replica: the primary.
    Primary,
}

/// How a read that could have gone to a replica was served (for `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadOutcome {
    /// A replica answered.
    Replica,
    /// The replica asked had not caught up with the token (or lost its primary): the primary
    /// answered.
    Behind,
    /// The replica asked failed or timed out: the primary answered (that replica is skipped for
    /// a second).
    ReplicaFailed,
}

/// Replies to a request, with where it stands in the primary's replication stream (with
/// replicas: its sync token) and how a read was served.
#[derive(Debug)]
pub struct Served<T> {
    pub value: T,
    pub offset: Option<u64>,
    pub read: Option<ReadOutcome>,
}

impl<T> Served<T> {
    fn plain(value: T) -> Served<T> {
        Served {
            value,
            offset: None,
            read: None,
        }
    }

    fn map<U>(self, f: impl FnOnce(T) -> U) -> Served<U> {
        Served {
            value: f(self.value),
            offset: self.offset,
            read: self.read,
        }
    }
}

/// A pipeline on a Cluster. Its order is its meaning, and a round trip per command is slow, so:
/// consecutive commands with a key are grouped by slot, each slot's commands sent as one pipeline
/// to its node in request order (with durable writes followed by one `WAIT`), the slots' pipelines
/// in parallel; a command with no single slot (`SCRIPT LOAD` goes to every node, `PING` to any)
/// runs on its own between them, after everything before it and before anything after it. Sent
/// as a command each, all at once, they were reordered on the way (500 hits of one counter
/// answered 74 last) and a `SCRIPT LOAD` could arrive after the `EVALSHA` behind it (NOSCRIPT).
async fn cluster_pipeline(
    conn: &ClusterConnection,
    cmds: Vec<Cmd>,
    durable: Option<DurableWrites>,
) -> Result<Vec<Value>, BackendError> {
    let mut values = vec![Value::Nil; cmds.len()];
    let mut groups: Vec<SlotGroup> = Vec::new();
    for (index, cmd) in cmds.into_iter().enumerate() {
        match slot_of(&cmd) {
            Some(slot) => match groups.iter_mut().find(|group| group.slot == slot) {
                Some(group) => group.push(index, cmd),
                None => groups.push(SlotGroup::new(slot, index, cmd)),
            },
            None => {
                run_slot_groups(conn, std::mem::take(&mut groups), durable, &mut values).await?;
                values[index] = cluster_entry(conn.clone(), cmd, durable).await?;
            }
        }
    }
    run_slot_groups(conn, groups, durable, &mut values).await?;
    Ok(values)
}

/// The slot of a command with one key, if [`commands::single_key`] knows where it is.
fn slot_of(cmd: &Cmd) -> Option<Slot> {
    commands::single_key(cmd).map(Slot::for_key)
}

/// Commands of one Cluster pipeline that share a slot, with their places in the pipeline.
struct SlotGroup {
    slot: Slot,
    indices: Vec<usize>,
    pipe: Pipeline,
    writes: bool,
}

impl SlotGroup {
    fn new(slot: Slot, index: usize, cmd: Cmd) -> SlotGroup {
        let mut group = SlotGroup {
            slot,
            indices: Vec::new(),
            pipe: Pipeline::new(),
            writes: false,
        };
        group.push(index, cmd);
        group
    }

    fn push(&mut self, index: usize, cmd: Cmd) {
        self.writes |= !commands::reads_from_replica(&cmd);
        self.indices.push(index);
        self.pipe.add_command(cmd);
    }

    /// One round trip to the slot's node; a value (or error reply) per command.
    async fn run(
        mut self,
        mut conn: ClusterConnection,
        durable: Option<DurableWrites>,
    ) -> Result<Vec<Value>, BackendError> {
        let n = self.indices.len();
        let wait = durable.filter(|_| self.writes);
        if let Some(durable) = wait {
            push_wait(&mut self.pipe, durable);
        }
        let mut replies = redis::aio::ConnectionLike::req_packed_commands(
            &mut conn,
            &self.pipe,
            0,
            n + usize::from(wait.is_some()),
        )
        .await
        .map_err(|e| BackendError::from_redis(&e))?;
        if let Some(durable) = wait {
            confirm_durable(replies.pop(), durable)?;
        }
        Ok(replies)
    }
}

/// A command without a slot, routed the redis crate's way (`SCRIPT LOAD` to every node), followed
/// by its `WAIT` for a write with durable writes.
async fn cluster_entry(
    mut conn: ClusterConnection,
    cmd: Cmd,
    durable: Option<DurableWrites>,
) -> Result<Value, BackendError> {
    let wait = durable.filter(|_| !commands::reads_from_replica(&cmd));
    let Some(durable) = wait else {
        return entry_or_fail(
            redis::aio::ConnectionLike::req_packed_command(&mut conn, &cmd).await,
        );
    };
    let mut pipe = Pipeline::with_capacity(2);
    pipe.add_command(cmd);
    push_wait(&mut pipe, durable);
    let mut replies = redis::aio::ConnectionLike::req_packed_commands(&mut conn, &pipe, 0, 2)
        .await
        .map_err(|e| BackendError::from_redis(&e))?;
    confirm_durable(replies.pop(), durable)?;
    Ok(replies.pop().unwrap_or(Value::Nil))
}

/// The slot groups of a stretch of a pipeline, in parallel; their values put in their places.
async fn run_slot_groups(
    conn: &ClusterConnection,
    groups: Vec<SlotGroup>,
    durable: Option<DurableWrites>,
    values: &mut [Value],
) -> Result<(), BackendError> {
    let places: Vec<Vec<usize>> = groups.iter().map(|g| g.indices.clone()).collect();
    let replies = futures_util::future::join_all(
        groups
            .into_iter()
            .map(|group| group.run(conn.clone(), durable)),
    )
    .await;
    for (indices, replies) in places.into_iter().zip(replies) {
        for (index, value) in indices.into_iter().zip(replies?) {
            values[index] = value;
        }
    }
    Ok(())
}

fn push_wait(pipe: &mut Pipeline, durable: DurableWrites) {
    pipe.cmd("WAIT")
        .arg(durable.replicas)
        .arg(durable.timeout.as_millis() as u64);
}

/// `WAIT`'s reply: enough replicas have the write, or the client hears that they do not.
fn confirm_durable(reply: Option<Value>, durable: DurableWrites) -> Result<(), BackendError> {
    match reply {
        Some(Value::Int(acked)) if acked >= i64::from(durable.replicas) => Ok(()),
        Some(Value::Int(acked)) => Err(BackendError::Unavailable(format!(
            "ERR written on the primary, but only {acked} of the {} replicas --durable-writes asks for confirmed it within {} ms: it may be lost if the primary fails now",
            durable.replicas,
            durable.timeout.as_millis()
        ))),
        other => Err(BackendError::Unavailable(format!(
            "ERR the write could not be confirmed by replicas (WAIT answered {other:?})"
        ))),
    }
}

/// How long a replica that failed is left alone.
const REPLICA_BACKOFF: Duration = Duration::from_secs(1);

struct Replica {
    conn: ConnectionManager,
    /// Milliseconds since [`Inner::epoch`] before which this replica is not asked.
    skip_until_ms: AtomicU64,
}

#[derive(Clone)]
pub struct Backend {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    /// A client for dedicated connections (pub/sub, monitor): the first URL.
    client: redis::Client,
    connect_timeout: Duration,
    response_timeout: Duration,
    replicas: Vec<Replica>,
    next_replica: AtomicUsize,
    durable_writes: Option<DurableWrites>,
    epoch: Instant,
}

enum Kind {
    Single {
        conns: Vec<ConnectionManager>,
        next: AtomicUsize,
    },
    Cluster {
        client: Box<redis::cluster::ClusterClient>,
        conn: OnceCell<ClusterConnection>,
    },
}

/// An error reply as a `Value` (the cluster client reports some as `Err`; entries need a value).
fn error_value(text: &str) -> Value {
    let line = format!("-{}\r\n", text.replace(['\r', '\n'], " "));
    redis::parse_redis_value(line.as_bytes())
        .unwrap_or_else(|_| Value::SimpleString(text.to_string()))
}

/// A failed operation as an entry value when it is an error reply, or a backend error otherwise.
fn entry_or_fail(result: Result<Value, redis::RedisError>) -> Result<Value, BackendError> {
    match result {
        Ok(v) => Ok(v),
        Err(e) => match BackendError::from_redis(&e) {
            BackendError::Redis(text) => Ok(error_value(&text)),
            other => Err(other),
        },
    }
}

impl Backend {
    /// Set up the connections. Nothing is dialled yet: the proxy starts even while Redis is down
    /// and answers 503 until it comes up.
    pub fn new(config: &BackendConfig) -> Result<Backend, redis::RedisError> {
        let first = config.urls.first().ok_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no Redis URL"))
        })?;
        let client = redis::Client::open(resp2_info(first)?)?;
        let clustered = config.cluster || config.urls.len() > 1;
        if clustered && !config.replica_urls.is_empty() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "replica URLs are for a standalone primary; a Redis Cluster has its own replicas",
            )));
        }
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            // `Backend::bounded` times every operation; one timer per request is enough.
            .set_response_timeout(None)
            // Fail fast while Redis is down; the next request tries again.
            .set_number_of_retries(0);
        let replicas = config
            .replica_urls
            .iter()
            .map(|url| {
                let client = redis::Client::open(resp2_info(url)?)?;
                Ok(Replica {
                    conn: ConnectionManager::new_lazy_with_config(client, manager_config.clone())?,
                    skip_until_ms: AtomicU64::new(0),
                })
            })
            .collect::<Result<Vec<_>, redis::RedisError>>()?;
        let kind = if clustered {
            let infos = config
                .urls
                .iter()
                .map(|u| resp2_info(u))
                .collect::<Result<Vec<_>, _>>()?;
            let cluster = ClusterClientBuilder::new(infos)
                .use_protocol(ProtocolVersion::RESP2)
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .retries(2)
                .build()?;
            Kind::Cluster {
                client: Box::new(cluster),
                conn: OnceCell::new(),
            }
        } else {
            let conns = (0..config.connections.max(1))
                .map(|_| {
                    ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
                })
                .collect::<Result<Vec<_>, _>>()?;
            Kind::Single {
                conns,
                next: AtomicUsize::new(0),
            }
        };
        Ok(Backend {
            inner: Arc::new(Inner {
                kind,
                client,
                connect_timeout: config.connect_timeout,
                response_timeout: config.response_timeout,
                replicas,
                next_replica: AtomicUsize::new(0),
                durable_writes: config.durable_writes,
                epoch: Instant::now(),
            }),
        })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.kind, Kind::Cluster { .. })
    }

    /// Whether reads may go to replicas (and answers carry replication offsets as sync tokens).
    pub fn has_replicas(&self) -> bool {
        !self.inner.replicas.is_empty()
    }

    /// Whether requests carry `ROLE` or `WAIT` behind their commands.
    pub fn adds_commands(&self) -> bool {
        self.has_replicas() || self.inner.durable_writes.is_some()
    }

    fn manager(&self) -> Option<ConnectionManager> {
        match &self.inner.kind {
            Kind::Single { conns, next } => {
                let i = if conns.len() == 1 {
                    0
                } else {
                    next.fetch_add(1, Ordering::Relaxed) % conns.len()
                };
                Some(conns[i].clone())
            }
            Kind::Cluster { .. } => None,
        }
    }

    async fn cluster(&self) -> Result<ClusterConnection, BackendError> {
        let Kind::Cluster { client, conn } = &self.inner.kind else {
            unreachable!("cluster() on a standalone backend");
        };
        conn.get_or_try_init(|| client.get_async_connection())
            .await
            .cloned()
            .map_err(|e| BackendError::from_redis(&e))
    }

    /// Bound an operation by the response timeout (plus the connect timeout for the first dial).
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.bounded_plus(Duration::ZERO, fut).await
    }

    /// Like [`Self::bounded`], allowing `extra` on top (a `WAIT`'s own timeout).
    async fn bounded_plus<T>(
        &self,
        extra: Duration,
        fut: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let limit = self.inner.response_timeout + self.inner.connect_timeout + extra;
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Unavailable(format!(
                "ERR redis did not answer within {} ms",
                limit.as_millis()
            ))),
        }
    }

    /// One command; error replies come back as `Value::ServerError`.
    pub async fn query(&self, cmd: &Cmd, intent: Intent) -> Result<Served<Value>, BackendError> {
        if self.adds_commands() {
            // Boxed, so the plain path's future stays small.
            let served = Box::pin(self.exchange(std::slice::from_ref(cmd), intent)).await?;
            return Ok(served.map(|values| values.into_iter().next().unwrap_or(Value::Nil)));
        }
        self.bounded(async {
            match self.manager() {
                Some(mut conn) => entry_or_fail(conn.send_packed_command(cmd).await),
                None => {
                    let mut conn = self.cluster().await?;
                    entry_or_fail(
                        redis::aio::ConnectionLike::req_packed_command(&mut conn, cmd).await,
                    )
                }
            }
        })
        .await
        .map(Served::plain)
    }

    /// Several commands in order, not atomic; one value (or error reply) per command.
    pub async fn pipeline(
        &self,
        cmds: Vec<Cmd>,
        intent: Intent,
    ) -> Result<Served<Vec<Value>>, BackendError> {
        let n = cmds.len();
        if self.adds_commands() && !self.is_cluster() {
            return Box::pin(self.exchange(&cmds, intent)).await;
        }
        let durable = self.inner.durable_writes;
        self.bounded_plus(durable.map_or(Duration::ZERO, |d| d.timeout), async {
            match self.manager() {
                Some(mut conn) => {
                    let mut pipe = Pipeline::with_capacity(n);
                    for cmd in cmds {
                        pipe.add_command(cmd);
                    }
                    conn.send_packed_commands(&pipe, 0, n)
                        .await
                        .map_err(|e| BackendError::from_redis(&e))
                }
                None => {
                    let conn = self.cluster().await?;
                    cluster_pipeline(&conn, cmds, durable).await
                }
            }
        })
        .await
        .map(Served::plain)
    }

    /// `cmds` with `ROLE`/`WAIT` as configured: a read from a replica that may answer it, else
    /// from the primary.
    async fn exchange(
        &self,
        cmds: &[Cmd],
        intent: Intent,
    ) -> Result<Served<Vec<Value>>, BackendError> {
        let mut read = None;
        if let Intent::Read(freshness) = intent {
            match self.ask_replica(cmds, freshness).await {
                Ok((value, offset)) => {
                    return Ok(Served {
                        value,
                        offset: Some(offset),
                        read: Some(ReadOutcome::Replica),
                    })
                }
                Err(outcome) => read = outcome,
            }
        }
        let mut pipe = Pipeline::with_capacity(cmds.len() + 2);
        for cmd in cmds {
            pipe.add_command(cmd.clone());
        }
        let (value, offset) = self
            .on_primary(pipe, cmds.len(), intent == Intent::Primary)
            .await?;
        Ok(Served {
            value,
            offset,
            read,
        })
    }

    /// Ask one replica (round robin, leaving out any that failed in the last second) for `ROLE`
    /// and then `cmds`, in one round trip. The replies when the replica may answer; else why not
    /// (`None`: no replica to ask).
    async fn ask_replica(
        &self,
        cmds: &[Cmd],
        freshness: Freshness,
    ) -> Result<(Vec<Value>, u64), Option<ReadOutcome>> {
        let replicas = &self.inner.replicas;
        if replicas.is_empty() || freshness == Freshness::PrimaryOnly {
            return Err(None);
        }
        let now_ms = self.inner.epoch.elapsed().as_millis() as u64;
        let start = self.inner.next_replica.fetch_add(1, Ordering::Relaxed);
        let replica = (0..replicas.len())
            .map(|i| &replicas[(start + i) % replicas.len()])
            .find(|r| r.skip_until_ms.load(Ordering::Relaxed) <= now_ms)
            .ok_or(None)?;
        let mut pipe = Pipeline::with_capacity(cmds.len() + 1);
        pipe.cmd("ROLE");
        for cmd in cmds {
            pipe.add_command(cmd.clone());
        }
        let mut conn = replica.conn.clone();
        let replies = self
            .bounded(async {
                conn.send_packed_commands(&pipe, 0, cmds.len() + 1)
                    .await
                    .map_err(|e| BackendError::from_redis(&e))
            })
            .await;
        let mut replies = match replies {
            Ok(replies) => replies,
            Err(e) => {
                tracing::warn!(error = %e, "a replica failed; reading from the primary");
                replica.skip_until_ms.store(
                    now_ms + REPLICA_BACKOFF.as_millis() as u64,
                    Ordering::Relaxed,
                );
                return Err(Some(ReadOutcome::ReplicaFailed));
            }
        };
        let offset = replies.first().and_then(replicas::replica_offset);
        match offset {
            Some(offset) if freshness.satisfied_by(Some(offset)) => {
                replies.remove(0);
                Ok((replies, offset))
            }
            _ => Err(Some(ReadOutcome::Behind)),
        }
    }

    /// `pipe` (whose first `n` commands are the request's) on the primary, followed by `WAIT`
    /// for a write with durable writes and by `ROLE` with replicas. The request's replies and the
    /// primary's offset after them.
    async fn on_primary(
        &self,
        mut pipe: Pipeline,
        n: usize,
        write: bool,
    ) -> Result<(Vec<Value>, Option<u64>), BackendError> {
        let wait = self.inner.durable_writes.filter(|_| write);
        if let Some(durable) = wait {
            push_wait(&mut pipe, durable);
        }
        let role = self.has_replicas();
        if role {
            pipe.cmd("ROLE");
        }
        let count = n + usize::from(wait.is_some()) + usize::from(role);
        let mut replies = self
            .bounded_plus(wait.map_or(Duration::ZERO, |d| d.timeout), async {
                match self.manager() {
                    Some(mut conn) => conn.send_packed_commands(&pipe, 0, count).await,
                    None => {
                        // Routed as a whole to the node owning the first keyed command: `WAIT`
                        // asks the node that took the write.
                        let mut conn = self.cluster().await?;
                        redis::aio::ConnectionLike::req_packed_commands(&mut conn, &pipe, 0, count)
                            .await
                    }
                }
                .map_err(|e| BackendError::from_redis(&e))
            })
            .await?;
        let offset = if role {
            replies.pop().as_ref().and_then(replicas::primary_offset)
        } else {
            None
        };
        if let Some(durable) = wait {
            confirm_durable(replies.pop(), durable)?;
        }
        Ok((replies, offset))
    }

    /// `MULTI`, the commands, `EXEC`, written as one contiguous block on one connection. A
    /// multiplexed connection never interleaves another request inside a block, the block always
    /// ends with EXEC, and refused state commands (MULTI, WATCH…) never get in, so the shared
    /// connection leaves every transaction as it entered it. Returns EXEC's reply (an array with
    /// inline error replies) or, when the transaction was discarded at queue time, the EXECABORT
    /// error followed by the first queue-time error.
    pub async fn transaction(&self, cmds: Vec<Cmd>) -> Result<Served<Value>, BackendError> {
        let n = cmds.len();
        let mut pipe = Pipeline::with_capacity(n + 4);
        pipe.cmd("MULTI");
        for cmd in cmds {
            pipe.add_command(cmd);
        }
        pipe.cmd("EXEC");
        let (replies, offset) = if self.adds_commands() {
            self.on_primary(pipe, n + 2, true).await?
        } else {
            let replies = self
                .bounded(async {
                    match self.manager() {
                        Some(mut conn) => conn.send_packed_commands(&pipe, 0, n + 2).await,
                        None => {
                            // Routed as a whole to the node owning the first keyed command; keys
                            // on other slots fail at queue time (CROSSSLOT) and abort the
                            // transaction.
                            let mut conn = self.cluster().await?;
                            redis::aio::ConnectionLike::req_packed_commands(
                                &mut conn,
                                &pipe,
                                0,
                                n + 2,
                            )
                            .await
                        }
                    }
                    .map_err(|e| BackendError::from_redis(&e))
                })
                .await?;
            (replies, None)
        };
        let queue_error = replies[..replies.len().saturating_sub(1)]
            .iter()
            .find_map(|v| match v {
                Value::ServerError(e) => Some(error_text(e)),
                _ => None,
            });
        let value = match replies.into_iter().last() {
            Some(Value::ServerError(e)) => {
                let text = error_text(&e);
                return Err(BackendError::Redis(match queue_error {
                    Some(cause) if text.starts_with("EXECABORT") => format!("{text} ({cause})"),
                    _ => text,
                }));
            }
            Some(Value::Nil) | None => return Err(BackendError::Redis(EXECABORT.to_string())),
            Some(v) => v,
        };
        Ok(Served {
            value,
            offset,
            read: None,
        })
    }

    /// A dedicated connection for SUBSCRIBE/PSUBSCRIBE; dropping it closes the socket. On a
    /// cluster, PUBLISH reaches subscribers on every node, so the first node serves.
    pub async fn pubsub(&self) -> Result<PubSub, BackendError> {
        match tokio::time::timeout(
            self.inner.connect_timeout + self.inner.response_timeout,
            self.inner.client.get_async_pubsub(),
        )
        .await
        {
            Ok(r) => r.map_err(|e| BackendError::from_redis(&e)),
            Err(_) => Err(BackendError::Unavailable(
                "ERR redis did not answer in time".into(),
            )),
        }
    }

    /// A dedicated MONITOR connection.
    pub async fn monitor(&self) -> Result<redis::aio::Monitor, BackendError> {
        match tokio::time::timeout(
            self.inner.connect_timeout + self.inner.response_timeout,
            self.inner.client.get_async_monitor(),
        )
        .await
        {
            Ok(r) => r.map_err(|e| BackendError::from_redis(&e)),
            Err(_) => Err(BackendError::Unavailable(
                "ERR redis did not answer in time".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_values_keep_their_text() {
        let Value::ServerError(e) = error_value("WRONGTYPE Operation against a key") else {
            panic!("not an error value");
        };
        assert_eq!(error_text(&e), "WRONGTYPE Operation against a key");
    }

    #[test]
    fn noscript_reads_as_redis_says_it_whatever_the_server() {
        for server_text in [
            "NOSCRIPT No matching script. Please use EVAL.",
            // Valkey 8
            "NOSCRIPT No matching script.",
        ] {
            let Value::ServerError(e) = error_value(server_text) else {
                panic!("not an error value");
            };
            assert_eq!(
                error_text(&e),
                "NOSCRIPT No matching script. Please use EVAL."
            );
        }
    }

    #[test]
    fn urls_are_forced_to_resp2() {
        let info = resp2_info("redis://127.0.0.1:1/?protocol=resp3").unwrap();
        assert_eq!(info.redis_settings().protocol(), ProtocolVersion::RESP2);
    }

    #[test]
    fn durable_writes_parse() {
        let d: DurableWrites = "2/250".parse().unwrap();
        assert_eq!((d.replicas, d.timeout), (2, Duration::from_millis(250)));
        let d: DurableWrites = "1".parse().unwrap();
        assert_eq!((d.replicas, d.timeout), (1, Duration::from_secs(1)));
        for bad in ["0", "-1", "x", "1/0", "1/x", "1/", ""] {
            assert!(bad.parse::<DurableWrites>().is_err(), "{bad}");
        }
    }

    #[test]
    fn unconfirmed_writes_are_503s_that_say_so() {
        let d = DurableWrites {
            replicas: 2,
            timeout: Duration::from_millis(300),
        };
        assert!(confirm_durable(Some(Value::Int(2)), d).is_ok());
        assert!(confirm_durable(Some(Value::Int(3)), d).is_ok());
        let e = confirm_durable(Some(Value::Int(1)), d).unwrap_err();
        assert!(matches!(e, BackendError::Unavailable(_)), "{e:?}");
        assert!(e.to_string().contains("only 1 of the 2"), "{e}");
        assert!(confirm_durable(None, d).is_err());
    }
}
