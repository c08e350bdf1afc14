//! Services: the core's rules put to work over a [`Store`](crate::store::Store). Async, but
//! runtime-free, so the same code runs in the worker and natively.

pub mod counters;
pub mod deny;
pub mod leases;
pub mod limiter;

pub use counters::Counters;
pub use deny::DenyList;
pub use leases::{ConcurrencyLimiter, LeaseFailure};
pub use limiter::{LimitError, RateLimiter};

use crate::store::StoreError;

/// Unix time in milliseconds from the standard library: the default clock natively. (Wasm has no
/// `SystemTime`: the worker passes its runtime's `Date.now()` instead, see `api::Platform`.)
pub fn system_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Why a service operation failed: the core's rules said no (`E`), or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error<E> {
    #[error(transparent)]
    Rule(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::core::counter::CounterError> for Error<crate::core::counter::CounterError> {
    fn from(e: crate::core::counter::CounterError) -> Self {
        Error::Rule(e)
    }
}

impl From<crate::core::ratelimit::RateLimitError>
    for Error<crate::core::ratelimit::RateLimitError>
{
    fn from(e: crate::core::ratelimit::RateLimitError) -> Self {
        Error::Rule(e)
    }
}
