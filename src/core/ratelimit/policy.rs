//! Named rate-limit policies: what `EDGECOUNT_RATE_LIMITS` says and what routes select.
//!
//! Grammar of the configuration (entries separated by `;` or newlines, blanks ignored):
//! `name=algorithm:limit/window [options]`, e.g.
//! `api=sliding:100/60s; burst=gcra:10/1s shadow; login=gcra:5/1m fail=closed; conc=concurrency:3/30s`.
//! - `name`: `[A-Za-z0-9_-]{1,32}`, unique;
//! - `algorithm`: `fixed`, `sliding`, `token` (or `token-bucket`), `gcra`; `concurrency` (at most
//!   `limit` leases held at once, each expiring after `window` unless renewed: `/lease` routes);
//!   `upstash-fixed`, `upstash-sliding`, `upstash-token` (@upstash/ratelimit's own keys and rules,
//!   to share a limit with a JavaScript service using that library);
//! - `limit`: integer ≥ 1;
//! - `window`: integer and unit, one of `ms`, `s`, `m`, `h`, `d`; at least 1 ms;
//! - options, space-separated: `shadow` (decide and report, never refuse), `fail=open|closed` (what
//!   a decision does when Redis is unreachable; default `EDGECOUNT_FAIL_MODE`), `cache=off` (its
//!   refusals are never answered from the block cache, see [`super::blocks`]), and for the
//!   `upstash-*` algorithms `prefix=<text>` (the library's `prefix`, default `@upstash/ratelimit`)
//!   and, for `upstash-token`, `refill=<n>` (tokens added per window, default the limit).
//!
//! All arithmetic in the scripts is on integers carried in Lua doubles, exact below 2^53; to keep
//! every intermediate value (a few multiples of `limit × window_ms`) below that, a policy must
//! satisfy `limit × window_ms ≤ 2^50` (e.g. up to 10 million per day).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::RateLimitError;

/// Largest `limit × window_ms` a policy may have (see the module documentation).
pub const MAX_LIMIT_TIMES_WINDOW_MS: u64 = 1 << 50;

/// Most policies one decision may combine (`a+b+c`): keeps one script call small.
pub const MAX_POLICIES_PER_DECISION: usize = 16;

/// How a policy counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// At most `limit` per calendar-aligned window (`floor(now / window)`).
    FixedWindow,
    /// Two-window weighted approximation of a sliding window (as Cloudflare and Upstash do).
    SlidingWindow,
    /// Bucket of `limit` tokens refilled continuously at `limit / window`.
    TokenBucket,
    /// Generic cell rate algorithm: the token bucket's rule kept as a theoretical arrival time.
    Gcra,
    /// At most `limit` leases held at once, each expiring after `window` unless renewed or
    /// released (`/lease` routes, not `/limit`).
    Concurrency,
    /// @upstash/ratelimit's `fixedWindow`: its keys and rules.
    UpstashFixed,
    /// @upstash/ratelimit's `slidingWindow`: its keys and rules.
    UpstashSliding,
    /// @upstash/ratelimit's `tokenBucket`: its keys and rules.
    UpstashToken,
}

impl Algorithm {
    /// The name used in configuration, in the script arguments and in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::FixedWindow => "fixed",
            Algorithm::SlidingWindow => "sliding",
            Algorithm::TokenBucket => "token",
            Algorithm::Gcra => "gcra",
            Algorithm::Concurrency => "concurrency",
            Algorithm::UpstashFixed => "upstash-fixed",
            Algorithm::UpstashSliding => "upstash-sliding",
            Algorithm::UpstashToken => "upstash-token",
        }
    }

    /// Ours, with state under `rl:{<id>}:…`: the ones overrides and tiers can change.
    pub fn is_native(self) -> bool {
        matches!(
            self,
            Algorithm::FixedWindow
                | Algorithm::SlidingWindow
                | Algorithm::TokenBucket
                | Algorithm::Gcra
        )
    }

    /// One of @upstash/ratelimit's, with its key layout.
    pub fn is_upstash(self) -> bool {
        matches!(
            self,
            Algorithm::UpstashFixed | Algorithm::UpstashSliding | Algorithm::UpstashToken
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = RateLimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fixed" | "fixed-window" => Ok(Algorithm::FixedWindow),
            "sliding" | "sliding-window" => Ok(Algorithm::SlidingWindow),
            "token" | "token-bucket" => Ok(Algorithm::TokenBucket),
            "gcra" => Ok(Algorithm::Gcra),
            "concurrency" => Ok(Algorithm::Concurrency),
            "upstash-fixed" => Ok(Algorithm::UpstashFixed),
            "upstash-sliding" => Ok(Algorithm::UpstashSliding),
            "upstash-token" => Ok(Algorithm::UpstashToken),
            other => Err(RateLimitError::InvalidPolicy(format!(
                "unknown algorithm \"{other}\" (expected fixed, sliding, token, gcra, \
                 concurrency, upstash-fixed, upstash-sliding or upstash-token)"
            ))),
        }
    }
}

/// What a decision does when Redis cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailMode {
    /// Allow the request, and say so (`EdgeCount-Fail-Mode: open`, reason `fail-open`).
    Open,
    /// Answer 503, and say so (`EdgeCount-Fail-Mode: closed`, reason `fail-closed`).
    Closed,
}

impl FailMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        }
    }
}

impl FromStr for FailMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(FailMode::Open),
            "closed" => Ok(FailMode::Closed),
            other => Err(format!("expected `open` or `closed`, got \"{other}\"")),
        }
    }
}

/// @upstash/ratelimit's default key prefix.
pub const UPSTASH_DEFAULT_PREFIX: &str = "@upstash/ratelimit";

/// One named limit: at most `limit` units of cost per `window`, counted by `algorithm`, with its
/// options (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    name: String,
    algorithm: Algorithm,
    limit: u64,
    window_ms: u64,
    /// Decide and report, never refuse.
    shadow: bool,
    /// This policy's fail mode; `None`: the service's (`EDGECOUNT_FAIL_MODE`).
    fail_mode: Option<FailMode>,
    /// `upstash-*`: the library's key prefix.
    prefix: Option<String>,
    /// `upstash-token`: tokens added per window (default: the limit).
    refill: Option<u64>,
    /// Its refusals may be answered from the block cache (`cache=off` says no).
    cached: bool,
}

impl Policy {
    /// A validated policy; see the module documentation for the rules.
    pub fn new(
        name: &str,
        algorithm: Algorithm,
        limit: u64,
        window: Duration,
    ) -> Result<Policy, RateLimitError> {
        validate_name(name)?;
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let policy = Policy {
            name: name.to_owned(),
            algorithm,
            limit,
            window_ms,
            shadow: false,
            fail_mode: None,
            prefix: None,
            refill: None,
            cached: true,
        };
        policy.validate()?;
        Ok(policy)
    }

    /// The same policy with its refusals always decided by Redis (`cache=off`): never answered
    /// from the block cache ([`super::blocks`]).
    pub fn uncached(mut self) -> Policy {
        self.cached = false;
        self
    }

    /// The same policy in shadow mode: decided and reported, never refusing.
    pub fn shadowed(mut self) -> Policy {
        self.shadow = true;
        self
    }

    /// The same policy with its own fail mode.
    pub fn failing(mut self, mode: FailMode) -> Policy {
        self.fail_mode = Some(mode);
        self
    }

    /// A concurrency policy: at most `limit` leases at once, each held for `ttl` unless renewed.
    /// Panics like [`Policy::fixed`].
    pub fn concurrency(name: &str, limit: u64, ttl: Duration) -> Policy {
        Self::new(name, Algorithm::Concurrency, limit, ttl).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A fixed-window policy. Panics on an invalid name, limit or window (use [`Policy::new`]
    /// for values that come from outside the program).
    pub fn fixed(name: &str, limit: u64, window: Duration) -> Policy {
        Self::new(name, Algorithm::FixedWindow, limit, window).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A sliding-window policy. Panics like [`Policy::fixed`].
    pub fn sliding(name: &str, limit: u64, window: Duration) -> Policy {
        Self::new(name, Algorithm::SlidingWindow, limit, window).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A token-bucket policy (capacity `limit`, refilled at `limit / window`). Panics like
    /// [`Policy::fixed`].
    pub fn token_bucket(name: &str, limit: u64, window: Duration) -> Policy {
        Self::new(name, Algorithm::TokenBucket, limit, window).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A GCRA policy (burst `limit`, one unit every `window / limit`). Panics like
    /// [`Policy::fixed`].
    pub fn gcra(name: &str, limit: u64, window: Duration) -> Policy {
        Self::new(name, Algorithm::Gcra, limit, window).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    pub fn shadow(&self) -> bool {
        self.shadow
    }

    pub fn fail_mode(&self) -> Option<FailMode> {
        self.fail_mode
    }

    /// Whether its refusals may be answered from the block cache.
    pub fn cached(&self) -> bool {
        self.cached
    }

    /// The key prefix of an `upstash-*` policy (the library's default unless set).
    pub fn upstash_prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(UPSTASH_DEFAULT_PREFIX)
    }

    /// Tokens an `upstash-token` policy adds per window.
    pub fn refill(&self) -> u64 {
        self.refill.unwrap_or(self.limit)
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    fn validate(&self) -> Result<(), RateLimitError> {
        let invalid = |why: String| {
            Err(RateLimitError::InvalidPolicy(format!(
                "policy \"{}\": {why}",
                self.name
            )))
        };
        if self.limit == 0 {
            return invalid("limit must be at least 1".into());
        }
        if self.window_ms == 0 {
            return invalid("window must be at least 1ms".into());
        }
        if !self.algorithm.is_upstash() && self.prefix.is_some() {
            return invalid("prefix= is an option of the upstash-* algorithms".into());
        }
        if self.algorithm != Algorithm::UpstashToken && self.refill.is_some() {
            return invalid("refill= is an option of upstash-token".into());
        }
        if self.refill == Some(0) {
            return invalid("refill must be at least 1".into());
        }
        match self.limit.checked_mul(self.window_ms) {
            Some(product) if product <= MAX_LIMIT_TIMES_WINDOW_MS => Ok(()),
            _ => invalid(format!(
                "limit × window is too large ({} × {} ms; at most 2^50): use a shorter window \
                 or a smaller limit",
                self.limit, self.window_ms
            )),
        }
    }
}

/// The configuration form, `name=algorithm:limit/window [options]`, with the largest exact unit.
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}:{}/{}",
            self.name,
            self.algorithm,
            self.limit,
            format_window(self.window_ms)
        )?;
        if self.shadow {
            f.write_str(" shadow")?;
        }
        if let Some(mode) = self.fail_mode {
            write!(f, " fail={}", mode.as_str())?;
        }
        if let Some(prefix) = &self.prefix {
            write!(f, " prefix={prefix}")?;
        }
        if let Some(refill) = self.refill {
            write!(f, " refill={refill}")?;
        }
        if !self.cached {
            f.write_str(" cache=off")?;
        }
        Ok(())
    }
}

impl FromStr for Policy {
    type Err = RateLimitError;

    /// One entry, `name=algorithm:limit/window [options]`.
    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| {
            RateLimitError::InvalidPolicy(format!(
                "\"{entry}\": {why} (expected name=algorithm:limit/window [options], e.g. \
                 api=sliding:100/60s)"
            ))
        };
        let (name, rule) = entry
            .split_once('=')
            .ok_or_else(|| invalid("missing '='"))?;
        // Blanks around ':' and '/' belong to the spec (`fixed : 1 / 1s`); the others separate
        // the spec from its options.
        let rule = tighten(rule);
        let mut words = rule.split_whitespace();
        let spec = words.next().unwrap_or_default();
        let (algorithm, rate) = spec
            .split_once(':')
            .ok_or_else(|| invalid("missing ':' after the algorithm"))?;
        let (limit, window) = rate
            .split_once('/')
            .ok_or_else(|| invalid("missing '/' between limit and window"))?;
        let name = name.trim();
        validate_name(name)?;
        let algorithm: Algorithm = algorithm.trim().parse()?;
        let limit: u64 = limit
            .trim()
            .parse()
            .map_err(|_| invalid("the limit must be a whole number"))?;
        let window_ms = parse_window_ms(window.trim()).map_err(|why| invalid(&why))?;
        let mut policy = Policy {
            name: name.to_owned(),
            algorithm,
            limit,
            window_ms,
            shadow: false,
            fail_mode: None,
            prefix: None,
            refill: None,
            cached: true,
        };
        for option in words {
            let bad_option = |why: String| invalid(&format!("option \"{option}\": {why}"));
            match option.split_once('=') {
                None if option == "shadow" => policy.shadow = true,
                Some(("fail", mode)) => policy.fail_mode = Some(mode.parse().map_err(bad_option)?),
                Some(("prefix", prefix)) if !prefix.is_empty() => {
                    policy.prefix = Some(prefix.to_owned())
                }
                Some(("refill", n)) => {
                    policy.refill = Some(
                        n.parse()
                            .map_err(|_| bad_option("refill must be a whole number".to_owned()))?,
                    )
                }
                Some(("cache", "on")) => policy.cached = true,
                Some(("cache", "off")) => policy.cached = false,
                _ => {
                    return Err(bad_option(
                        "unknown (options: shadow, fail=open|closed, cache=on|off, prefix=…, \
                         refill=N)"
                            .to_owned(),
                    ))
                }
            }
        }
        policy.validate()?;
        Ok(policy)
    }
}

/// `text` without the blanks next to `:` or `/`.
fn tighten(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if matches!(c, ':' | '/') {
            out.truncate(out.trim_end().len());
        }
        let after_separator = out.ends_with([':', '/']);
        if !(c.is_whitespace() && after_separator) {
            out.push(c);
        }
    }
    out
}

/// Check a policy name: `[A-Za-z0-9_-]{1,32}` (it becomes part of Redis keys and headers).
pub fn validate_name(name: &str) -> Result<(), RateLimitError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > 32 || !name.chars().all(ok_char) {
        return Err(RateLimitError::InvalidPolicy(format!(
            "invalid policy name \"{name}\": use 1 to 32 of A-Z a-z 0-9 _ -"
        )));
    }
    Ok(())
}

/// A policy's window, in milliseconds.
fn parse_window_ms(text: &str) -> Result<u64, String> {
    parse_duration_ms(text).map_err(|why| format!("window {why}"))
}

/// `250ms`, `60s`, `5m`, `1h`, `1d` → milliseconds, at least 1 (windows, TTLs). The error says
/// what is wrong with `text`, to be prefixed with what it was for.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(format!("\"{text}\" must start with a whole number"));
    }
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("\"{text}\" needs a unit: ms, s, m, h or d")),
        other => {
            return Err(format!(
                "has an unknown unit \"{other}\" (use ms, s, m, h or d)"
            ))
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" must start with a whole number"))?;
    let ms = number
        .checked_mul(scale)
        .ok_or_else(|| format!("\"{text}\" is too long"))?;
    if ms == 0 {
        return Err("must be at least 1ms".into());
    }
    Ok(ms)
}

fn format_window(window_ms: u64) -> String {
    for (scale, unit) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ] {
        if window_ms.is_multiple_of(scale) {
            return format!("{}{unit}", window_ms / scale);
        }
    }
    format!("{window_ms}ms")
}

/// The configured policies, by name, in configuration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    /// Parse `EDGECOUNT_RATE_LIMITS`. An empty or blank value is an empty set.
    pub fn parse(spec: &str) -> Result<PolicySet, RateLimitError> {
        let mut set = PolicySet::default();
        for entry in spec.split([';', '\n']).map(str::trim) {
            if !entry.is_empty() {
                set.insert(entry.parse()?)?;
            }
        }
        Ok(set)
    }

    /// Add a policy; its name must be new.
    pub fn insert(&mut self, policy: Policy) -> Result<(), RateLimitError> {
        if self.get(policy.name()).is_some() {
            return Err(RateLimitError::InvalidPolicy(format!(
                "policy \"{}\" is defined twice",
                policy.name()
            )));
        }
        self.policies.push(policy);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name() == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.policies.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// The policies a route names: `api` or `a+b+c`, in that order. Unknown names
    /// ([`RateLimitError::UnknownPolicy`]), repeats and empty lists are errors.
    pub fn select(&self, list: &str) -> Result<Vec<Policy>, RateLimitError> {
        let mut selected: Vec<Policy> = Vec::new();
        for name in list.split('+') {
            if name.is_empty() {
                return Err(RateLimitError::InvalidPolicyList(format!(
                    "\"{list}\": empty policy name (write a or a+b+c)"
                )));
            }
            let policy = self
                .get(name)
                .ok_or_else(|| RateLimitError::UnknownPolicy(name.to_owned()))?;
            if selected.iter().any(|p| p.name() == name) {
                return Err(RateLimitError::InvalidPolicyList(format!(
                    "\"{list}\": policy \"{name}\" is named twice"
                )));
            }
            selected.push(policy.clone());
        }
        if selected.len() > MAX_POLICIES_PER_DECISION {
            return Err(RateLimitError::InvalidPolicyList(format!(
                "\"{list}\": at most {MAX_POLICIES_PER_DECISION} policies per decision"
            )));
        }
        Ok(selected)
    }
}

impl FromStr for PolicySet {
    type Err = RateLimitError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        PolicySet::parse(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "api=sliding:100/60s; burst=gcra:10/1s; daily=fixed:10000/1d; \
                           llm=token:1000/60s";

    #[test]
    fn parses_the_documented_example() {
        let set = PolicySet::parse(EXAMPLE).unwrap();
        assert_eq!(set.len(), 4);
        let api = set.get("api").unwrap();
        assert_eq!(api.algorithm(), Algorithm::SlidingWindow);
        assert_eq!((api.limit(), api.window_ms()), (100, 60_000));
        let burst = set.get("burst").unwrap();
        assert_eq!(burst.algorithm(), Algorithm::Gcra);
        assert_eq!((burst.limit(), burst.window_ms()), (10, 1_000));
        let daily = set.get("daily").unwrap();
        assert_eq!(daily.algorithm(), Algorithm::FixedWindow);
        assert_eq!(daily.window_ms(), 86_400_000);
        assert_eq!(set.get("llm").unwrap().algorithm(), Algorithm::TokenBucket);
        assert_eq!(
            set.get("llm").unwrap(),
            &Policy::token_bucket("llm", 1000, Duration::from_secs(60))
        );
    }

    #[test]
    fn every_unit_and_display_round_trips() {
        for (text, ms) in [
            ("250ms", 250),
            ("7s", 7_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("1500ms", 1_500),
        ] {
            let policy: Policy = format!("p=fixed:3/{text}").parse().unwrap();
            assert_eq!(policy.window_ms(), ms, "{text}");
            let again: Policy = policy.to_string().parse().unwrap();
            assert_eq!(again, policy);
        }
        assert_eq!(
            Policy::gcra("g", 5, Duration::from_millis(90_000)).to_string(),
            "g=gcra:5/90s"
        );
    }

    #[test]
    fn options_follow_the_spec() {
        let set = PolicySet::parse(
            "login=gcra:5/1m fail=closed cache=off; soft=sliding:100/60s shadow fail=open; \
             conc=concurrency:3/30s; shared=upstash-sliding:100/1h prefix=@acme/rl; \
             bucket=upstash-token:10/1m refill=2 cache=on",
        )
        .unwrap();
        let login = set.get("login").unwrap();
        assert_eq!(
            (login.fail_mode(), login.shadow()),
            (Some(FailMode::Closed), false)
        );
        let soft = set.get("soft").unwrap();
        assert!(soft.shadow());
        assert_eq!(soft.fail_mode(), Some(FailMode::Open));
        assert_eq!(set.get("conc").unwrap().algorithm(), Algorithm::Concurrency);
        let shared = set.get("shared").unwrap();
        assert_eq!(shared.upstash_prefix(), "@acme/rl");
        assert_eq!(set.get("bucket").unwrap().refill(), 2);
        assert_eq!(
            set.get("bucket").unwrap().upstash_prefix(),
            UPSTASH_DEFAULT_PREFIX
        );
        for p in set.iter() {
            let again: Policy = p.to_string().parse().unwrap();
            assert_eq!(&again, p, "{p}");
        }
        assert_eq!(soft.to_string(), "soft=sliding:100/1m shadow fail=open");
        assert!(!login.cached() && soft.cached() && set.get("bucket").unwrap().cached());
        assert_eq!(login.to_string(), "login=gcra:5/1m fail=closed cache=off");
    }

    #[test]
    fn bad_options_name_the_token() {
        for (spec, needle) in [
            ("a=fixed:1/1s loud", "option \"loud\""),
            ("a=fixed:1/1s fail=maybe", "option \"fail=maybe\""),
            ("a=fixed:1/1s cache=maybe", "option \"cache=maybe\""),
            (
                "a=fixed:1/1s prefix=x",
                "prefix= is an option of the upstash",
            ),
            (
                "a=upstash-fixed:1/1s refill=2",
                "refill= is an option of upstash-token",
            ),
            ("a=upstash-token:1/1s refill=0", "refill must be at least 1"),
            ("a=upstash-token:1/1s refill=x", "whole number"),
            ("a=leaky:1/1s", "unknown algorithm"),
        ] {
            let e = error_of(spec);
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn blank_entries_and_newlines_are_fine() {
        let set = PolicySet::parse("\n a = fixed : 1 / 1s ;;\n b=token-bucket:2/1m;\n").unwrap();
        assert_eq!(set.iter().map(Policy::name).collect::<Vec<_>>(), ["a", "b"]);
        assert!(PolicySet::parse("  ").unwrap().is_empty());
    }

    fn error_of(spec: &str) -> String {
        PolicySet::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn clear_errors_for_bad_entries() {
        assert!(error_of("api").contains("missing '='"));
        assert!(error_of("api=sliding").contains("missing ':'"));
        assert!(error_of("api=sliding:100").contains("missing '/'"));
        assert!(error_of("api=leaky:1/1s").contains("unknown algorithm \"leaky\""));
        assert!(error_of("api=fixed:x/1s").contains("whole number"));
        assert!(error_of("api=fixed:0/1s").contains("limit must be at least 1"));
        assert!(error_of("api=fixed:1/0s").contains("at least 1ms"));
        assert!(error_of("api=fixed:1/10").contains("needs a unit"));
        assert!(error_of("api=fixed:1/10w").contains("window has an unknown unit \"w\""));
        assert!(error_of("api=fixed:1/-1s").contains("whole number"));
        assert!(error_of("a.b=fixed:1/1s").contains("invalid policy name \"a.b\""));
        assert!(error_of(&format!("{}=fixed:1/1s", "n".repeat(33))).contains("invalid policy name"));
        assert!(error_of("a=fixed:1/1s; a=gcra:2/1s").contains("defined twice"));
        assert!(error_of("a=fixed:1000000000/1d").contains("too large"));
        assert!(error_of("a=fixed:1/99999999999999999d").contains("too long"));
    }

    #[test]
    fn largest_allowed_product_is_accepted() {
        assert!(Policy::new(
            "a",
            Algorithm::Gcra,
            1 << 20,
            Duration::from_millis(1 << 30)
        )
        .is_ok());
        assert!(Policy::new(
            "a",
            Algorithm::Gcra,
            1 << 21,
            Duration::from_millis(1 << 30)
        )
        .is_err());
        assert!(Policy::new(
            "a",
            Algorithm::Gcra,
            10_000_000,
            Duration::from_secs(86_400)
        )
        .is_ok());
    }

    #[test]
    #[should_panic(expected = "limit must be at least 1")]
    fn constructors_panic_on_invalid_values() {
        Policy::sliding("api", 0, Duration::from_secs(1));
    }

    #[test]
    fn selects_policy_lists_in_order() {
        let set = PolicySet::parse(EXAMPLE).unwrap();
        let names = |list: &str| {
            set.select(list)
                .map(|ps| ps.iter().map(|p| p.name().to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(names("api").unwrap(), ["api"]);
        assert_eq!(names("burst+api+daily").unwrap(), ["burst", "api", "daily"]);
        assert_eq!(
            names("api+nope"),
            Err(RateLimitError::UnknownPolicy("nope".into()))
        );
        assert!(matches!(
            names("api+api"),
            Err(RateLimitError::InvalidPolicyList(_))
        ));
        assert!(matches!(
            names("api+"),
            Err(RateLimitError::InvalidPolicyList(_))
        ));
        assert!(matches!(
            names(""),
            Err(RateLimitError::InvalidPolicyList(_))
        ));
    }
}
