//! [`RateLimiter`]: decide, peek, refund and reset over one or more policies, in one atomic
//! script call and one store round trip per decision (on Redis Cluster, two for a decision that
//! checks a client address against the deny list's ranges).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::core::command::{Reply, ScriptCall};
use crate::core::ratelimit::tiers::{self, Override, Tiers};
use crate::core::ratelimit::{self, Decision, Mode, Policy, RateLimitError, Subject};
use crate::store::{Store, StoreError};

/// Set when a decision met Redis Cluster (the ranges hash in another slot: `CROSSSLOT`); from then
/// on, in this process (in the worker, this isolate), decisions with a client address ask the
/// ranges apart first ([`ratelimit::ranges_call`]) instead of sending a call Redis refuses. On a
/// standalone Redis it stays unset: one round trip per decision.
static RANGES_APART: AtomicBool = AtomicBool::new(false);

/// On Redis Cluster (once a decision met it), a decision with a client address asks the deny
/// list's ranges apart first (see [`ratelimit::ranges_call`]): `call` becomes that lookup and the
/// decision waits, returned here.
fn ranges_first(call: &mut ScriptCall) -> Option<ScriptCall> {
    let ranges = ratelimit::ranges_call(call).filter(|_| RANGES_APART.load(Ordering::Relaxed))?;
    Some(std::mem::replace(call, ranges))
}

/// After `call` answered `reply`: whether there is a next call to send (now in `call`): the
/// waiting decision told the ranges' answer, or, when Redis refused a decision as `CROSSSLOT`
/// (Redis Cluster), the ranges lookup. At most three calls in all. Not generic over the store,
/// so the worker's wasm holds it once.
fn next_step(
    call: &mut ScriptCall,
    waiting: &mut Option<ScriptCall>,
    reply: &Result<Reply, StoreError>,
) -> Result<bool, StoreError> {
    match (reply, waiting.take()) {
        (Ok(ranges), Some(decision)) => {
            *call = ratelimit::with_ranges_answer(decision, ranges.as_i64()? == 1);
            Ok(true)
        }
        (Err(e), None) if e.is_crossslot() => {
            RANGES_APART.store(true, Ordering::Relaxed);
            *waiting = ranges_first(call);
            Ok(waiting.is_some())
        }
        _ => Ok(false),
    }
}

/// Why a decision could not be made: a rule (unknown policy, bad id, cost above the limit) or
/// the store.
pub type LimitError = super::Error<RateLimitError>;

/// Rate limits for identities (users, IPs, API keys) over a fixed list of policies, all checked
/// atomically: a consume is admitted by every policy or by none.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use edgecount::core::ratelimit::Policy;
/// use edgecount::service::RateLimiter;
/// use edgecount::store::http_native::NativeRestStore;
///
/// let store = NativeRestStore::connect("http://127.0.0.1:8079", "token")?;
/// let limiter = RateLimiter::new(&store, Policy::sliding("api", 100, Duration::from_secs(60)));
/// let decision = limiter.limit("user:42", 1).await?;
/// if !decision.allowed {
///     println!("slow down: retry in {} ms", decision.retry_after_ms);
/// }
/// # Ok(())
/// # }
/// ```
pub struct RateLimiter<S> {
    store: S,
    policies: Vec<Policy>,
    tiers: Tiers,
    /// The caller's clock (unix ms): it names the windows of `upstash-*` policies (the native
    /// algorithms decide on Redis `TIME`).
    clock: fn() -> u64,
}

impl<S: Store> RateLimiter<S> {
    /// A limiter enforcing one policy.
    pub fn new(store: S, policy: Policy) -> Self {
        Self::with_policies(store, vec![policy])
    }

    /// A limiter enforcing several policies at once (e.g. a burst limit and a daily quota).
    pub fn with_policies(store: S, policies: Vec<Policy>) -> Self {
        RateLimiter {
            store,
            policies,
            tiers: Tiers::default(),
            clock: super::system_clock_ms,
        }
    }

    /// Another clock than the system's (unix ms): the worker's runtime clock, a test's.
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// The tiers identities may be put on ([`RateLimiter::set_override`] with
    /// [`Override::Tier`]). Per-identity overrides need nothing here: every decision reads the
    /// identity's overrides in its one script call.
    pub fn with_tiers(mut self, tiers: Tiers) -> Self {
        self.tiers = tiers;
        self
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Consume `cost` for `id` if every policy admits it.
    pub async fn limit(&self, id: &str, cost: u64) -> Result<Decision, LimitError> {
        self.decide(id, cost, Mode::Consume).await
    }

    /// Would `cost` be admitted now? Consumes nothing.
    pub async fn peek(&self, id: &str, cost: u64) -> Result<Decision, LimitError> {
        self.decide(id, cost, Mode::Peek).await
    }

    /// Give `cost` back (e.g. unused LLM tokens), never above the limit.
    pub async fn refund(&self, id: &str, cost: u64) -> Result<Decision, LimitError> {
        self.decide(id, cost, Mode::Refund).await
    }

    /// Forget everything about `id` under these policies.
    pub async fn reset(&self, id: &str) -> Result<Decision, LimitError> {
        self.decide(id, 0, Mode::Reset).await
    }

    /// Any of the above by [`Mode`], for an identity (`"user:42"`) or a [`Subject`] (an identity
    /// and the client's address, checked against the deny list's ranges).
    pub async fn decide<'a>(
        &self,
        subject: impl Into<Subject<'a>>,
        cost: u64,
        mode: Mode,
    ) -> Result<Decision, LimitError> {
        let now_ms = (self.clock)();
        let mut call =
            ratelimit::decision_call(&self.policies, &self.tiers, subject, cost, mode, now_ms)?;
        let mut waiting = ranges_first(&mut call);
        let reply = loop {
            let reply = self.store.run(&call).await;
            if !next_step(&mut call, &mut waiting, &reply)? {
                break reply;
            }
        };
        let reply = match reply {
            Err(StoreError::Redis(message)) => {
                return Err(
                    match ratelimit::cost_refusal(&message, &self.policies, cost) {
                        Some(refusal) => LimitError::Rule(refusal),
                        None => StoreError::Redis(message).into(),
                    },
                )
            }
            other => other?,
        };
        Ok(ratelimit::parse_decision(&self.policies, &reply)?)
    }

    /// Give `id` other limits under `policy` (one of this limiter's), from the next decision on,
    /// everywhere.
    pub async fn set_override(
        &self,
        id: &str,
        policy: &str,
        to: &Override,
    ) -> Result<(), LimitError> {
        self.policy(policy)?;
        self.store
            .command(&tiers::set_override_command(id, policy, to)?)
            .await?;
        Ok(())
    }

    /// `id`'s override under `policy`, if it has one.
    pub async fn override_of(
        &self,
        id: &str,
        policy: &str,
    ) -> Result<Option<Override>, LimitError> {
        self.policy(policy)?;
        let reply = self
            .store
            .command(&tiers::get_override_command(id, policy)?)
            .await?;
        Ok(tiers::parse_override(&reply))
    }

    /// Back to the configured limits; `true` when there was an override.
    pub async fn remove_override(&self, id: &str, policy: &str) -> Result<bool, LimitError> {
        self.policy(policy)?;
        let reply = self
            .store
            .command(&tiers::remove_override_command(id, policy)?)
            .await?;
        Ok(reply.as_i64().unwrap_or(0) == 1)
    }

    fn policy(&self, name: &str) -> Result<&Policy, LimitError> {
        self.policies
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| LimitError::Rule(RateLimitError::UnknownPolicy(name.to_owned())))
    }
}
