//! How the core reaches Redis: the [`Store`] trait, implemented over the Upstash REST API
//! ([`rest::RestStore`]) with a transport per host (reqwest natively; in the edge worker, the
//! runtime's `fetch()` called by the worker's JavaScript entry module, see [`fetch`]), and natively
//! over RESP straight to Redis (`redis::RedisStore`, for `edgecount serve --redis-url`).

use crate::core::command::{Command, Reply, Script, ScriptCall};

pub mod cached;
pub mod rest;

#[cfg(not(target_arch = "wasm32"))]
pub mod http_native;

#[cfg(not(target_arch = "wasm32"))]
pub mod redis;

pub mod fetch;

/// Everything that can go wrong talking to Redis through a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis answered with an error reply (`WRONGTYPE …`, `NOSCRIPT …`, `ERR …`).
    #[error("{0}")]
    Redis(String),
    /// The REST endpoint refused the token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The REST endpoint or Redis behind it could not be reached or failed (5xx, network error).
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// The REST endpoint answered something that is not the Upstash wire format.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl StoreError {
    pub fn is_noscript(&self) -> bool {
        matches!(self, StoreError::Redis(m) if m.starts_with("NOSCRIPT"))
    }

    /// Redis Cluster refused a command whose keys span slots; it did not run.
    pub fn is_crossslot(&self) -> bool {
        matches!(self, StoreError::Redis(m) if m.starts_with("CROSSSLOT"))
    }

    /// True when Redis itself could not be reached (as opposed to Redis saying no).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<crate::core::command::ReplyError> for StoreError {
    fn from(e: crate::core::command::ReplyError) -> Self {
        StoreError::Protocol(e.to_string())
    }
}

/// One entry of a pipeline or transaction answer: a reply or that command's own error.
pub type EntryResult = Result<Reply, String>;

/// A Redis reachable by commands. No `Send` bound: futures in wasm are not `Send`; native callers
/// get `Send` from the concrete store type.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// A live subscription: each item is one published message payload.
    type Messages: futures_util::Stream<Item = Result<Vec<u8>, StoreError>> + Unpin;

    /// One command. A Redis error reply is `Err(StoreError::Redis)`.
    async fn command(&self, cmd: &Command) -> Result<Reply, StoreError>;

    /// Several commands in one round trip, in order, not atomic.
    async fn pipeline(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError>;

    /// Several commands in one round trip as one MULTI/EXEC transaction.
    async fn multi_exec(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError>;

    /// Subscribe to one channel; the stream ends when the connection does.
    async fn subscribe(&self, channel: &str) -> Result<Self::Messages, StoreError>;

    /// Run a script by SHA, sending its source only when Redis answers `NOSCRIPT` (once per
    /// script cache flush): one round trip in the steady state.
    async fn eval(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Reply, StoreError> {
        match self.command(&script.evalsha(keys, args)).await {
            Err(e) if e.is_noscript() => self.command(&script.eval(keys, args)).await,
            other => other,
        }
    }

    /// Run a script call the core built (see [`Store::eval`]).
    async fn run(&self, call: &ScriptCall) -> Result<Reply, StoreError> {
        self.eval(call.script, &call.keys, &call.args).await
    }
}

/// A shared reference to a store is a store: services can borrow one store between them.
impl<T: Store> Store for &T {
    type Messages = T::Messages;

    async fn command(&self, cmd: &Command) -> Result<Reply, StoreError> {
        (**self).command(cmd).await
    }

    async fn pipeline(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        (**self).pipeline(cmds).await
    }

    async fn multi_exec(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        (**self).multi_exec(cmds).await
    }

    async fn subscribe(&self, channel: &str) -> Result<Self::Messages, StoreError> {
        (**self).subscribe(channel).await
    }
}
