//! [`Counters`]: every counter operation over a store, each one atomic script (or one pipeline)
//! in one round trip; admin operations add one read of the stored admin-key hash when the caller
//! presents a counter's own key.

use super::Error;
use crate::core::command::Command;
use crate::core::counter::{
    self, AuthStep, Authority, BatchOutcome, CounterError, CounterInfo, CounterKeys, CounterStats,
    CreateSpec, Created, GlobalStats, HitOutcome, HitRequest, SetOutcome,
};
use crate::core::names::Name;
use crate::store::Store;

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
/// let hit = counters.hit(&Name::parse("blog", "home")?, &HitRequest::default(), None).await?;
/// println!("{} views", hit.value);
/// # Ok(())
/// # }
/// ```
pub struct Counters<S> {
    store: S,
    /// `EDGECOUNT_ADMIN_TOKEN`: admin over every counter.
    admin_token: Option<String>,
}

impl<S: Store> Counters<S> {
    pub fn new(store: S) -> Self {
        Counters {
            store,
            admin_token: None,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Accept `token` as admin over every counter.
    pub fn with_admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token;
        self
    }

    /// +1 (unless `request.count` is false), with buckets, uniques, idempotency and the live
    /// update in one script. With `global_day_clock` (the edge's unix seconds) the service-wide
    /// figures ride in the same pipeline: still one round trip.
    pub async fn hit(
        &self,
        name: &Name,
        request: &HitRequest<'_>,
        global_day_clock: Option<i64>,
    ) -> CounterResult<HitOutcome> {
        let call = counter::hit_call(name, request)?;
        let Some(now) = global_day_clock.filter(|_| request.count) else {
            return Ok(counter::parse_hit(self.store.run(&call).await?)?);
        };
        let mut commands = vec![call.evalsha()];
        commands.extend(counter::global_hit_commands(name, now));
        let mut entries = self.store.pipeline(&commands).await?;
        let reply = match entries.swap_remove(0) {
            Ok(reply) => reply,
            // The script cache was flushed: nothing of the hit ran (the global figures did).
            Err(e) if e.starts_with("NOSCRIPT") => self.store.command(&call.eval()).await?,
            Err(e) => return Err(Error::Rule(CounterError::Redis(e))),
        };
        Ok(counter::parse_hit(reply)?)
    }

    /// The value; never changes anything.
    pub async fn get(&self, name: &Name) -> CounterResult<i64> {
        let reply = self.store.command(&counter::get_command(name)).await?;
        Ok(counter::parse_get(reply)?)
    }

    /// Create a counter; the answer holds its admin key, shown this once.
    pub async fn create(&self, name: &Name, spec: &CreateSpec) -> CounterResult<Created> {
        let (call, admin_key) = counter::create_call(name, spec)?;
        let reply = self.store.run(&call).await?;
        Ok(counter::parse_create(reply, name, &admin_key)?)
    }

    /// What `bearer` (an `Authorization: Bearer` token, if any) may do to `name`.
    pub async fn authority(&self, name: &Name, bearer: Option<&str>) -> CounterResult<Authority> {
        match counter::begin_auth(name, bearer, self.admin_token.as_deref()) {
            AuthStep::Done(authority) => Ok(authority),
            AuthStep::ReadStoredHash(command) => {
                let stored = self.store.command(&command).await?;
                Ok(counter::finish_auth(bearer.unwrap_or_default(), &stored)?)
            }
        }
    }

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
        let authority = self.authority(name, bearer).await?;
        let reply = self
            .store
            .run(&counter::reset_call(name, &authority))
            .await?;
        Ok(counter::parse_reset(reply)?)
    }

    pub async fn delete(&self, name: &Name, bearer: Option<&str>) -> CounterResult<()> {
        let authority = self.authority(name, bearer).await?;
        let reply = self
            .store
            .run(&counter::delete_call(name, &authority))
            .await?;
        Ok(counter::parse_delete(reply)?)
    }

    pub async fn info(&self, name: &Name) -> CounterResult<CounterInfo> {
        let reply = self.store.run(&counter::info_call(name)).await?;
        Ok(counter::parse_info(reply, name)?)
    }

    pub async fn stats(&self, name: &Name, days: u32) -> CounterResult<CounterStats> {
        let reply = self.store.run(&counter::stats_call(name, days)).await?;
        Ok(counter::parse_stats(reply)?)
    }

    /// Service-wide figures; `now` is the edge's unix seconds (names today's bucket).
    pub async fn global_stats(&self, now: i64) -> CounterResult<GlobalStats> {
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
    ) -> CounterResult<Vec<Result<BatchOutcome, CounterError>>> {
        // A batch spans counters, so only the service admin token lifts update bounds.
        let authority = match bearer {
            Some(token) if counter::is_global_admin(token, self.admin_token.as_deref()) => {
                Authority::GlobalAdmin
            }
            _ => Authority::Public,
        };
        let plan = counter::plan_batch(items, &authority)?;
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

    /// `PING` through the store: is Redis reachable?
    pub async fn ping(&self) -> CounterResult<()> {
        self.store.command(&Command::new("PING")).await?;
        Ok(())
    }
}
