//! How the proxy reaches Redis: one standalone server over a few multiplexed (auto-pipelined)
//! connections, or a Redis Cluster through the redis crate's async cluster client. The handlers
//! only see [`Backend`].
//!
//! Every connection speaks RESP2 whatever the URL says (floats stay strings, HGETALL stays a flat
//! array). Each operation is bounded by the response timeout; a refused or dropped connection
//! surfaces at once as [`ProxyError::Unavailable`] (503) and the connection manager reconnects on
//! the next request, so the proxy heals by itself when Redis comes back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion, Value};
use tokio::sync::OnceCell;

use super::error::ProxyError;

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

/// A URL as connection info, forced to RESP2.
fn resp2_info(url: &str) -> Result<ConnectionInfo, redis::RedisError> {
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP2);
    Ok(info.set_redis_settings(settings))
}

/// An error reply as a `Value` (the cluster client reports some as `Err`; entries need a value).
fn error_value(text: &str) -> Value {
    let line = format!("-{}\r\n", text.replace(['\r', '\n'], " "));
    redis::parse_redis_value(line.as_bytes())
        .unwrap_or_else(|_| Value::SimpleString(text.to_string()))
}

/// A failed operation as an entry value when it is an error reply, or a proxy error otherwise.
fn entry_or_fail(result: Result<Value, redis::RedisError>) -> Result<Value, ProxyError> {
    match result {
        Ok(v) => Ok(v),
        Err(e) => match ProxyError::from_redis(&e) {
            ProxyError::Redis(text) => Ok(error_value(&text)),
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
        let kind = if config.cluster || config.urls.len() > 1 {
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
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                // `Backend::bounded` times every operation; one timer per request is enough.
                .set_response_timeout(None)
                // Fail fast while Redis is down; the next request tries again.
                .set_number_of_retries(0);
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
            }),
        })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.kind, Kind::Cluster { .. })
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

    async fn cluster(&self) -> Result<ClusterConnection, ProxyError> {
        let Kind::Cluster { client, conn } = &self.inner.kind else {
            unreachable!("cluster() on a standalone backend");
        };
        conn.get_or_try_init(|| client.get_async_connection())
            .await
            .cloned()
            .map_err(|e| ProxyError::from_redis(&e))
    }

    /// Bound an operation by the response timeout (plus the connect timeout for the first dial).
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ProxyError>>,
    ) -> Result<T, ProxyError> {
        let limit = self.inner.response_timeout + self.inner.connect_timeout;
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(ProxyError::Unavailable(format!(
                "ERR redis did not answer within {} ms",
                limit.as_millis()
            ))),
        }
    }

    /// One command; error replies come back as `Value::ServerError`.
    pub async fn query(&self, cmd: &Cmd) -> Result<Value, ProxyError> {
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
    }

    /// Several commands in order, not atomic; one value (or error reply) per command.
    pub async fn pipeline(&self, cmds: Vec<Cmd>) -> Result<Vec<Value>, ProxyError> {
        let n = cmds.len();
        self.bounded(async {
            match self.manager() {
                Some(mut conn) => {
                    let mut pipe = Pipeline::with_capacity(n);
                    for cmd in cmds {
                        pipe.add_command(cmd);
                    }
                    conn.send_packed_commands(&pipe, 0, n)
                        .await
                        .map_err(|e| ProxyError::from_redis(&e))
                }
                None => {
                    // Keys of one pipeline may live on different nodes: route each command on its
                    // own. All futures are polled in order on the first poll, so commands for one
                    // node are queued in request order.
                    let conn = self.cluster().await?;
                    let results = futures_util::future::join_all(cmds.iter().map(|cmd| {
                        let mut conn = conn.clone();
                        async move {
                            entry_or_fail(
                                redis::aio::ConnectionLike::req_packed_command(&mut conn, cmd)
                                    .await,
                            )
                        }
                    }))
                    .await;
                    results.into_iter().collect()
                }
            }
        })
        .await
    }

    /// `MULTI`, the commands, `EXEC`, written as one contiguous block on one connection. A
    /// multiplexed connection never interleaves another request inside a block, the block always
    /// ends with EXEC, and refused state commands (MULTI, WATCH…) never get in, so the shared
    /// connection leaves every transaction as it entered it. Returns EXEC's reply (an array with
    /// inline error replies) or, when the transaction was discarded at queue time, the EXECABORT
    /// error followed by the first queue-time error.
    pub async fn transaction(&self, cmds: Vec<Cmd>) -> Result<Value, ProxyError> {
        let n = cmds.len();
        let mut pipe = Pipeline::with_capacity(n + 2);
        pipe.cmd("MULTI");
        for cmd in cmds {
            pipe.add_command(cmd);
        }
        pipe.cmd("EXEC");
        let replies = self
            .bounded(async {
                match self.manager() {
                    Some(mut conn) => conn.send_packed_commands(&pipe, 0, n + 2).await,
                    None => {
                        // Routed as a whole to the node owning the first keyed command; keys on
                        // other slots fail at queue time (CROSSSLOT) and abort the transaction.
                        let mut conn = self.cluster().await?;
                        redis::aio::ConnectionLike::req_packed_commands(&mut conn, &pipe, 0, n + 2)
                            .await
                    }
                }
                .map_err(|e| ProxyError::from_redis(&e))
            })
            .await?;
        let queue_error = replies[..replies.len().saturating_sub(1)]
            .iter()
            .find_map(|v| match v {
                Value::ServerError(e) => Some(super::reply::error_text(e)),
                _ => None,
            });
        match replies.into_iter().last() {
            Some(Value::ServerError(e)) => {
                let text = super::reply::error_text(&e);
                Err(ProxyError::Redis(match queue_error {
                    Some(cause) if text.starts_with("EXECABORT") => format!("{text} ({cause})"),
                    _ => text,
                }))
            }
            Some(Value::Nil) | None => Err(ProxyError::Redis(EXECABORT.to_string())),
            Some(v) => Ok(v),
        }
    }

    /// A dedicated connection for SUBSCRIBE/PSUBSCRIBE; dropping it closes the socket. On a
    /// cluster, PUBLISH reaches subscribers on every node, so the first node serves.
    pub async fn pubsub(&self) -> Result<PubSub, ProxyError> {
        match tokio::time::timeout(
            self.inner.connect_timeout + self.inner.response_timeout,
            self.inner.client.get_async_pubsub(),
        )
        .await
        {
            Ok(r) => r.map_err(|e| ProxyError::from_redis(&e)),
            Err(_) => Err(ProxyError::Unavailable(
                "ERR redis did not answer in time".into(),
            )),
        }
    }

    /// A dedicated MONITOR connection.
    pub async fn monitor(&self) -> Result<redis::aio::Monitor, ProxyError> {
        match tokio::time::timeout(
            self.inner.connect_timeout + self.inner.response_timeout,
            self.inner.client.get_async_monitor(),
        )
        .await
        {
            Ok(r) => r.map_err(|e| ProxyError::from_redis(&e)),
            Err(_) => Err(ProxyError::Unavailable(
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
        assert_eq!(
            super::super::reply::error_text(&e),
            "WRONGTYPE Operation against a key"
        );
    }

    #[test]
    fn urls_are_forced_to_resp2() {
        let info = resp2_info("redis://127.0.0.1:1/?protocol=resp3").unwrap();
        assert_eq!(info.redis_settings().protocol(), ProtocolVersion::RESP2);
    }
}
