//! The native RESP store: `edgecount serve --redis-url` talks to Redis (or a Redis Cluster)
//! straight, without the REST hop.
//!
//! - A standalone server: a few multiplexed (auto-pipelined) `ConnectionManager`s, used round
//!   robin, every call bounded by the reply timeout (plus the connect timeout for a redial); a
//!   refused or dropped connection is reported at once as unavailable and redialled on the next
//!   call, so serve heals by itself when Redis is back. The call's future is a few hundred bytes:
//!   the axum layers move a request's future by value, and a store future of kilobytes made
//!   copying it a quarter of serve's instructions (callgrind).
//! - A Redis Cluster, `MULTI`/`EXEC` and pub/sub: the native connection layer
//!   ([`crate::backend::Backend`], boxed; `edgecount proxy` runs on it too): the async cluster
//!   client, a pipeline's commands grouped
//!   by slot, each group one round trip to its node, the groups in parallel (a hit's service-wide
//!   figures live in other slots than its counter), transactions written as one block.
//!
//! Every connection speaks RESP2 whatever the URL says, like the proxy's. This module only
//! translates: [`Command`] → [`redis::Cmd`], [`redis::Value`] → [`Reply`], errors →
//! [`StoreError`]. Scripts go by SHA (`EVALSHA`, then `EVAL` on `NOSCRIPT`: [`Store::eval`]),
//! exactly as over REST, so Redis runs the same scripts either way.
//!
//! `/stream` takes one dedicated pub/sub connection per subscription (closed when the stream is
//! dropped); on a Cluster the first node serves it, since `PUBLISH` reaches every node's
//! subscribers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::stream::{BoxStream, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, Value};

use super::rest::redis_error;
use super::{EntryResult, Store, StoreError};
use crate::backend::{error_text, resp2_info, Backend, BackendConfig, BackendError, Intent};
use crate::core::command::{Command, Reply};
use crate::secret::redact_url;

/// Where the Redis is and how long to wait for it (`--redis-url`, `--cluster`, …).
#[derive(Clone)]
pub struct RedisConfig {
    /// One URL for a standalone server; several (or `cluster`) for a Redis Cluster's seeds.
    pub urls: Vec<String>,
    pub cluster: bool,
    /// Multiplexed connections to a standalone server, used round robin.
    pub connections: usize,
    pub connect_timeout: Duration,
    /// How long a reply may take before the call fails as unavailable.
    pub response_timeout: Duration,
}

impl RedisConfig {
    /// One standalone server (or, with `cluster`, the seeds of a Cluster) with the defaults of
    /// the command line: one connection, 1 s to connect, 10 s for a reply.
    pub fn new(urls: Vec<String>, cluster: bool) -> RedisConfig {
        RedisConfig {
            urls,
            cluster,
            connections: 1,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(10),
        }
    }

    /// Whether the URLs name a Redis Cluster (`cluster`, or more than one URL).
    pub fn is_cluster(&self) -> bool {
        self.cluster || self.urls.len() > 1
    }

    /// The longest a call may take: a reply, after a redial.
    fn limit(&self) -> Duration {
        self.connect_timeout + self.response_timeout
    }
}

/// URLs may carry a password (`redis://:secret@host`): never print one.
impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field(
                "urls",
                &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("cluster", &self.cluster)
            .field("connections", &self.connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// A [`Store`] speaking RESP to Redis.
pub struct RedisStore {
    /// Set for a standalone server: the calls' fast path.
    standalone: Option<Standalone>,
    /// Cluster calls, transactions and pub/sub.
    backend: Backend,
    /// For `Debug` and logs (passwords redacted).
    config: RedisConfig,
}

struct Standalone {
    conns: Vec<ConnectionManager>,
    next: AtomicUsize,
}

impl Standalone {
    fn conn(&self) -> ConnectionManager {
        let i = match self.conns.len() {
            1 => 0,
            n => self.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        self.conns[i].clone()
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Set up the connections. Nothing is dialled yet: serve starts while Redis is down and
    /// answers 503 (or applies fail modes) until it is up. Fails only on a malformed URL.
    pub fn connect(config: RedisConfig) -> Result<RedisStore, StoreError> {
        let bad_url = |e: redis::RedisError| {
            StoreError::Protocol(format!(
                "Redis URL {}: {e}",
                config
                    .urls
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>()
                    .join(",")
            ))
        };
        let Some(first) = config.urls.first() else {
            return Err(StoreError::Protocol("no Redis URL".into()));
        };
        let backend = Backend::new(&BackendConfig {
            urls: config.urls.clone(),
            cluster: config.cluster,
            connections: config.connections.max(1),
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            replica_urls: Vec::new(),
            durable_writes: None,
        })
        .map_err(bad_url)?;
        let standalone = if config.is_cluster() {
            None
        } else {
            let client =
                redis::Client::open(resp2_info(first).map_err(bad_url)?).map_err(bad_url)?;
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                // Every call is timed by `bounded`; one timer per call is enough.
                .set_response_timeout(None)
                // Fail fast while Redis is down; the next call dials again.
                .set_number_of_retries(0);
            let conns = (0..config.connections.max(1))
                .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), manager.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad_url)?;
            Some(Standalone {
                conns,
                next: AtomicUsize::new(0),
            })
        };
        Ok(RedisStore {
            standalone,
            backend,
            config,
        })
    }

    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    pub fn is_cluster(&self) -> bool {
        self.standalone.is_none()
    }

    /// `fut` within the configured limit; a client-side failure (refused, dropped, timed out)
    /// is `Unavailable`, an error reply `Redis`. Callers box the redis crate's call futures
    /// (~3 KB each): unboxed they would make every future around them (the API's, the
    /// request's) that much bigger to move.
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let limit = self.config.limit();
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result.map_err(|e| store_error(BackendError::from_redis(&e))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis did not answer within {} ms",
                limit.as_millis()
            ))),
        }
    }
}

/// The core's command as the redis crate's (arguments as bytes, unchanged).
fn to_cmd(command: &Command) -> Cmd {
    let parts = command.parts();
    let mut cmd = redis::cmd(&parts[0]);
    for arg in &parts[1..] {
        cmd.arg(arg.as_bytes());
    }
    cmd
}

/// A failed call as the REST store would report it: unreachable (or `LOADING`, `BUSY`, … —
/// Redis unable to serve for now, see [`redis_error`]) is `Unavailable`, an error reply `Redis`.
fn store_error(e: BackendError) -> StoreError {
    match e {
        BackendError::Unavailable(text) => StoreError::Unavailable(text),
        BackendError::Redis(text) => redis_error(text),
        other => StoreError::Protocol(other.to_string()),
    }
}

/// A RESP2 value as the core's reply; an error reply (at any depth) stays in place as
/// [`Reply::Error`].
fn to_reply(value: Value) -> Result<Reply, StoreError> {
    Ok(match value {
        Value::Nil => Reply::Nil,
        Value::Int(n) => Reply::Int(n),
        Value::BulkString(bytes) => Reply::Bytes(bytes),
        Value::SimpleString(text) => Reply::Bytes(text.into_bytes()),
        Value::Okay => Reply::Bytes(b"OK".to_vec()),
        Value::Array(items) => {
            Reply::Array(items.into_iter().map(to_reply).collect::<Result<_, _>>()?)
        }
        Value::ServerError(e) => Reply::Error(error_text(&e)),
        // The connections speak RESP2 whatever the URL says; nothing else can arrive.
        other => {
            return Err(StoreError::Protocol(format!(
                "a RESP3 reply on a RESP2 connection: {other:?}"
            )))
        }
    })
}

/// One entry of a pipeline or transaction: its reply, or its own error reply.
fn to_entry(value: Value) -> Result<EntryResult, StoreError> {
    match value {
        Value::ServerError(e) => Ok(Err(error_text(&e))),
        other => to_reply(other).map(Ok),
    }
}

fn to_entries(values: Vec<Value>, expected: usize) -> Result<Vec<EntryResult>, StoreError> {
    if values.len() != expected {
        return Err(StoreError::Protocol(format!(
            "sent {expected} commands, got {} replies",
            values.len()
        )));
    }
    values.into_iter().map(to_entry).collect()
}

impl Store for RedisStore {
    type Messages = BoxStream<'static, Result<Vec<u8>, StoreError>>;

    async fn command(&self, cmd: &Command) -> Result<Reply, StoreError> {
        let value = match &self.standalone {
            Some(standalone) => {
                let cmd = to_cmd(cmd);
                let mut conn = standalone.conn();
                self.bounded(Box::pin(conn.send_packed_command(&cmd)))
                    .await?
            }
            None => {
                Box::pin(self.backend.query(&to_cmd(cmd), Intent::Primary))
                    .await
                    .map_err(store_error)?
                    .value
            }
        };
        to_entry(value)?.map_err(redis_error)
    }

    async fn pipeline(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        let values = match &self.standalone {
            Some(standalone) => {
                let mut pipe = Pipeline::with_capacity(cmds.len());
                for cmd in cmds {
                    pipe.add_command(to_cmd(cmd));
                }
                let mut conn = standalone.conn();
                self.bounded(Box::pin(conn.send_packed_commands(&pipe, 0, cmds.len())))
                    .await?
            }
            None => {
                Box::pin(
                    self.backend
                        .pipeline(cmds.iter().map(to_cmd).collect(), Intent::Primary),
                )
                .await
                .map_err(store_error)?
                .value
            }
        };
        to_entries(values, cmds.len())
    }

    async fn multi_exec(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        let served = Box::pin(self.backend.transaction(cmds.iter().map(to_cmd).collect()))
            .await
            .map_err(store_error)?;
        match served.value {
            Value::Array(values) => to_entries(values, cmds.len()),
            other => Err(StoreError::Protocol(format!(
                "EXEC answered {other:?}, not an array"
            ))),
        }
    }

    async fn subscribe(&self, channel: &str) -> Result<Self::Messages, StoreError> {
        let mut pubsub = Box::pin(self.backend.pubsub()).await.map_err(store_error)?;
        self.bounded(Box::pin(pubsub.subscribe(channel))).await?;
        Ok(pubsub
            .into_on_message()
            .map(|msg| Ok(msg.get_payload_bytes().to_vec()))
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_keep_their_arguments_as_bytes() {
        let cmd = to_cmd(&Command::new("SET").arg("k").arg("a b\u{e9}"));
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(bytes) => bytes.to_vec(),
                _ => b"<not a plain argument>".to_vec(),
            })
            .collect();
        assert_eq!(
            args,
            [
                b"SET".to_vec(),
                b"k".to_vec(),
                "a b\u{e9}".as_bytes().to_vec()
            ]
        );
    }

    #[test]
    fn replies_convert_at_every_depth_with_errors_in_place() {
        let error = redis::parse_redis_value(b"-WRONGTYPE wrong kind\r\n").unwrap();
        let value = Value::Array(vec![
            Value::Int(3),
            Value::Nil,
            Value::Okay,
            Value::SimpleString("PONG".into()),
            Value::Array(vec![Value::BulkString(vec![0, 255]), error.clone()]),
        ]);
        assert_eq!(
            to_reply(value).unwrap(),
            Reply::Array(vec![
                Reply::Int(3),
                Reply::Nil,
                Reply::Bytes(b"OK".to_vec()),
                Reply::Bytes(b"PONG".to_vec()),
                Reply::Array(vec![
                    Reply::Bytes(vec![0, 255]),
                    Reply::Error("WRONGTYPE wrong kind".into())
                ]),
            ])
        );
        assert_eq!(
            to_entry(error).unwrap(),
            Err("WRONGTYPE wrong kind".to_owned())
        );
        assert!(to_entries(vec![Value::Nil], 2).is_err());
    }

    #[test]
    fn errors_map_to_store_errors() {
        assert!(store_error(BackendError::Unavailable("down".into())).is_unavailable());
        // Redis restarting is an outage, as over REST.
        assert!(store_error(BackendError::Redis(
            "LOADING Redis is loading the dataset".into()
        ))
        .is_unavailable());
        assert!(
            store_error(BackendError::Redis("NOSCRIPT No matching script".into())).is_noscript()
        );
    }

    #[tokio::test]
    async fn calls_stay_small_futures() {
        // The router's layers move a request's future by value: a store call must not make it
        // kilobytes (see the module doc).
        let store =
            RedisStore::connect(RedisConfig::new(vec!["redis://127.0.0.1:1".into()], false))
                .unwrap();
        let cmds = [Command::new("GET").arg("k")];
        for size in [
            std::mem::size_of_val(&store.command(&cmds[0])),
            std::mem::size_of_val(&store.pipeline(&cmds)),
            std::mem::size_of_val(&store.multi_exec(&cmds)),
            std::mem::size_of_val(&store.subscribe("c")),
        ] {
            assert!(size <= 1024, "a store call's future is {size} bytes");
        }
    }

    #[tokio::test]
    async fn debug_hides_passwords() {
        let config = RedisConfig::new(vec!["redis://:pw-Zq81@127.0.0.1:7000".into()], false);
        let shown = format!("{config:?}");
        assert!(!shown.contains("pw-Zq81"), "{shown}");
        assert!(shown.contains("127.0.0.1:7000"), "{shown}");
        let store = RedisStore::connect(config).unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains("pw-Zq81"), "{shown}");
    }
}
