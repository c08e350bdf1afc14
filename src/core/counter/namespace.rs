//! Namespaces: the counters one site keeps together, the registry that lists them, and the
//! namespace token that reads and administers them (and only them).
//!
//! - The registry (`ec:{ns}:counters`) is fed in the same round trip as the change that makes a
//!   counter: counted hits and batch hits add to it ([`register_command`] rides in their
//!   pipeline), creates add to it through [`claim_call`], deletes remove from it. Counters from
//!   before the registry join it with their next counted hit.
//! - The token is a generated secret shown once, stored as its SHA-256 ([`AdminKey`]). The
//!   creator of a namespace's first counter gets one ([`claim_call`]); the service admin can mint
//!   a new one at any time ([`mint_command`]), which revokes the old.

use serde::Serialize;

use super::admin::AdminKey;
use super::calendar::day_label;
use super::keys::{CounterKeys, NamespaceKeys};
use super::{scripts, CounterError, ScriptCall};
use crate::core::command::{Command, Reply};
use crate::core::names::{CounterKey, Name, Namespace};

/// The most counters one listing or export looks at; a larger namespace lists the first ones by
/// name (the answer says it was truncated).
pub const MAX_NAMESPACE_COUNTERS: usize = 10_000;
/// Counters a listing shows unless `?limit=` says otherwise.
pub const DEFAULT_LISTING_LIMIT: usize = 100;
/// The most counters one listing shows.
pub const MAX_LISTING_LIMIT: usize = 1000;

/// `SADD ec:{ns}:counters key`: the counter is part of its namespace's listing.
pub fn register_command(name: &Name) -> Command {
    Command::new("SADD")
        .arg(NamespaceKeys::new(&name.ns).counters())
        .arg(name.key.as_str())
}

/// `SREM …`: after a delete.
pub fn forget_command(name: &Name) -> Command {
    Command::new("SREM")
        .arg(NamespaceKeys::new(&name.ns).counters())
        .arg(name.key.as_str())
}

/// After a successful create: register the counter, and store `token`'s hash if this is the
/// namespace's first counter and it has no token yet (see `namespace_claim.lua`).
pub fn claim_call(name: &Name, token: &AdminKey) -> ScriptCall {
    let keys = NamespaceKeys::new(&name.ns);
    ScriptCall {
        script: &scripts::NAMESPACE_CLAIM,
        keys: vec![keys.counters(), keys.auth()],
        args: vec![name.key.to_string(), token.hash()],
    }
}

/// Whether the claim stored the token (so the creator is shown it).
pub fn parse_claim(reply: Reply) -> Result<bool, CounterError> {
    Ok(reply.as_i64()? == 1)
}

/// `SET ec:{ns}:auth <hash>`: `token` becomes the namespace's token, the old one stops working.
pub fn mint_command(ns: &Namespace, token: &AdminKey) -> Command {
    Command::new("SET")
        .arg(NamespaceKeys::new(ns).auth())
        .arg(token.hash())
}

/// `GET ec:{ns}:auth`: the stored hash to check a presented token against.
pub fn token_read(ns: &Namespace) -> Command {
    Command::new("GET").arg(NamespaceKeys::new(ns).auth())
}

/// The answer of a mint: `{"namespace","namespace_token"}` (shown once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MintedToken {
    pub namespace: String,
    pub namespace_token: String,
}

/// `SMEMBERS ec:{ns}:counters`
pub fn members_command(ns: &Namespace) -> Command {
    Command::new("SMEMBERS").arg(NamespaceKeys::new(ns).counters())
}

/// The registered counter keys, sorted by name, at most [`MAX_NAMESPACE_COUNTERS`]; `true` when
/// there were more. Members that are not valid keys (written by something else) are skipped.
pub fn parse_members(reply: Reply) -> Result<(Vec<CounterKey>, bool), CounterError> {
    let mut keys: Vec<CounterKey> = reply
        .into_array()?
        .into_iter()
        .filter_map(|member| member.as_str().ok().and_then(|k| CounterKey::parse(k).ok()))
        .collect();
    keys.sort();
    let truncated = keys.len() > MAX_NAMESPACE_COUNTERS;
    keys.truncate(MAX_NAMESPACE_COUNTERS);
    Ok((keys, truncated))
}

/// `?limit=`: how many counters a listing shows.
pub fn parse_listing_limit(raw: Option<&str>) -> Result<usize, CounterError> {
    match raw.filter(|v| !v.trim().is_empty()) {
        None => Ok(DEFAULT_LISTING_LIMIT),
        Some(v) => {
            let n = super::parse_integer("limit", v)?;
            if !(1..=MAX_LISTING_LIMIT as i64).contains(&n) {
                return Err(CounterError::OutOfRange { field: "limit" });
            }
            Ok(n as usize)
        }
    }
}

/// For each key: `GET` its value and `GET` today's bucket (today by the edge's clock, as the
/// service-wide figures are). One pipeline: the counters live in different Cluster slots.
pub fn listing_commands(ns: &Namespace, keys: &[CounterKey], edge_now_secs: i64) -> Vec<Command> {
    let today = day_label(edge_now_secs);
    let mut commands = Vec::with_capacity(2 * keys.len());
    for key in keys {
        let counter = CounterKeys::new(&Name {
            ns: ns.clone(),
            key: key.clone(),
        });
        commands.push(Command::new("GET").arg(counter.value()));
        commands.push(Command::new("GET").arg(counter.daily(&today)));
    }
    commands
}

/// One row of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListedCounter {
    pub key: String,
    pub value: i64,
    pub today: i64,
}

/// `{"namespace","counters":[{"key","value","today"}…],"count","truncated"}`: the counters with
/// the highest values first (ties by name), `count` of them in the namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NamespaceListing {
    pub namespace: String,
    pub counters: Vec<ListedCounter>,
    pub count: usize,
    pub truncated: bool,
}

/// Read [`listing_commands`]' answers; registered counters that no longer exist are left out.
pub fn parse_listing(
    ns: &Namespace,
    keys: &[CounterKey],
    entries: Vec<Result<Reply, String>>,
    limit: usize,
    truncated: bool,
) -> Result<NamespaceListing, CounterError> {
    if entries.len() != 2 * keys.len() {
        return Err(CounterError::Redis(format!(
            "expected {} pipeline entries, got {}",
            2 * keys.len(),
            entries.len()
        )));
    }
    let mut entries = entries.into_iter();
    let mut counters = Vec::with_capacity(keys.len());
    for key in keys {
        let (value, today) = (entries.next(), entries.next());
        let read = |entry: Option<Result<Reply, String>>| -> Result<Option<i64>, CounterError> {
            Ok(entry
                .unwrap_or(Ok(Reply::Nil))
                .map_err(CounterError::Redis)?
                .as_opt_i64()?)
        };
        if let Some(value) = read(value)? {
            counters.push(ListedCounter {
                key: key.to_string(),
                value,
                today: read(today)?.unwrap_or(0),
            });
        }
    }
    counters.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.key.cmp(&b.key)));
    let count = counters.len();
    counters.truncate(limit);
    Ok(NamespaceListing {
        namespace: ns.to_string(),
        counters,
        count,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Reply {
        Reply::Bytes(v.as_bytes().to_vec())
    }

    #[test]
    fn registry_commands_name_the_namespace_set() {
        let name = Name::parse("blog", "home").unwrap();
        assert_eq!(
            register_command(&name).parts(),
            ["SADD", "ec:{blog}:counters", "home"]
        );
        assert_eq!(forget_command(&name).parts()[0], "SREM");
        let token = AdminKey::generate().unwrap();
        let claim = claim_call(&name, &token);
        assert_eq!(claim.keys, ["ec:{blog}:counters", "ec:{blog}:auth"]);
        assert_eq!(claim.args, ["home".to_owned(), token.hash()]);
        assert!(!claim.args.iter().any(|a| a == token.as_str()));
    }

    #[test]
    fn members_are_sorted_checked_and_capped() {
        let reply = Reply::Array(vec![s("zeta"), s("alpha"), s("no good"), s("mid")]);
        let (keys, truncated) = parse_members(reply).unwrap();
        let names: Vec<&str> = keys.iter().map(CounterKey::as_str).collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
        assert!(!truncated);
        let many = Reply::Array(
            (0..MAX_NAMESPACE_COUNTERS + 1)
                .map(|i| s(&format!("k{i:06}")))
                .collect(),
        );
        let (keys, truncated) = parse_members(many).unwrap();
        assert_eq!((keys.len(), truncated), (MAX_NAMESPACE_COUNTERS, true));
    }

    #[test]
    fn listings_sort_by_value_and_skip_deleted_counters() {
        let ns = Namespace::parse("blog").unwrap();
        let keys: Vec<CounterKey> = ["aaa", "bbb", "ccc", "ddd"]
            .iter()
            .map(|k| CounterKey::parse(k).unwrap())
            .collect();
        let commands = listing_commands(&ns, &keys, 1_795_611_900);
        assert_eq!(commands.len(), 8);
        assert_eq!(commands[1].parts()[1], "ec:{blog:aaa}:d:20261125");
        let entries = vec![
            Ok(s("5")),
            Ok(Reply::Nil),
            Ok(s("9")),
            Ok(s("2")),
            Ok(Reply::Nil), // deleted since
            Ok(Reply::Nil),
            Ok(s("9")),
            Ok(s("1")),
        ];
        let listing = parse_listing(&ns, &keys, entries, 2, false).unwrap();
        assert_eq!(listing.count, 3);
        let rows: Vec<(&str, i64, i64)> = listing
            .counters
            .iter()
            .map(|c| (c.key.as_str(), c.value, c.today))
            .collect();
        assert_eq!(rows, [("bbb", 9, 2), ("ddd", 9, 1)]);
        assert!(parse_listing(&ns, &keys, vec![], 2, false).is_err());
    }

    #[test]
    fn listing_limit_is_bounded() {
        assert_eq!(parse_listing_limit(None), Ok(DEFAULT_LISTING_LIMIT));
        assert_eq!(parse_listing_limit(Some("7")), Ok(7));
        assert!(parse_listing_limit(Some("0")).is_err());
        assert!(parse_listing_limit(Some("1001")).is_err());
        assert!(parse_listing_limit(Some("x")).is_err());
    }
}
