//! Tiers and per-identity overrides: other limits for some identities, resolved inside the
//! decision script (one round trip, as without them).
//!
//! - Tiers are configuration, `EDGECOUNT_TIERS`: entries `tier: policy=algorithm:limit/window`,
//!   separated by `;` or newlines, e.g. `pro: api=sliding:5000/60s; pro: burst=gcra:100/1s;
//!   free: api=sliding:100/60s`. Each names a configured native policy (fixed, sliding, token,
//!   gcra) and what it is for identities on that tier.
//! - An override is stored with the identity (`rl:{<id>}:o`, a hash: field = policy name), so it
//!   takes effect on the next decision everywhere, without a redeploy: either a limit and window
//!   for that policy ([`Override::Limit`]) or a tier ([`Override::Tier`]).

use std::fmt;

use super::policy::{validate_name, Policy, PolicySet};
use super::{encode_id, RateLimitError};
use crate::core::command::{Command, Reply};

/// The configured tiers: for each, the policies it sets, in configuration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tiers {
    /// (tier name, the policy as the tier has it).
    entries: Vec<(String, Policy)>,
}

impl Tiers {
    /// Parse `EDGECOUNT_TIERS` against the configured `policies`. An empty value has no tiers.
    pub fn parse(spec: &str, policies: &PolicySet) -> Result<Tiers, RateLimitError> {
        let mut tiers = Tiers::default();
        for entry in spec.split([';', '\n']).map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let invalid = |why: String| {
                RateLimitError::InvalidPolicy(format!(
                    "tier entry \"{entry}\": {why} (expected tier: policy=algorithm:limit/window)"
                ))
            };
            let (tier, rule) = entry
                .split_once(':')
                .ok_or_else(|| invalid("missing ':' after the tier's name".into()))?;
            let tier = tier.trim();
            validate_name(tier).map_err(|_| invalid(format!("bad tier name \"{tier}\"")))?;
            let policy: Policy = rule.trim().parse()?;
            let base = policies.get(policy.name()).ok_or_else(|| {
                invalid(format!(
                    "no policy \"{}\" in EDGECOUNT_RATE_LIMITS",
                    policy.name()
                ))
            })?;
            if !base.algorithm().is_native() || !policy.algorithm().is_native() {
                return Err(invalid(
                    "tiers set fixed, sliding, token and gcra policies only".into(),
                ));
            }
            if policy.shadow() || policy.fail_mode().is_some() {
                return Err(invalid(
                    "options belong to the policy in EDGECOUNT_RATE_LIMITS".into(),
                ));
            }
            if tiers.get(tier, policy.name()).is_some() {
                return Err(invalid(format!(
                    "tier \"{tier}\" sets policy \"{}\" twice",
                    policy.name()
                )));
            }
            tiers.entries.push((tier.to_owned(), policy));
        }
        Ok(tiers)
    }

    /// What tier `tier` sets `policy` to, if it does.
    pub fn get(&self, tier: &str, policy: &str) -> Option<&Policy> {
        self.entries
            .iter()
            .find(|(t, p)| t == tier && p.name() == policy)
            .map(|(_, p)| p)
    }

    /// Whether a tier of that name is configured.
    pub fn exists(&self, tier: &str) -> bool {
        self.entries.iter().any(|(t, _)| t == tier)
    }

    /// The script argument of one policy's tiers: `tier=algorithm:L:W,…`.
    pub fn script_arg(&self, policy: &str) -> String {
        let mut arg = String::new();
        for (tier, p) in self.entries.iter().filter(|(_, p)| p.name() == policy) {
            if !arg.is_empty() {
                arg.push(',');
            }
            arg.push_str(&format!(
                "{tier}={}:{}:{}",
                p.algorithm().as_str(),
                p.limit(),
                p.window_ms()
            ));
        }
        arg
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Other limits for one identity under one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Override {
    /// This limit and window (the policy's algorithm).
    Limit { limit: u64, window_ms: u64 },
    /// What the tier sets for the policy.
    Tier(String),
}

impl Override {
    /// An override for `policy` from a request: `limit` and `window` (`60s`, like a policy's)
    /// or `tier`, one or the other; checked against the policy and the tiers.
    pub fn parse(
        policy: &Policy,
        tiers: &Tiers,
        limit: Option<&str>,
        window: Option<&str>,
        tier: Option<&str>,
    ) -> Result<Override, RateLimitError> {
        let invalid = |why: String| RateLimitError::InvalidOverride(why);
        if !policy.algorithm().is_native() {
            return Err(invalid(format!(
                "policy \"{}\" is {}: overrides and tiers apply to fixed, sliding, token and gcra",
                policy.name(),
                policy.algorithm()
            )));
        }
        match (limit, window, tier) {
            (None, None, Some(tier)) => {
                if tiers.get(tier, policy.name()).is_none() {
                    return Err(invalid(if tiers.exists(tier) {
                        format!("tier \"{tier}\" does not set policy \"{}\"", policy.name())
                    } else {
                        format!("no tier \"{tier}\" in EDGECOUNT_TIERS")
                    }));
                }
                Ok(Override::Tier(tier.to_owned()))
            }
            (Some(limit), Some(window), None) => {
                let rule = format!(
                    "{}={}:{limit}/{window}",
                    policy.name(),
                    policy.algorithm().as_str()
                );
                let checked: Policy = rule
                    .parse()
                    .map_err(|e: RateLimitError| invalid(e.to_string()))?;
                Ok(Override::Limit {
                    limit: checked.limit(),
                    window_ms: checked.window_ms(),
                })
            }
            _ => Err(invalid(
                "give limit and window (e.g. ?limit=1000&window=60s), or tier".into(),
            )),
        }
    }

    /// As stored: `L:W` or `tier:<name>`.
    pub fn stored(&self) -> String {
        match self {
            Override::Limit { limit, window_ms } => format!("{limit}:{window_ms}"),
            Override::Tier(tier) => format!("tier:{tier}"),
        }
    }

    /// Read a stored value back (`None` for one this version cannot read).
    pub fn from_stored(stored: &str) -> Option<Override> {
        if let Some(tier) = stored.strip_prefix("tier:") {
            return Some(Override::Tier(tier.to_owned()));
        }
        let (limit, window) = stored.split_once(':')?;
        let (limit, window_ms) = (limit.parse().ok()?, window.parse().ok()?);
        Some(Override::Limit { limit, window_ms })
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Override::Limit { limit, window_ms } => write!(f, "{limit} per {window_ms} ms"),
            Override::Tier(tier) => write!(f, "tier {tier}"),
        }
    }
}

/// `rl:{<id>}:o`: the identity's overrides (a hash, field = policy name).
pub fn overrides_key(id: &str) -> Result<String, RateLimitError> {
    Ok(format!("rl:{{{}}}:o", encode_id(id)?))
}

/// Set `policy`'s override for `id`.
pub fn set_override_command(
    id: &str,
    policy: &str,
    to: &Override,
) -> Result<Command, RateLimitError> {
    Ok(Command::new("HSET")
        .arg(overrides_key(id)?)
        .arg(policy)
        .arg(to.stored()))
}

/// Read `policy`'s override for `id` (the reply: nil or the stored value).
pub fn get_override_command(id: &str, policy: &str) -> Result<Command, RateLimitError> {
    Ok(Command::new("HGET").arg(overrides_key(id)?).arg(policy))
}

/// Remove `policy`'s override for `id` (the reply: 1 removed, 0 there was none).
pub fn remove_override_command(id: &str, policy: &str) -> Result<Command, RateLimitError> {
    Ok(Command::new("HDEL").arg(overrides_key(id)?).arg(policy))
}

/// The override in an `HGET` reply.
pub fn parse_override(reply: &Reply) -> Option<Override> {
    reply.as_str().ok().and_then(Override::from_stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies() -> PolicySet {
        PolicySet::parse("api=sliding:100/60s; burst=gcra:10/1s; conc=concurrency:3/30s").unwrap()
    }

    #[test]
    fn tiers_parse_against_the_policies() {
        let tiers = Tiers::parse(
            "pro: api=sliding:5000/60s; pro: burst=gcra:100/1s\nfree: api=sliding:50/1m",
            &policies(),
        )
        .unwrap();
        assert_eq!(tiers.get("pro", "api").unwrap().limit(), 5000);
        assert_eq!(tiers.get("free", "api").unwrap().window_ms(), 60_000);
        assert!(tiers.get("free", "burst").is_none());
        assert_eq!(
            tiers.script_arg("api"),
            "pro=sliding:5000:60000,free=sliding:50:60000"
        );
        assert_eq!(tiers.script_arg("conc"), "");
        assert!(Tiers::parse("", &policies()).unwrap().is_empty());
    }

    #[test]
    fn bad_tiers_name_the_entry() {
        for (spec, needle) in [
            ("pro api=sliding:1/1s", "tier name"),
            ("pro", "missing ':'"),
            ("pro: nope=sliding:1/1s", "no policy \"nope\""),
            ("pro: conc=concurrency:5/30s", "fixed, sliding"),
            ("pro: api=sliding:0/1s", "at least 1"),
            ("pro: api=sliding:1/1s; pro: api=sliding:2/1s", "twice"),
            ("p r o: api=sliding:1/1s", "tier name"),
            ("pro: api=sliding:1/1s shadow", "options"),
        ] {
            let e = Tiers::parse(spec, &policies()).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn overrides_are_checked_and_stored() {
        let set = policies();
        let tiers = Tiers::parse("pro: api=sliding:5000/60s", &set).unwrap();
        let api = set.get("api").unwrap();
        let limit = Override::parse(api, &tiers, Some("1000"), Some("30s"), None).unwrap();
        assert_eq!(
            limit,
            Override::Limit {
                limit: 1000,
                window_ms: 30_000
            }
        );
        assert_eq!(limit.stored(), "1000:30000");
        assert_eq!(Override::from_stored("1000:30000"), Some(limit));
        let tier = Override::parse(api, &tiers, None, None, Some("pro")).unwrap();
        assert_eq!(tier.stored(), "tier:pro");
        assert_eq!(Override::from_stored("tier:pro"), Some(tier));
        for (l, w, t) in [
            (Some("0"), Some("60s"), None),
            (Some("10"), Some("0s"), None),
            (Some("x"), Some("60s"), None),
            (Some("10"), Some("60"), None),
            (Some("10"), None, None),
            (None, None, Some("gold")),
            (Some("10"), Some("60s"), Some("pro")),
            (None, None, None),
        ] {
            assert!(
                matches!(
                    Override::parse(api, &tiers, l, w, t),
                    Err(RateLimitError::InvalidOverride(_))
                ),
                "{l:?} {w:?} {t:?}"
            );
        }
        let conc = set.get("conc").unwrap();
        assert!(Override::parse(conc, &tiers, Some("5"), Some("1s"), None).is_err());
        assert_eq!(
            set_override_command("user:1", "api", &Override::Tier("pro".into()))
                .unwrap()
                .parts(),
            ["HSET", "rl:{user:1}:o", "api", "tier:pro"]
        );
    }
}
