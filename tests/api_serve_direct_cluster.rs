//! The counter and rate-limit API through `edgecount serve --cluster --redis-url …` talking RESP
//! straight to a private Redis Cluster (3 masters, 3 replicas): the same cases as
//! `api_serve_direct.rs` and `api_serve_cluster.rs`. Round trips are checked per master there
//! (one request: at most one read by each node it needs, see `one_rest_request_per_hit_…`).
//!
//! Known, shared with `api_serve_cluster.rs` (through the proxy) when this was written:
//! `batch_runs_many_operations_with_per_index_results` and
//! `export_then_import_round_trips_every_bucket` fail with `NOSCRIPT` — their pipelines start with
//! a `SCRIPT LOAD` that the Cluster client fans out to every master, apparently not always before
//! the pipeline's `EVALSHA`s reach them (both paths use the proxy's `Backend` for a Cluster).

mod support;
#[macro_use]
mod api_cases;

use support::edge::{Kind, Stack};

all_api_cases!(Stack::cluster(Kind::ServeDirect));
