//! The answer of one rate-limit decision, read from the script's reply.

use serde::Serialize;

use super::{Algorithm, Policy, RateLimitError};
use crate::core::command::Reply;

/// Where a policy's limit and window came from for this identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitSource {
    /// The configuration (`EDGECOUNT_RATE_LIMITS`).
    #[default]
    Configured,
    /// The identity's override.
    Override,
    /// The identity's tier (`EDGECOUNT_TIERS`).
    Tier,
}

/// Why a decision went the way it did: in the answer's body (`reason`) and its
/// `EdgeCount-Reason` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The limits decided, as configured.
    Limit,
    /// The identity (or its network) is on the deny list.
    Deny,
    /// A shadow policy would have refused; allowed anyway.
    Shadow,
    /// The limits decided, as an override or tier sets them for this identity.
    Override,
    /// Redis could not be reached; allowed by the fail mode.
    FailOpen,
    /// Redis could not be reached; refused by the fail mode.
    FailClosed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Limit => "limit",
            Reason::Deny => "deny",
            Reason::Shadow => "shadow",
            Reason::Override => "override",
            Reason::FailOpen => "fail-open",
            Reason::FailClosed => "fail-closed",
        }
    }
}

/// What one policy said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyDecision {
    pub policy: String,
    #[serde(serialize_with = "serialize_algorithm")]
    pub algorithm: Algorithm,
    /// This policy admits the cost (for a consume: on its own; the decision is all-or-nothing).
    pub allowed: bool,
    /// Decided and reported, never refusing.
    pub shadow: bool,
    /// The limit and window in effect for this identity.
    pub limit: u64,
    pub window_ms: u64,
    pub source: LimitSource,
    /// Units that could be consumed now (after this decision's consumption, if any).
    pub remaining: u64,
    /// Time until this policy holds no usage any more, without further traffic; 0 when empty.
    pub reset_ms: u64,
    /// Time until the cost would be admitted by this policy, without further traffic; 0 when
    /// admitted.
    pub retry_after_ms: u64,
}

fn serialize_algorithm<S: serde::Serializer>(a: &Algorithm, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.as_str())
}

/// The decision over one or more policies, summarised by the binding policy: when refused, the
/// violated policy with the longest wait; when allowed, the one with the fewest remaining
/// (the first on ties); shadow policies bind only when every policy is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Every enforcing policy admits the cost and the identity is not denied (for a consume: it
    /// was consumed in every policy that admits it).
    pub allowed: bool,
    /// The identity (or its network) is on the deny list: nothing was consumed.
    pub denied: bool,
    pub reason: Reason,
    /// The binding policy's name, limit, remaining and reset.
    pub policy: String,
    pub limit: u64,
    pub remaining: u64,
    pub reset_ms: u64,
    /// Longest wait among the violated policies (0 when allowed): after it, every policy
    /// admits the cost at once, absent other traffic.
    pub retry_after_ms: u64,
    /// Names of the enforcing policies that reject the cost, in request order.
    pub violated: Vec<String>,
    /// Names of the shadow policies that would have rejected it.
    pub shadowed: Vec<String>,
    /// Every policy's own answer, in request order.
    pub policies: Vec<PolicyDecision>,
    /// The Redis time (ms since the epoch) the decision was taken at.
    pub now_ms: u64,
    /// When denied: how long the deny lasts, if it has an end (what the block cache may keep
    /// the refusal for); `None` without an end, or when not denied.
    #[serde(skip)]
    pub deny_left_ms: Option<u64>,
}

/// Numbers per policy in the script's reply.
const FIELDS: usize = 7;

/// Numbers before the policies' in the script's reply.
const HEAD: usize = 4;

/// Read the script's reply `{now_ms, allowed, denied, deny_left_ms, (allowed, remaining,
/// reset_ms, retry_after_ms, limit, window_ms, source) per policy}` for the `policies` the call
/// was built with.
pub fn parse_decision(policies: &[Policy], reply: &Reply) -> Result<Decision, RateLimitError> {
    let bad = |why: String| RateLimitError::BadReply(format!("{why}: {reply}"));
    let items = reply.as_array().map_err(|e| bad(e.to_string()))?;
    if policies.is_empty() || items.len() != HEAD + FIELDS * policies.len() {
        return Err(bad(format!(
            "expected {} integers for {} policies",
            HEAD + FIELDS * policies.len(),
            policies.len()
        )));
    }
    let numbers = items
        .iter()
        .map(|item| match item.as_i64() {
            Ok(n) if n >= 0 => Ok(n as u64),
            _ => Err(bad(format!("{item} is not a non-negative integer"))),
        })
        .collect::<Result<Vec<u64>, _>>()?;
    let per_policy = policies
        .iter()
        .zip(numbers[HEAD..].chunks_exact(FIELDS))
        .map(|(p, n)| PolicyDecision {
            policy: p.name().to_owned(),
            algorithm: p.algorithm(),
            allowed: n[0] == 1,
            shadow: p.shadow(),
            remaining: n[1],
            reset_ms: n[2],
            retry_after_ms: n[3],
            limit: n[4],
            window_ms: n[5],
            source: match n[6] {
                1 => LimitSource::Override,
                2 => LimitSource::Tier,
                _ => LimitSource::Configured,
            },
        })
        .collect();
    let mut decision = Decision::summarise(numbers[0], numbers[2] == 1, per_policy);
    if decision.denied && numbers[3] > 0 {
        decision.deny_left_ms = Some(numbers[3]);
    }
    Ok(decision)
}

impl Decision {
    /// The answer when Redis cannot be reached and the fail mode is `open`: allowed, every
    /// policy full, nothing to wait for. `now_ms` is 0: no decision was taken.
    pub fn fail_open(policies: &[Policy]) -> Decision {
        let per_policy = policies
            .iter()
            .map(|p| PolicyDecision {
                policy: p.name().to_owned(),
                algorithm: p.algorithm(),
                allowed: true,
                shadow: p.shadow(),
                limit: p.limit(),
                window_ms: p.window_ms(),
                source: LimitSource::Configured,
                remaining: p.limit(),
                reset_ms: 0,
                retry_after_ms: 0,
            })
            .collect();
        let mut decision = Decision::summarise(0, false, per_policy);
        decision.reason = Reason::FailOpen;
        decision
    }

    /// The same decision `elapsed_ms` later, absent other traffic: every wait and reset that much
    /// nearer (never below zero), the Redis time that much later. Exact while no policy's wait has
    /// ended (what [`super::blocks`] keeps it for): until then no policy can change its answer.
    pub fn aged(&self, elapsed_ms: u64) -> Decision {
        let mut aged = self.clone();
        aged.now_ms = self.now_ms.saturating_add(elapsed_ms);
        aged.reset_ms = self.reset_ms.saturating_sub(elapsed_ms);
        aged.retry_after_ms = self.retry_after_ms.saturating_sub(elapsed_ms);
        aged.deny_left_ms = self.deny_left_ms.map(|ms| ms.saturating_sub(elapsed_ms));
        for p in &mut aged.policies {
            p.reset_ms = p.reset_ms.saturating_sub(elapsed_ms);
            p.retry_after_ms = p.retry_after_ms.saturating_sub(elapsed_ms);
        }
        aged
    }

    /// The overall decision from every policy's answer: allowed iff the identity is not denied
    /// and every enforcing (non-shadow) policy allows.
    pub fn summarise(now_ms: u64, denied: bool, policies: Vec<PolicyDecision>) -> Decision {
        assert!(
            !policies.is_empty(),
            "a decision covers at least one policy"
        );
        let refusing = |shadow: bool| -> Vec<String> {
            policies
                .iter()
                .filter(|p| !p.allowed && p.shadow == shadow)
                .map(|p| p.policy.clone())
                .collect()
        };
        let (violated, shadowed) = (refusing(false), refusing(true));
        let allowed = violated.is_empty() && !denied;
        // The binding policy among the enforcing ones (all of them, if every one is a shadow).
        let enforcing = |p: &&PolicyDecision| !p.shadow || policies.iter().all(|q| q.shadow);
        let binding = if violated.is_empty() {
            policies.iter().filter(enforcing).reduce(|best, p| {
                if p.remaining < best.remaining {
                    p
                } else {
                    best
                }
            })
        } else {
            policies
                .iter()
                .filter(|p| !p.allowed && !p.shadow)
                .reduce(|best, p| {
                    if p.retry_after_ms > best.retry_after_ms {
                        p
                    } else {
                        best
                    }
                })
        }
        .expect("at least one policy");
        let reason = if denied {
            Reason::Deny
        } else if !shadowed.is_empty() && allowed {
            Reason::Shadow
        } else if policies.iter().any(|p| p.source != LimitSource::Configured) {
            Reason::Override
        } else {
            Reason::Limit
        };
        Decision {
            allowed,
            denied,
            reason,
            policy: binding.policy.clone(),
            limit: binding.limit,
            remaining: binding.remaining,
            reset_ms: binding.reset_ms,
            retry_after_ms: if violated.is_empty() {
                0
            } else {
                binding.retry_after_ms
            },
            violated,
            shadowed,
            now_ms,
            deny_left_ms: None,
            policies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ints(values: &[i64]) -> Reply {
        Reply::Array(values.iter().map(|&n| Reply::Int(n)).collect())
    }

    fn two() -> Vec<Policy> {
        vec![
            Policy::sliding("api", 100, Duration::from_secs(60)),
            Policy::gcra("burst", 10, Duration::from_secs(1)),
        ]
    }

    /// A reply: `now, allowed, denied, deny_left_ms`, then per policy `allowed, remaining, reset, retry, L, W,
    /// source`.
    fn reply(head: [i64; 4], policies: &[[i64; 7]]) -> Reply {
        let mut all = head.to_vec();
        for p in policies {
            all.extend(p);
        }
        ints(&all)
    }

    #[test]
    fn allowed_decision_is_bound_by_the_fewest_remaining() {
        let r = reply(
            [5000, 1, 0, 0],
            &[
                [1, 42, 60000, 0, 100, 60000, 0],
                [1, 3, 700, 0, 10, 1000, 0],
            ],
        );
        let d = parse_decision(&two(), &r).unwrap();
        assert!(d.allowed && !d.denied);
        assert_eq!(
            (d.policy.as_str(), d.limit, d.remaining, d.reset_ms),
            ("burst", 10, 3, 700)
        );
        assert_eq!((d.retry_after_ms, d.reason), (0, Reason::Limit));
        assert!(d.violated.is_empty());
        assert_eq!(d.now_ms, 5000);
        assert_eq!(d.policies[0].window_ms, 60_000);
    }

    #[test]
    fn denied_decision_is_bound_by_the_longest_wait() {
        let r = reply(
            [5000, 0, 0, 0],
            &[
                [0, 0, 60000, 9000, 100, 60000, 0],
                [0, 0, 1000, 100, 10, 1000, 0],
            ],
        );
        let d = parse_decision(&two(), &r).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.violated, ["api", "burst"]);
        assert_eq!((d.policy.as_str(), d.retry_after_ms), ("api", 9000));
        let r = reply(
            [5000, 0, 0, 0],
            &[
                [1, 5, 60000, 0, 100, 60000, 0],
                [0, 0, 1000, 100, 10, 1000, 0],
            ],
        );
        let d = parse_decision(&two(), &r).unwrap();
        assert_eq!(d.violated, ["burst"]);
        assert_eq!(
            (d.policy.as_str(), d.remaining, d.retry_after_ms),
            ("burst", 0, 100)
        );
    }

    #[test]
    fn limits_in_effect_and_their_source_come_from_the_script() {
        let r = reply(
            [5000, 1, 0, 0],
            &[[1, 4999, 0, 0, 5000, 60000, 2], [1, 9, 100, 0, 10, 1000, 1]],
        );
        let d = parse_decision(&two(), &r).unwrap();
        assert_eq!(
            (d.policies[0].limit, d.policies[0].source),
            (5000, LimitSource::Tier)
        );
        assert_eq!(d.policies[1].source, LimitSource::Override);
        assert_eq!(d.reason, Reason::Override);
    }

    #[test]
    fn a_shadow_policy_reports_but_never_refuses() {
        let policies = vec![
            Policy::sliding("api", 100, Duration::from_secs(60)),
            Policy::gcra("burst", 10, Duration::from_secs(1)).shadowed(),
        ];
        let r = reply(
            [5000, 1, 0, 0],
            &[
                [1, 42, 60000, 0, 100, 60000, 0],
                [0, 0, 1000, 100, 10, 1000, 0],
            ],
        );
        let d = parse_decision(&policies, &r).unwrap();
        assert!(d.allowed);
        assert!(d.violated.is_empty());
        assert_eq!(d.shadowed, ["burst"]);
        assert_eq!(
            (d.reason, d.policy.as_str(), d.retry_after_ms),
            (Reason::Shadow, "api", 0)
        );
    }

    #[test]
    fn a_denied_identity_is_refused_with_its_policies_reported() {
        let r = reply(
            [5000, 0, 1, 0],
            &[
                [1, 42, 60000, 0, 100, 60000, 0],
                [1, 3, 700, 0, 10, 1000, 0],
            ],
        );
        let d = parse_decision(&two(), &r).unwrap();
        assert!(!d.allowed && d.denied);
        assert_eq!((d.reason, d.retry_after_ms), (Reason::Deny, 0));
        assert!(d.violated.is_empty());
    }

    #[test]
    fn fail_open_allows_with_full_policies() {
        let d = Decision::fail_open(&two());
        assert!(d.allowed);
        assert_eq!((d.policy.as_str(), d.remaining, d.limit), ("burst", 10, 10));
        assert!(d
            .policies
            .iter()
            .all(|p| p.allowed && p.remaining == p.limit));
    }

    #[test]
    fn malformed_replies_are_errors() {
        let mut negative = vec![1; 18];
        negative[17] = -1;
        for reply in [
            Reply::Int(1),
            ints(&[1, 1, 1, 1, 1]),
            ints(&negative),
            ints(&[1; 17]),
            Reply::Array(vec![Reply::Nil; 18]),
        ] {
            assert!(matches!(
                parse_decision(&two(), &reply),
                Err(RateLimitError::BadReply(_))
            ));
        }
        let digits = Reply::Array(
            ["1", "1", "0", "0", "1", "2", "3", "0", "100", "60000", "0"]
                .iter()
                .map(|s| Reply::Bytes(s.as_bytes().to_vec()))
                .collect(),
        );
        assert!(parse_decision(&two()[..1], &digits).is_ok());
    }
}
