//! [`Counters`]: every counter operation over a store, each one atomic script (or one pipeline)
//! in one round trip; admin operations add one read of the stored admin-key hash when the caller
//! presents a counter's own key. Time is the caller's (`now`, unix seconds), as in the core.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::Error;
use crate::core::command::{Command, Reply, Script};
use crate::core::counter::namespace::{self, MintedToken, NamespaceListing};
use crate::core::counter::transfer;
use crate::core::counter::{
    self, AdminKey, AuthStep, Authority, BatchOutcome, CounterError, CounterInfo, CounterKeys,
    CounterStats, CreateSpec, Created, ExportedCounter, Figures, GlobalStats, HitOutcome,
    HitRequest, NamespaceKeys, SetOutcome,
};
use crate::core::names::{Name, Namespace};
use crate::store::{EntryResult, Store, StoreError};

/// `SCRIPT LOAD` ahead of a pipeline of `EVALSHA`s of `script`, so none fails with `NOSCRIPT`.
fn script_load(script: &Script) -> Command {
    Command::new("SCRIPT").arg("LOAD").arg(script.source())
}

/// The answer of an import: `{"imported":N,"skipped":M}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Imported {
    pub imported: usize,
    pub skipped: usize,
}

pub type CounterResult<T> = Result<T, Error<CounterError>>;

/// Page-hit counters on a store.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use edgecount::core::counter::HitRequest;
/// use edgecount::core::names::Name;
/// use edgecount::service::Counters;
/// use edgecount::store::http_native::NativeRestStore;
///
/// let store = NativeRestStore::connect("http://127.0.0.1:8079", "token")?;
/// let counters = Counters::new(&store);
/// let now = 1_795_611_900; // unix seconds: names the day's and hour's buckets
/// let hit = counters.hit(&Name::parse("blog", "home")?, &HitRequest::default(), now).await?;
/// println!("{} views", hit.value);
/// # Ok(())
/// # }
/// ```
pub struct Counters<S> {
    store: S,
    /// `EDGECOUNT_ADMIN_TOKEN`: admin over every counter.
    admin_token: Option<String>,
    /// Set once a hit or the service-wide figures met Redis Cluster (a script spanning slots was
    /// refused as `CROSSSLOT`): from then on hits send the service-wide figures beside the script
    /// ([`Figures::Beside`]) and `GET /stats` reads each shard apart. Unset, a counted hit is one
    /// command. Per store: in the worker, per isolate.
    figures_beside: AtomicBool,
}

impl<S: Store> Counters<S> {
    pub fn new(store: S) -> Self {
        Counters {
            store,
            admin_token: None,
            figures_beside: AtomicBool::new(false),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store back, for an adapter that wraps it (see [`crate::api::Api::map_store`]).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Accept `token` as admin over every counter.
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token;
        self
    }

    /// +1 (unless `request.count` is false), with buckets, uniques, idempotency, the live update,
    /// the service-wide figures and the namespace's registry: one script, one command; `now`
    /// (unix seconds) names the buckets. On Redis Cluster, learnt from the first hit's
    /// `CROSSSLOT`, the figures go beside the script in the same pipeline (see [`Figures`]).
    pub async fn hit(
        &self,
        name: &Name,
        request: &HitRequest<'_>,
        now: i64,
    ) -> CounterResult<HitOutcome> {
        if !self.figures_beside.load(Ordering::Relaxed) {
            let call = counter::hit_call(name, request, now, Figures::InScript)?;
            match self.store.run(&call).await {
                // Refused before it ran: nothing was written.
                Err(e) if e.is_crossslot() => self.figures_beside.store(true, Ordering::Relaxed),
                reply => return Ok(counter::parse_hit(reply?)?),
            }
        }
        let call = counter::hit_call(name, request, now, Figures::Beside)?;
        if !request.count {
            return Ok(counter::parse_hit(self.store.run(&call).await?)?);
        }
        let mut commands = vec![call.evalsha()];
        commands.extend(counter::global_hit_commands(name, now));
        let mut entries = self.store.pipeline(&commands).await?;
        let reply = match entries.swap_remove(0) {
            Ok(reply) => Ok(reply),
            // The script cache was flushed: nothing of the hit ran (the global figures did).
            Err(e) if e.starts_with("NOSCRIPT") => self.store.command(&call.eval()).await,
            Err(e) => Err(crate::store::rest::redis_error(e)),
        };
        let outcome = reply
            .map_err(Error::from)
            .and_then(|reply| Ok(counter::parse_hit(reply)?));
        if !matches!(&outcome, Ok(hit) if hit.counted) {
            // The day's service-wide figure got a +1 for a hit that did not count: take it back.
            // Best effort: if Redis fails now, that informative figure is one too high.
            let _ = self.store.run(&counter::global_hit_undo(name, now)).await;
        }
        outcome
    }

    /// The value; never changes anything.
    pub async fn get(&self, name: &Name) -> CounterResult<i64> {
        let reply = self.store.command(&counter::get_command(name)).await?;
        Ok(counter::parse_get(reply)?)
    }

    /// Create a counter (`created` is `now`, unix seconds); the answer holds its admin key, shown
    /// this once, and the namespace's token when this is the namespace's first counter (a second
    /// round trip: the namespace's keys live in another Cluster slot).
    pub async fn create(&self, name: &Name, spec: &CreateSpec, now: i64) -> CounterResult<Created> {
        let (call, admin_key) = counter::create_call(name, spec, now)?;
        let reply = self.store.run(&call).await?;
        let mut created = counter::parse_create(reply, name, &admin_key)?;
        let token = AdminKey::generate()?;
        // The counter exists now: whatever happens to the claim, its admin key must reach its
        // owner. Without the claim the counter joins the registry with its next counted hit.
        let claimed = self.store.run(&namespace::claim_call(name, &token)).await;
        if claimed.is_ok_and(|reply| namespace::parse_claim(reply) == Ok(true)) {
            created.namespace_token = Some(token.as_str().to_owned());
        }
        Ok(created)
    }

    /// The authority of an admin-only operation, or its refusal before anything else: 401
    /// without credentials, 403 with credentials that are not an admin's — whether or not the
    /// counter exists (a refusal tells strangers nothing).
    async fn admin_authority(&self, name: &Name, bearer: Option<&str>) -> CounterResult<Authority> {
        if bearer.is_none() {
            return Err(Error::Rule(CounterError::TokenRequired(
                "admin key required (Authorization: Bearer …)",
            )));
        }
        let authority = self.authority(name, bearer).await?;
        if !authority.is_admin() {
            return Err(Error::Rule(CounterError::AdminRequired));
        }
        Ok(authority)
    }

    /// What `bearer` (an `Authorization: Bearer` token, if any) may do to `name`.
    pub async fn authority(&self, name: &Name, bearer: Option<&str>) -> CounterResult<Authority> {
        match counter::begin_auth(name, bearer, self.admin_token.as_deref()) {
            AuthStep::Done(authority) => Ok(authority),
            AuthStep::ReadStoredHashes(reads) => {
                let stored = self.store.pipeline(&reads).await?;
                let reply = |i: usize| -> CounterResult<&Reply> {
                    match stored.get(i) {
                        Some(Ok(reply)) => Ok(reply),
                        Some(Err(e)) => Err(Error::Rule(CounterError::Redis(e.clone()))),
                        None => Err(StoreError::Protocol("missing pipeline entry".into()).into()),
                    }
                };
                let bearer = bearer.unwrap_or_default();
                Ok(counter::finish_auth(bearer, [reply(0)?, reply(1)?])?)
            }
        }
    }

    /// Set the value: admin, or anyone when the counter has `enable_reset`. A refusal is 403
    /// with or without credentials: `/set` is CountAPI's route, and its status is the contract.
    pub async fn set(
        &self,
        name: &Name,
        value: i64,
        bearer: Option<&str>,
    ) -> CounterResult<SetOutcome> {
        let authority = self.authority(name, bearer).await?;
        let reply = self
            .store
            .run(&counter::set_call(name, value, &authority))
            .await?;
        Ok(counter::parse_set(reply)?)
    }

    /// Add `amount`: anyone within the counter's bounds, the admin beyond them. Like `set`'s
    /// (CountAPI's route), a refusal is 403 whether or not credentials came.
    pub async fn update(
        &self,
        name: &Name,
        amount: i64,
        bearer: Option<&str>,
    ) -> CounterResult<i64> {
        let authority = self.authority(name, bearer).await?;
        let reply = self
            .store
            .run(&counter::update_call(name, amount, &authority))
            .await?;
        Ok(counter::parse_update(reply)?)
    }

    pub async fn reset(&self, name: &Name, bearer: Option<&str>) -> CounterResult<i64> {
        let authority = self.admin_authority(name, bearer).await?;
        let reply = self
            .store
            .run(&counter::reset_call(name, &authority))
            .await?;
        Ok(counter::parse_reset(reply)?)
    }

    /// Delete the counter and its history (every bucket up to `now`, unix seconds), then take it
    /// out of its namespace's listing (a second round trip; if that one fails, listings skip the
    /// missing counter anyway).
    pub async fn delete(&self, name: &Name, bearer: Option<&str>, now: i64) -> CounterResult<()> {
        let authority = self.admin_authority(name, bearer).await?;
        let reply = self
            .store
            .run(&counter::delete_call(name, &authority, now))
            .await?;
        counter::parse_delete(reply)?;
        let _ = self.store.command(&namespace::forget_command(name)).await;
        Ok(())
    }

    pub async fn info(&self, name: &Name) -> CounterResult<CounterInfo> {
        let reply = self.store.run(&counter::info_call(name)).await?;
        Ok(counter::parse_info(reply, name)?)
    }

    /// The history of the `days` days and 48 hours ending at `now` (unix seconds).
    pub async fn stats(&self, name: &Name, days: u32, now: i64) -> CounterResult<CounterStats> {
        let reply = self
            .store
            .run(&counter::stats_call(name, days, now))
            .await?;
        Ok(counter::parse_stats(reply, days, now)?)
    }

    /// Service-wide figures; `now` (unix seconds) names today's bucket. One command, or on Redis
    /// Cluster (learnt as for hits) one per shard's figure in one pipeline.
    pub async fn global_stats(&self, now: i64) -> CounterResult<GlobalStats> {
        if !self.figures_beside.load(Ordering::Relaxed) {
            match self.store.run(&counter::global_stats_call(now)).await {
                Err(e) if e.is_crossslot() => self.figures_beside.store(true, Ordering::Relaxed),
                reply => return Ok(counter::parse_global_stats_reply(reply?)?),
            }
        }
        let entries = self
            .store
            .pipeline(&counter::global_stats_commands(now))
            .await?;
        Ok(counter::parse_global_stats(entries)?)
    }

    /// Up to [`counter::MAX_BATCH_OPS`] hits and updates in one pipeline; one result per item.
    pub async fn batch(
        &self,
        items: &[serde_json::Value],
        bearer: Option<&str>,
        now: i64,
    ) -> CounterResult<Vec<Result<BatchOutcome, CounterError>>> {
        // A batch spans counters, so only the service admin token lifts update bounds.
        let authority = match bearer {
            Some(token) if counter::is_global_admin(token, self.admin_token.as_deref()) => {
                Authority::GlobalAdmin
            }
            _ => Authority::Public,
        };
        let plan = counter::plan_batch(items, &authority, now)?;
        let entries = self.store.pipeline(&plan.commands).await?;
        Ok(plan.parse(entries))
    }

    /// Live values of one counter: each item is a published `{"value":N}` payload.
    pub async fn subscribe(&self, name: &Name) -> CounterResult<S::Messages> {
        Ok(self
            .store
            .subscribe(&CounterKeys::new(name).channel())
            .await?)
    }

    /// Check that `bearer` opens namespace `ns` (the admin token, or the namespace's token),
    /// reading the stored token hash with `reads` in the same round trip; their replies follow.
    async fn open_namespace(
        &self,
        ns: &Namespace,
        bearer: Option<&str>,
        reads: Vec<Command>,
    ) -> CounterResult<Vec<EntryResult>> {
        let Some(token) = bearer else {
            return Err(Error::Rule(CounterError::TokenRequired(
                "a namespace token or the admin token is required (Authorization: Bearer …)",
            )));
        };
        let admin = counter::is_global_admin(token, self.admin_token.as_deref());
        let mut commands = Vec::with_capacity(reads.len() + 1);
        if !admin {
            commands.push(namespace::token_read(ns));
        }
        commands.extend(reads);
        let mut entries = if commands.is_empty() {
            Vec::new()
        } else {
            self.store.pipeline(&commands).await?
        };
        if !admin {
            let stored = entries
                .remove(0)
                .map_err(|e| Error::Rule(CounterError::Redis(e)))?;
            if !counter::opens_namespace(token, &stored)? {
                return Err(Error::Rule(CounterError::TokenRefused(
                    "this token does not open this namespace",
                )));
            }
        }
        Ok(entries)
    }

    /// The namespace's counters, highest first (`limit` of them), for its token or the admin:
    /// two round trips (the members with the token check, then their values).
    pub async fn namespace(
        &self,
        ns: &Namespace,
        bearer: Option<&str>,
        limit: usize,
        edge_now_secs: i64,
    ) -> CounterResult<NamespaceListing> {
        let mut entries = self
            .open_namespace(ns, bearer, vec![namespace::members_command(ns)])
            .await?;
        let members = entries
            .pop()
            .ok_or_else(|| StoreError::Protocol("missing pipeline entry".into()))?
            .map_err(|e| Error::Rule(CounterError::Redis(e)))?;
        let (keys, truncated) = namespace::parse_members(members)?;
        let entries = if keys.is_empty() {
            Vec::new()
        } else {
            let commands = namespace::listing_commands(ns, &keys, edge_now_secs);
            self.store.pipeline(&commands).await?
        };
        Ok(namespace::parse_listing(
            ns, &keys, entries, limit, truncated,
        )?)
    }

    /// Every change in namespace `ns` (`{"key":…,"value":…}` payloads), for its token or the
    /// admin.
    pub async fn subscribe_namespace(
        &self,
        ns: &Namespace,
        bearer: Option<&str>,
    ) -> CounterResult<S::Messages> {
        self.open_namespace(ns, bearer, Vec::new()).await?;
        Ok(self
            .store
            .subscribe(&NamespaceKeys::new(ns).channel())
            .await?)
    }

    /// A new token for `ns` (the admin only): the old one stops working.
    pub async fn mint_namespace_token(
        &self,
        ns: &Namespace,
        bearer: Option<&str>,
    ) -> CounterResult<MintedToken> {
        self.require_admin(bearer)?;
        let token = AdminKey::generate()?;
        self.store
            .command(&namespace::mint_command(ns, &token))
            .await?;
        Ok(MintedToken {
            namespace: ns.to_string(),
            namespace_token: token.as_str().to_owned(),
        })
    }

    fn require_admin(&self, bearer: Option<&str>) -> CounterResult<()> {
        match bearer {
            None => Err(Error::Rule(CounterError::TokenRequired(
                "the admin token is required (Authorization: Bearer …)",
            ))),
            Some(token) if counter::is_global_admin(token, self.admin_token.as_deref()) => Ok(()),
            Some(_) => Err(Error::Rule(CounterError::TokenRefused(
                "this is not the admin token",
            ))),
        }
    }

    /// Every counter of `ns` with its settings and history up to `now` (unix seconds), for its
    /// token or the admin: one round trip for the members, then one per
    /// [`transfer::EXPORT_CHUNK`] counters.
    pub async fn export(
        &self,
        ns: &Namespace,
        bearer: Option<&str>,
        now: i64,
    ) -> CounterResult<Vec<ExportedCounter>> {
        let mut entries = self
            .open_namespace(ns, bearer, vec![namespace::members_command(ns)])
            .await?;
        let members = entries
            .pop()
            .ok_or_else(|| StoreError::Protocol("missing pipeline entry".into()))?
            .map_err(|e| Error::Rule(CounterError::Redis(e)))?;
        let (keys, _) = namespace::parse_members(members)?;
        let mut exported = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(transfer::EXPORT_CHUNK) {
            let names: Vec<Name> = chunk
                .iter()
                .map(|key| Name {
                    ns: ns.clone(),
                    key: key.clone(),
                })
                .collect();
            let mut commands = vec![script_load(&counter::scripts::EXPORT)];
            commands.extend(
                names
                    .iter()
                    .map(|n| transfer::export_call(n, now).evalsha()),
            );
            let entries = self.store.pipeline(&commands).await?;
            for (name, entry) in names.iter().zip(entries.into_iter().skip(1)) {
                let reply = entry.map_err(|e| Error::Rule(CounterError::Redis(e)))?;
                match transfer::parse_export(reply, name, now) {
                    Ok(counter) => exported.push(counter),
                    // Deleted since it was listed.
                    Err(CounterError::NotFound) => {}
                    Err(e) => return Err(Error::Rule(e)),
                }
            }
        }
        Ok(exported)
    }

    /// Import an export (the admin only): every line is checked before the first write; each
    /// counter that does not exist yet is created whole (`now`, unix seconds, is the `created` of
    /// a line without one), one that exists is skipped untouched.
    pub async fn import(
        &self,
        body: &[u8],
        bearer: Option<&str>,
        now: i64,
    ) -> CounterResult<Imported> {
        self.require_admin(bearer)?;
        let counters = transfer::parse_import(body, now).map_err(CounterError::from)?;
        let mut summary = Imported::default();
        for chunk in transfer::import_chunks(&counters) {
            let mut commands = vec![script_load(&counter::scripts::IMPORT)];
            commands.extend(chunk.iter().map(|c| c.call.evalsha()));
            commands.extend(chunk.iter().map(|c| namespace::register_command(&c.name)));
            let entries = self.store.pipeline(&commands).await?;
            for (counter, entry) in chunk.iter().zip(entries.into_iter().skip(1)) {
                let reply = entry.map_err(|e| {
                    Error::Rule(CounterError::Redis(format!(
                        "importing {}: {e}",
                        counter.name
                    )))
                })?;
                if transfer::parse_imported(reply)? {
                    summary.imported += 1;
                } else {
                    summary.skipped += 1;
                }
            }
        }
        Ok(summary)
    }

    /// `PING` through the store: is Redis reachable?
    pub async fn ping(&self) -> CounterResult<()> {
        self.store.command(&Command::new("PING")).await?;
        Ok(())
    }
}
