//! The rate-limit script on a real private redis-server: identical to the Rust model on
//! generated sequences, all-or-nothing across policies, refunds clamped, peeks inert, a TTL on
//! every key, exact under concurrency on the real `TIME` path, reset.

mod support;

use std::time::Duration;

use edgecount::core::command::{Command, Reply};
use edgecount::core::ratelimit::deny::{self, DenyWrite};
use edgecount::core::ratelimit::model::Model;
use edgecount::core::ratelimit::tiers::{remove_override_command, set_override_command};
use edgecount::core::ratelimit::{
    cost_refusal, decision_call, decision_call_at_test_time, parse_decision, Algorithm, Decision,
    DenyTarget, LimitSource, Mode, Override, Policy, RateLimitError, Reason, Subject, Tiers,
};
use support::direct::Conn;
use support::RedisServer;

/// The caller's clock (unix ms), which names the `upstash-*` windows; native policies decide on
/// Redis `TIME` unless a test time is given.
fn clock_ms() -> u64 {
    edgecount::service::system_clock_ms()
}

impl Conn {
    fn decide(&mut self, policies: &[Policy], id: &str, cost: u64, mode: Mode) -> Decision {
        let call = decision_call(policies, &Tiers::default(), id, cost, mode, clock_ms()).unwrap();
        parse_decision(policies, &self.eval(&call)).unwrap()
    }

    fn decide_at(&mut self, ps: &[Policy], id: &str, cost: u64, mode: Mode, now: u64) -> Reply {
        self.eval(&decision_call_at_test_time(ps, &Tiers::default(), id, cost, mode, now).unwrap())
    }

    fn keys(&mut self, pattern: &str) -> Vec<String> {
        let reply = self.run(&Command::new("KEYS").arg(pattern)).unwrap();
        let mut keys: Vec<String> = reply
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        keys.sort();
        keys
    }

    /// Every `rl:*` key with its value.
    fn snapshot(&mut self) -> Vec<(String, String)> {
        let keys = self.keys("rl:*");
        keys.into_iter()
            .map(|k| {
                let v = self.run(&Command::new("GET").arg(&k)).unwrap();
                (k, v.as_str().unwrap().to_owned())
            })
            .collect()
    }

    fn redis_time_ms(&mut self) -> u64 {
        let t = self.run(&Command::new("TIME")).unwrap();
        let t = t.as_array().unwrap();
        t[0].as_i64().unwrap() as u64 * 1000 + t[1].as_i64().unwrap() as u64 / 1000
    }

    fn flush(&mut self) {
        self.run(&Command::new("FLUSHALL")).unwrap();
    }
}

/// Every `rl:*` key has a TTL (-2: it expired between KEYS and PTTL, also fine; -1 is the bug).
fn assert_every_key_has_a_ttl(redis: &RedisServer) {
    for (key, pttl) in redis.key_pttls("rl:*") {
        assert!(pttl > 0 || pttl == -2, "{key} has PTTL {pttl}");
    }
}

/// A small deterministic PRNG (PCG-style LCG, high bits).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const T0: u64 = 1_700_000_000_000;

/// Replay a generated sequence of (time, cost, mode) on the script and the model; every reply
/// and, at the end, every stored key and value must be identical. Answers how many consumes
/// were admitted and denied, so callers can see that the sequences exercised both.
fn replay(conn: &mut Conn, policies: &[Policy], id: &str, seed: u64, steps: usize) -> (u64, u64) {
    let mut outcomes = (0, 0);
    let mut rng = Rng(seed);
    let mut model = Model::new();
    let smallest_limit = policies.iter().map(Policy::limit).min().unwrap();
    let longest_window = policies.iter().map(Policy::window_ms).max().unwrap();
    let mut now = T0 + rng.below(longest_window * 3);
    for step in 0..steps {
        now += match rng.below(10) {
            0..=3 => 0,
            4..=6 => rng.below(longest_window / 8 + 2),
            7 | 8 => rng.below(longest_window + 1),
            _ => longest_window + rng.below(2 * longest_window),
        };
        let mode = match rng.below(20) {
            0..=12 => Mode::Consume,
            13 | 14 => Mode::Peek,
            15..=18 => Mode::Refund,
            _ => Mode::Reset,
        };
        let cost = match rng.below(6) {
            0 => 0,
            1 => rng.below(smallest_limit + 1),
            _ => 1 + rng.below(smallest_limit.min(3.max(smallest_limit / 8))),
        };
        let expected = model.reply(policies, id, cost, mode, now).unwrap();
        let actual = conn.decide_at(policies, id, cost, mode, now);
        if mode == Mode::Consume {
            if parse_decision(policies, &actual).unwrap().allowed {
                outcomes.0 += 1;
            } else {
                outcomes.1 += 1;
            }
        }
        assert_eq!(
            actual, expected,
            "step {step}: {mode:?} cost {cost} at {now} for {policies:?} (seed {seed})"
        );
    }
    let expected: Vec<(String, String)> = model.keys.into_iter().collect();
    assert_eq!(
        conn.snapshot(),
        expected,
        "stored state differs (seed {seed})"
    );
    outcomes
}

fn policies_for(algorithm: Algorithm) -> Vec<Policy> {
    [
        (5, 1_000),
        (3, 1_000),
        (10, 60),
        (7, 333),
        (1, 50),
        (100, 3_600_000),
    ]
    .into_iter()
    .map(|(limit, window_ms)| {
        Policy::new("p", algorithm, limit, Duration::from_millis(window_ms)).unwrap()
    })
    .collect()
}

fn script_matches_model(algorithm: Algorithm) {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    for (i, policy) in policies_for(algorithm).into_iter().enumerate() {
        let mut outcomes = (0, 0);
        for seed in 0..3 {
            conn.flush();
            let policies = std::slice::from_ref(&policy);
            let (admitted, denied) =
                replay(&mut conn, policies, "user:42", seed * 31 + i as u64, 250);
            outcomes = (outcomes.0 + admitted, outcomes.1 + denied);
        }
        assert!(
            outcomes.0 > 20 && outcomes.1 > 5,
            "{policy}: {outcomes:?} admitted/denied"
        );
    }
}

#[test]
fn fixed_window_script_matches_model() {
    script_matches_model(Algorithm::FixedWindow);
}

#[test]
fn sliding_window_script_matches_model() {
    script_matches_model(Algorithm::SlidingWindow);
}

#[test]
fn token_bucket_script_matches_model() {
    script_matches_model(Algorithm::TokenBucket);
}

#[test]
fn gcra_script_matches_model() {
    script_matches_model(Algorithm::Gcra);
}

/// At the edge of the allowed range (limit × window_ms = 2^50) the script's doubles still hold
/// exact integers: the stored states have 16 digits, which Lua's `tostring` would round.
#[test]
fn extreme_policies_stay_exact() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    for algorithm in [
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
        Algorithm::TokenBucket,
        Algorithm::Gcra,
    ] {
        for (limit, window_ms) in [
            (1 << 20, 1 << 30),
            (10_000_000, 86_400_000),
            (999_983, 1_000_003),
        ] {
            let policy =
                Policy::new("x", algorithm, limit, Duration::from_millis(window_ms)).unwrap();
            conn.flush();
            replay(
                &mut conn,
                std::slice::from_ref(&policy),
                "big",
                limit ^ window_ms,
                150,
            );
        }
    }
}

fn four_policies(window: Duration) -> Vec<Policy> {
    vec![
        Policy::fixed("fixed", 6, window),
        Policy::sliding("sliding", 5, window),
        Policy::token_bucket("token", 4, window),
        Policy::gcra("gcra", 3, window / 2),
    ]
}

#[test]
fn several_policies_in_one_call_match_the_model() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    for seed in 0..6 {
        conn.flush();
        let id = if seed % 2 == 0 {
            "ip:10.0.0.1"
        } else {
            "we}{ird %7B id"
        };
        let (admitted, denied) = replay(
            &mut conn,
            &four_policies(Duration::from_millis(700)),
            id,
            1000 + seed,
            300,
        );
        assert!(
            admitted > 10 && denied > 10,
            "{admitted} admitted, {denied} denied"
        );
    }
    assert_every_key_has_a_ttl(&redis);
}

#[test]
fn every_key_has_a_ttl_after_any_sequence() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let mut rng = Rng(99);
    let policies = four_policies(Duration::from_secs(3_600));
    for round in 0..200 {
        let subset: Vec<Policy> = policies
            .iter()
            .filter(|_| rng.below(2) == 0)
            .cloned()
            .collect();
        if subset.is_empty() {
            continue;
        }
        let mode = [
            Mode::Consume,
            Mode::Consume,
            Mode::Refund,
            Mode::Peek,
            Mode::Reset,
        ][rng.below(5) as usize];
        let id = format!("id{}", rng.below(4));
        let call = decision_call(
            &subset,
            &Tiers::default(),
            &id,
            1 + rng.below(3),
            mode,
            clock_ms(),
        )
        .unwrap();
        conn.eval(&call);
        if round % 20 == 0 {
            assert_every_key_has_a_ttl(&redis);
        }
    }
    assert!(!conn.keys("rl:*").is_empty());
    assert_every_key_has_a_ttl(&redis);
}

#[test]
fn all_or_nothing_across_policies() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policies = four_policies(Duration::from_secs(3_600));
    // gcra admits 3: the first three go through everywhere.
    for _ in 0..3 {
        assert!(conn.decide(&policies, "u", 1, Mode::Consume).allowed);
    }
    let before = conn.snapshot();
    let denied = conn.decide(&policies, "u", 1, Mode::Consume);
    assert!(!denied.allowed);
    assert_eq!(denied.violated, ["gcra"]);
    assert_eq!(denied.policy, "gcra");
    assert!(denied.retry_after_ms > 0 && denied.retry_after_ms <= 600_000);
    let remaining: Vec<u64> = denied.policies.iter().map(|p| p.remaining).collect();
    assert_eq!(remaining, [3, 2, 1, 0], "the others kept what they had");
    assert_eq!(
        conn.snapshot(),
        before,
        "a denial consumed nothing anywhere"
    );
    // A cost only the larger policies could take is refused as a whole, too.
    let big = conn.decide(&policies[..3], "u", 2, Mode::Consume);
    assert_eq!(
        (big.allowed, big.violated.clone()),
        (false, vec!["token".to_owned()])
    );
    assert_eq!(conn.snapshot(), before);
    // Without the exhausted policies the same identity still gets through.
    assert!(conn.decide(&policies[..2], "u", 2, Mode::Consume).allowed);
}

#[test]
fn refunds_are_clamped_at_the_limit() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    for policy in four_policies(Duration::from_secs(3_600)) {
        let p = std::slice::from_ref(&policy);
        conn.decide(p, "u", 2, Mode::Consume);
        let partial = conn.decide(p, "u", 1, Mode::Refund);
        assert!(partial.allowed);
        assert_eq!(partial.remaining, policy.limit() - 1, "{policy}");
        let over = conn.decide(p, "u", 1_000, Mode::Refund);
        assert_eq!(
            (over.remaining, over.reset_ms),
            (policy.limit(), 0),
            "{policy}"
        );
        assert!(
            conn.keys("rl:*").is_empty(),
            "{policy}: empty state is deleted"
        );
        let again = conn.decide(p, "u", 1, Mode::Refund);
        assert_eq!(
            again.remaining,
            policy.limit(),
            "{policy}: refund on nothing"
        );
        assert!(conn.keys("rl:*").is_empty());
    }
}

#[test]
fn peek_consumes_nothing() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policies = four_policies(Duration::from_secs(3_600));
    for _ in 0..10 {
        let d = conn.decide(&policies, "u", 1, Mode::Peek);
        assert!(d.allowed);
        assert_eq!(
            d.policies.iter().map(|p| p.remaining).collect::<Vec<_>>(),
            [6, 5, 4, 3]
        );
    }
    assert!(conn.keys("*").is_empty(), "peeking wrote nothing");
    conn.decide(&policies, "u", 2, Mode::Consume);
    let before = conn.snapshot();
    for _ in 0..10 {
        let d = conn.decide(&policies, "u", 3, Mode::Peek);
        assert!(!d.allowed);
        assert_eq!(d.violated, ["token", "gcra"]);
        assert_eq!(
            d.policies.iter().map(|p| p.remaining).collect::<Vec<_>>(),
            [4, 3, 2, 1]
        );
    }
    assert_eq!(conn.snapshot(), before);
}

#[test]
fn reset_deletes_only_that_identity() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policies = four_policies(Duration::from_secs(3_600));
    for id in ["a", "b"] {
        for _ in 0..3 {
            conn.decide(&policies, id, 1, Mode::Consume);
        }
        assert!(!conn.decide(&policies, id, 1, Mode::Consume).allowed);
    }
    let reset = conn.decide(&policies, "a", 1, Mode::Reset);
    assert!(reset.allowed);
    assert_eq!(
        reset
            .policies
            .iter()
            .map(|p| p.remaining)
            .collect::<Vec<_>>(),
        [6, 5, 4, 3]
    );
    assert!(conn.keys("rl:{a}:*").is_empty());
    assert_eq!(conn.keys("rl:{b}:*").len(), 4);
    assert!(conn.decide(&policies, "a", 1, Mode::Consume).allowed);
    assert!(!conn.decide(&policies, "b", 1, Mode::Consume).allowed);
}

#[test]
fn keys_are_hash_tagged_by_the_encoded_identity() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policies = four_policies(Duration::from_secs(3_600));
    conn.decide(&policies, "x}{y", 1, Mode::Consume);
    let keys = conn.keys("rl:*");
    assert_eq!(keys.len(), 4);
    for key in &keys {
        assert!(key.starts_with("rl:{x%7D%7By}:"), "{key}");
    }
    // One key per policy, its state recording the algorithm, limit and window it was kept under.
    let now_ms = conn.redis_time_ms();
    assert!(
        keys.contains(&"rl:{x%7D%7By}:fixed:state".to_owned()),
        "{keys:?}"
    );
    let state = conn
        .run(&Command::new("GET").arg("rl:{x%7D%7By}:fixed:state"))
        .unwrap();
    assert_eq!(
        state.as_str().unwrap(),
        format!("fixed:6:3600000:{}:1", now_ms / 3_600_000)
    );
}

#[test]
fn decisions_use_the_redis_clock() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let before = conn.redis_time_ms();
    let d = conn.decide(
        &four_policies(Duration::from_secs(60)),
        "u",
        1,
        Mode::Consume,
    );
    let after = conn.redis_time_ms();
    assert!(
        before <= d.now_ms && d.now_ms <= after,
        "{before} {} {after}",
        d.now_ms
    );
}

#[test]
fn script_rejects_what_the_builder_would_never_send() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let p = [Policy::fixed("p", 2, Duration::from_secs(1))];
    let mut call = decision_call(&p, &Tiers::default(), "u", 1, Mode::Consume, clock_ms()).unwrap();
    call.args[1] = "3".into();
    let err = conn.run(&call.eval()).unwrap_err();
    assert!(err.contains("cost exceeds the limit"), "{err}");
    call.args[0] = "drain".into();
    let err = conn.run(&call.eval()).unwrap_err();
    assert!(err.contains("unknown rate-limit mode"), "{err}");
}

/// Hour-long windows, 500 attempts from 20 threads on the real TIME path: exactly the limit.
fn exact_under_concurrency(policy: Policy) {
    const LIMIT: u64 = 100;
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    // A burst of a few seconds must not straddle an hour boundary (fixed windows restart there).
    let into_hour = conn.redis_time_ms() % 3_600_000;
    if into_hour > 3_600_000 - 30_000 {
        std::thread::sleep(Duration::from_millis(3_600_000 - into_hour + 1_000));
    }
    assert_eq!(policy.limit(), LIMIT);
    let admitted: u64 = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let (redis, policy) = (&redis, &policy);
                scope.spawn(move || {
                    let mut conn = Conn::open(redis);
                    let policies = std::slice::from_ref(policy);
                    (0..25)
                        .filter(|_| conn.decide(policies, "hot", 1, Mode::Consume).allowed)
                        .count() as u64
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(admitted, LIMIT, "{policy}");
    let peek = conn.decide(std::slice::from_ref(&policy), "hot", 1, Mode::Peek);
    assert_eq!((peek.allowed, peek.remaining), (false, 0), "{policy}");
    assert_every_key_has_a_ttl(&redis);
}

const HOUR: Duration = Duration::from_secs(3_600);

#[test]
fn fixed_window_is_exact_under_concurrency() {
    exact_under_concurrency(Policy::fixed("c", 100, HOUR));
}

#[test]
fn sliding_window_is_exact_under_concurrency() {
    exact_under_concurrency(Policy::sliding("c", 100, HOUR));
}

#[test]
fn token_bucket_is_exact_under_concurrency() {
    exact_under_concurrency(Policy::token_bucket("c", 100, HOUR));
}

#[test]
fn gcra_is_exact_under_concurrency() {
    exact_under_concurrency(Policy::gcra("c", 100, HOUR));
}

fn parse_set(spec: &str) -> edgecount::core::ratelimit::PolicySet {
    spec.parse().unwrap()
}

/// An override or a tier changes the limit from the very next decision, in the same script call
/// (no extra round trip); removing it brings the configured limit back.
#[test]
fn overrides_and_tiers_apply_on_the_next_decision() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let set = parse_set("api=fixed:3/1h; burst=gcra:2/1s");
    let tiers = Tiers::parse("pro: api=fixed:5/1h; pro: burst=gcra:100/1s", &set).unwrap();
    let api = set.select("api").unwrap();
    let decide = |conn: &mut Conn, policies: &[Policy]| {
        let call = decision_call(policies, &tiers, "user-9", 1, Mode::Consume, clock_ms()).unwrap();
        parse_decision(policies, &conn.eval(&call)).unwrap()
    };
    for _ in 0..3 {
        assert!(decide(&mut conn, &api).allowed);
    }
    let refused = decide(&mut conn, &api);
    assert!(!refused.allowed);
    assert_eq!((refused.limit, refused.reason), (3, Reason::Limit));
    // An explicit limit: the fixed window keeps its count (same window), now out of 10.
    conn.run(
        &set_override_command(
            "user-9",
            "api",
            &Override::Limit {
                limit: 10,
                window_ms: 3_600_000,
            },
        )
        .unwrap(),
    )
    .unwrap();
    let d = decide(&mut conn, &api);
    assert!(d.allowed, "{d:?}");
    assert_eq!((d.limit, d.remaining, d.reason), (10, 6, Reason::Override));
    assert_eq!(d.policies[0].source, LimitSource::Override);
    // A tier: 4 used of pro's 5, so one more, then refused.
    conn.run(&set_override_command("user-9", "api", &Override::Tier("pro".into())).unwrap())
        .unwrap();
    let d = decide(&mut conn, &api);
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 5, 0));
    assert_eq!(d.policies[0].source, LimitSource::Tier);
    assert!(!decide(&mut conn, &api).allowed);
    // A tier the configuration no longer has counts as no override.
    conn.run(&set_override_command("user-9", "api", &Override::Tier("gold".into())).unwrap())
        .unwrap();
    let d = decide(&mut conn, &api);
    assert_eq!(
        (d.limit, d.policies[0].source, d.reason),
        (3, LimitSource::Configured, Reason::Limit)
    );
    conn.run(&remove_override_command("user-9", "api").unwrap())
        .unwrap();
    assert_eq!(decide(&mut conn, &api).limit, 3);
    // Token and GCRA state depends on the limit: an override starts a fresh bucket.
    let burst = set.select("burst").unwrap();
    assert!(decide(&mut conn, &burst).allowed && decide(&mut conn, &burst).allowed);
    assert!(!decide(&mut conn, &burst).allowed);
    conn.run(&set_override_command("user-9", "burst", &Override::Tier("pro".into())).unwrap())
        .unwrap();
    let d = decide(&mut conn, &burst);
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 100, 99));
    // Another identity is untouched, and every key written has a TTL (the overrides hash is
    // configuration and keeps none).
    assert_eq!(decide(&mut conn, &api).limit, 3);
    let other = decision_call(&api, &tiers, "user-10", 1, Mode::Peek, clock_ms()).unwrap();
    assert_eq!(
        parse_decision(&api, &conn.eval(&other)).unwrap().remaining,
        3
    );
    for (key, pttl) in redis.key_pttls("rl:*") {
        assert!(pttl > 0 || key.ends_with(":o"), "{key} has PTTL {pttl}");
    }
}

#[test]
fn a_cost_above_the_limit_in_effect_is_refused_by_the_script() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let set = parse_set("api=fixed:100/1h");
    let api = set.select("api").unwrap();
    let tiers = Tiers::default();
    conn.run(
        &set_override_command(
            "small",
            "api",
            &Override::Limit {
                limit: 2,
                window_ms: 3_600_000,
            },
        )
        .unwrap(),
    )
    .unwrap();
    let call = decision_call(&api, &tiers, "small", 3, Mode::Consume, clock_ms()).unwrap();
    let error = match conn.run(&call.evalsha()) {
        Err(e) if e.starts_with("NOSCRIPT") => conn.run(&call.eval()).unwrap_err(),
        other => other.unwrap_err(),
    };
    assert_eq!(
        cost_refusal(&error, &api, 3),
        Some(RateLimitError::CostExceedsLimit {
            policy: "api".into(),
            cost: 3,
            limit: 2
        }),
        "{error}"
    );
    // Raised by an override, a cost above the configured limit is fine.
    conn.run(
        &set_override_command(
            "big",
            "api",
            &Override::Limit {
                limit: 1000,
                window_ms: 3_600_000,
            },
        )
        .unwrap(),
    )
    .unwrap();
    let call = decision_call(&api, &tiers, "big", 500, Mode::Consume, clock_ms()).unwrap();
    assert!(parse_decision(&api, &conn.eval(&call)).unwrap().allowed);
}

#[test]
fn a_denied_identity_is_refused_and_charged_nothing() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let set = parse_set("api=sliding:3/1h; burst=gcra:5/1s");
    let both = set.select("api+burst").unwrap();
    assert!(conn.decide(&both, "mallory", 1, Mode::Consume).allowed);
    let before = conn.snapshot();
    conn.run(&Command::new("SET").arg("rl:{mallory}:deny").arg("1"))
        .unwrap();
    for mode in [Mode::Consume, Mode::Peek] {
        let d = conn.decide(&both, "mallory", 1, mode);
        assert!(!d.allowed && d.denied, "{mode:?}: {d:?}");
        assert_eq!(d.reason, Reason::Deny);
        // Every policy still reported (for the headers), as it stands.
        assert_eq!(d.policies[0].remaining, 2);
        // A mark without expiry has no end.
        assert_eq!(d.deny_left_ms, None);
    }
    // A mark with one: its time left.
    conn.run(
        &Command::new("PEXPIRE")
            .arg("rl:{mallory}:deny")
            .arg("30000"),
    )
    .unwrap();
    let left = conn.decide(&both, "mallory", 1, Mode::Peek).deny_left_ms;
    assert!(matches!(left, Some(29_000..=30_000)), "{left:?}");
    let state = |conn: &mut Conn| -> Vec<(String, String)> {
        conn.snapshot()
            .into_iter()
            .filter(|(k, _)| !k.ends_with(":deny"))
            .collect()
    };
    assert_eq!(state(&mut conn), before, "a denied request consumed");
    // Others are not affected; taking the mark away lets the identity through again.
    assert!(conn.decide(&both, "alice", 1, Mode::Consume).allowed);
    conn.run(&Command::new("DEL").arg("rl:{mallory}:deny"))
        .unwrap();
    assert!(conn.decide(&both, "mallory", 1, Mode::Consume).allowed);
}

#[test]
fn shadow_policies_report_and_never_refuse() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let set = parse_set("api=fixed:2/1h; soft=fixed:1/1h shadow");
    let both = set.select("api+soft").unwrap();
    let first = conn.decide(&both, "u", 1, Mode::Consume);
    assert!(first.allowed);
    assert_eq!(first.reason, Reason::Limit);
    // soft would refuse: allowed anyway, said so; soft is not charged past its limit.
    let second = conn.decide(&both, "u", 1, Mode::Consume);
    assert!(second.allowed, "{second:?}");
    assert_eq!(
        (second.reason, second.shadowed.clone()),
        (Reason::Shadow, vec!["soft".to_owned()])
    );
    assert_eq!(second.policy, "api");
    assert_eq!(second.policies[1].remaining, 0);
    // api refuses: refused, nothing charged anywhere.
    let third = conn.decide(&both, "u", 1, Mode::Consume);
    assert!(!third.allowed);
    assert_eq!(third.violated, ["api"]);
    // The count is a fixed window state's last field.
    let counts = conn.snapshot();
    let count_of = |policy: &str| -> Vec<String> {
        counts
            .iter()
            .filter(|(k, _)| k.contains(&format!(":{policy}:")))
            .map(|(_, v)| v.rsplit(':').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(count_of("api"), ["2"]);
    assert_eq!(count_of("soft"), ["1"]);
}

/// @upstash/ratelimit's own keys and rules (the interop with the library itself is tested in
/// tests/clients/node/upstash_shared_limits.test.mjs).
#[test]
fn upstash_algorithms_keep_the_librarys_keys_and_rules() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let tiers = Tiers::default();
    const HOUR: u64 = 3_600_000;
    let now = 500 * HOUR + HOUR / 2; // half-way through window 500
    let at = |conn: &mut Conn, policies: &[Policy], cost: u64, mode: Mode, t: u64| {
        let call = decision_call_at_test_time(policies, &tiers, "user:1", cost, mode, t).unwrap();
        parse_decision(policies, &conn.eval(&call)).unwrap()
    };
    // fixed: `<prefix>:<id>:<window index>`, admitted while the count stays within the limit.
    let fixed = parse_set("f=upstash-fixed:3/1h").select("f").unwrap();
    let admitted = (0..5)
        .filter(|_| at(&mut conn, &fixed, 1, Mode::Consume, now).allowed)
        .count();
    assert_eq!(admitted, 3);
    assert_eq!(
        conn.run(&Command::new("GET").arg("@upstash/ratelimit:user:1:500"))
            .unwrap()
            .as_str()
            .unwrap(),
        "3"
    );
    // sliding: the previous window weighs (1 - elapsed/W), floored; admitted while the weighted
    // usage is below the limit, whatever the cost.
    let sliding = parse_set("s=upstash-sliding:10/1h prefix=shared")
        .select("s")
        .unwrap();
    conn.run(&Command::new("SET").arg("shared:user:1:499").arg("10"))
        .unwrap();
    let admitted = (0..10)
        .filter(|_| at(&mut conn, &sliding, 1, Mode::Consume, now).allowed)
        .count();
    assert_eq!(admitted, 5, "floor(0.5 × 10) = 5 weighted, 5 more fit");
    assert_eq!(
        conn.run(&Command::new("GET").arg("shared:user:1:500"))
            .unwrap()
            .as_str()
            .unwrap(),
        "5"
    );
    let pttl = conn
        .run(&Command::new("PTTL").arg("shared:user:1:500"))
        .unwrap()
        .as_i64()
        .unwrap();
    assert!(
        pttl > (2 * HOUR) as i64 && pttl <= (2 * HOUR + 1000) as i64,
        "{pttl}"
    );
    // token: a hash {refilledAt, tokens} at `<prefix>:<id>`, refilled `refill` per window.
    let token = parse_set("t=upstash-token:3/1h refill=1")
        .select("t")
        .unwrap();
    let admitted = (0..5)
        .filter(|_| at(&mut conn, &token, 1, Mode::Consume, now).allowed)
        .count();
    assert_eq!(admitted, 3);
    let bucket = conn
        .run(&Command::new("HGETALL").arg("@upstash/ratelimit:user:1"))
        .unwrap();
    let fields: Vec<String> = bucket
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["refilledAt", &now.to_string(), "tokens", "0"]);
    assert!(!at(&mut conn, &token, 1, Mode::Consume, now + HOUR - 1).allowed);
    assert!(at(&mut conn, &token, 1, Mode::Consume, now + HOUR).allowed);
    assert!(!at(&mut conn, &token, 1, Mode::Consume, now + HOUR).allowed);
}

/// Run a deny-list write (the ranges script, or an identity's commands).
fn deny_write(conn: &mut Conn, write: DenyWrite) -> Reply {
    match write {
        DenyWrite::Script(call) => conn.eval(&call),
        DenyWrite::Commands(commands) => {
            let replies: Vec<Reply> = commands.iter().map(|c| conn.run(c).unwrap()).collect();
            replies.into_iter().next().unwrap()
        }
    }
}

fn deny(conn: &mut Conn, target: &str, ttl_ms: Option<u64>) {
    let target = DenyTarget::parse(target, false).unwrap();
    deny_write(conn, deny::add_commands(&target, ttl_ms).unwrap());
}

fn decide_from(conn: &mut Conn, policies: &[Policy], address: &str, mode: Mode) -> Decision {
    let subject = Subject::at("user:1", Some(address));
    let call = decision_call(policies, &Tiers::default(), subject, 1, mode, clock_ms()).unwrap();
    parse_decision(policies, &conn.eval(&call)).unwrap()
}

/// (family, bits) of an address, IPv4-mapped IPv6 as IPv4.
fn address_bits(text: &str) -> (u8, u128) {
    match text.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(v4) => (4, u128::from(u32::from(v4))),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (4, u128::from(u32::from(v4))),
            None => (6, u128::from(v6)),
        },
    }
}

/// 128 random bits (`Rng::next` gives 31).
fn random_bits(rng: &mut Rng) -> u128 {
    (0..5).fold(0u128, |acc, _| acc << 31 | u128::from(rng.next()))
}

#[test]
fn address_ranges_deny_exactly_the_addresses_they_hold() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let api = parse_set("api=sliding:1000/1h").select("api").unwrap();
    // Generated ranges of every length, v4 and v6, and addresses in, at the edges of and outside
    // them: the script's masking must agree with plain integer arithmetic.
    let mut rng = Rng(0x5eed_0fde_0117);
    let mut ranges: Vec<(u8, u128, u8)> = Vec::new();
    for i in 0..40u64 {
        let (family, width) = if i % 2 == 0 { (4u8, 32u8) } else { (6, 128) };
        let len = (rng.below(u64::from(width) + 1)) as u8;
        let raw = random_bits(&mut rng) >> (128 - u32::from(width));
        let mask = if len == 0 {
            0
        } else {
            (u128::MAX >> (128 - u32::from(width))) >> (width - len) << (width - len)
        };
        let first = raw & mask;
        // Keep the everything-ranges out: they would hide every other check.
        if len < 4 {
            continue;
        }
        let text = match family {
            4 => format!("{}/{len}", std::net::Ipv4Addr::from(first as u32)),
            _ => format!("{}/{len}", std::net::Ipv6Addr::from(first)),
        };
        deny(&mut conn, &text, None);
        ranges.push((family, first, len));
    }
    let held = |family: u8, bits: u128| {
        ranges.iter().any(|&(f, first, len)| {
            let width = if f == 4 { 32 } else { 128 };
            f == family && (len == 0 || (bits ^ first) >> (width - len) == 0)
        })
    };
    let before = redis.snapshot();
    let mut denied_seen = 0;
    for i in 0..400 {
        let &(family, first, len) = &ranges[i % ranges.len()];
        let width: u32 = if family == 4 { 32 } else { 128 };
        let host_bits = random_bits(&mut rng);
        let inside = first | host_bits & (u128::MAX >> (128 - width) >> u32::from(len));
        let bits = match i % 4 {
            0 => inside,
            1 => inside ^ (1u128 << (width - u32::from(len))), // just outside, usually
            2 => first.wrapping_sub(1) & (u128::MAX >> (128 - width)),
            _ => host_bits >> (128 - width),
        };
        let text = if family == 4 {
            std::net::Ipv4Addr::from(bits as u32).to_string()
        } else {
            std::net::Ipv6Addr::from(bits).to_string()
        };
        let (family, bits) = address_bits(&text);
        let d = decide_from(&mut conn, &api, &text, Mode::Peek);
        assert_eq!(d.denied, held(family, bits), "{text}");
        denied_seen += usize::from(d.denied);
    }
    assert!(
        denied_seen > 100,
        "the generated addresses hit the ranges ({denied_seen})"
    );
    assert!(redis.snapshot() == before, "peeks changed something");
}

#[test]
fn ranges_expire_leave_and_charge_nothing() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let api = parse_set("api=sliding:10/1h").select("api").unwrap();
    deny(&mut conn, "203.0.113.0/24", None);
    deny(&mut conn, "2001:db8::/32", Some(60_000));
    deny(&mut conn, "198.51.100.7", Some(150));
    let lengths = |conn: &mut Conn, family: &str| {
        conn.run(
            &Command::new("HGET")
                .arg(deny::NETWORKS_KEY)
                .arg(format!("#{family}")),
        )
        .unwrap()
        .as_str()
        .map(str::to_owned)
        .ok()
    };
    let sorted = |lengths: Option<String>| {
        let mut list: Vec<u32> = lengths
            .unwrap_or_default()
            .split(',')
            .filter_map(|l| l.parse().ok())
            .collect();
        list.sort();
        list
    };
    assert_eq!(sorted(lengths(&mut conn, "4")), [24, 32]);
    assert_eq!(sorted(lengths(&mut conn, "6")), [32]);
    for (address, denied) in [
        ("203.0.113.7", true),
        ("203.0.113.255", true),
        ("203.0.112.255", false),
        ("::ffff:203.0.113.9", true),
        ("2001:db8:ffff::1", true),
        ("2001:db9::1", false),
        ("198.51.100.7", true),
        ("198.51.100.8", false),
    ] {
        let d = decide_from(&mut conn, &api, address, Mode::Consume);
        assert_eq!(d.denied, denied, "{address}");
        assert_eq!(d.allowed, !denied, "{address}");
        if denied {
            assert_eq!(d.reason, Reason::Deny);
        }
        // How long the deny lasts: none for the range without expiry, the range's own time
        // left for the others (what the block cache may keep a refusal for).
        match (address, d.deny_left_ms) {
            (_, None) if !denied => {}
            ("203.0.113.7" | "203.0.113.255" | "::ffff:203.0.113.9", None) => {}
            ("2001:db8:ffff::1", Some(left)) => assert!((59_000..=60_000).contains(&left)),
            ("198.51.100.7", Some(left)) => assert!((1..=150).contains(&left), "{left}"),
            other => panic!("{address}: deny_left_ms {other:?}"),
        }
    }
    // Only the allowed decisions consumed: 3 of the 10.
    let d = decide_from(&mut conn, &api, "198.51.100.8", Mode::Peek);
    assert_eq!(d.policies[0].remaining, 7);
    // The single address expires on Redis time, and leaves the hash on the next write.
    std::thread::sleep(Duration::from_millis(250));
    assert!(!decide_from(&mut conn, &api, "198.51.100.7", Mode::Peek).denied);
    let range = DenyTarget::parse("203.0.113.0/24", false).unwrap();
    assert_eq!(
        deny_write(&mut conn, deny::remove_commands(&range).unwrap())
            .as_i64()
            .unwrap(),
        1
    );
    assert_eq!(lengths(&mut conn, "4"), None, "no IPv4 range is left");
    assert_eq!(lengths(&mut conn, "6").as_deref(), Some("32"));
    assert!(!decide_from(&mut conn, &api, "203.0.113.7", Mode::Peek).denied);
    // Removing what is not there says so.
    assert_eq!(
        deny_write(&mut conn, deny::remove_commands(&range).unwrap())
            .as_i64()
            .unwrap(),
        0
    );
}
