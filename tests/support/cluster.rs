//! A private Redis Cluster for one test: 3 masters and 3 replicas (one per master), each a
//! [`RedisServer`] (its own temp dir and process group, killed on drop), on loopback ports low
//! enough that the cluster bus port (port + 10000) is valid and free too.
//!
//! The cluster is put together by hand (`CLUSTER ADDSLOTSRANGE`, `MEET`, `REPLICATE`), as
//! `redis-cli --cluster create --cluster-replicas 1` would, but polling every 20 ms instead of
//! redis-cli's 1 s steps; the nodes start in parallel and replicas sync at once
//! (`repl-diskless-sync-delay 0`), so a cluster is ready in well under a second.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::redis_server::Snapshot;
use super::RedisServer;

/// How long a node may be unreachable before the others call it failed (and its replica takes
/// over): short, so a failover takes ~3 s, not Redis's default 15 s.
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// Masters (each with one replica).
pub const MASTERS: usize = 3;

const SLOT_RANGES: [(u16, u16); MASTERS] = [(0, 5460), (5461, 10922), (10923, 16383)];

pub struct RedisCluster {
    /// `nodes[i]` for i < MASTERS started as master i; `nodes[MASTERS + i]` as its replica. Roles
    /// change after a failover: ask [`RedisCluster::masters`].
    nodes: Vec<RedisServer>,
}

/// A node port in 10000..22000: its bus port (+10000) is then below 32768 too, outside Linux's
/// default ephemeral range (`free_port` hands out ports up to 60999, whose bus port would not
/// exist). Both must be free when probed; a start that loses a race picks again.
pub fn cluster_port() -> u16 {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
    for _ in 0..500 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(DRAWS.fetch_add(1, Ordering::Relaxed));
        let port = 10_000 + (hasher.finish() % 12_000) as u16;
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair (port, port + 10000) below 32768");
}

fn node_args() -> Vec<String> {
    [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        &NODE_TIMEOUT_MS.to_string(),
        // Replicas sync the moment they are told to (the default waits 5 s for more replicas).
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One command on one node over RESP (faster than a redis-cli process for polling); `None` when
/// the node does not answer.
fn query(node: &RedisServer, args: &[&str]) -> Option<redis::Value> {
    let client = redis::Client::open(node.url()).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut conn).ok()
}

fn text(node: &RedisServer, args: &[&str]) -> String {
    match query(node, args) {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Some(redis::Value::SimpleString(s)) => s,
        Some(redis::Value::VerbatimString { text, .. }) => text,
        Some(redis::Value::Okay) => "OK".into(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

impl RedisCluster {
    /// Start 6 nodes, assign the slots, join them and pair each master with a replica; returns
    /// once every node says `cluster_state:ok`, every node knows every replica and every
    /// replica's link to its master is up.
    pub fn start() -> RedisCluster {
        let started = Instant::now();
        let args = node_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let nodes: Vec<RedisServer> = std::thread::scope(|scope| {
            let starting: Vec<_> = (0..2 * MASTERS)
                .map(|_| scope.spawn(|| RedisServer::with_args_on(&args, cluster_port)))
                .collect();
            starting
                .into_iter()
                .map(|h| h.join().expect("start a cluster node"))
                .collect()
        });
        let cluster = RedisCluster { nodes };
        for (i, node) in cluster.nodes.iter().enumerate() {
            // Distinct epochs from the start, as `redis-cli --cluster create` gives them.
            assert_eq!(
                text(node, &["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()]),
                "OK"
            );
        }
        for (node, (first, last)) in cluster.nodes.iter().zip(SLOT_RANGES) {
            let (first, last) = (first.to_string(), last.to_string());
            assert_eq!(
                text(node, &["CLUSTER", "ADDSLOTSRANGE", &first, &last]),
                "OK"
            );
        }
        // Every node meets every other: no waiting for gossip to spread the news.
        for (i, node) in cluster.nodes.iter().enumerate() {
            for other in &cluster.nodes[i + 1..] {
                let port = other.port().to_string();
                assert_eq!(text(node, &["CLUSTER", "MEET", "127.0.0.1", &port]), "OK");
            }
        }
        let everyone = 2 * MASTERS;
        super::eventually(
            "every node knows every node",
            Duration::from_secs(10),
            || {
                cluster.nodes.iter().all(|n| {
                    let nodes = text(n, &["CLUSTER", "NODES"]);
                    nodes.lines().count() == everyone && !nodes.contains("handshake")
                })
            },
        );
        for i in 0..MASTERS {
            let master_id = text(&cluster.nodes[i], &["CLUSTER", "MYID"]);
            let replica = &cluster.nodes[MASTERS + i];
            assert_eq!(text(replica, &["CLUSTER", "REPLICATE", &master_id]), "OK");
        }
        cluster.wait_ready(Duration::from_secs(20));
        eprintln!(
            "redis cluster on ports {:?} ready in {:?}",
            cluster.ports(),
            started.elapsed()
        );
        cluster
    }

    /// Wait until the cluster is whole: `cluster_state:ok` on every node, every node seeing
    /// MASTERS masters and MASTERS replicas, every replica's link up.
    pub fn wait_ready(&self, within: Duration) {
        super::eventually("the cluster", within, || {
            self.nodes.iter().all(|n| {
                let info = text(n, &["CLUSTER", "INFO"]);
                let nodes = text(n, &["CLUSTER", "NODES"]);
                let replication = text(n, &["INFO", "replication"]);
                let replicas = nodes.lines().filter(|l| l.contains("slave")).count();
                info.contains("cluster_state:ok")
                    && replicas == MASTERS
                    && !nodes.contains("fail")
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            })
        });
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// Every node's URL: the seeds to give a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes that are masters now (answering, `ROLE` master), by index.
    pub fn master_indexes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                matches!(query(&self.nodes[i], &["ROLE"]),
                    Some(redis::Value::Array(role)) if matches!(role.first(),
                        Some(redis::Value::BulkString(b)) if b == b"master"))
            })
            .collect()
    }

    /// The nodes that are masters now.
    pub fn masters(&self) -> Vec<&RedisServer> {
        self.master_indexes()
            .into_iter()
            .map(|i| &self.nodes[i])
            .collect()
    }

    /// Any master that answers (for keyless commands such as `TIME`).
    pub fn any_master(&self) -> &RedisServer {
        self.masters()
            .first()
            .copied()
            .expect("no master of the cluster answers")
    }

    /// The hash slot of `key`.
    pub fn slot_of(&self, key: &str) -> u16 {
        match query(self.any_master(), &["CLUSTER", "KEYSLOT", key]) {
            Some(redis::Value::Int(slot)) => slot as u16,
            other => panic!("CLUSTER KEYSLOT {key}: {other:?}"),
        }
    }

    /// The index of the node serving `slot` as master, as the live nodes see it.
    pub fn master_of_slot(&self, slot: u16) -> usize {
        self.serving(slot)
            .unwrap_or_else(|| panic!("no live master serves slot {slot}"))
    }

    /// The index of the node serving `slot` as a master not flagged as failing, as a live master
    /// sees it (`CLUSTER NODES`: `<id> <ip:port@bus> <flags> <master> … <slot ranges>`); `None`
    /// while nobody does (e.g. during a failover).
    pub fn serving(&self, slot: u16) -> Option<usize> {
        let nodes = text(self.masters().first()?, &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (first, last) = range.split_once('-').unwrap_or((range, range));
                match (first.parse::<u16>(), last.parse::<u16>()) {
                    (Ok(first), Ok(last)) => (first..=last).contains(&slot),
                    _ => false,
                }
            });
            if serves {
                let port: u16 = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .expect("node address");
                return self.nodes.iter().position(|n| n.port() == port);
            }
        }
        None
    }

    /// True when every live node says `cluster_state:ok`.
    pub fn live_nodes_ok(&self) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.ping())
            .all(|n| text(n, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    }

    /// The index of the node holding `key` (as master).
    pub fn master_of_key(&self, key: &str) -> usize {
        self.master_of_slot(self.slot_of(key))
    }

    /// Run one command with `redis-cli -c` (following MOVED redirections), through a master;
    /// panics with redis-cli's stderr when it fails (as [`RedisServer::cli`]).
    pub fn cli(&self, args: &[&str]) -> String {
        let port = self.any_master().port().to_string();
        super::redis_server::cli_output(
            Command::new("redis-cli")
                .args(["-c", "-p", &port])
                .args(args),
        )
        .unwrap_or_else(|failure| panic!("redis-cli -c {args:?} on port {port}: {failure}"))
    }

    /// Every key matching `pattern` on every master.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.masters()
            .iter()
            .flat_map(|m| {
                m.cli(&["KEYS", pattern])
                    .lines()
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// [`RedisServer::key_pttls`] over every master.
    pub fn key_pttls(&self, pattern: &str) -> Vec<(String, i64)> {
        self.masters()
            .iter()
            .flat_map(|m| m.key_pttls(pattern))
            .collect()
    }

    /// [`RedisServer::snapshot`] of the whole keyspace: every master's.
    pub fn snapshot(&self) -> Snapshot {
        let mut all = Snapshot::default();
        for master in self.masters() {
            all.0.extend(master.snapshot().0);
        }
        all
    }

    /// Subscribers of `channel` on every node (a client may subscribe through any of them).
    pub fn subscribers(&self, channel: &str) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.ping())
            .map(|n| {
                n.cli(&["PUBSUB", "NUMSUB", channel])
                    .lines()
                    .last()
                    .and_then(|c| c.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// SIGKILL node `i` (its process group); it stays down.
    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// After node `dead` failed over: a fresh, empty node takes its place in [`RedisCluster::nodes`]
    /// as a replica of the master now serving its slots (what an operator does once a master
    /// died), and the dead node's directory goes. Returns once the new replica's link is up.
    pub fn replace_with_replica(&mut self, dead: usize, slot: u16) {
        let master = self
            .serving(slot)
            .expect("a master serves the dead node's slots");
        let args = node_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let node = RedisServer::with_args_on(&args, cluster_port);
        let master_port = self.nodes[master].port().to_string();
        assert_eq!(
            text(&node, &["CLUSTER", "MEET", "127.0.0.1", &master_port]),
            "OK"
        );
        let master_id = text(&self.nodes[master], &["CLUSTER", "MYID"]);
        super::eventually(
            "the new node knows the master",
            Duration::from_secs(10),
            || {
                text(&node, &["CLUSTER", "NODES"])
                    .lines()
                    .any(|l| l.starts_with(&master_id) && !l.contains("handshake"))
            },
        );
        assert_eq!(text(&node, &["CLUSTER", "REPLICATE", &master_id]), "OK");
        super::eventually("the new replica's link", Duration::from_secs(10), || {
            text(&node, &["INFO", "replication"]).contains("master_link_status:up")
        });
        self.nodes[dead] = node;
    }

    /// Kill every node (Redis gone altogether).
    pub fn kill(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// Restart every node on its port and directory: each reads its `nodes.conf` (slots, roles,
    /// epochs) back and the cluster re-forms, empty (the nodes keep no data: `--save ""`).
    pub fn restart(&mut self) {
        self.kill();
        std::thread::scope(|scope| {
            for node in &mut self.nodes {
                scope.spawn(move || node.restart());
            }
        });
        self.wait_ready(Duration::from_secs(30));
    }
}
