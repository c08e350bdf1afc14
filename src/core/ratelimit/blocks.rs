//! The block cache: refusals remembered where the decisions are made (serve's process, the
//! worker's isolate), so that an identity hammering past its limit costs no Redis command — and
//! no round trip — until its refusal could end. @upstash/ratelimit's `ephemeralCache` does the
//! same for its blocked identities; this one is exact about when to ask Redis again.
//!
//! - **What is kept**: a refused consume (`allowed: false`) for one identity, one client address
//!   and one list of policies, with its cost. A later consume with the same identity, address and
//!   policies and a cost at least as large is refused from memory: the same decision, its times
//!   counting down ([`Decision::aged`]).
//! - **For how long**: until the first violated policy's `retry_after` — the first instant a
//!   policy of the decision can change its answer without other traffic (refused requests consume
//!   nothing) — and a deny-list refusal until the deny ends, at most [`DENY_RECHECK_MS`] (it may
//!   be lifted elsewhere; many never end). Then Redis decides again, one command, and may refuse
//!   again.
//! - **Never**: for a policy list with a shadow policy (its report would go stale) or a policy
//!   with `cache=off`, for peeks, refunds and resets, for leases, and for the fail modes' answers
//!   (nothing was decided). The caller checks [`cacheable`].
//! - **Forgotten** when the same process changes what it rests on: an override, reset or refund
//!   of the identity under one of the policies ([`Blocks::forget`]), any deny-list change
//!   ([`Blocks::clear`]). A change made elsewhere (another isolate, another serve) is seen once
//!   the refusal ends: at most its `retry_after`, or [`DENY_RECHECK_MS`] for a deny.
//! - **Bounded**: a fixed number of entries, the oldest out first. A list with a hash per entry,
//!   not a map: a `HashMap` costs the worker's budgeted wasm 3 KB, and a scan of a few hundred
//!   integers costs nothing next to a round trip.
//!
//! Pure: the time (`now_ms`, the caller's clock) comes in with every call.

use super::{Decision, Policy, Subject};

/// How long a deny-list refusal is answered from memory before Redis is asked again.
pub const DENY_RECHECK_MS: u64 = 10_000;

/// Whether refusals under `policies` may be kept: none is a shadow policy, none says `cache=off`.
pub fn cacheable(policies: &[Policy]) -> bool {
    policies.iter().all(|p| p.cached() && !p.shadow())
}

/// Kept refusals, at most `capacity` of them.
#[derive(Debug)]
pub struct Blocks {
    kept: Vec<Blocked>,
    capacity: usize,
}

#[derive(Debug)]
struct Blocked {
    /// [`fingerprint`] of the policies, identity and address: compared first.
    hash: u64,
    policies: Vec<String>,
    id: String,
    address: Option<String>,
    cost: u64,
    decision: Decision,
    /// When it was decided and until when it stands, by the caller's clock.
    at_ms: u64,
    until_ms: u64,
}

impl Blocked {
    fn is_for(&self, hash: u64, policies: &[Policy], subject: Subject<'_>) -> bool {
        self.hash == hash
            && self.id == subject.id
            && self.address.as_deref() == subject.address
            && self.policies.len() == policies.len()
            && self
                .policies
                .iter()
                .zip(policies)
                .all(|(a, b)| a == b.name())
    }
}

/// FNV-1a over the policy names, the identity and the address, each ended by a byte no name
/// holds, so that no two different requests run together into the same bytes.
fn fingerprint(policies: &[Policy], subject: Subject<'_>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes.iter().chain(&[0xff]) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for p in policies {
        feed(p.name().as_bytes());
    }
    feed(subject.id.as_bytes());
    feed(subject.address.unwrap_or_default().as_bytes());
    hash
}

impl Blocks {
    /// An empty cache holding at most `capacity` refusals (0: it keeps none).
    pub fn new(capacity: usize) -> Self {
        Blocks {
            kept: Vec::new(),
            capacity,
        }
    }

    /// How many refusals are kept now.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The kept refusal of a consume of `cost` for `subject` under `policies` at `now_ms`, as
    /// Redis would answer it now; `None` when there is none or it has ended.
    pub fn refusal(
        &mut self,
        policies: &[Policy],
        subject: Subject<'_>,
        cost: u64,
        now_ms: u64,
    ) -> Option<Decision> {
        let hash = fingerprint(policies, subject);
        let i = self
            .kept
            .iter()
            .position(|b| b.is_for(hash, policies, subject))?;
        let kept = &self.kept[i];
        if now_ms >= kept.until_ms || now_ms < kept.at_ms {
            // Ended (or the clock went back): Redis decides again.
            self.kept.remove(i);
            return None;
        }
        (cost >= kept.cost).then(|| kept.decision.aged(now_ms - kept.at_ms))
    }

    /// Keep `decision`, Redis's answer to a consume of `cost` for `subject` under `policies`
    /// taken at `now_ms`, if it is a refusal.
    pub fn remember(
        &mut self,
        policies: &[Policy],
        subject: Subject<'_>,
        cost: u64,
        now_ms: u64,
        decision: &Decision,
    ) {
        if decision.allowed || self.capacity == 0 {
            return;
        }
        let deny_end = decision.denied.then(|| {
            decision
                .deny_left_ms
                .unwrap_or(u64::MAX)
                .min(DENY_RECHECK_MS)
        });
        let first_change = decision
            .policies
            .iter()
            .filter(|p| !p.allowed && !p.shadow)
            .map(|p| p.retry_after_ms)
            .chain(deny_end)
            .min()
            .unwrap_or(0);
        if first_change == 0 {
            return;
        }
        let hash = fingerprint(policies, subject);
        self.kept.retain(|b| !b.is_for(hash, policies, subject));
        if self.kept.len() >= self.capacity {
            self.kept.remove(0);
        }
        self.kept.push(Blocked {
            hash,
            policies: policies.iter().map(|p| p.name().to_owned()).collect(),
            id: subject.id.to_owned(),
            address: subject.address.map(str::to_owned),
            cost,
            decision: decision.clone(),
            at_ms: now_ms,
            until_ms: now_ms.saturating_add(first_change),
        });
    }

    /// Drop the refusals of `id` under any of `policies`: its override, state or refunds changed.
    pub fn forget(&mut self, id: &str, policies: &[&str]) {
        self.kept
            .retain(|b| !(b.id == id && b.policies.iter().any(|p| policies.contains(&&**p))));
    }

    /// Drop every refusal: the deny list changed.
    pub fn clear(&mut self) {
        self.kept.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ratelimit::{PolicyDecision, Reason};
    use std::time::Duration;

    fn api() -> Policy {
        Policy::sliding("api", 5, Duration::from_secs(3600))
    }

    fn burst() -> Policy {
        Policy::gcra("burst", 2, Duration::from_secs(1))
    }

    /// A refusal: each policy `(allowed, retry_after_ms, reset_ms)`.
    fn refused(policies: &[Policy], answers: &[(bool, u64, u64)], denied: bool) -> Decision {
        let per_policy = policies
            .iter()
            .zip(answers)
            .map(|(p, &(allowed, retry, reset))| PolicyDecision {
                policy: p.name().to_owned(),
                algorithm: p.algorithm(),
                allowed,
                shadow: p.shadow(),
                limit: p.limit(),
                window_ms: p.window_ms(),
                source: Default::default(),
                remaining: 0,
                reset_ms: reset,
                retry_after_ms: retry,
            })
            .collect();
        Decision::summarise(1_000_000, denied, per_policy)
    }

    #[test]
    fn a_refusal_answers_until_its_first_policy_could_admit() {
        let policies = [api(), burst()];
        let mut blocks = Blocks::new(8);
        let who = Subject::at("user:1", Some("203.0.113.7"));
        let decision = refused(
            &policies,
            &[(false, 60_000, 3_600_000), (false, 500, 900)],
            false,
        );
        assert!(!decision.allowed);
        blocks.remember(&policies, who, 1, 10_000, &decision);
        // 200 ms later: the same refusal, its times 200 ms nearer.
        let again = blocks.refusal(&policies, who, 1, 10_200).unwrap();
        assert_eq!(again.retry_after_ms, decision.retry_after_ms - 200);
        assert_eq!(again.reset_ms, decision.reset_ms - 200);
        assert_eq!(again.policies[1].retry_after_ms, 300);
        assert_eq!(again.now_ms, decision.now_ms + 200);
        assert_eq!((again.allowed, again.reason), (false, Reason::Limit));
        // A larger cost is refused too; a smaller one, another address, identity or policy
        // list is Redis's to decide.
        assert!(blocks.refusal(&policies, who, 3, 10_200).is_some());
        assert!(blocks.refusal(&policies, who, 0, 10_200).is_none());
        assert!(blocks
            .refusal(&policies, Subject::at("user:1", None), 1, 10_200)
            .is_none());
        assert!(blocks
            .refusal(
                &policies,
                Subject::at("user:2", Some("203.0.113.7")),
                1,
                10_200
            )
            .is_none());
        assert!(blocks.refusal(&policies[..1], who, 1, 10_200).is_none());
        // At burst's retry, burst could admit: Redis decides again.
        assert!(blocks.refusal(&policies, who, 1, 10_500).is_none());
        assert!(blocks.is_empty());
    }

    #[test]
    fn a_deny_is_kept_until_it_ends_and_asked_again_within_the_recheck() {
        let policies = [api()];
        let mut blocks = Blocks::new(8);
        let mut decision = refused(&policies, &[(true, 0, 0)], true);
        assert_eq!(decision.reason, Reason::Deny);
        blocks.remember(&policies, "mallory".into(), 1, 0, &decision);
        assert!(blocks
            .refusal(&policies, "mallory".into(), 1, DENY_RECHECK_MS - 1)
            .is_some());
        assert!(blocks
            .refusal(&policies, "mallory".into(), 1, DENY_RECHECK_MS)
            .is_none());
        // A deny that ends in 300 ms is kept 300 ms.
        decision.deny_left_ms = Some(300);
        blocks.remember(&policies, "brief".into(), 1, 0, &decision);
        let kept = blocks.refusal(&policies, "brief".into(), 1, 100).unwrap();
        assert_eq!(kept.deny_left_ms, Some(200));
        assert!(blocks.refusal(&policies, "brief".into(), 1, 300).is_none());
    }

    #[test]
    fn allowed_decisions_and_a_clock_going_back_keep_nothing() {
        let policies = [api()];
        let mut blocks = Blocks::new(8);
        let allowed = Decision::fail_open(&policies);
        blocks.remember(&policies, "u".into(), 1, 0, &allowed);
        assert!(blocks.is_empty());
        let decision = refused(&policies, &[(false, 5_000, 5_000)], false);
        blocks.remember(&policies, "u".into(), 1, 10_000, &decision);
        assert!(blocks.refusal(&policies, "u".into(), 1, 9_999).is_none());
        assert!(blocks.is_empty());
    }

    #[test]
    fn the_oldest_goes_first_and_changes_forget_what_they_touch() {
        let policies = [api(), burst()];
        let decision = refused(&policies, &[(false, 60_000, 60_000), (true, 0, 0)], false);
        let mut blocks = Blocks::new(3);
        for id in ["a", "b", "c", "d"] {
            blocks.remember(&policies, id.into(), 1, 0, &decision);
        }
        assert_eq!(blocks.len(), 3);
        assert!(blocks.refusal(&policies, "a".into(), 1, 1).is_none());
        assert!(blocks.refusal(&policies, "b".into(), 1, 1).is_some());
        blocks.forget("b", &["burst"]);
        assert!(blocks.refusal(&policies, "b".into(), 1, 1).is_none());
        blocks.forget("c", &["other"]);
        assert!(blocks.refusal(&policies, "c".into(), 1, 1).is_some());
        blocks.clear();
        assert!(blocks.is_empty());
        // A cache of no entries keeps nothing.
        let mut none = Blocks::new(0);
        none.remember(&policies, "a".into(), 1, 0, &decision);
        assert!(none.is_empty());
    }

    #[test]
    fn shadow_and_uncached_policies_are_never_kept() {
        assert!(cacheable(&[api(), burst()]));
        assert!(!cacheable(&[api(), burst().shadowed()]));
        assert!(!cacheable(&[api().uncached()]));
        let parsed: Policy = "login=gcra:5/1m cache=off".parse().unwrap();
        assert!(!cacheable(&[parsed]));
    }
}
