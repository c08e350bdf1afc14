//! edgecount: page-hit counters and rate limits at the edge, on Redis, over the Upstash REST API.
//!
//! - [`core`]: pure rules (names, counters, rate-limit algorithms, badges, Lua scripts); no I/O.
//! - [`store`]: the [`store::Store`] trait and the Upstash REST client behind it.
//! - `proxy` (native): an Upstash-compatible REST server in front of a real Redis.

pub mod api;
pub mod core;
pub mod service;
pub mod store;

#[cfg(not(target_arch = "wasm32"))]
pub mod proxy;
#[cfg(not(target_arch = "wasm32"))]
pub mod serve;
#[cfg(not(target_arch = "wasm32"))]
mod shutdown;
#[cfg(target_arch = "wasm32")]
mod worker;
