//! Where a counter lives in Redis, and for how long.
//!
//! Every key of one counter carries the hash tag `{ns:key}`, so all of them share one Cluster slot
//! and one script may touch them all:
//!
//! | key | holds | TTL |
//! |---|---|---|
//! | `ec:{ns:key}:v` | the value (string integer) | none: counters do not expire |
//! | `ec:{ns:key}:m` | meta hash: `created` (unix s), `admin` (SHA-256 hex), `reset` (0/1), `lb`, `ub` | none |
//! | `ec:{ns:key}:d:<YYYYMMDD>` | hits that UTC day | [`DAILY_TTL_SECS`] (400 days) |
//! | `ec:{ns:key}:h:<YYYYMMDDHH>` | hits that UTC hour | [`HOURLY_TTL_SECS`] (3 days) |
//! | `ec:{ns:key}:u:<YYYYMMDD>` | HyperLogLog of visitor hashes that day | [`DAILY_TTL_SECS`] |
//! | `ec:{ns:key}:i:<idempotency key>` | the value a counted request answered | [`IDEMPOTENCY_TTL_SECS`] (1 day) |
//! | `ec:{ns:key}:a:<client>:<window>` | counted hits of one client (an HMAC of its IP) in one abuse-limit window | the window |
//!
//! Days and hours are UTC, by the clock of the process serving the request (the worker's, serve's):
//! every key is named before the script runs, so each script declares all it touches in `KEYS`.
//!
//! Pub/sub channel per counter: `ec:{ns:key}:live`, carrying `{"value":N}` on every change and
//! `{"deleted":true}` on delete.
//!
//! A namespace has keys of its own, tagged `{ns}` (no `:` inside the braces, so they can never be
//! a counter's), in their own slot — which is why no counter script writes them:
//!
//! | key | holds | TTL |
//! |---|---|---|
//! | `ec:{ns}:counters` | set of the namespace's counter keys: added by counted hits and creates (in the same round trip), removed by delete | none |
//! | `ec:{ns}:auth` | SHA-256 hex of the namespace token | none |
//!
//! and a channel `ec:{ns}:live` carrying `{"key":K,"value":N}` / `{"key":K,"deleted":true}` for
//! every change of any of its counters (each script publishes to both channels).
//!
//! Service-wide figures (`GET /stats`) cannot share a counter's slot. They live in
//! [`GLOBAL_SHARDS`] shards so no single Cluster node takes every hit: shard `s` of a counter is
//! fixed by its name, `ec:global:counters:<s>` is a HyperLogLog of counter names (approximate,
//! never decremented on delete) and `ec:global:hits:<YYYYMMDD>:<s>` counts hits per day. The hit
//! script writes them, and the namespace's registry, itself (their keys declared beside the
//! counter's) where Redis lets one script span slots; on Redis Cluster they are sent beside it in
//! the same pipeline ([`super::global_hit_commands`]).

use sha2::{Digest, Sha256};

use super::calendar::{day_label, hour_label};

use crate::core::command::Command;
use crate::core::names::{Name, Namespace};

/// Hourly buckets serve the last-48-hours view; a third day is slack for late readers.
pub const HOURLY_TTL_SECS: u64 = 3 * 86_400;
/// Daily buckets and HyperLogLogs serve up to [`MAX_STATS_DAYS`] of history.
pub const DAILY_TTL_SECS: u64 = 400 * 86_400;
/// How long a retry with the same `Idempotency-Key` answers the original value.
pub const IDEMPOTENCY_TTL_SECS: u64 = 86_400;
/// The longest history `GET /stats/{ns}/{key}?days=` gives; longer requests are capped.
pub const MAX_STATS_DAYS: u32 = 400;
/// The hours `GET /stats/{ns}/{key}` always gives.
pub const STATS_HOURS: u32 = 48;
/// Shards of the service-wide figures.
pub const GLOBAL_SHARDS: u32 = 16;

/// The keys of one counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterKeys {
    /// `ec:{ns:key}`
    prefix: String,
}

impl CounterKeys {
    pub fn new(name: &Name) -> Self {
        // Names cannot contain `{`, `}` or `:`, so the tag is exactly `ns:key` and unambiguous.
        CounterKeys {
            prefix: format!("ec:{{{}:{}}}", name.ns, name.key),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn value(&self) -> String {
        format!("{}:v", self.prefix)
    }

    pub fn meta(&self) -> String {
        format!("{}:m", self.prefix)
    }

    pub fn daily(&self, day_label: &str) -> String {
        format!("{}:d:{day_label}", self.prefix)
    }

    pub fn hourly(&self, hour_label: &str) -> String {
        format!("{}:h:{hour_label}", self.prefix)
    }

    pub fn uniques(&self, day_label: &str) -> String {
        format!("{}:u:{day_label}", self.prefix)
    }

    pub fn idempotency(&self, id: &str) -> String {
        format!("{}:i:{id}", self.prefix)
    }

    /// One client's tally in abuse-limit window number `window` (unix seconds / window length).
    pub fn abuse(&self, client: &str, window: i64) -> String {
        format!("{}:a:{client}:{window}", self.prefix)
    }

    /// Per day, oldest first: its hits and its visitors, for the `days` days ending with the day
    /// of `now` (unix seconds), and then `extra` days after it.
    pub fn days_back(&self, now: i64, days: u32, extra: u32) -> Vec<String> {
        let first = i64::from(days) - 1;
        (-first..=i64::from(extra))
            .flat_map(|offset| {
                let day = day_label(now + offset * 86_400);
                [self.daily(&day), self.uniques(&day)]
            })
            .collect()
    }

    /// Hourly buckets, oldest first: the `hours` hours ending with the hour of `now`, and then
    /// `extra` hours after it.
    pub fn hours_back(&self, now: i64, hours: u32, extra: u32) -> Vec<String> {
        let first = i64::from(hours) - 1;
        (-first..=i64::from(extra))
            .map(|offset| self.hourly(&hour_label(now + offset * 3600)))
            .collect()
    }

    /// The pub/sub channel of live updates (`/stream`).
    pub fn channel(&self) -> String {
        format!("{}:live", self.prefix)
    }
}

/// The keys of one namespace (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceKeys {
    /// `ec:{ns}`
    prefix: String,
}

impl NamespaceKeys {
    pub fn new(ns: &Namespace) -> Self {
        NamespaceKeys {
            prefix: format!("ec:{{{ns}}}"),
        }
    }

    /// The set of its counters' keys.
    pub fn counters(&self) -> String {
        format!("{}:counters", self.prefix)
    }

    /// The hash of its token.
    pub fn auth(&self) -> String {
        format!("{}:auth", self.prefix)
    }

    /// The pub/sub channel of every change in the namespace.
    pub fn channel(&self) -> String {
        format!("{}:live", self.prefix)
    }
}

/// The shard of the service-wide figures a counter feeds (stable: a hash of its name).
pub fn global_shard(name: &Name) -> u32 {
    let digest = Sha256::digest(name.path().as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % GLOBAL_SHARDS
}

/// HyperLogLog of the counter names of one shard.
pub fn global_counters_key(shard: u32) -> String {
    format!("ec:global:counters:{shard}")
}

/// Hits of one day (edge clock) in one shard.
pub fn global_hits_key(day_label: &str, shard: u32) -> String {
    format!("ec:global:hits:{day_label}:{shard}")
}

/// The key of `cmd` if it is a plain read of one counter's value (`GET ec:{ns:key}:v`: `/get`,
/// badges, the first event of `/stream`): what the read caches of serve and the worker keep.
pub fn value_read(cmd: &Command) -> Option<&str> {
    match cmd.parts() {
        [name, key] if name.eq_ignore_ascii_case("GET") && is_value_key(key) => Some(key),
        _ => None,
    }
}

/// `ec:{ns:key}:v`, a counter's value.
fn is_value_key(key: &str) -> bool {
    counter_prefix(key).is_some_and(|prefix| key.len() == prefix.len() + 2 && key.ends_with(":v"))
}

/// `ec:{ns:key}` of a key of one counter (namespace keys `ec:{ns}` have no `:` in the tag).
pub fn counter_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("ec:{")?;
    let close = rest.find('}')?;
    rest[..close].contains(':').then(|| &key[..4 + close + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_reads_and_counter_prefixes() {
        let get = |key: &str| Command::new("GET").arg(key);
        assert_eq!(value_read(&get("ec:{ns:key}:v")), Some("ec:{ns:key}:v"));
        assert_eq!(value_read(&get("ec:{ns:key}:m")), None);
        assert_eq!(value_read(&get("ec:{ns}:v")), None);
        assert_eq!(value_read(&get("other")), None);
        assert_eq!(value_read(&Command::new("INCR").arg("ec:{ns:key}:v")), None);
        assert_eq!(
            counter_prefix("ec:{ns:key}:d:20260101"),
            Some("ec:{ns:key}")
        );
        assert_eq!(counter_prefix("ec:{ns}:counters"), None);
        assert_eq!(counter_prefix("ec:global:hits"), None);
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = CounterKeys::new(&Name::parse("blog", "home").unwrap());
        assert_eq!(keys.value(), "ec:{blog:home}:v");
        assert_eq!(keys.meta(), "ec:{blog:home}:m");
        assert_eq!(keys.daily("20261125"), "ec:{blog:home}:d:20261125");
        assert_eq!(keys.hourly("2026112513"), "ec:{blog:home}:h:2026112513");
        assert_eq!(keys.uniques("20261125"), "ec:{blog:home}:u:20261125");
        assert_eq!(keys.idempotency("r-1"), "ec:{blog:home}:i:r-1");
        assert_eq!(keys.channel(), "ec:{blog:home}:live");
    }

    #[test]
    fn namespace_keys_cannot_be_counter_keys() {
        let keys = NamespaceKeys::new(&Namespace::parse("blog").unwrap());
        assert_eq!(keys.counters(), "ec:{blog}:counters");
        assert_eq!(keys.auth(), "ec:{blog}:auth");
        assert_eq!(keys.channel(), "ec:{blog}:live");
    }

    #[test]
    fn global_shards_are_stable_and_in_range() {
        let name = Name::parse("blog", "home").unwrap();
        assert_eq!(global_shard(&name), global_shard(&name.clone()));
        assert!(global_shard(&name) < GLOBAL_SHARDS);
        assert_eq!(global_hits_key("20261125", 3), "ec:global:hits:20261125:3");
    }
}
