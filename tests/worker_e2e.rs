//! The counter and rate-limit API through the real wasm worker in workerd → the real proxy → a
//! private redis-server: the same cases as `api_serve.rs`.

mod support;
#[macro_use]
mod api_cases;

use support::edge::Kind;

all_api_cases!(Kind::Worker);
