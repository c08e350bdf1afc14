//! The counter and rate-limit API through `edgecount serve` talking RESP straight to a private
//! redis-server (`--redis-url`: the redis crate, multiplexed, the same Lua scripts by SHA), no
//! REST hop: the same cases as `api_serve.rs` (through the proxy) and `worker_e2e.rs`.

mod support;
#[macro_use]
mod api_cases;

use support::edge::Kind;

all_api_cases!(Kind::ServeDirect);
