//! edgecount: page-hit counters and rate limits at the edge, on Redis, over the Upstash REST API
//! or straight over RESP. The contracts are in `docs/`: `API.md` (the counter and rate-limit
//! API), `UPSTASH-REST.md` (what `edgecount proxy` serves), `DESIGN.md` (the layers, what may
//! import what, the hot paths).
//!
//! - [`core`]: the rules (names, counters, rate-limit algorithms, badges, the Lua scripts): no
//!   network or file I/O, no async runtime; time comes in as an argument. Three generators of
//!   secrets read the OS's randomness (`docs/DESIGN.md` §14).
//! - [`store`]: the [`store::Store`] trait and what implements it: the Upstash REST client
//!   (`rest`, over a transport: the worker's `fetch`, or reqwest in `http_native`), the RESP store
//!   of `edgecount serve --redis-url` (`redis`, native), and the worker's read cache (`cached`).
//! - [`service`]: [`service::Counters`], [`service::RateLimiter`], [`service::DenyList`],
//!   [`service::ConcurrencyLimiter`]: the rules over any store.
//! - [`api`]: the HTTP API of `docs/API.md`, framework-free (`http::Request` in, `http::Response`
//!   out).
//! - [`driver`]: runs the API for a JavaScript host that does the HTTP itself (the edge worker).
//! - `worker` (wasm): the worker's wasm exports over the driver; `serve` (native): the same API
//!   on axum, over Upstash REST or RESP, with its own read cache and shared subscriptions
//!   (`serve::hot`).
//! - `backend` (native): the Redis connection layer both native servers share: multiplexed
//!   connections to one server, replicas, durable writes, a Redis Cluster with slot-grouped
//!   pipelines, transactions, pub/sub; its own `BackendError`. Imports no other front.
//! - `proxy` (native): an Upstash-compatible REST server in front of a real Redis, on `backend`;
//!   serve's RESP store uses `backend` for a Cluster, transactions and pub/sub.
//! - `migrate` (native): copies counters from CountAPI- or Abacus-compatible services.
//! - `http_server` (native): the accept loop both servers run, which bounds slow and idle
//!   clients and caps open connections; `request_id`, `metrics`, `shutdown` and `secret` (URLs
//!   without their secrets for logs) serve both too.
//!
//! Target-specific code stays in the adapters: `worker.rs` for wasm; `backend/`, `serve/`,
//! `proxy/`, `store/redis.rs` and `store/http_native.rs` natively. The module declarations here
//! and in `store/mod.rs` choose between them.

pub mod api;
pub mod core;
pub mod driver;
pub mod service;
pub mod store;

#[cfg(not(target_arch = "wasm32"))]
pub mod backend;
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
pub mod secret;
#[cfg(not(target_arch = "wasm32"))]
pub mod serve;
#[cfg(not(target_arch = "wasm32"))]
mod shutdown;
#[cfg(target_arch = "wasm32")]
mod worker;
