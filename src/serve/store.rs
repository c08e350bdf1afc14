//! The store `edgecount serve` runs the API on: Upstash REST (`--rest-url`, a real Upstash
//! database or `edgecount proxy`) or RESP straight to Redis (`--redis-url`, optionally a Redis
//! Cluster). One enum rather than a generic server: axum needs the handler's future to be `Send`,
//! which a concrete store type gives and a generic one cannot promise (the `Store` trait has no
//! `Send` bound, for wasm); the match per call costs nothing next to a round trip.

use futures_util::future::Either;

use crate::core::command::{Command, Reply};
use crate::store::http_native::NativeRestStore;
use crate::store::redis::RedisStore;
use crate::store::rest::Messages as RestMessages;
use crate::store::{EntryResult, Store, StoreError};

pub enum ServeStore {
    /// Upstash REST over reqwest.
    Rest(NativeRestStore),
    /// RESP over the redis crate.
    Redis(RedisStore),
}

impl ServeStore {
    /// What serve talks to, for the startup log line (URLs without passwords or tokens).
    pub fn describe(&self) -> String {
        match self {
            ServeStore::Rest(store) => format!(
                "Upstash REST at {}",
                crate::secret::redact_url(store.config().base_url())
            ),
            ServeStore::Redis(store) => {
                let urls: Vec<String> = store
                    .config()
                    .urls
                    .iter()
                    .map(|u| crate::secret::redact_url(u))
                    .collect();
                let kind = if store.is_cluster() {
                    "Redis Cluster"
                } else {
                    "Redis"
                };
                format!("{kind} at {} (RESP)", urls.join(","))
            }
        }
    }
}

impl From<NativeRestStore> for ServeStore {
    fn from(store: NativeRestStore) -> Self {
        ServeStore::Rest(store)
    }
}

impl From<RedisStore> for ServeStore {
    fn from(store: RedisStore) -> Self {
        ServeStore::Redis(store)
    }
}

type RestStream = RestMessages<
    <crate::store::http_native::ReqwestTransport as crate::store::rest::Transport>::ByteStream,
>;

impl Store for ServeStore {
    type Messages = Either<RestStream, <RedisStore as Store>::Messages>;

    async fn command(&self, cmd: &Command) -> Result<Reply, StoreError> {
        match self {
            ServeStore::Rest(store) => store.command(cmd).await,
            ServeStore::Redis(store) => store.command(cmd).await,
        }
    }

    async fn pipeline(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        match self {
            ServeStore::Rest(store) => store.pipeline(cmds).await,
            ServeStore::Redis(store) => store.pipeline(cmds).await,
        }
    }

    async fn multi_exec(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        match self {
            ServeStore::Rest(store) => store.multi_exec(cmds).await,
            ServeStore::Redis(store) => store.multi_exec(cmds).await,
        }
    }

    async fn subscribe(&self, channel: &str) -> Result<Self::Messages, StoreError> {
        match self {
            ServeStore::Rest(store) => store.subscribe(channel).await.map(Either::Left),
            ServeStore::Redis(store) => store.subscribe(channel).await.map(Either::Right),
        }
    }
}
