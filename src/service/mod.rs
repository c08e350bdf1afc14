//! Services: the core's rules put to work over a [`Store`](crate::store::Store). Async, but
//! runtime-free, so the same code runs in the worker and natively.

pub mod limiter;

pub use limiter::{LimitError, RateLimiter};
