//! edgecount: page-hit counters and rate limits at the edge, on Redis, over the Upstash REST API.
//!
//! - [`core`]: pure rules (names, counters, rate-limit algorithms, badges, Lua scripts); no I/O.
//! - [`store`]: the [`store::Store`] trait and the Upstash REST client behind it.
//! - [`service`]: [`service::Counters`] and [`service::RateLimiter`], the rules over a store.
//! - [`api`]: the HTTP API of `API.md`, framework-free (`http::Request` in, `http::Response` out).
//! - [`driver`]: runs the API for a JavaScript host that does the HTTP itself (the edge worker).
//! - `worker` (wasm): the worker's wasm exports over the driver; `serve` (native): the same API
//!   on axum.
//! - `proxy` (native): an Upstash-compatible REST server in front of a real Redis.
//! - `migrate` (native): copies counters from CountAPI- or Abacus-compatible services.
//! - `http_server` (native): the accept loop both servers run, which bounds slow and idle
//!   clients and caps open connections.
//!
//! Target-specific code stays in the adapters: `worker.rs` for wasm, `serve/`, `proxy/` and
//! `store/http_native.rs` natively; the module declarations here and in `store/mod.rs` choose
//! between them.

pub mod api;
pub mod core;
pub mod driver;
pub mod service;
pub mod store;

#[cfg(not(target_arch = "wasm32"))]
pub mod http_server;
#[cfg(not(target_arch = "wasm32"))]
mod metrics;
#[cfg(not(target_arch = "wasm32"))]
pub mod migrate;
#[cfg(not(target_arch = "wasm32"))]
pub mod proxy;
#[cfg(not(target_arch = "wasm32"))]
pub mod request_id;
#[cfg(not(target_arch = "wasm32"))]
pub mod serve;
#[cfg(not(target_arch = "wasm32"))]
mod shutdown;
#[cfg(target_arch = "wasm32")]
mod worker;
