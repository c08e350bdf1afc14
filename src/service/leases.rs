//! [`ConcurrencyLimiter`]: acquire, release and renew leases under one concurrency policy, each
//! one atomic script call and one store round trip.

use crate::core::ratelimit::lease::{self, LeaseDecision, LeaseError, LeaseId, LeaseOp};
use crate::core::ratelimit::Policy;
use crate::store::Store;

/// Why a lease operation could not be done: a rule (not a concurrency policy, a bad identity) or
/// the store.
pub type LeaseFailure = super::Error<LeaseError>;

impl From<LeaseError> for LeaseFailure {
    fn from(e: LeaseError) -> Self {
        super::Error::Rule(e)
    }
}

/// At most `limit` holders at once per identity (users, API keys, tenants), under one
/// `concurrency` policy; a lease not renewed expires after the policy's window, so a holder that
/// crashes frees its slot by itself.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use edgecount::core::ratelimit::Policy;
/// use edgecount::service::ConcurrencyLimiter;
/// use edgecount::store::http_native::NativeRestStore;
///
/// let store = NativeRestStore::connect("http://127.0.0.1:8079", "token")?;
/// let exports = ConcurrencyLimiter::new(&store, Policy::concurrency("exports", 3, Duration::from_secs(30)));
/// let taken = exports.acquire("user:42").await?;
/// let Some(lease) = taken.lease else {
///     println!("3 exports running: retry in {} ms", taken.soonest_expiry_in_ms());
///     return Ok(());
/// };
/// // … a long export: renew before the 30 s are up …
/// exports.renew("user:42", &lease).await?;
/// // … and give the slot back when done.
/// exports.release("user:42", &lease).await?;
/// # Ok(())
/// # }
/// ```
pub struct ConcurrencyLimiter<S> {
    store: S,
    policy: Policy,
}

impl<S: Store> ConcurrencyLimiter<S> {
    /// Leases under `policy`; every operation refuses a policy that is not a concurrency limit
    /// ([`RateLimitError::WrongKind`](crate::core::ratelimit::RateLimitError::WrongKind)).
    pub fn new(store: S, policy: Policy) -> Self {
        ConcurrencyLimiter { store, policy }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Take a lease for `id` if fewer than `limit` are held (always under a shadow policy, which
    /// reports [`Reason::Shadow`](crate::core::ratelimit::Reason::Shadow) beyond the limit).
    /// `lease` is `Some` when taken.
    pub async fn acquire(&self, id: &str) -> Result<LeaseDecision, LeaseFailure> {
        self.run(id, LeaseOp::Acquire, &LeaseId::generate()?).await
    }

    /// Give `lease` back; `ok` says whether it was held (false: released already, expired, or
    /// never this holder's).
    pub async fn release(&self, id: &str, lease: &LeaseId) -> Result<LeaseDecision, LeaseFailure> {
        self.run(id, LeaseOp::Release, lease).await
    }

    /// Push `lease`'s expiry to now + the policy's window; `ok` is false (and nothing changes)
    /// when it is not held any more.
    pub async fn renew(&self, id: &str, lease: &LeaseId) -> Result<LeaseDecision, LeaseFailure> {
        self.run(id, LeaseOp::Renew, lease).await
    }

    /// Any of the above by [`LeaseOp`] (acquire with the lease id to hand out).
    pub async fn run(
        &self,
        id: &str,
        op: LeaseOp,
        lease: &LeaseId,
    ) -> Result<LeaseDecision, LeaseFailure> {
        let call = lease::lease_call(&self.policy, id, op, lease)?;
        let reply = self.store.run(&call).await?;
        Ok(lease::parse_lease(&self.policy, op, lease, &reply)?)
    }
}
