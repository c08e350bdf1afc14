//! Named rate-limit policies: what `EDGECOUNT_RATE_LIMITS` says and what routes select.
//!
//! Grammar of the configuration (entries separated by `;` or newlines, blanks ignored):
//! `name=algorithm:limit/window`, e.g. `api=sliding:100/60s; burst=gcra:10/1s; daily=fixed:10000/1d`.
//! - `name`: `[A-Za-z0-9_-]{1,32}`, unique;
//! - `algorithm`: `fixed`, `sliding`, `token` (or `token-bucket`), `gcra`;
//! - `limit`: integer ≥ 1;
//! - `window`: integer and unit, one of `ms`, `s`, `m`, `h`, `d`; at least 1 ms.
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
}

impl Algorithm {
    /// The name used in configuration, in the script arguments and in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::FixedWindow => "fixed",
            Algorithm::SlidingWindow => "sliding",
            Algorithm::TokenBucket => "token",
            Algorithm::Gcra => "gcra",
        }
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
            other => Err(RateLimitError::InvalidPolicy(format!(
                "unknown algorithm \"{other}\" (expected fixed, sliding, token or gcra)"
            ))),
        }
    }
}

/// One named limit: at most `limit` units of cost per `window`, counted by `algorithm`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    name: String,
    algorithm: Algorithm,
    limit: u64,
    window_ms: u64,
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
        };
        policy.validate()?;
        Ok(policy)
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

/// The configuration form, `name=algorithm:limit/window`, with the largest exact unit.
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}:{}/{}",
            self.name,
            self.algorithm,
            self.limit,
            format_window(self.window_ms)
        )
    }
}

impl FromStr for Policy {
    type Err = RateLimitError;

    /// One entry, `name=algorithm:limit/window`.
    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| {
            RateLimitError::InvalidPolicy(format!(
                "\"{entry}\": {why} (expected name=algorithm:limit/window, e.g. api=sliding:100/60s)"
            ))
        };
        let (name, rule) = entry
            .split_once('=')
            .ok_or_else(|| invalid("missing '='"))?;
        let (algorithm, rate) = rule
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
        let policy = Policy {
            name: name.to_owned(),
            algorithm,
            limit,
            window_ms,
        };
        policy.validate()?;
        Ok(policy)
    }
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

/// `250ms`, `60s`, `5m`, `1h`, `1d` → milliseconds.
fn parse_window_ms(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(format!("window \"{text}\" must start with a whole number"));
    }
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("window \"{text}\" needs a unit: ms, s, m, h or d")),
        other => {
            return Err(format!(
                "unknown window unit \"{other}\" (use ms, s, m, h or d)"
            ))
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("window \"{text}\" must start with a whole number"))?;
    let window_ms = number
        .checked_mul(scale)
        .ok_or_else(|| format!("window \"{text}\" is too long"))?;
    if window_ms == 0 {
        return Err("the window must be at least 1ms".into());
    }
    Ok(window_ms)
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
        assert!(error_of("api=fixed:1/10w").contains("unknown window unit \"w\""));
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
