//! The counter and rate-limit API through `edgecount serve` (native axum app) → the real proxy →
//! a private redis-server. The same cases run through the wasm worker in `worker_e2e.rs`.

mod support;
#[macro_use]
mod api_cases;

use support::edge::Kind;

all_api_cases!(Kind::Serve);
