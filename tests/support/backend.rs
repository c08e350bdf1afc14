//! The Redis behind a test stack: one private redis-server, or a private Redis Cluster (3
//! masters, 3 replicas). [`TestRedis`] offers the same checks on both, so a case written against
//! one runs on the other: commands are routed to the node holding their key, and what Redis keeps
//! per node (keys, the keyspace snapshot, subscribers) is gathered from every node.

use super::cluster::RedisCluster;
use super::redis_server::Snapshot;
use super::RedisServer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One redis-server.
    Single,
    /// A Redis Cluster of 3 masters and 3 replicas.
    Cluster,
}

pub enum TestRedis {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl TestRedis {
    pub fn start(backend: Backend) -> TestRedis {
        match backend {
            Backend::Single => TestRedis::Single(RedisServer::start()),
            Backend::Cluster => TestRedis::Cluster(RedisCluster::start()),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            TestRedis::Single(_) => Backend::Single,
            TestRedis::Cluster(_) => Backend::Cluster,
        }
    }

    /// The URLs to give the proxy (`--redis-url` each): the server, or every cluster node.
    pub fn urls(&self) -> Vec<String> {
        match self {
            TestRedis::Single(server) => vec![server.url()],
            TestRedis::Cluster(cluster) => cluster.urls(),
        }
    }

    /// A URL for a plain (non-cluster) client that works with `key`: the server, or the master
    /// holding the key's slot now.
    pub fn url_for_key(&self, key: &str) -> String {
        match self {
            TestRedis::Single(server) => server.url(),
            TestRedis::Cluster(cluster) => cluster.nodes()[cluster.master_of_key(key)].url(),
        }
    }

    /// Run one command with redis-cli (on a cluster `-c`, following the key's node). Commands
    /// that see one node only are refused on a cluster: use [`TestRedis::keys`],
    /// [`TestRedis::subscribers`], [`TestRedis::snapshot`] instead.
    pub fn cli(&self, args: &[&str]) -> String {
        match self {
            TestRedis::Single(server) => server.cli(args),
            TestRedis::Cluster(cluster) => {
                let name = args.first().map(|a| a.to_ascii_uppercase());
                assert!(
                    !matches!(
                        name.as_deref(),
                        Some("KEYS" | "SCAN" | "DBSIZE" | "PUBSUB" | "FLUSHALL" | "FLUSHDB")
                    ),
                    "{args:?} would see one cluster node: use the TestRedis method for it"
                );
                cluster.cli(args)
            }
        }
    }

    /// Every key matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self {
            TestRedis::Single(server) => server
                .cli(&["KEYS", pattern])
                .lines()
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
            TestRedis::Cluster(cluster) => cluster.keys(pattern),
        }
    }

    /// Clients subscribed to `channel` (`PUBSUB NUMSUB`, summed over the nodes).
    pub fn subscribers(&self, channel: &str) -> u64 {
        match self {
            TestRedis::Single(server) => server
                .cli(&["PUBSUB", "NUMSUB", channel])
                .lines()
                .last()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(u64::MAX),
            TestRedis::Cluster(cluster) => cluster.subscribers(channel),
        }
    }

    /// See [`RedisServer::key_pttls`].
    pub fn key_pttls(&self, pattern: &str) -> Vec<(String, i64)> {
        match self {
            TestRedis::Single(server) => server.key_pttls(pattern),
            TestRedis::Cluster(cluster) => cluster.key_pttls(pattern),
        }
    }

    /// See [`RedisServer::snapshot`]: the whole keyspace (every master's).
    pub fn snapshot(&self) -> Snapshot {
        match self {
            TestRedis::Single(server) => server.snapshot(),
            TestRedis::Cluster(cluster) => cluster.snapshot(),
        }
    }

    /// See [`RedisServer::wait_clear_of_minute_boundary`] (every node shares this machine's clock).
    pub fn wait_clear_of_minute_boundary(&self, margin_s: u64) {
        match self {
            TestRedis::Single(server) => server.wait_clear_of_minute_boundary(margin_s),
            TestRedis::Cluster(cluster) => {
                cluster.any_master().wait_clear_of_minute_boundary(margin_s)
            }
        }
    }

    /// The cluster, for tests that act on its nodes (panics on a single server).
    pub fn cluster(&mut self) -> &mut RedisCluster {
        match self {
            TestRedis::Cluster(cluster) => cluster,
            TestRedis::Single(_) => panic!("this stack has a single redis-server, not a cluster"),
        }
    }

    /// Redis gone: the server, or every node of the cluster, killed.
    pub fn kill(&mut self) {
        match self {
            TestRedis::Single(server) => server.kill(),
            TestRedis::Cluster(cluster) => cluster.kill(),
        }
    }

    /// Back on the same ports (empty); a cluster re-forms from its nodes' saved configuration.
    pub fn restart(&mut self) {
        match self {
            TestRedis::Single(server) => server.restart(),
            TestRedis::Cluster(cluster) => cluster.restart(),
        }
    }
}
