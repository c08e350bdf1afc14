//! The counter and rate-limit API through `edgecount serve` → the real proxy → a private Redis
//! Cluster (3 masters, 3 replicas): the same cases as `api_serve.rs`.

mod support;
#[macro_use]
mod api_cases;

use support::edge::{Kind, Stack};

all_api_cases!(Stack::cluster(Kind::Serve));
