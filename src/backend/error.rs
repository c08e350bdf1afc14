//! The backend's one error type, [`BackendError`]: what a call to Redis failed with. Each front
//! maps it to its own: the proxy to an HTTP status and JSON body (`ProxyError`), serve's RESP
//! store to a `StoreError`.

use redis::ServerError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Redis answered with an error reply; the text is passed through verbatim.
    #[error("{0}")]
    Redis(String),
    /// Redis cannot be reached (refused, dropped, timed out), or a write was not confirmed by the
    /// replicas `--durable-writes` asks for.
    #[error("{0}")]
    Unavailable(String),
    /// A client-side failure that is neither (the redis crate could not make sense of a reply).
    #[error("{0}")]
    Internal(String),
}

impl BackendError {
    /// Map a client-side error of the redis crate (not an error reply) to a kind of failure.
    pub fn from_redis(e: &redis::RedisError) -> Self {
        use redis::ErrorKind;
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_cluster_error()
            || matches!(
                e.kind(),
                ErrorKind::ClusterConnectionNotFound | ErrorKind::AuthenticationFailed
            )
        {
            return BackendError::Unavailable(format!("ERR redis unavailable: {e}"));
        }
        match e.code() {
            Some(code) => BackendError::Redis(error_words(code, e.detail())),
            None => BackendError::Internal(format!("ERR {e}")),
        }
    }
}

/// What Redis (and Upstash) answer for an unknown script SHA. Valkey 8 says only `NOSCRIPT No
/// matching script.`, and clients (two of @upstash/redis's own tests) check Redis's words.
const NOSCRIPT_TEXT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// The text of an error reply, `CODE detail`: verbatim, except that a `NOSCRIPT` reads as Redis
/// words it whatever the server behind the proxy.
pub fn error_text(e: &ServerError) -> String {
    error_words(e.code(), e.details())
}

/// [`error_text`] of an error's code and detail, however the redis crate handed them over.
pub fn error_words(code: &str, detail: Option<&str>) -> String {
    match detail {
        _ if code == "NOSCRIPT" => NOSCRIPT_TEXT.to_owned(),
        Some(d) => format!("{code} {d}"),
        None => code.to_owned(),
    }
}
