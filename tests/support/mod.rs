//! Real components for integration tests: a private redis-server per test, the real binaries.
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod direct;
pub mod redis_server;

pub use redis_server::RedisServer;
pub mod edge;
pub mod proxy;
pub mod workerd;
