//! The answer of one rate-limit decision, read from the script's reply.

use serde::Serialize;

use super::{Algorithm, Policy, RateLimitError};
use crate::core::command::Reply;

/// What one policy said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyDecision {
    pub policy: String,
    #[serde(serialize_with = "serialize_algorithm")]
    pub algorithm: Algorithm,
    /// This policy admits the cost (for a consume: on its own; the decision is all-or-nothing).
    pub allowed: bool,
    pub limit: u64,
    pub window_ms: u64,
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

/// The decision over one or more policies, summarised by the binding policy: when denied, the
/// violated policy with the longest wait; when allowed, the one with the fewest remaining
/// (the first on ties).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Every policy admits the cost (for a consume: it was consumed in all of them).
    pub allowed: bool,
    /// The binding policy's name, limit, remaining and reset.
    pub policy: String,
    pub limit: u64,
    pub remaining: u64,
    pub reset_ms: u64,
    /// Longest wait among the violated policies (0 when allowed): after it, every policy
    /// admits the cost at once, absent other traffic.
    pub retry_after_ms: u64,
    /// Names of the policies that reject the cost, in request order.
    pub violated: Vec<String>,
    /// Every policy's own answer, in request order.
    pub policies: Vec<PolicyDecision>,
    /// The Redis time (ms since the epoch) the decision was taken at.
    pub now_ms: u64,
}

/// Read the script's reply `{now_ms, all_allowed, (allowed, remaining, reset_ms,
/// retry_after_ms) per policy}` for the `policies` the call was built with.
pub fn parse_decision(policies: &[Policy], reply: &Reply) -> Result<Decision, RateLimitError> {
    let bad = |why: String| RateLimitError::BadReply(format!("{why}: {reply}"));
    let items = reply.as_array().map_err(|e| bad(e.to_string()))?;
    if policies.is_empty() || items.len() != 2 + 4 * policies.len() {
        return Err(bad(format!(
            "expected {} integers for {} policies",
            2 + 4 * policies.len(),
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
        .zip(numbers[2..].chunks_exact(4))
        .map(|(p, n)| PolicyDecision {
            policy: p.name().to_owned(),
            algorithm: p.algorithm(),
            allowed: n[0] == 1,
            limit: p.limit(),
            window_ms: p.window_ms(),
            remaining: n[1],
            reset_ms: n[2],
            retry_after_ms: n[3],
        })
        .collect();
    Ok(Decision::summarise(numbers[0], per_policy))
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
                limit: p.limit(),
                window_ms: p.window_ms(),
                remaining: p.limit(),
                reset_ms: 0,
                retry_after_ms: 0,
            })
            .collect();
        Decision::summarise(0, per_policy)
    }

    /// The overall decision from every policy's answer (all-or-nothing: allowed iff all allow).
    pub fn summarise(now_ms: u64, policies: Vec<PolicyDecision>) -> Decision {
        assert!(
            !policies.is_empty(),
            "a decision covers at least one policy"
        );
        let violated: Vec<String> = policies
            .iter()
            .filter(|p| !p.allowed)
            .map(|p| p.policy.clone())
            .collect();
        let allowed = violated.is_empty();
        let binding = if allowed {
            policies.iter().reduce(|best, p| {
                if p.remaining < best.remaining {
                    p
                } else {
                    best
                }
            })
        } else {
            policies.iter().filter(|p| !p.allowed).reduce(|best, p| {
                if p.retry_after_ms > best.retry_after_ms {
                    p
                } else {
                    best
                }
            })
        }
        .expect("at least one policy");
        Decision {
            allowed,
            policy: binding.policy.clone(),
            limit: binding.limit,
            remaining: binding.remaining,
            reset_ms: binding.reset_ms,
            retry_after_ms: if allowed { 0 } else { binding.retry_after_ms },
            violated,
            now_ms,
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

    #[test]
    fn allowed_decision_is_bound_by_the_fewest_remaining() {
        let d = parse_decision(&two(), &ints(&[5000, 1, 1, 42, 60000, 0, 1, 3, 700, 0])).unwrap();
        assert!(d.allowed);
        assert_eq!(
            (d.policy.as_str(), d.limit, d.remaining, d.reset_ms),
            ("burst", 10, 3, 700)
        );
        assert_eq!(d.retry_after_ms, 0);
        assert!(d.violated.is_empty());
        assert_eq!(d.now_ms, 5000);
        assert_eq!(d.policies[0].window_ms, 60_000);
    }

    #[test]
    fn denied_decision_is_bound_by_the_longest_wait() {
        let reply = ints(&[5000, 0, 0, 0, 60000, 9000, 0, 0, 1000, 100]);
        let d = parse_decision(&two(), &reply).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.violated, ["api", "burst"]);
        assert_eq!((d.policy.as_str(), d.retry_after_ms), ("api", 9000));
        let reply = ints(&[5000, 0, 1, 5, 60000, 0, 0, 0, 1000, 100]);
        let d = parse_decision(&two(), &reply).unwrap();
        assert_eq!(d.violated, ["burst"]);
        assert_eq!(
            (d.policy.as_str(), d.remaining, d.retry_after_ms),
            ("burst", 0, 100)
        );
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
        for reply in [
            Reply::Int(1),
            ints(&[1, 1, 1, 1, 1]),
            ints(&[1, 1, 1, 1, 1, 1, 1, 1, 1, -1]),
            Reply::Array(vec![Reply::Nil; 10]),
        ] {
            assert!(matches!(
                parse_decision(&two(), &reply),
                Err(RateLimitError::BadReply(_))
            ));
        }
        let digits = Reply::Array(
            ["1", "1", "1", "2", "3", "0"]
                .iter()
                .map(|s| Reply::Bytes(s.as_bytes().to_vec()))
                .collect(),
        );
        assert!(parse_decision(&two()[..1], &digits).is_ok());
    }
}
