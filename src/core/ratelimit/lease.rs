//! Concurrency limits (leases): under a `concurrency` policy (`exports=concurrency:3/30s`), at
//! most `limit` holders at once per identity, each lease expiring `window` after it was taken or
//! last renewed unless released first. One atomic script step on Redis `TIME` per operation
//! (`scripts/lease.lua`, whose header states the rules).
//!
//! The seam, as for rate-limit decisions: [`lease_call`] builds the script call (validating the
//! policy's kind and the identity: a malformed request never reaches Redis), the store runs it
//! (`Store::run`, EVALSHA with EVAL fallback), [`parse_lease`] reads the reply into a
//! [`LeaseDecision`]. Its [`Decision`] is the same answer in the shape of a rate-limit decision
//! over the one policy, so the headers and the refusal (429/403 problem details) are rendered by
//! [`super::headers`] exactly as `/limit` renders them; [`lease_body`] is the answer of a lease
//! taken or renewed.
//!
//! ```ignore
//! let lease = LeaseId::generate()?;
//! let call = lease::lease_call(&policy, "user:42", LeaseOp::Acquire, &lease)?;
//! let decision = lease::parse_lease(&policy, LeaseOp::Acquire, &lease, &store.run(&call).await?)?;
//! ```
//!
//! Keys: the sorted set `rl:{<id>}:<policy>:lease` (member = lease id, score = expiry ms) and the
//! identity's deny mark `rl:{<id>}:deny`, both under the identity's hash tag (one Cluster slot).

use std::fmt;

use http::StatusCode;

use super::{encode_id, Algorithm, Decision, LimitSource, Policy, PolicyDecision, RateLimitError};
use crate::core::command::{Reply, Script, ScriptCall};

/// Random bytes in a lease id: 128 bits, so a lease cannot be guessed, only held.
pub const LEASE_ID_BYTES: usize = 16;

/// Characters of a lease id: [`LEASE_ID_BYTES`] in URL-safe base64 without padding.
pub const LEASE_ID_LEN: usize = 22;

/// Why a lease id is refused.
pub const INVALID_LEASE: &str =
    "invalid lease id: expected 22 characters of URL-safe base64 (16 bytes)";

/// The lease script (`scripts/lease.lua` as minified by `build.rs`).
pub fn script() -> &'static Script {
    static SCRIPT: Script = crate::embedded_script!("lease");
    &SCRIPT
}

/// What can go wrong with a lease apart from reaching Redis.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The policy (unknown, not a concurrency limit), the identity, or the script's reply.
    #[error(transparent)]
    Limit(#[from] RateLimitError),
    /// A lease id that this service could not have handed out.
    #[error("{}", INVALID_LEASE)]
    InvalidLease,
    /// The platform gave no random bytes.
    #[error("no randomness for a lease id")]
    Random,
}

impl LeaseError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            LeaseError::Limit(e) => e.status(),
            LeaseError::InvalidLease => StatusCode::BAD_REQUEST,
            LeaseError::Random => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A lease id: [`LEASE_ID_BYTES`] random bytes, URL-safe base64 without padding (as
/// [`AdminKey`](crate::core::counter::admin::AdminKey) is), so it travels in a path as it is.
/// It is the holder's proof: whoever knows it can release or renew the lease, nobody else.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseId(String);

impl LeaseId {
    /// A fresh, unguessable lease id (the operating system's randomness, through `getrandom`).
    pub fn generate() -> Result<LeaseId, LeaseError> {
        let mut bytes = [0u8; LEASE_ID_BYTES];
        getrandom::getrandom(&mut bytes).map_err(|_| LeaseError::Random)?;
        Ok(LeaseId::from_random(bytes))
    }

    /// The lease id made of these random bytes, for a host that draws them itself (the edge
    /// worker asks the runtime's `crypto.getRandomValues` directly, see `api::Platform`).
    pub fn from_random(bytes: [u8; LEASE_ID_BYTES]) -> LeaseId {
        LeaseId(encode_url_safe(&bytes))
    }

    /// A lease id as it comes back in a path: exactly what [`LeaseId::generate`] could have
    /// made (canonical encoding included), so anything else is refused before Redis is asked.
    pub fn parse(text: &str) -> Result<LeaseId, LeaseError> {
        let digits = text.as_bytes();
        let canonical = digits.len() == LEASE_ID_LEN
            && digits.iter().all(|&c| base64_value(c).is_some())
            // 16 bytes fill 128 of the 132 bits of 22 digits: the last digit's low 4 bits are 0.
            && base64_value(digits[LEASE_ID_LEN - 1]).is_some_and(|v| v & 0x0f == 0);
        if canonical {
            Ok(LeaseId(text.to_owned()))
        } else {
            Err(LeaseError::InvalidLease)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The URL-safe base64 alphabet (RFC 4648 §5).
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// URL-safe base64 without padding. Written out rather than taken from the `base64` crate: its
/// generic engine costs the worker's wasm more than these lines (the tests check both agree).
fn encode_url_safe(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(
                BASE64_URL[(group >> (18 - 6 * i)) as usize & 63],
            ));
        }
    }
    out
}

/// The value of one URL-safe base64 digit.
fn base64_value(digit: u8) -> Option<u8> {
    BASE64_URL.iter().position(|&d| d == digit).map(|v| v as u8)
}

/// Never print the secret by accident (logs, panics).
impl fmt::Debug for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseId(…)")
    }
}

/// The three lease operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseOp {
    /// Take a lease if a slot is free.
    Acquire,
    /// Give a held lease back.
    Release,
    /// Push a held lease's expiry to now + the policy's window.
    Renew,
}

impl LeaseOp {
    /// The script's name for the operation (`ARGV[1]`).
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseOp::Acquire => "acquire",
            LeaseOp::Release => "release",
            LeaseOp::Renew => "renew",
        }
    }
}

/// `policy` if it is a concurrency limit; a rate limit belongs on `/limit`.
pub fn check_policy(policy: &Policy) -> Result<(), LeaseError> {
    if policy.algorithm() == Algorithm::Concurrency {
        return Ok(());
    }
    Err(RateLimitError::WrongKind(format!(
        "policy \"{}\" is a rate limit, not a concurrency limit: use /limit/{}/<id>",
        policy.name(),
        policy.name()
    ))
    .into())
}

/// The script call performing `op` on `lease` for identity `id` under `policy`, timed by Redis
/// `TIME`. Validates the policy's kind and the identity.
pub fn lease_call(
    policy: &Policy,
    id: &str,
    op: LeaseOp,
    lease: &LeaseId,
) -> Result<ScriptCall, LeaseError> {
    build_call(policy, id, op, lease, None)
}

/// TESTS ONLY: like [`lease_call`], but the script uses `now_ms` instead of Redis `TIME` (its
/// `ARGV[6]`, absent from every production call), so a test moves a lease's time by argument
/// instead of sleeping. Never call this with a time that came from a request: leases shared by
/// several edges must use the one clock of Redis.
#[doc(hidden)]
pub fn lease_call_at_test_time(
    policy: &Policy,
    id: &str,
    op: LeaseOp,
    lease: &LeaseId,
    now_ms: u64,
) -> Result<ScriptCall, LeaseError> {
    build_call(policy, id, op, lease, Some(now_ms))
}

fn build_call(
    policy: &Policy,
    id: &str,
    op: LeaseOp,
    lease: &LeaseId,
    test_now_ms: Option<u64>,
) -> Result<ScriptCall, LeaseError> {
    check_policy(policy)?;
    let tag = encode_id(id)?;
    let mut call = ScriptCall {
        script: script(),
        keys: vec![
            format!("rl:{{{tag}}}:{}:lease", policy.name()),
            format!("rl:{{{tag}}}:deny"),
        ],
        args: vec![
            op.as_str().to_owned(),
            lease.as_str().to_owned(),
            policy.limit().to_string(),
            policy.window_ms().to_string(),
            if policy.shadow() { "1" } else { "0" }.to_owned(),
        ],
    };
    call.args.extend(test_now_ms.map(|t| t.to_string()));
    Ok(call)
}

/// One lease operation's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseDecision {
    pub op: LeaseOp,
    /// Acquire: the lease was taken. Release: it was held and is released. Renew: it was held
    /// and now expires at `expires_ms`. A release that could not reach Redis (fail-open) is not
    /// `ok`.
    pub ok: bool,
    /// The lease the caller holds after this operation (taken or renewed), if any.
    pub lease: Option<LeaseId>,
    /// That lease's expiry (ms since the epoch); 0 without one.
    pub expires_ms: u64,
    /// Leases held after this operation.
    pub holders: u64,
    /// The same answer as a rate-limit decision over the one policy: `allowed` is false only for
    /// a refused acquire (`denied` on the deny list), `remaining` counts the free slots,
    /// `reset_ms` (and `retry_after_ms` when refused) the time until the soonest lease expires,
    /// the window is the lease's lifetime, and `reason` says why (`shadow` for an admission
    /// beyond the limit of a shadow policy).
    pub decision: Decision,
}

impl LeaseDecision {
    /// Time until the soonest lease expires: a slot frees by then at the latest.
    pub fn soonest_expiry_in_ms(&self) -> u64 {
        self.decision.reset_ms
    }

    /// The answer when Redis cannot be reached and the policy fails open: `lease` (for an
    /// acquire, a fresh id nobody holds) with a full lifetime from `now_ms` (the edge's clock,
    /// the only one left), every slot free. A release did not happen: it is not `ok`.
    pub fn fail_open(policy: &Policy, op: LeaseOp, lease: LeaseId, now_ms: u64) -> LeaseDecision {
        let holds = op != LeaseOp::Release;
        LeaseDecision {
            op,
            ok: holds,
            expires_ms: if holds {
                now_ms + policy.window_ms()
            } else {
                0
            },
            lease: holds.then_some(lease),
            holders: 0,
            decision: Decision::fail_open(std::slice::from_ref(policy)),
        }
    }
}

/// Numbers in the script's reply.
const FIELDS: usize = 6;

/// Read the script's reply `{now_ms, ok, denied, holders, earliest_expiry_ms, expires_ms}` to
/// `op` on `lease` under `policy`.
pub fn parse_lease(
    policy: &Policy,
    op: LeaseOp,
    lease: &LeaseId,
    reply: &Reply,
) -> Result<LeaseDecision, LeaseError> {
    // The script only answers six non-negative integers: anything else is reported whole.
    let bad = || RateLimitError::BadReply(reply.to_string());
    let items = reply.as_array().map_err(|_| bad())?;
    if items.len() != FIELDS {
        return Err(bad().into());
    }
    let mut n = [0u64; FIELDS];
    for (slot, item) in n.iter_mut().zip(items) {
        *slot = match item.as_i64() {
            Ok(v) if v >= 0 => v as u64,
            _ => return Err(bad().into()),
        };
    }
    let [now_ms, ok, denied, holders, earliest_expiry_ms, expires_ms] = n;
    let (ok, denied) = (ok == 1, denied == 1);
    let until_free = earliest_expiry_ms.saturating_sub(now_ms);
    // Only an acquire that the limit decided can go against it: refused, or (shadow) admitted
    // beyond it.
    let within = op != LeaseOp::Acquire || denied || (ok && holders <= policy.limit());
    let per_policy = PolicyDecision {
        policy: policy.name().to_owned(),
        algorithm: policy.algorithm(),
        allowed: within,
        shadow: policy.shadow(),
        limit: policy.limit(),
        window_ms: policy.window_ms(),
        source: LimitSource::Configured,
        remaining: policy.limit().saturating_sub(holders),
        reset_ms: until_free,
        retry_after_ms: if within { 0 } else { until_free },
    };
    let holds = ok && op != LeaseOp::Release;
    Ok(LeaseDecision {
        op,
        ok,
        lease: holds.then(|| lease.clone()),
        expires_ms: if holds { expires_ms } else { 0 },
        holders,
        decision: Decision::summarise(now_ms, denied, vec![per_policy]),
    })
}

/// The JSON answer of a lease taken or renewed:
/// `{"lease","expires_ms","limit","holders","remaining","reason"}`. Written out: its strings are a
/// lease id, a number or a reason, none of which can need escaping, and a serde derive costs the
/// worker's wasm more than this.
pub fn lease_body(decision: &LeaseDecision) -> String {
    format!(
        r#"{{"lease":"{}","expires_ms":{},"limit":{},"holders":{},"remaining":{},"reason":"{}"}}"#,
        decision.lease.as_ref().map_or("", LeaseId::as_str),
        decision.expires_ms,
        decision.decision.limit,
        decision.holders,
        decision.decision.remaining,
        decision.decision.reason.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ratelimit::headers::{problem_body, rate_limit_headers};
    use crate::core::ratelimit::Reason;
    use http::{HeaderName, HeaderValue};
    use std::time::Duration;

    fn conc() -> Policy {
        Policy::concurrency("exports", 3, Duration::from_secs(30))
    }

    fn ints(values: &[i64]) -> Reply {
        Reply::Array(values.iter().map(|&n| Reply::Int(n)).collect())
    }

    fn header<'a>(headers: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    fn parse(policy: &Policy, op: LeaseOp, lease: &LeaseId, reply: &[i64]) -> LeaseDecision {
        parse_lease(policy, op, lease, &ints(reply)).unwrap()
    }

    #[test]
    fn the_embedded_script_carries_the_sha1_of_its_source() {
        assert_eq!(script().sha1(), Script::new(script().source()).sha1());
        assert!(script().source().contains("ZREMRANGEBYSCORE"));
        assert!(!script().source().contains("--"), "minified: no comments");
    }

    #[test]
    fn lease_ids_are_128_random_bits_in_url_safe_base64() {
        let a = LeaseId::generate().unwrap();
        let b = LeaseId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), LEASE_ID_LEN);
        assert!(a
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(LeaseId::parse(a.as_str()).unwrap(), a);
        assert_eq!(
            format!("{a:?}"),
            "LeaseId(…)",
            "the secret stays out of logs"
        );
        // The hand-written encoding is the base64 crate's URL_SAFE_NO_PAD, as AdminKey uses.
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for len in 0..=LEASE_ID_BYTES {
            let bytes: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(97) ^ 0xa5).collect();
            assert_eq!(
                encode_url_safe(&bytes),
                engine.encode(&bytes),
                "{len} bytes"
            );
        }
        for fill in [0x00, 0xff, 0x5a] {
            let id = LeaseId::from_random([fill; LEASE_ID_BYTES]);
            assert_eq!(id.as_str(), engine.encode([fill; LEASE_ID_BYTES]));
            assert_eq!(LeaseId::parse(id.as_str()), Ok(id));
        }
        assert_eq!(engine.decode(a.as_str()).unwrap().len(), LEASE_ID_BYTES);
    }

    #[test]
    fn only_ids_we_could_have_made_parse() {
        assert!(LeaseId::parse("AAAAAAAAAAAAAAAAAAAAAA").is_ok());
        assert!(LeaseId::parse("_-_-_-_-_-_-_-_-_-_-_w").is_ok());
        for bad in [
            "",
            "renew",
            "AAAAAAAAAAAAAAAAAAAAA",   // 21: too short
            "AAAAAAAAAAAAAAAAAAAAAAA", // 23: too long
            "AAAAAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAA+", // standard base64, not URL-safe
            "AAAAAAAAAAAAAAAAAAAAA=", // padding
            "AAAAAAAAAAAAAAAAAAAAAB", // non-canonical: trailing bits set
            "AAAAAAAAAAAAAAAAAAAA A",
            "ÄAAAAAAAAAAAAAAAAAAAA", // 22 bytes, not 22 digits
        ] {
            assert_eq!(
                LeaseId::parse(bad),
                Err(LeaseError::InvalidLease),
                "{bad:?}"
            );
        }
        assert_eq!(LeaseError::InvalidLease.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn calls_carry_the_policy_and_stay_in_the_identitys_slot() {
        let lease = LeaseId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let call = lease_call(&conc(), "a}b{c", LeaseOp::Acquire, &lease).unwrap();
        assert_eq!(
            call.keys,
            ["rl:{a%7Db%7Bc}:exports:lease", "rl:{a%7Db%7Bc}:deny"]
        );
        assert_eq!(
            call.args,
            ["acquire", "AAAAAAAAAAAAAAAAAAAAAA", "3", "30000", "0"]
        );
        let call = lease_call(&conc().shadowed(), "u", LeaseOp::Renew, &lease).unwrap();
        assert_eq!(
            (call.args[0].as_str(), call.args[4].as_str()),
            ("renew", "1")
        );
        let cmd = call.evalsha();
        assert_eq!(cmd.parts()[1], script().sha1());
        assert_eq!(cmd.parts()[2], "2");
        let call = lease_call(&conc(), "u", LeaseOp::Release, &lease).unwrap();
        assert_eq!(call.args[0], "release");
        // Only a test names the time: production calls leave the script on Redis TIME.
        let call = lease_call_at_test_time(&conc(), "u", LeaseOp::Renew, &lease, 77).unwrap();
        assert_eq!(
            call.args,
            ["renew", "AAAAAAAAAAAAAAAAAAAAAA", "3", "30000", "0", "77"]
        );
    }

    #[test]
    fn rate_limits_and_bad_identities_never_reach_redis() {
        let lease = LeaseId::generate().unwrap();
        let api = Policy::sliding("api", 100, Duration::from_secs(60));
        let err = lease_call(&api, "u", LeaseOp::Acquire, &lease).unwrap_err();
        assert!(matches!(
            err,
            LeaseError::Limit(RateLimitError::WrongKind(_))
        ));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("/limit/api/"), "{err}");
        let err = lease_call(&conc(), "", LeaseOp::Acquire, &lease).unwrap_err();
        assert!(matches!(
            err,
            LeaseError::Limit(RateLimitError::InvalidId(_))
        ));
        assert!(lease_call(&conc(), &"x".repeat(257), LeaseOp::Renew, &lease).is_err());
    }

    #[test]
    fn an_admitted_acquire() {
        let lease = LeaseId::generate().unwrap();
        let d = parse(
            &conc(),
            LeaseOp::Acquire,
            &lease,
            &[1_000_000, 1, 0, 2, 1_004_500, 1_030_000],
        );
        assert!(d.ok && d.decision.allowed && !d.decision.denied);
        assert_eq!(d.lease.as_ref(), Some(&lease));
        assert_eq!(
            (d.expires_ms, d.holders, d.soonest_expiry_in_ms()),
            (1_030_000, 2, 4_500)
        );
        assert_eq!(
            (d.decision.remaining, d.decision.reason, d.decision.now_ms),
            (1, Reason::Limit, 1_000_000)
        );
        let h = rate_limit_headers(&d.decision);
        assert_eq!(header(&h, "ratelimit-policy"), Some("\"exports\";q=3;w=30"));
        assert_eq!(header(&h, "ratelimit"), Some("\"exports\";r=1;t=5"));
        assert_eq!(header(&h, "edgecount-reason"), Some("limit"));
        assert_eq!(header(&h, "retry-after"), None);
        let body: serde_json::Value = serde_json::from_str(&lease_body(&d)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"lease": lease.as_str(), "expires_ms": 1_030_000, "limit": 3,
                               "holders": 2, "remaining": 1, "reason": "limit"})
        );
    }

    #[test]
    fn a_refused_acquire_says_when_a_slot_frees() {
        let lease = LeaseId::generate().unwrap();
        let d = parse(
            &conc(),
            LeaseOp::Acquire,
            &lease,
            &[1_000_000, 0, 0, 3, 1_012_001, 0],
        );
        assert!(!d.ok && !d.decision.allowed && !d.decision.denied);
        assert_eq!((d.lease.clone(), d.decision.remaining), (None, 0));
        assert_eq!(d.decision.retry_after_ms, 12_001);
        let h = rate_limit_headers(&d.decision);
        assert_eq!(header(&h, "retry-after"), Some("13"));
        assert_eq!(header(&h, "ratelimit"), Some("\"exports\";r=0;t=13"));
        let problem = problem_body(&d.decision);
        assert_eq!(problem.status(), 429);
        let problem = serde_json::to_value(problem).unwrap();
        assert_eq!(problem["title"], "Too Many Requests");
        assert_eq!(problem["violated-policies"], serde_json::json!(["exports"]));
        assert_eq!(problem["retry_after_ms"], 12_001);
    }

    #[test]
    fn the_deny_list_refuses_with_403_and_no_retry_after() {
        let lease = LeaseId::generate().unwrap();
        let d = parse(
            &conc(),
            LeaseOp::Acquire,
            &lease,
            &[1_000_000, 0, 1, 1, 1_012_001, 0],
        );
        assert!(!d.ok && !d.decision.allowed && d.decision.denied);
        assert_eq!(d.decision.reason, Reason::Deny);
        let h = rate_limit_headers(&d.decision);
        assert_eq!(header(&h, "retry-after"), None);
        assert_eq!(header(&h, "edgecount-reason"), Some("deny"));
        let problem = problem_body(&d.decision);
        assert_eq!(problem.status(), 403);
    }

    #[test]
    fn shadow_admissions_beyond_the_limit_say_so() {
        let lease = LeaseId::generate().unwrap();
        let shadow = conc().shadowed();
        let at = |holders| [1_000, 1, 0, holders, 2_000, 31_000];
        let d = parse(&shadow, LeaseOp::Acquire, &lease, &at(3));
        assert_eq!(d.decision.reason, Reason::Limit, "the third fits");
        let d = parse(&shadow, LeaseOp::Acquire, &lease, &at(4));
        assert!(d.ok && d.decision.allowed);
        assert_eq!(
            (d.decision.reason, d.decision.remaining),
            (Reason::Shadow, 0)
        );
        assert_eq!(d.decision.shadowed, ["exports"]);
        let h = rate_limit_headers(&d.decision);
        assert_eq!(header(&h, "edgecount-reason"), Some("shadow"));
        assert_eq!(header(&h, "retry-after"), None);
    }

    #[test]
    fn release_and_renew() {
        let lease = LeaseId::generate().unwrap();
        let d = parse(&conc(), LeaseOp::Release, &lease, &[5, 1, 0, 0, 0, 0]);
        assert!(d.ok && d.decision.allowed);
        assert_eq!((d.lease.clone(), d.decision.remaining), (None, 3));
        let h = rate_limit_headers(&d.decision);
        assert_eq!(header(&h, "ratelimit"), Some("\"exports\";r=3;t=0"));
        let d = parse(
            &conc(),
            LeaseOp::Renew,
            &lease,
            &[5, 1, 0, 1, 30_005, 30_005],
        );
        assert_eq!((d.lease.as_ref(), d.expires_ms), (Some(&lease), 30_005));
        // Not held any more: neither a lease nor a refusal (renewing never meets the limit).
        let d = parse(&conc(), LeaseOp::Renew, &lease, &[5, 0, 0, 3, 1_000, 0]);
        assert!(!d.ok && d.decision.allowed);
        assert_eq!((d.lease.clone(), d.expires_ms), (None, 0));
        assert_eq!(
            header(&rate_limit_headers(&d.decision), "retry-after"),
            None
        );
    }

    #[test]
    fn fail_open_hands_out_a_lease_nobody_holds() {
        let lease = LeaseId::generate().unwrap();
        let d = LeaseDecision::fail_open(&conc(), LeaseOp::Acquire, lease.clone(), 1_000);
        assert!(d.ok && d.decision.allowed);
        assert_eq!((d.lease.as_ref(), d.expires_ms), (Some(&lease), 31_000));
        assert_eq!(
            (d.decision.reason, d.decision.remaining),
            (Reason::FailOpen, 3)
        );
        let d = LeaseDecision::fail_open(&conc(), LeaseOp::Release, lease, 1_000);
        assert!(!d.ok && d.lease.is_none());
    }

    #[test]
    fn malformed_replies_are_errors() {
        let lease = LeaseId::generate().unwrap();
        for reply in [
            Reply::Int(1),
            ints(&[1, 1, 0, 1, 1]),
            ints(&[1, 1, 0, -1, 1, 1]),
            Reply::Array(vec![Reply::Nil; 6]),
        ] {
            assert!(matches!(
                parse_lease(&conc(), LeaseOp::Acquire, &lease, &reply),
                Err(LeaseError::Limit(RateLimitError::BadReply(_)))
            ));
        }
    }
}
