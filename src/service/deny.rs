//! [`DenyList`]: put identities, addresses and ranges on the deny list, take them off, show
//! and list them. Every decision checks the list in its own script call (see
//! [`crate::core::ratelimit::deny`]); nothing here is on a decision's path.

use serde::Serialize;

use crate::core::command::{Command, Reply};
use crate::core::ratelimit::deny::{self, DenyTarget, DenyWrite, Network};
use crate::core::ratelimit::RateLimitError;
use crate::store::{EntryResult, Store, StoreError};

use super::LimitError;

/// The deny list in one store.
///
/// ```no_run
/// # async fn example(store: edgecount::store::http_native::NativeRestStore) -> Result<(), Box<dyn std::error::Error>> {
/// use edgecount::core::ratelimit::DenyTarget;
/// use edgecount::service::DenyList;
///
/// let deny = DenyList::new(&store);
/// // An abusive range, for a day: every decision with a client address in it is refused (403).
/// deny.add(&DenyTarget::parse("203.0.113.0/24", false)?, Some(86_400_000)).await?;
/// # Ok(())
/// # }
/// ```
pub struct DenyList<S> {
    store: S,
}

/// One entry, as shown and listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DenyEntry {
    /// The identity, address or range, as the admin would write it.
    pub target: String,
    /// `identity` or `network` (an address is the network of its full length).
    pub kind: &'static str,
    /// Time left, `None` for an entry without expiry.
    pub expires_in_ms: Option<u64>,
}

impl DenyEntry {
    fn new(target: &DenyTarget, expires_in_ms: Option<u64>) -> Self {
        DenyEntry {
            target: target.to_string(),
            kind: match target {
                DenyTarget::Identity(_) => "identity",
                DenyTarget::Network(_) => "network",
            },
            expires_in_ms,
        }
    }
}

/// The most identities [`DenyList::list`] reads; more are reported as `truncated`.
pub const MAX_LISTED_IDENTITIES: usize = 10_000;

/// The whole list: addresses and ranges first (IPv4 then IPv6, in address order), then
/// identities (sorted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DenyListing {
    pub entries: Vec<DenyEntry>,
    /// More identities are denied than [`MAX_LISTED_IDENTITIES`].
    pub truncated: bool,
}

impl<S: Store> DenyList<S> {
    pub fn new(store: S) -> Self {
        DenyList { store }
    }

    /// Deny `target` for `ttl_ms` (or until removed). Returns the entry as stored; adding an
    /// entry again replaces its expiry.
    pub async fn add(
        &self,
        target: &DenyTarget,
        ttl_ms: Option<u64>,
    ) -> Result<DenyEntry, LimitError> {
        self.write(deny::add_commands(target, ttl_ms)?).await?;
        Ok(DenyEntry::new(target, ttl_ms))
    }

    /// Take `target` off the list; `true` when it was on it.
    pub async fn remove(&self, target: &DenyTarget) -> Result<bool, LimitError> {
        let first = self.write(deny::remove_commands(target)?).await?;
        Ok(first.as_i64().unwrap_or(0) == 1)
    }

    /// `target`'s entry, if it is on the list. An address shows only its own entry: whether a
    /// range holds it is for a decision to say.
    pub async fn get(&self, target: &DenyTarget) -> Result<Option<DenyEntry>, LimitError> {
        let reply = self.write(deny::show_command(target)?).await?;
        Ok(deny::time_left(&reply).map(|left| DenyEntry::new(target, left)))
    }

    /// Every entry: the ranges and addresses, and the identities (at most
    /// [`MAX_LISTED_IDENTITIES`]), expired ones left out.
    pub async fn list(&self) -> Result<DenyListing, LimitError> {
        let reply = self.store.run(&deny::list_networks_call()).await?;
        let items = reply.as_array().map_err(StoreError::from)?;
        let mut networks: Vec<(Network, Option<u64>)> = items
            .chunks_exact(2)
            .filter_map(|pair| {
                let network = Network::from_field(pair[0].as_str().ok()?)?;
                Some((network, deny::time_left(&pair[1])?))
            })
            .collect();
        networks.sort_by_key(|(n, _)| (n.address(), n.prefix_len()));
        let mut entries: Vec<DenyEntry> = networks
            .iter()
            .map(|(n, left)| DenyEntry::new(&DenyTarget::Network(*n), *left))
            .collect();

        let members = self
            .store
            .command(&Command::new("SMEMBERS").arg(deny::IDENTITIES_KEY))
            .await?;
        let mut ids: Vec<String> = members
            .as_array()
            .map_err(StoreError::from)?
            .iter()
            .filter_map(|m| m.as_str().ok().map(str::to_owned))
            .collect();
        ids.sort();
        let truncated = ids.len() > MAX_LISTED_IDENTITIES;
        ids.truncate(MAX_LISTED_IDENTITIES);
        if !ids.is_empty() {
            let ttls = self
                .store
                .pipeline(&deny::identities_ttl_commands(&ids)?)
                .await?;
            let mut expired = Vec::new();
            for (id, ttl) in ids.into_iter().zip(ttls) {
                let EntryResult::Ok(reply) = ttl else {
                    continue;
                };
                match deny::time_left(&reply) {
                    Some(left) => entries.push(DenyEntry::new(&DenyTarget::Identity(id), left)),
                    None => expired.push(id),
                }
            }
            // Entries that expired on their own leave the listing set here.
            if !expired.is_empty() {
                self.store
                    .command(&Command::new("SREM").arg(deny::IDENTITIES_KEY).args(expired))
                    .await?;
            }
        }
        Ok(DenyListing { entries, truncated })
    }

    /// Run a deny-list operation; the first reply (the entry's own).
    async fn write(&self, write: DenyWrite) -> Result<Reply, LimitError> {
        match write {
            DenyWrite::Script(call) => Ok(self.store.run(&call).await?),
            DenyWrite::Commands(commands) => {
                let mut first = None;
                // In order: the entry itself decides; the listing set follows it.
                for command in &commands {
                    let reply = self.store.command(command).await?;
                    first.get_or_insert(reply);
                }
                first.ok_or_else(|| {
                    LimitError::Rule(RateLimitError::BadReply("no deny-list command".into()))
                })
            }
        }
    }
}
