//! The counter and rate-limit API through the real wasm worker in workerd → the real proxy → a
//! private Redis Cluster (3 masters, 3 replicas): the same cases as `worker_e2e.rs`.

mod support;
#[macro_use]
mod api_cases;

use support::edge::{Kind, Stack};

all_api_cases!(Stack::cluster(Kind::Worker));
