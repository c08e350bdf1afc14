//! Rendering a [`Decision`] for HTTP: the IETF RateLimit headers
//! (draft-ietf-httpapi-ratelimit-headers, structured-field form), `Retry-After`, the legacy
//! `X-RateLimit-*` headers, and the JSON bodies (RFC 9457 problem details on 429).
//!
//! - `RateLimit-Policy: "api";q=100;w=60, "burst";q=10;w=1`: every policy of the decision, in
//!   request order; `q` the quota (limit), `w` the window in seconds (rounded up, at least 1).
//! - `RateLimit: "api";r=42;t=17, "burst";r=3;t=1`: `r` remaining, `t` seconds until the policy
//!   holds no usage (reset_ms rounded up).
//! - `Retry-After: <seconds>` on a denial: the decision's `retry_after_ms` rounded up (≥ 1).
//! - `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds from now, rounded
//!   up) for the binding policy, as the older de-facto convention.
//!
//! Policy names are `[A-Za-z0-9_-]`, so they need no escaping inside a structured-field string.

use std::fmt::{self, Write as _};

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::Serialize;

use super::{Decision, LimitSource, PolicyDecision, Reason};

pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
/// Why the decision went its way ([`super::Reason`]).
pub const EDGECOUNT_REASON: HeaderName = HeaderName::from_static("edgecount-reason");

/// Content type of the 429 body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Milliseconds to whole seconds, rounded up.
pub fn ceil_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// The `RateLimit-Policy` field value.
pub fn ratelimit_policy_value(decision: &Decision) -> String {
    list_value(decision, |out, p| {
        write!(
            out,
            "\"{}\";q={};w={}",
            p.policy,
            p.limit,
            ceil_seconds(p.window_ms).max(1)
        )
    })
}

/// The `RateLimit` field value.
pub fn ratelimit_value(decision: &Decision) -> String {
    list_value(decision, |out, p| {
        write!(
            out,
            "\"{}\";r={};t={}",
            p.policy,
            p.remaining,
            ceil_seconds(p.reset_ms)
        )
    })
}

/// A structured-field list with one member per policy, written into one string (these are built
/// for every decision: no string per member, no join).
fn list_value(
    decision: &Decision,
    member: impl Fn(&mut String, &PolicyDecision) -> fmt::Result,
) -> String {
    let mut out = String::with_capacity(48 * decision.policies.len());
    for (i, p) in decision.policies.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        member(&mut out, p).expect("writing to a String cannot fail");
    }
    out
}

/// Every rate-limit header for this decision, `Retry-After` only on a denial.
pub fn rate_limit_headers(decision: &Decision) -> Vec<(HeaderName, HeaderValue)> {
    // The string becomes the value's buffer (no copy); policy names are ASCII.
    let value = |text: String| HeaderValue::try_from(text).expect("ASCII header value");
    let mut headers = vec![
        (RATELIMIT_POLICY, value(ratelimit_policy_value(decision))),
        (RATELIMIT, value(ratelimit_value(decision))),
        (X_RATELIMIT_LIMIT, HeaderValue::from(decision.limit)),
        (X_RATELIMIT_REMAINING, HeaderValue::from(decision.remaining)),
        (
            X_RATELIMIT_RESET,
            HeaderValue::from(ceil_seconds(decision.reset_ms)),
        ),
        (
            EDGECOUNT_REASON,
            HeaderValue::from_static(decision.reason.as_str()),
        ),
    ];
    // Waiting helps against a limit, not against the deny list.
    if !decision.allowed && !decision.denied {
        let seconds = ceil_seconds(decision.retry_after_ms).max(1);
        headers.push((RETRY_AFTER, HeaderValue::from(seconds)));
    }
    headers
}

/// Add (replacing) the rate-limit headers of this decision to a response's headers.
pub fn insert_rate_limit_headers(decision: &Decision, headers: &mut HeaderMap) {
    for (name, value) in rate_limit_headers(decision) {
        headers.insert(name, value);
    }
}

/// The JSON answer of a decision that is not a refusal (and the core of the 429/403 bodies):
/// `{"allowed","limit","remaining","reset_ms","retry_after_ms","policy","reason","policies":[…]}`.
/// Serialised straight from the decision (no intermediate `serde_json::Value`).
#[derive(Serialize)]
pub struct DecisionBody<'a> {
    allowed: bool,
    limit: u64,
    remaining: u64,
    reset_ms: u64,
    retry_after_ms: u64,
    policy: &'a str,
    reason: Reason,
    policies: Vec<PolicyBody<'a>>,
}

/// One policy's part of a [`DecisionBody`]; `shadow` and `source` only when they say something.
#[derive(Serialize)]
struct PolicyBody<'a> {
    policy: &'a str,
    allowed: bool,
    limit: u64,
    remaining: u64,
    reset_ms: u64,
    retry_after_ms: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    shadow: bool,
    #[serde(skip_serializing_if = "is_configured")]
    source: LimitSource,
}

fn is_configured(source: &LimitSource) -> bool {
    *source == LimitSource::Configured
}

pub fn decision_body(decision: &Decision) -> DecisionBody<'_> {
    DecisionBody {
        allowed: decision.allowed,
        limit: decision.limit,
        remaining: decision.remaining,
        reset_ms: decision.reset_ms,
        retry_after_ms: decision.retry_after_ms,
        policy: &decision.policy,
        reason: decision.reason,
        policies: decision
            .policies
            .iter()
            .map(|p| PolicyBody {
                policy: &p.policy,
                allowed: p.allowed,
                limit: p.limit,
                remaining: p.remaining,
                reset_ms: p.reset_ms,
                retry_after_ms: p.retry_after_ms,
                shadow: p.shadow,
                source: p.source,
            })
            .collect(),
    }
}

/// The RFC 9457 problem details of a refusal (serve with its `status`, 429 or 403 for the deny
/// list, and [`PROBLEM_JSON`]):
/// `type` `about:blank` (the status says it all), `title`, `status`, `detail`, the extension
/// member `violated-policies`, and the fields of [`decision_body`].
#[derive(Serialize)]
pub struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(rename = "violated-policies")]
    violated_policies: &'a [String],
    #[serde(flatten)]
    decision: DecisionBody<'a>,
}

impl ProblemBody<'_> {
    /// The HTTP status to answer with: 403 for the deny list, 429 for a limit.
    pub fn status(&self) -> u16 {
        self.status
    }
}

pub fn problem_body(decision: &Decision) -> ProblemBody<'_> {
    if decision.denied {
        return ProblemBody {
            kind: "about:blank",
            title: "Forbidden",
            status: 403,
            detail: "this identity is on the deny list".to_owned(),
            violated_policies: &decision.violated,
            decision: decision_body(decision),
        };
    }
    let wait = ceil_seconds(decision.retry_after_ms).max(1);
    let detail = format!(
        "rate limit exceeded for {} {}; retry after {wait} s",
        if decision.violated.len() == 1 {
            "policy"
        } else {
            "policies"
        },
        decision
            .violated
            .iter()
            .map(|name| format!("\"{name}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    ProblemBody {
        kind: "about:blank",
        title: "Too Many Requests",
        status: 429,
        detail,
        violated_policies: &decision.violated,
        decision: decision_body(decision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ratelimit::{Algorithm, PolicyDecision};

    fn policy(
        name: &str,
        allowed: bool,
        limit: u64,
        window_ms: u64,
        remaining: u64,
        reset_ms: u64,
        retry_after_ms: u64,
    ) -> PolicyDecision {
        PolicyDecision {
            policy: name.into(),
            algorithm: Algorithm::SlidingWindow,
            allowed,
            shadow: false,
            limit,
            window_ms,
            source: LimitSource::Configured,
            remaining,
            reset_ms,
            retry_after_ms,
        }
    }

    fn header<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn allowed_decision_headers() {
        let d = Decision::summarise(
            0,
            false,
            vec![policy("api", true, 100, 60_000, 42, 16_001, 0)],
        );
        let h = rate_limit_headers(&d);
        assert_eq!(header(&h, "ratelimit-policy"), Some("\"api\";q=100;w=60"));
        assert_eq!(header(&h, "ratelimit"), Some("\"api\";r=42;t=17"));
        assert_eq!(header(&h, "x-ratelimit-limit"), Some("100"));
        assert_eq!(header(&h, "x-ratelimit-remaining"), Some("42"));
        assert_eq!(header(&h, "x-ratelimit-reset"), Some("17"));
        assert_eq!(header(&h, "retry-after"), None);
        let body = serde_json::to_value(decision_body(&d)).unwrap();
        assert_eq!(body["allowed"], true);
        assert_eq!(body["policy"], "api");
        assert_eq!(body["reset_ms"], 16_001);
    }

    #[test]
    fn several_policies_are_a_list_and_denials_carry_retry_after() {
        let d = Decision::summarise(
            0,
            false,
            vec![
                policy("api", true, 100, 60_000, 42, 60_000, 0),
                policy("burst", false, 10, 500, 0, 400, 1),
                policy("daily", false, 10_000, 86_400_000, 0, 3_600_000, 2_500),
            ],
        );
        let h = rate_limit_headers(&d);
        assert_eq!(
            header(&h, "ratelimit-policy"),
            Some("\"api\";q=100;w=60, \"burst\";q=10;w=1, \"daily\";q=10000;w=86400")
        );
        assert_eq!(
            header(&h, "ratelimit"),
            Some("\"api\";r=42;t=60, \"burst\";r=0;t=1, \"daily\";r=0;t=3600")
        );
        assert_eq!(header(&h, "retry-after"), Some("3"));
        assert_eq!(header(&h, "x-ratelimit-limit"), Some("10000"));
        let mut map = HeaderMap::new();
        insert_rate_limit_headers(&d, &mut map);
        assert_eq!(map.len(), 7);
        assert_eq!(header(&h, "edgecount-reason"), Some("limit"));

        let problem = serde_json::to_value(problem_body(&d)).unwrap();
        assert_eq!(problem["type"], "about:blank");
        assert_eq!(problem["title"], "Too Many Requests");
        assert_eq!(problem["status"], 429);
        assert_eq!(
            problem["violated-policies"],
            serde_json::json!(["burst", "daily"])
        );
        assert_eq!(
            problem["detail"],
            "rate limit exceeded for policies \"burst\", \"daily\"; retry after 3 s"
        );
        assert_eq!(problem["allowed"], false);
    }

    /// Each member of the list is `sf-string *( ";" key "=" sf-integer )` with non-negative
    /// integers, as the draft's structured-field grammar requires.
    #[test]
    fn header_values_follow_the_structured_field_grammar() {
        let d = Decision::summarise(
            0,
            false,
            vec![
                policy("a-b_C9", true, 1, 1, 0, 0, 0),
                policy("x", true, 5, 1_500, 5, 0, 0),
            ],
        );
        for value in [ratelimit_policy_value(&d), ratelimit_value(&d)] {
            for member in value.split(", ") {
                let mut parts = member.split(';');
                let name = parts.next().unwrap();
                assert!(
                    name.starts_with('"') && name.ends_with('"') && name.len() > 2,
                    "{value}"
                );
                let params: Vec<_> = parts.collect();
                assert_eq!(params.len(), 2, "{value}");
                for param in params {
                    let (key, number) = param.split_once('=').unwrap();
                    assert!(["q", "w", "r", "t"].contains(&key), "{value}");
                    assert!(
                        !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
                        "{value}"
                    );
                }
            }
        }
        assert_eq!(
            ratelimit_policy_value(&d),
            "\"a-b_C9\";q=1;w=1, \"x\";q=5;w=2"
        );
    }

    #[test]
    fn reasons_and_the_deny_list_answer() {
        let mut shadow = policy("soft", false, 5, 1_000, 0, 1_000, 900);
        shadow.shadow = true;
        let d = Decision::summarise(
            0,
            false,
            vec![policy("api", true, 100, 60_000, 42, 0, 0), shadow],
        );
        assert!(d.allowed);
        assert_eq!(
            (d.reason, d.shadowed.clone()),
            (Reason::Shadow, vec!["soft".to_owned()])
        );
        assert_eq!(
            header(&rate_limit_headers(&d), "edgecount-reason"),
            Some("shadow")
        );
        assert_eq!(header(&rate_limit_headers(&d), "retry-after"), None);
        let body = serde_json::to_value(decision_body(&d)).unwrap();
        assert_eq!(body["reason"], "shadow");
        assert_eq!(body["policies"][1]["shadow"], true);
        assert!(body["policies"][0].get("shadow").is_none());

        let mut tiered = policy("api", true, 5000, 60_000, 4999, 0, 0);
        tiered.source = LimitSource::Tier;
        let d = Decision::summarise(0, false, vec![tiered]);
        assert_eq!(d.reason, Reason::Override);
        assert_eq!(
            serde_json::to_value(decision_body(&d)).unwrap()["policies"][0]["source"],
            "tier"
        );

        let d = Decision::summarise(0, true, vec![policy("api", true, 100, 60_000, 42, 0, 0)]);
        assert!(!d.allowed && d.denied);
        assert_eq!(d.reason, Reason::Deny);
        let h = rate_limit_headers(&d);
        assert_eq!(header(&h, "edgecount-reason"), Some("deny"));
        assert_eq!(header(&h, "retry-after"), None);
        let problem = problem_body(&d);
        assert_eq!(problem.status(), 403);
        let problem = serde_json::to_value(problem).unwrap();
        assert_eq!(
            (problem["title"].clone(), problem["reason"].clone()),
            ("Forbidden".into(), "deny".into())
        );
    }
}
