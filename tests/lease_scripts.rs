//! The lease script on a real private redis-server: never more than the limit held at once under
//! 500 concurrent acquirers (watched in Redis during the run), a crashed holder's slot freed by
//! its TTL, nobody but the holder can release or renew, renewals extend, the deny list writes
//! nothing, every key expires, shadow policies admit beyond the limit and say so; and the
//! `ConcurrencyLimiter` service over the real REST proxy, one round trip per operation.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use edgecount::core::command::Command;
use edgecount::core::ratelimit::lease::{
    lease_call, lease_call_at_test_time, parse_lease, LeaseDecision, LeaseId, LeaseOp,
};
use edgecount::core::ratelimit::{Policy, Reason};
use support::direct::Conn;
use support::RedisServer;

impl Conn {
    /// One lease operation, EVALSHA falling back to EVAL on NOSCRIPT (as `Store::run` does).
    fn lease(&mut self, policy: &Policy, id: &str, op: LeaseOp, lease: &LeaseId) -> LeaseDecision {
        let call = lease_call(policy, id, op, lease).unwrap();
        let reply = self.eval(&call);
        parse_lease(policy, op, lease, &reply).unwrap()
    }

    /// One lease operation at `now_ms` (the script's test clock instead of Redis `TIME`): a test
    /// moves time by argument, so no step depends on how fast the box runs.
    fn lease_at(
        &mut self,
        now_ms: u64,
        policy: &Policy,
        id: &str,
        op: LeaseOp,
        lease: &LeaseId,
    ) -> LeaseDecision {
        let call = lease_call_at_test_time(policy, id, op, lease, now_ms).unwrap();
        let reply = self.eval(&call);
        let decision = parse_lease(policy, op, lease, &reply).unwrap();
        assert_eq!(
            decision.decision.now_ms, now_ms,
            "the script took the given clock"
        );
        decision
    }

    fn acquire_at(&mut self, now_ms: u64, policy: &Policy, id: &str) -> LeaseDecision {
        let lease = LeaseId::generate().unwrap();
        self.lease_at(now_ms, policy, id, LeaseOp::Acquire, &lease)
    }

    fn renew_at(
        &mut self,
        now_ms: u64,
        policy: &Policy,
        id: &str,
        lease: &LeaseId,
    ) -> LeaseDecision {
        self.lease_at(now_ms, policy, id, LeaseOp::Renew, lease)
    }

    fn acquire(&mut self, policy: &Policy, id: &str) -> LeaseDecision {
        self.lease(policy, id, LeaseOp::Acquire, &LeaseId::generate().unwrap())
    }

    fn release(&mut self, policy: &Policy, id: &str, lease: &LeaseId) -> LeaseDecision {
        self.lease(policy, id, LeaseOp::Release, lease)
    }

    fn renew(&mut self, policy: &Policy, id: &str, lease: &LeaseId) -> LeaseDecision {
        self.lease(policy, id, LeaseOp::Renew, lease)
    }

    fn live_holders(&mut self, key: &str) -> u64 {
        support::direct::live_leases(&mut self.0, key)
    }

    fn redis_time_ms(&mut self) -> u64 {
        let t = self.run(&Command::new("TIME")).unwrap();
        let t = t.as_array().unwrap();
        t[0].as_i64().unwrap() as u64 * 1000 + t[1].as_i64().unwrap() as u64 / 1000
    }

    fn score(&mut self, key: &str, lease: &LeaseId) -> Option<u64> {
        let reply = self
            .run(&Command::new("ZSCORE").arg(key).arg(lease.as_str()))
            .unwrap();
        reply
            .as_str()
            .ok()
            .map(|s| s.parse::<f64>().unwrap() as u64)
    }
}

/// Every `rl:*` key has a TTL (-2: it expired between KEYS and PTTL, also fine; -1 is the bug).
fn assert_every_key_has_a_ttl(redis: &RedisServer) {
    for (key, pttl) in redis.key_pttls("rl:*") {
        assert!(pttl > 0 || pttl == -2, "{key} has PTTL {pttl}");
    }
}

fn conc(limit: u64, ttl: Duration) -> Policy {
    Policy::concurrency("conc", limit, ttl)
}

const LEASES: &str = "rl:{u}:conc:lease";

/// Limit 10, 500 threads, each: acquire (retrying after a refusal), hold a few ms, release. A
/// watcher reads the lease set during the whole run: never more than 10 live leases.
#[test]
fn never_more_than_the_limit_under_500_concurrent_acquirers() {
    const LIMIT: u64 = 10;
    const ACQUIRERS: usize = 500;
    let redis = RedisServer::start();
    let policy = conc(LIMIT, Duration::from_secs(30));
    let key = "rl:{hot}:conc:lease";
    let done = AtomicBool::new(false);
    let (admitted, refused, most_reported) =
        (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let start = Barrier::new(ACQUIRERS + 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    let (max_seen, samples) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut conn = Conn::open(&redis);
            let (mut max_seen, mut samples) = (0, 0u64);
            start.wait();
            while !done.load(Ordering::Acquire) && Instant::now() < deadline && samples < 10_000_000
            {
                let live = conn.live_holders(key);
                assert!(live <= LIMIT, "{live} leases held at once (limit {LIMIT})");
                max_seen = max_seen.max(live);
                samples += 1;
            }
            (max_seen, samples)
        });
        let acquirers: Vec<_> = (0..ACQUIRERS)
            .map(|i| {
                let (redis, policy, start) = (&redis, &policy, &start);
                let (admitted, refused, most_reported) = (&admitted, &refused, &most_reported);
                scope.spawn(move || {
                    let mut conn = Conn::open(redis);
                    start.wait();
                    for attempt in 0..10_000u64 {
                        assert!(Instant::now() < deadline, "acquirer {i} never got a lease");
                        let taken = conn.acquire(policy, "hot");
                        let Some(lease) = taken.lease else {
                            refused.fetch_add(1, Ordering::Relaxed);
                            assert_eq!(taken.holders, LIMIT, "refused below the limit");
                            // Back off a few ms, differently per thread and attempt: the
                            // slots stay contended, and Redis has room for the watcher.
                            std::thread::sleep(Duration::from_micros(
                                4_000 + (i as u64 * 37 + attempt * 101) % 8_000,
                            ));
                            continue;
                        };
                        admitted.fetch_add(1, Ordering::Relaxed);
                        most_reported.fetch_max(taken.holders, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(5));
                        let released = conn.release(policy, "hot", &lease);
                        assert!(released.ok, "acquirer {i}: its lease was not held any more");
                        return;
                    }
                    panic!("acquirer {i} never got a lease in 10 000 attempts");
                })
            })
            .collect();
        for acquirer in acquirers {
            acquirer.join().unwrap();
        }
        done.store(true, Ordering::Release);
        watcher.join().unwrap()
    });
    let (admitted, refused) = (admitted.into_inner(), refused.into_inner());
    println!(
        "limit {LIMIT}, {ACQUIRERS} acquirers: {admitted} admitted, {refused} refusals; the \
         watcher saw at most {max_seen} live leases in {samples} reads; the replies at most {}",
        most_reported.into_inner()
    );
    assert_eq!(admitted, ACQUIRERS as u64, "every acquirer got its turn");
    assert!(refused > 0, "the acquirers contended");
    assert!(
        samples > 100,
        "the watcher read during the run ({samples} reads)"
    );
    assert_eq!(max_seen, LIMIT, "the slots were all in use at some point");
    let mut conn = Conn::open(&redis);
    assert_eq!(conn.live_holders(key), 0);
    assert_eq!(redis.cli(&["EXISTS", key]), "0", "an empty set is gone");
}

/// A holder that never releases (it crashed) keeps its slot only until its lease expires. Time
/// moves by the script's clock argument: each step is exactly where the test says, however
/// slowly the box runs (the set's own Redis expiry, a minute and more away, never comes into it).
#[test]
fn a_crashed_holders_slot_frees_after_its_ttl() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let t0 = conn.redis_time_ms();
    let policy = conc(2, Duration::from_secs(60));
    let first = conn.acquire_at(t0, &policy, "u");
    let written = Instant::now();
    let crashed = conn.acquire_at(t0 + 1, &policy, "u");
    assert!(first.ok && crashed.ok);
    assert_eq!(crashed.holders, 2);
    let refused = conn.acquire_at(t0 + 500, &policy, "u");
    assert!(!refused.ok && !refused.decision.allowed);
    // The earliest lease expires within the TTL: that is the wait a refusal announces.
    let wait = refused.decision.retry_after_ms;
    assert_eq!(wait, 60_000 - 500);
    assert_eq!(refused.decision.now_ms + wait, first.expires_ms);
    // The set's PEXPIRE: its last lease's 60 s and the 1 s grace, counted down in real time
    // since the write (however long that took).
    let pttl: i64 = redis.cli(&["PTTL", LEASES]).parse().unwrap();
    let since = written.elapsed().as_millis() as i64;
    assert!(
        (61_000 - since - 1..=61_000).contains(&pttl),
        "the set outlives its last lease by the grace: {pttl} ({since} ms since the write)"
    );
    // One millisecond before the first lease expires, both slots are still taken.
    let still = conn.acquire_at(first.expires_ms - 1, &policy, "u");
    assert!(!still.ok && still.holders == 2, "{still:?}");
    // Nobody releases anything; time alone frees both slots.
    let after = conn.acquire_at(crashed.expires_ms, &policy, "u");
    assert!(after.ok, "{after:?}");
    assert_eq!(after.holders, 1, "both expired leases are gone");
    let late = conn.renew_at(
        crashed.expires_ms + 1,
        &policy,
        "u",
        crashed.lease.as_ref().unwrap(),
    );
    assert!(!late.ok);
    assert_every_key_has_a_ttl(&redis);
}

/// A lease id is its holder's secret: another id, the same id under another identity or policy,
/// or an id already released neither releases nor renews anything.
#[test]
fn only_the_holder_can_release_or_renew() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policy = conc(3, Duration::from_secs(30));
    let other_policy = Policy::concurrency("other", 3, Duration::from_secs(30));
    let mine = conn.acquire(&policy, "u").lease.unwrap();
    let before = conn.score(LEASES, &mine).unwrap();
    let stranger = LeaseId::generate().unwrap();
    for attempt in [
        conn.release(&policy, "u", &stranger),
        conn.renew(&policy, "u", &stranger),
        conn.release(&policy, "v", &mine),
        conn.renew(&policy, "v", &mine),
        conn.release(&other_policy, "u", &mine),
        conn.renew(&other_policy, "u", &mine),
    ] {
        assert!(!attempt.ok && attempt.lease.is_none(), "{attempt:?}");
    }
    assert_eq!(conn.live_holders(LEASES), 1, "my lease is still held");
    assert_eq!(
        conn.score(LEASES, &mine),
        Some(before),
        "and its expiry unchanged"
    );
    let released = conn.release(&policy, "u", &mine);
    assert!(released.ok);
    assert_eq!((released.holders, released.decision.remaining), (0, 3));
    assert!(!conn.release(&policy, "u", &mine).ok, "released once only");
    assert!(
        !conn.renew(&policy, "u", &mine).ok,
        "a released lease stays released"
    );
    assert_eq!(redis.cli(&["KEYS", "rl:*"]), "", "nothing left behind");
}

/// Renewing moves a held lease's expiry to now + TTL, so a long job keeps its slot past the
/// first TTL; a lease left to expire cannot be renewed. The clock is the script's argument: a
/// renewal lands 60% into the TTL exactly, not whenever the box gets round to it.
#[test]
fn renewing_extends_a_held_lease() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policy = conc(1, Duration::from_secs(1));
    let mut now = conn.redis_time_ms();
    let taken = conn.acquire_at(now, &policy, "u");
    let lease = taken.lease.clone().unwrap();
    for _ in 0..3 {
        now += 600;
        let renewed = conn.renew_at(now, &policy, "u", &lease);
        assert!(renewed.ok, "held 0.6 s after the last renewal");
        assert_eq!(renewed.expires_ms, now + 1_000);
        assert_eq!(conn.score(LEASES, &lease), Some(renewed.expires_ms));
        assert!(
            !conn.acquire_at(now, &policy, "u").ok,
            "the one slot is still taken"
        );
    }
    // 1.8 s after it was taken, past its first expiry: still the holder's.
    assert!(now > taken.expires_ms);
    assert!(
        !conn.acquire_at(now + 999, &policy, "u").ok,
        "held until its renewed expiry"
    );
    now += 1_000;
    assert!(
        !conn.renew_at(now, &policy, "u", &lease).ok,
        "expired: too late to renew"
    );
    assert!(conn.acquire_at(now, &policy, "u").ok, "the slot is free");
    assert_every_key_has_a_ttl(&redis);
}

/// On the deny list an identity acquires nothing, and the refusal writes nothing at all (not
/// even the clean-up of expired leases); its holders can still give their slots back.
#[test]
fn a_denied_identity_acquires_nothing_and_nothing_is_written() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    // Two leases taken at t0 on the script's clock, one for 30 s, one for 200 ms: by `now` the
    // second has expired but is still in the set (nothing has cleaned it up yet).
    let t0 = conn.redis_time_ms();
    let now = t0 + 250;
    let long = conc(3, Duration::from_secs(30));
    let held = conn.acquire_at(t0, &long, "u").lease.unwrap();
    let short = conc(3, Duration::from_millis(200));
    assert!(conn.acquire_at(t0, &short, "u").ok);
    redis.cli(&["SET", "rl:{u}:deny", "1", "EX", "60"]);
    let before = redis.snapshot();
    for _ in 0..3 {
        let denied = conn.acquire_at(now, &long, "u");
        assert!(!denied.ok && denied.decision.denied && denied.lease.is_none());
        assert_eq!(denied.decision.reason, Reason::Deny);
        assert_eq!(denied.holders, 1, "the expired lease does not count");
    }
    let after = redis.snapshot();
    assert_eq!(after, before, "written: {:?}", after.changes_since(&before));
    assert_eq!(
        redis.cli(&["ZCARD", LEASES]),
        "2",
        "the expired lease was not even cleaned up"
    );
    assert!(
        conn.lease_at(now, &long, "u", LeaseOp::Release, &held).ok,
        "a holder can still let go"
    );
    // Another identity is not concerned.
    assert!(conn.acquire(&long, "v").ok);
}

#[test]
fn every_key_has_a_ttl_after_any_sequence() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policies = [
        conc(3, Duration::from_secs(3_600)),
        Policy::concurrency("short", 2, Duration::from_millis(300)),
        Policy::concurrency("shadow", 1, Duration::from_secs(60)).shadowed(),
    ];
    let mut held: Vec<(usize, String, LeaseId)> = Vec::new();
    for round in 0..300usize {
        let p = round % policies.len();
        let id = format!("id{}", round % 4);
        match round % 5 {
            0..=2 => {
                if let Some(lease) = conn.acquire(&policies[p], &id).lease {
                    held.push((p, id, lease));
                }
            }
            3 if !held.is_empty() => {
                let (p, id, lease) = held.swap_remove(round % held.len());
                conn.release(&policies[p], &id, &lease);
            }
            _ if !held.is_empty() => {
                let (p, id, lease) = &held[round % held.len()];
                conn.renew(&policies[*p], id, lease);
            }
            _ => {}
        }
        if round % 50 == 0 {
            assert_every_key_has_a_ttl(&redis);
        }
    }
    assert!(!redis.key_pttls("rl:*").is_empty());
    assert_every_key_has_a_ttl(&redis);
    // The set lives until its furthest lease expires, and a grace: never less.
    let mut conn2 = Conn::open(&redis);
    for (key, pttl) in redis.key_pttls("rl:*") {
        let furthest: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(-1)
            .arg(-1)
            .arg("WITHSCORES")
            .query(&mut conn2.0)
            .unwrap();
        if let Some((_, expiry)) = furthest.first() {
            let left = *expiry as i64 - conn2.redis_time_ms() as i64;
            assert!(
                pttl >= left,
                "{key}: PTTL {pttl} < {left} ms to its last lease"
            );
        }
    }
}

/// A shadow policy admits every acquire and reports the ones beyond the limit as `shadow`.
#[test]
fn shadow_admits_beyond_the_limit_and_says_so() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policy = conc(2, Duration::from_secs(30)).shadowed();
    let reasons: Vec<Reason> = (0..5)
        .map(|n| {
            let taken = conn.acquire(&policy, "u");
            assert!(taken.ok && taken.decision.allowed && taken.lease.is_some());
            assert_eq!(taken.holders, n + 1);
            taken.decision.reason
        })
        .collect();
    assert_eq!(
        reasons,
        [
            Reason::Limit,
            Reason::Limit,
            Reason::Shadow,
            Reason::Shadow,
            Reason::Shadow
        ]
    );
    assert_eq!(conn.live_holders(LEASES), 5);
    let last = conn.acquire(&policy, "u");
    assert_eq!(last.decision.remaining, 0);
    assert_eq!(last.decision.shadowed, ["conc"]);
}

#[test]
fn keys_are_hash_tagged_by_the_encoded_identity() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policy = conc(3, Duration::from_secs(30));
    let lease = conn.acquire(&policy, "x}{y").lease.unwrap();
    assert_eq!(redis.cli(&["KEYS", "rl:*"]), "rl:{x%7D%7By}:conc:lease");
    assert_eq!(
        redis.cli(&["ZRANGE", "rl:{x%7D%7By}:conc:lease", "0", "-1"]),
        lease.as_str()
    );
}

#[test]
fn leases_use_the_redis_clock() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let before = conn.redis_time_ms();
    let taken = conn.acquire(&conc(3, Duration::from_secs(30)), "u");
    let after = conn.redis_time_ms();
    let now = taken.decision.now_ms;
    assert!(before <= now && now <= after, "{before} {now} {after}");
    assert_eq!(taken.expires_ms, now + 30_000);
    // The production call carries no clock of its own (the test-only one is ARGV[6]).
    let lease = LeaseId::generate().unwrap();
    let policy = conc(3, Duration::from_secs(30));
    assert_eq!(
        lease_call(&policy, "u", LeaseOp::Acquire, &lease)
            .unwrap()
            .args
            .len(),
        5
    );
}

/// The test clock is the script's "now" for every rule: a lease taken at an instant the test
/// names expires exactly a TTL later, whatever Redis `TIME` says.
#[test]
fn the_test_clock_replaces_redis_time() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policy = conc(1, Duration::from_secs(30));
    let at = conn.redis_time_ms() + 3_600_000;
    let taken = conn.acquire_at(at, &policy, "u");
    assert_eq!(taken.expires_ms, at + 30_000);
    assert_eq!(
        conn.score(LEASES, taken.lease.as_ref().unwrap()),
        Some(at + 30_000)
    );
    // On Redis TIME (an hour earlier) the lease is live, on the test clock past its expiry not.
    assert!(!conn.acquire(&policy, "u").ok, "live by Redis TIME");
    assert!(
        conn.acquire_at(at + 30_000, &policy, "u").ok,
        "expired at the given instant"
    );
}

#[test]
fn the_script_refuses_an_unknown_mode_before_writing() {
    let redis = RedisServer::start();
    let mut conn = Conn::open(&redis);
    let policy = conc(3, Duration::from_secs(30));
    let lease = LeaseId::generate().unwrap();
    let mut call = lease_call(&policy, "u", LeaseOp::Acquire, &lease).unwrap();
    call.args[0] = "steal".into();
    let err = conn.run(&call.eval()).unwrap_err();
    assert!(err.contains("unknown lease mode"), "{err}");
    assert_eq!(redis.cli(&["DBSIZE"]), "0");
}

/// The service over the real REST proxy: one REST request per operation once the script is
/// cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_takes_one_round_trip_per_operation() {
    use edgecount::service::ConcurrencyLimiter;
    use edgecount::store::http_native::NativeRestStore;
    const TOKEN: &str = "lease-rest-token";
    let redis = RedisServer::start();
    let proxy = support::proxy::spawn_proxy(&redis, TOKEN);
    let store = NativeRestStore::connect(proxy.url(), TOKEN).unwrap();
    let exports = ConcurrencyLimiter::new(
        &store,
        Policy::concurrency("exports", 2, Duration::from_secs(30)),
    );
    let http = reqwest::Client::new();
    let requests = || async {
        let stats: serde_json::Value = http
            .get(format!("{}/_stats", proxy.url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["requests"].as_u64().unwrap()
    };
    // The first call loads the script (NOSCRIPT, then EVAL).
    let warm = exports.acquire("warm").await.unwrap();
    exports
        .release("warm", warm.lease.as_ref().unwrap())
        .await
        .unwrap();

    let mut taken = Vec::new();
    for _ in 0..3 {
        let before = requests().await;
        taken.push(exports.acquire("user:42").await.unwrap());
        assert_eq!(requests().await - before, 1, "one REST request per acquire");
    }
    assert!(taken[0].ok && taken[1].ok && !taken[2].ok);
    let lease = taken[0].lease.as_ref().unwrap();
    let before = requests().await;
    assert!(exports.renew("user:42", lease).await.unwrap().ok);
    assert!(exports.release("user:42", lease).await.unwrap().ok);
    assert!(!exports.release("user:42", lease).await.unwrap().ok);
    assert_eq!(
        requests().await - before,
        3,
        "one REST request per operation"
    );
    assert!(
        exports.acquire("user:42").await.unwrap().ok,
        "the released slot"
    );
    // A rate-limit policy is refused before anything is sent.
    let wrong = ConcurrencyLimiter::new(&store, Policy::sliding("api", 1, Duration::from_secs(1)));
    let before = requests().await;
    assert!(matches!(
        wrong.acquire("u").await,
        Err(edgecount::service::Error::Rule(_))
    ));
    assert_eq!(requests().await, before, "nothing sent");
}
