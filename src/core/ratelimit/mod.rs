//! Rate limits: named policies, four algorithms (fixed window, sliding window, token bucket,
//! GCRA) as ONE generic Lua script, a pure Rust model of the same rules, decisions and headers.
//!
//! The seam for the async limiter: [`decision_call`] builds the script invocation (keys and
//! arguments) for one identity over one or more policies, the store runs it
//! (`Store::eval(call.script, &call.keys, &call.args)`, EVALSHA with EVAL fallback), and
//! [`parse_decision`] turns the reply into a [`Decision`]. One round trip, atomic, all-or-nothing
//! across the policies. The exact rule of each algorithm is in the script's header
//! (`scripts/limit.lua`); [`model`] implements the same rules in Rust, taking `now_ms`.
//!
//! ```ignore
//! let policies = policy_set.select("api+burst")?;          // from the route
//! let call = ratelimit::decision_call(&policies, &tiers, id, cost, Mode::Consume, now_ms)?;
//! let reply = store.eval(call.script, &call.keys, &call.args).await?;
//! let decision = ratelimit::parse_decision(&policies, &reply)?;
//! headers::insert_rate_limit_headers(&decision, response.headers_mut());
//! // 200 with headers::decision_body, or 429 with headers::problem_body (application/problem+json)
//! ```
//!
//! Keys: `rl:{<id>}:<policy>:state` (see [`state_keys`]); the identity is percent-encoded (see
//! [`encode_id`]) so `{`, `}` in user input cannot move the hash tag: all keys of one identity
//! share one Redis Cluster slot. Every key the script touches is declared in its call; every key
//! it writes carries a TTL.

use http::StatusCode;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::core::command::Script;

pub mod blocks;
pub mod decision;
pub mod deny;
pub mod headers;
pub mod lease;
pub mod model;
pub mod policy;
pub mod tiers;

pub use decision::{parse_decision, Decision, LimitSource, PolicyDecision, Reason};
pub use deny::{DenyTarget, Network};
pub use policy::{Algorithm, FailMode, Policy, PolicySet, MAX_LIMIT_TIMES_WINDOW_MS};
pub use tiers::{Override, Tiers};

/// Longest identity accepted, in bytes before encoding.
pub const MAX_ID_LEN: usize = 256;

/// Everything that can go wrong deciding a rate limit (apart from reaching Redis).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// A policy definition is invalid (configuration: found at start-up).
    #[error("invalid rate-limit policy: {0}")]
    InvalidPolicy(String),
    /// A route names a policy that is not configured.
    #[error("unknown rate-limit policy \"{0}\"")]
    UnknownPolicy(String),
    /// A route's policy list is malformed (empty name, repeated name, too many).
    #[error("invalid rate-limit policy list: {0}")]
    InvalidPolicyList(String),
    /// The identity is empty or too long.
    #[error("invalid rate-limit identity: {0}")]
    InvalidId(String),
    /// An override that does not hold up (no such tier, a zero window, …).
    #[error("invalid override: {0}")]
    InvalidOverride(String),
    /// A deny-list entry that does not hold up (an address typo, a bad ttl).
    #[error("invalid deny-list entry: {0}")]
    InvalidDeny(String),
    /// The route is for another kind of policy (a concurrency policy on `/limit`, a rate limit
    /// on `/lease`).
    #[error("{0}")]
    WrongKind(String),
    /// A cost larger than a policy's limit could never be admitted.
    #[error(
        "cost {cost} exceeds the limit {limit} of policy \"{policy}\", so it could never be allowed"
    )]
    CostExceedsLimit {
        policy: String,
        cost: u64,
        limit: u64,
    },
    /// The script answered something of the wrong shape.
    #[error("unexpected rate-limit script reply: {0}")]
    BadReply(String),
}

impl RateLimitError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            RateLimitError::UnknownPolicy(_) => StatusCode::NOT_FOUND,
            RateLimitError::InvalidPolicyList(_)
            | RateLimitError::InvalidId(_)
            | RateLimitError::InvalidOverride(_)
            | RateLimitError::InvalidDeny(_)
            | RateLimitError::WrongKind(_)
            | RateLimitError::CostExceedsLimit { .. } => StatusCode::BAD_REQUEST,
            RateLimitError::InvalidPolicy(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RateLimitError::BadReply(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

/// What a decision does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Admit `cost` in every policy, or in none (nothing is consumed when any policy rejects).
    Consume,
    /// Say whether `cost` would be admitted now; changes nothing.
    Peek,
    /// Give `cost` back to every policy, never beyond an empty state (remaining ≤ limit).
    Refund,
    /// Delete the state of every policy, then answer like [`Mode::Peek`].
    Reset,
}

impl Mode {
    /// The script's name for the mode (`ARGV[1]`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Consume => "consume",
            Mode::Peek => "peek",
            Mode::Refund => "refund",
            Mode::Reset => "reset",
        }
    }
}

/// The rate-limit script (`scripts/limit.lua` as minified by `build.rs`).
pub fn script() -> &'static Script {
    static SCRIPT: Script = crate::embedded_script!("limit");
    &SCRIPT
}

pub use crate::core::command::ScriptCall;

/// Whom a decision is for: the identity whose limits count and, when known, the client's address
/// (text: `203.0.113.7`, `2001:db8::1`), which the deny list's addresses and ranges are checked
/// against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject<'a> {
    pub id: &'a str,
    pub address: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// The identity, with the client at `address`.
    pub fn at(id: &'a str, address: Option<&'a str>) -> Self {
        Subject { id, address }
    }
}

impl<'a> From<&'a str> for Subject<'a> {
    /// An identity alone (no address to check).
    fn from(id: &'a str) -> Self {
        Subject { id, address: None }
    }
}

impl<'a> From<&'a String> for Subject<'a> {
    fn from(id: &'a String) -> Self {
        Subject::from(id.as_str())
    }
}

/// The script call deciding `mode` with `cost` for `subject` over `policies` (all of them
/// atomically, with the identity's overrides and `tiers` resolved and the deny list checked in
/// the script), every key it touches declared. The native algorithms decide on Redis `TIME`, one
/// clock for every edge; `now_ms`, the caller's clock, names the windows of the `upstash-*`
/// policies, which decide on it as @upstash/ratelimit decides on the client's `Date.now()`. This
/// is the only builder the HTTP layer should use.
pub fn decision_call<'a>(
    policies: &[Policy],
    tiers: &Tiers,
    subject: impl Into<Subject<'a>>,
    cost: u64,
    mode: Mode,
    now_ms: u64,
) -> Result<ScriptCall, RateLimitError> {
    build_call(policies, tiers, subject.into(), cost, mode, now_ms, None)
}

/// TESTS ONLY: like [`decision_call`], but the script uses `now_ms` instead of Redis `TIME`, so
/// a test can replay a sequence of instants against the script and the [`model`]. Never call
/// this with a time that came from a request: decisions shared by several edges must use the
/// one clock of Redis.
#[doc(hidden)]
pub fn decision_call_at_test_time<'a>(
    policies: &[Policy],
    tiers: &Tiers,
    subject: impl Into<Subject<'a>>,
    cost: u64,
    mode: Mode,
    now_ms: u64,
) -> Result<ScriptCall, RateLimitError> {
    build_call(
        policies,
        tiers,
        subject.into(),
        cost,
        mode,
        now_ms,
        Some(now_ms),
    )
}

/// Script arguments per policy (see `scripts/limit.lua`).
const ARGS_PER_POLICY: usize = 8;

fn build_call(
    policies: &[Policy],
    tiers: &Tiers,
    subject: Subject<'_>,
    cost: u64,
    mode: Mode,
    now_ms: u64,
    test_now_ms: Option<u64>,
) -> Result<ScriptCall, RateLimitError> {
    let cost = checked_cost(policies, cost, mode)?;
    if let Some(p) = policies
        .iter()
        .find(|p| p.algorithm() == Algorithm::Concurrency)
    {
        return Err(RateLimitError::WrongKind(format!(
            "policy \"{}\" is a concurrency limit: take a lease with POST /lease/{}/<id>",
            p.name(),
            p.name()
        )));
    }
    let tag = encode_id(subject.id)?;
    let address = match subject.address {
        Some(address) => deny::address_text_hex(address).ok_or_else(|| {
            RateLimitError::InvalidId(format!(
                "the client address \"{address}\" is not an IPv4 or IPv6 address"
            ))
        })?,
        None => String::new(),
    };
    let mut keys = vec![format!("rl:{{{tag}}}:o"), format!("rl:{{{tag}}}:deny")];
    let mut args = Vec::with_capacity(5 + ARGS_PER_POLICY * policies.len());
    args.extend([
        mode.as_str().to_owned(),
        cost.to_string(),
        now_ms.to_string(),
        test_now_ms.map(|t| t.to_string()).unwrap_or_default(),
        address,
    ]);
    for p in policies {
        let first_key = keys.len() + 1;
        keys.extend(state_keys(p, &tag, subject.id, now_ms));
        args.extend([
            p.name().to_owned(),
            p.algorithm().as_str().to_owned(),
            p.limit().to_string(),
            p.window_ms().to_string(),
            if p.shadow() { "1" } else { "0" }.to_owned(),
            tiers.script_arg(p.name()),
            first_key.to_string(),
            p.refill().to_string(),
        ]);
    }
    if subject.address.is_some() {
        keys.push(deny::NETWORKS_KEY.to_owned());
    }
    Ok(ScriptCall {
        script: script(),
        keys,
        args,
    })
}

/// The keys holding one policy's state for one identity (`tag`, its encoded form), the window
/// keys of the `upstash-*` policies by `now_ms`:
/// - native: `rl:{<id>}:<policy>:state`, whatever algorithm, limit and window an override or
///   tier gives it (the state records them, see `scripts/limit.lua`);
/// - `upstash-fixed`: `<prefix>:<id>:<window index>`; `upstash-sliding`: that and the previous
///   window's; `upstash-token`: `<prefix>:<id>` — @upstash/ratelimit's own keys.
pub fn state_keys(policy: &Policy, tag: &str, id: &str, now_ms: u64) -> Vec<String> {
    let prefix = policy.upstash_prefix();
    let window = (now_ms / policy.window_ms().max(1)) as i64;
    match policy.algorithm() {
        Algorithm::UpstashFixed => vec![format!("{prefix}:{id}:{window}")],
        Algorithm::UpstashSliding => vec![
            format!("{prefix}:{id}:{window}"),
            format!("{prefix}:{id}:{}", window - 1),
        ],
        Algorithm::UpstashToken => vec![format!("{prefix}:{id}")],
        _ => vec![format!("rl:{{{tag}}}:{}:state", policy.name())],
    }
}

/// Validate the policy list and the cost. A native policy's cost is checked by the script
/// against its limit for this identity (an override or tier may raise it); the others' here.
/// Refunds are clamped so the script's arithmetic stays exact (below 2^53).
pub(crate) fn checked_cost(
    policies: &[Policy],
    cost: u64,
    mode: Mode,
) -> Result<u64, RateLimitError> {
    if policies.is_empty() {
        return Err(RateLimitError::InvalidPolicyList("no policy given".into()));
    }
    if policies.len() > policy::MAX_POLICIES_PER_DECISION {
        return Err(RateLimitError::InvalidPolicyList(format!(
            "at most {} policies per decision",
            policy::MAX_POLICIES_PER_DECISION
        )));
    }
    for (i, p) in policies.iter().enumerate() {
        if policies[..i].iter().any(|q| q.name() == p.name()) {
            return Err(RateLimitError::InvalidPolicyList(format!(
                "policy \"{}\" is named twice",
                p.name()
            )));
        }
    }
    if mode == Mode::Refund {
        return Ok(cost.min(MAX_LIMIT_TIMES_WINDOW_MS));
    }
    let too_big = |p: &Policy| {
        let limit = if p.algorithm().is_native() {
            MAX_LIMIT_TIMES_WINDOW_MS
        } else {
            p.limit()
        };
        cost > limit
    };
    if let Some(p) = policies.iter().find(|p| too_big(p)) {
        return Err(RateLimitError::CostExceedsLimit {
            policy: p.name().to_owned(),
            cost,
            limit: p.limit(),
        });
    }
    Ok(cost)
}

/// On Redis Cluster: the deny list's ranges ([`deny::NETWORKS_KEY`], one hash for every client)
/// are in another slot than the identity's keys, so a `decision` that checks a client address in
/// its one script call is refused (`CROSSSLOT`). There the ranges are asked apart first, by this
/// call (the same script in mode `ranges`, on the hash alone, changing nothing), and the decision
/// then runs without the hash, told the answer ([`with_ranges_answer`]): two round trips instead
/// of one, and a range added between the two applies from the next decision. `None` when the
/// decision has no address to check.
pub fn ranges_call(decision: &ScriptCall) -> Option<ScriptCall> {
    if decision.args[4].is_empty() || decision.args[4] == "-" {
        return None;
    }
    let ranges = decision.keys.last()?;
    let mut args = decision.args[..5].to_vec();
    args[0] = "ranges".to_owned();
    Some(ScriptCall {
        script: decision.script,
        keys: vec![ranges.clone()],
        args,
    })
}

/// `decision` without the ranges hash (its last key), told whether the ranges hold its client
/// address (the answer of [`ranges_call`]): a denied decision still consumes nothing.
pub fn with_ranges_answer(mut decision: ScriptCall, denied: bool) -> ScriptCall {
    decision.keys.pop();
    decision.args[4] = if denied { "-" } else { "" }.to_owned();
    decision
}

/// The script's refusal of a cost above a policy's limit for this identity (an override or
/// tier made it smaller than the cost), as the error it is; other Redis errors are not ours.
pub fn cost_refusal(message: &str, policies: &[Policy], cost: u64) -> Option<RateLimitError> {
    let rest = message.split("cost exceeds the limit of policy ").nth(1)?;
    let (index, limit) = rest.split_once(" (")?;
    let policy = policies.get(index.trim().parse::<usize>().ok()?.checked_sub(1)?)?;
    Some(RateLimitError::CostExceedsLimit {
        policy: policy.name().to_owned(),
        cost,
        limit: limit.trim_end_matches(')').parse().ok()?,
    })
}

/// Bytes kept as they are in an encoded identity: ASCII letters and digits and `-._~:@`.
/// Everything else, notably `{`, `}` and `%` itself, is percent-encoded (UTF-8), which makes the
/// encoding injective and the hash tag exactly the identity.
const ID_ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@');

/// The identity as it appears inside the hash tag: 1 to [`MAX_ID_LEN`] bytes, percent-encoded.
pub fn encode_id(id: &str) -> Result<String, RateLimitError> {
    if id.is_empty() {
        return Err(RateLimitError::InvalidId("the identity is empty".into()));
    }
    if id.len() > MAX_ID_LEN {
        return Err(RateLimitError::InvalidId(format!(
            "the identity is {} bytes long; at most {MAX_ID_LEN}",
            id.len()
        )));
    }
    Ok(utf8_percent_encode(id, ID_ESCAPED).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn api() -> Policy {
        Policy::sliding("api", 100, Duration::from_secs(60))
    }

    #[test]
    fn builds_one_call_for_several_policies() {
        let policies = [
            api(),
            Policy::gcra("burst", 10, Duration::from_secs(1)).shadowed(),
        ];
        let call = decision_call(
            &policies,
            &Tiers::default(),
            "user:42",
            3,
            Mode::Consume,
            NOW_MS,
        )
        .unwrap();
        // The overrides, the deny mark and each policy's state: all in the identity's slot.
        assert_eq!(
            call.keys,
            [
                "rl:{user:42}:o",
                "rl:{user:42}:deny",
                "rl:{user:42}:api:state",
                "rl:{user:42}:burst:state"
            ]
        );
        assert_eq!(
            call.args,
            [
                "consume",
                "3",
                "1795611900123",
                "",
                "",
                "api",
                "sliding",
                "100",
                "60000",
                "0",
                "",
                "3",
                "100",
                "burst",
                "gcra",
                "10",
                "1000",
                "1",
                "",
                "4",
                "10"
            ]
        );
        let cmd = call.evalsha();
        assert_eq!(cmd.name(), "EVALSHA");
        assert_eq!(cmd.parts()[1], script().sha1());
        assert_eq!(cmd.parts()[2], "4");
    }

    /// 2026-11-25T13:05:00.123Z
    const NOW_MS: u64 = 1_795_611_900_123;

    #[test]
    fn a_client_address_brings_the_ranges_key() {
        let call = decision_call(
            &[api()],
            &Tiers::default(),
            Subject::at("user:42", Some("203.0.113.7")),
            1,
            Mode::Consume,
            NOW_MS,
        )
        .unwrap();
        assert_eq!(
            call.keys,
            [
                "rl:{user:42}:o",
                "rl:{user:42}:deny",
                "rl:{user:42}:api:state",
                "rl:deny:net"
            ]
        );
        assert_eq!(call.args[4], "4cb007107");
        // On Redis Cluster: the ranges alone first, then the decision told the answer.
        let ranges = ranges_call(&call).unwrap();
        assert_eq!(ranges.keys, ["rl:deny:net"]);
        assert_eq!(
            ranges.args,
            ["ranges", "1", "1795611900123", "", "4cb007107"]
        );
        let apart = with_ranges_answer(call.clone(), true);
        assert_eq!(apart.keys, call.keys[..3]);
        assert_eq!(apart.args[..5], ["consume", "1", "1795611900123", "", "-"]);
        assert_eq!(apart.args[5..], call.args[5..]);
        assert!(ranges_call(&apart).is_none());
        assert_eq!(with_ranges_answer(call, false).args[4], "");
        let without = decision_call(
            &[api()],
            &Tiers::default(),
            "user:42",
            1,
            Mode::Consume,
            NOW_MS,
        );
        assert!(ranges_call(&without.unwrap()).is_none());
        let error = decision_call(
            &[api()],
            &Tiers::default(),
            Subject::at("user:42", Some("203.0.113")),
            1,
            Mode::Consume,
            NOW_MS,
        )
        .unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn tiers_and_upstash_options_ride_with_their_policy() {
        let set = PolicySet::parse(
            "api=sliding:100/60s; shared=upstash-token:10/1m refill=2 prefix=my:rl",
        )
        .unwrap();
        let tiers = Tiers::parse("pro: api=gcra:5000/60s", &set).unwrap();
        let policies = set.select("api+shared").unwrap();
        let call = decision_call(&policies, &tiers, "u", 1, Mode::Peek, NOW_MS).unwrap();
        assert_eq!(call.args[10], "pro=gcra:5000:60000");
        assert_eq!(
            call.args[13..],
            ["shared", "upstash-token", "10", "60000", "0", "", "4", "2"]
        );
        // @upstash/ratelimit's own keys, the identity verbatim; windows by the caller's clock.
        assert_eq!(call.keys[3], "my:rl:u");
        let windows = PolicySet::parse("f=upstash-fixed:5/1m; s=upstash-sliding:5/1m").unwrap();
        let call = decision_call(
            &windows.select("f+s").unwrap(),
            &tiers,
            "user 1",
            1,
            Mode::Peek,
            NOW_MS,
        )
        .unwrap();
        let window = NOW_MS / 60_000;
        assert_eq!(
            call.keys[2..],
            [
                format!("@upstash/ratelimit:user 1:{window}"),
                format!("@upstash/ratelimit:user 1:{window}"),
                format!("@upstash/ratelimit:user 1:{}", window - 1),
            ]
        );
        assert_eq!((&call.args[11][..], &call.args[19][..]), ("3", "4"));
    }

    #[test]
    fn only_the_test_builder_sets_a_time() {
        let tiers = Tiers::default();
        let call = decision_call_at_test_time(&[api()], &tiers, "u", 1, Mode::Peek, 1234).unwrap();
        assert_eq!(call.args[2..4], ["1234", "1234"]);
        let call = decision_call(&[api()], &tiers, "u", 1, Mode::Peek, 1234).unwrap();
        assert_eq!(call.args[2..4], ["1234", ""]);
    }

    #[test]
    fn identity_cannot_break_the_hash_tag() {
        assert_eq!(encode_id("user:42").unwrap(), "user:42");
        assert_eq!(encode_id("a}b{c").unwrap(), "a%7Db%7Bc");
        assert_eq!(encode_id("%7D").unwrap(), "%257D");
        assert_eq!(encode_id("ip 1.2.3.4/é").unwrap(), "ip%201.2.3.4%2F%C3%A9");
        let key = &state_keys(&api(), &encode_id("}{x}").unwrap(), "}{x}", NOW_MS)[0];
        let tag_start = key.find('{').unwrap();
        let tag_end = tag_start + key[tag_start..].find('}').unwrap();
        assert_eq!(&key[tag_start + 1..tag_end], "%7D%7Bx%7D");
        assert!(matches!(encode_id(""), Err(RateLimitError::InvalidId(_))));
        assert!(encode_id(&"x".repeat(MAX_ID_LEN)).is_ok());
        assert!(matches!(
            encode_id(&"x".repeat(MAX_ID_LEN + 1)),
            Err(RateLimitError::InvalidId(_))
        ));
    }

    #[test]
    fn costs_and_lists_are_checked() {
        let tiers = Tiers::default();
        let shared: Policy = "shared=upstash-fixed:5/1s".parse().unwrap();
        // A native policy's cost is the script's to check (an override may raise the limit);
        // the others' here.
        let err = decision_call(
            &[api(), shared.clone()],
            &tiers,
            "u",
            6,
            Mode::Consume,
            NOW_MS,
        )
        .unwrap_err();
        assert_eq!(
            err,
            RateLimitError::CostExceedsLimit {
                policy: "shared".into(),
                cost: 6,
                limit: 5
            }
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(decision_call(&[api()], &tiers, "u", 1_000, Mode::Consume, NOW_MS).is_ok());
        let refund = decision_call(&[api()], &tiers, "u", u64::MAX, Mode::Refund, NOW_MS).unwrap();
        assert_eq!(refund.args[1], MAX_LIMIT_TIMES_WINDOW_MS.to_string());
        assert!(matches!(
            decision_call(&[], &tiers, "u", 1, Mode::Consume, NOW_MS),
            Err(RateLimitError::InvalidPolicyList(_))
        ));
        assert!(matches!(
            decision_call(&[api(), api()], &tiers, "u", 1, Mode::Consume, NOW_MS),
            Err(RateLimitError::InvalidPolicyList(_))
        ));
        let conc = Policy::concurrency("conc", 3, Duration::from_secs(30));
        assert!(matches!(
            decision_call(&[conc], &tiers, "u", 1, Mode::Consume, NOW_MS),
            Err(RateLimitError::WrongKind(_))
        ));
    }

    #[test]
    fn the_scripts_cost_refusal_names_the_policy() {
        let policies = [api(), Policy::fixed("small", 5, Duration::from_secs(1))];
        assert_eq!(
            cost_refusal(
                "ERR edgecount: cost exceeds the limit of policy 2 (3)",
                &policies,
                4
            ),
            Some(RateLimitError::CostExceedsLimit {
                policy: "small".into(),
                cost: 4,
                limit: 3
            })
        );
        assert_eq!(cost_refusal("ERR something else", &policies, 4), None);
        assert_eq!(
            cost_refusal(
                "ERR edgecount: cost exceeds the limit of policy 9 (3)",
                &policies,
                4
            ),
            None
        );
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(
            RateLimitError::UnknownPolicy("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            RateLimitError::InvalidId("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            RateLimitError::BadReply("x".into()).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            RateLimitError::InvalidPolicy("x".into()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
