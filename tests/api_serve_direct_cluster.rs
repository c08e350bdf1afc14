//! The counter and rate-limit API through `edgecount serve --cluster --redis-url …` talking RESP
//! straight to a private Redis Cluster (3 masters, 3 replicas): the same cases as
//! `api_serve_direct.rs` and `api_serve_cluster.rs`. Round trips are checked per master there
//! (one request: at most one read by each node it needs, see `one_rest_request_per_hit_…`).

mod support;
#[macro_use]
mod api_cases;

use support::edge::{Kind, Stack};

all_api_cases!(Stack::cluster(Kind::ServeDirect));
