//! The counter scripts on a real, private redis-server: atomicity, buckets and TTLs, uniques,
//! idempotency, live updates, create/set/update/reset/delete rules, stats and batches.

mod support;

use std::time::Duration;

use edgecount::core::command::{Command, Reply};
use edgecount::core::counter::calendar::{day_label, hour_label};
use edgecount::core::counter::*;
use edgecount::core::names::Name;
use support::RedisServer;

/// 2026-11-25T23:59:50Z: ten seconds before midnight.
const NEAR_MIDNIGHT: i64 = 1_795_651_190;

fn name(ns: &str, key: &str) -> Name {
    Name::parse(ns, key).unwrap()
}

/// Run a script call as `EVAL` (a fresh server has no scripts cached).
fn run(redis: &RedisServer, call: &ScriptCall) -> Reply {
    support::direct::exec(&redis.url(), &call.eval()).expect("script runs")
}

fn command(redis: &RedisServer, cmd: &Command) -> Reply {
    support::direct::exec(&redis.url(), cmd).expect("command runs")
}

/// The tests' clock, unix seconds: what the serving process passes every counter script. Read
/// once, so a test's hits share their day and hour even when it runs across midnight.
fn now() -> i64 {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    })
}

/// A hit at `at` (unix seconds), the service-wide figures in the script (standalone Redis).
fn hit_at(redis: &RedisServer, name: &Name, request: &HitRequest<'_>, at: i64) -> HitOutcome {
    let call = hit_call(name, request, at, Figures::InScript).unwrap();
    parse_hit(run(redis, &call)).unwrap()
}

fn hit(redis: &RedisServer, name: &Name, request: &HitRequest<'_>) -> HitOutcome {
    hit_at(redis, name, request, now())
}

fn ttl(redis: &RedisServer, key: &str) -> i64 {
    redis.cli(&["TTL", key]).parse().unwrap()
}

fn keys_of(redis: &RedisServer, name: &Name) -> Vec<String> {
    let pattern = format!("ec:{{{}:{}}}*", name.ns, name.key);
    let mut keys: Vec<String> = redis
        .cli(&["--scan", "--pattern", &pattern])
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

fn pipeline(redis: &RedisServer, commands: &[Command]) -> Vec<Result<Reply, String>> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let mut pipe = redis::pipe();
    for cmd in commands {
        let mut c = redis::cmd(cmd.name());
        for arg in &cmd.parts()[1..] {
            c.arg(arg.as_str());
        }
        pipe.add_command(c);
    }
    let values: Vec<redis::Value> = pipe.query(&mut conn).expect("pipeline runs");
    values
        .into_iter()
        .map(|v| match support::direct::to_reply(v) {
            Reply::Error(e) => Err(e),
            reply => Ok(reply),
        })
        .collect()
}

#[test]
fn concurrent_hits_count_exactly() {
    let redis = RedisServer::start();
    let counter = name("load", "home");
    // Cache the script once, then hammer it with EVALSHA from 50 connections.
    let at = now();
    hit_at(&redis, &counter, &HitRequest::default(), at);
    let call = hit_call(&counter, &HitRequest::default(), at, Figures::InScript).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..50 {
            let url = redis.url();
            let command = call.evalsha();
            scope.spawn(move || {
                let client = redis::Client::open(url).unwrap();
                let mut conn = client.get_connection().unwrap();
                for _ in 0..100 {
                    let mut c = redis::cmd(command.name());
                    for arg in &command.parts()[1..] {
                        c.arg(arg.as_str());
                    }
                    let reply = support::direct::to_reply(c.query(&mut conn).unwrap());
                    assert!(parse_hit(reply).unwrap().counted);
                }
            });
        }
    });
    let value = parse_get(command(&redis, &get_command(&counter))).unwrap();
    assert_eq!(value, 5001);
    let after = hit_at(&redis, &counter, &HitRequest::default(), at);
    assert_eq!(after.value, 5002);
    assert_eq!(after.today, 5002);
    // The service-wide figure of the day counted every one of them.
    let figures = parse_global_stats(pipeline(&redis, &global_stats_commands(at))).unwrap();
    assert_eq!(figures.hits_today, 5002);
}

#[test]
fn a_hit_writes_value_meta_buckets_and_uniques_with_ttls() {
    let redis = RedisServer::start();
    let counter = name("blog", "home");
    let now = now();
    let visitor = Visitor {
        secret: b"uniques-secret",
        ip: "203.0.113.7",
        user_agent: "Mozilla/5.0 (test)",
    };
    let request = HitRequest {
        visitor: Some(visitor),
        idempotency_key: Some("req-1"),
        ..Default::default()
    };
    let first = hit_at(&redis, &counter, &request, now);
    assert_eq!(
        first,
        HitOutcome {
            value: 1,
            today: 1,
            uniques_today: 1,
            counted: true,
            replay: false,
            created: true,
            limited: false,
        }
    );

    let keys = CounterKeys::new(&counter);
    let written = keys_of(&redis, &counter);
    // The buckets are named by the caller's clock.
    let day = day_label(now);
    let mut expected = vec![
        keys.value(),
        keys.meta(),
        keys.daily(&day),
        keys.hourly(&hour_label(now)),
        keys.uniques(&day),
        keys.idempotency("req-1"),
    ];
    expected.sort();
    assert_eq!(written, expected);
    // Counters live forever; everything else the hit wrote expires.
    for key in &written {
        let ttl = ttl(&redis, key);
        let kind = key.split("}:").nth(1).unwrap().split(':').next().unwrap();
        let range = match kind {
            "v" | "m" => -1..=-1,
            "d" | "u" => 399 * 86_400..=400 * 86_400,
            "h" => 2 * 86_400..=3 * 86_400,
            "i" => 1..=86_400,
            other => panic!("unexpected key kind {other} in {key}"),
        };
        assert!(range.contains(&ttl), "{key}: TTL {ttl}");
    }

    // The meta of a counter created by a hit: created now, default bounds.
    let info = parse_info(run(&redis, &info_call(&counter)), &counter).unwrap();
    assert_eq!(info.value, 1);
    assert_eq!(info.created, Some(now * 1000));
    assert_eq!((info.update_lowerbound, info.update_upperbound), (-1, 1));
    assert!(!info.enable_reset);
    assert_eq!(info.expires_in, None);

    // The IP never reaches Redis: not in a key, not in a value.
    for key in keys_of(&redis, &counter) {
        assert!(!key.contains("203.0.113.7"));
        if key != keys.uniques(&day) && key != keys.meta() {
            assert!(!redis.cli(&["GET", &key]).contains("203.0.113.7"));
        }
    }

    // Same visitor again: one more hit, still one unique; another visitor: two.
    let again = hit_at(
        &redis,
        &counter,
        &HitRequest {
            visitor: Some(visitor),
            ..Default::default()
        },
        now,
    );
    assert_eq!((again.value, again.today, again.uniques_today), (2, 2, 1));
    assert!(!again.created);
    let other = Visitor {
        ip: "198.51.100.1",
        ..visitor
    };
    let third = hit_at(
        &redis,
        &counter,
        &HitRequest {
            visitor: Some(other),
            ..Default::default()
        },
        now,
    );
    assert_eq!((third.value, third.uniques_today), (3, 2));
}

#[test]
fn a_retry_with_the_same_idempotency_key_counts_once() {
    let redis = RedisServer::start();
    let counter = name("blog", "retry");
    let with_id = |id| HitRequest {
        idempotency_key: Some(id),
        ..Default::default()
    };
    let first = hit(&redis, &counter, &with_id("r-1"));
    hit(&redis, &counter, &HitRequest::default());
    let retry = hit(&redis, &counter, &with_id("r-1"));
    assert_eq!(retry.value, first.value);
    assert!(retry.replay && !retry.counted);
    assert_eq!(retry.today, 2);
    assert_eq!(parse_get(command(&redis, &get_command(&counter))), Ok(2));
    let fresh = hit(&redis, &counter, &with_id("r-2"));
    assert_eq!((fresh.value, fresh.replay), (3, false));
}

#[test]
fn uncounted_hits_change_nothing() {
    let redis = RedisServer::start();
    let counter = name("blog", "bots");
    let bot = HitRequest {
        count: false,
        ..Default::default()
    };
    let answer = hit(&redis, &counter, &bot);
    assert_eq!((answer.value, answer.counted), (0, false));
    assert!(keys_of(&redis, &counter).is_empty());
    // Nothing service-wide either: not the day's figure, not the namespace's registry.
    assert_eq!(redis.cli(&["DBSIZE"]), "0");
    assert_eq!(
        parse_get(command(&redis, &get_command(&counter))),
        Err(CounterError::NotFound)
    );
    hit(&redis, &counter, &HitRequest::default());
    let answer = hit(&redis, &counter, &bot);
    assert_eq!((answer.value, answer.today, answer.counted), (1, 1, false));
}

#[test]
fn hits_publish_the_new_value() {
    let redis = RedisServer::start();
    let counter = name("live", "home");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut pubsub = conn.as_pubsub();
    pubsub
        .subscribe(CounterKeys::new(&counter).channel())
        .unwrap();
    hit(&redis, &counter, &HitRequest::default());
    hit(&redis, &counter, &HitRequest::default());
    let payloads: Vec<String> = (0..2)
        .map(|_| pubsub.get_message().unwrap().get_payload().unwrap())
        .collect();
    assert_eq!(payloads, [r#"{"value":1}"#, r#"{"value":2}"#]);
}

#[test]
fn buckets_follow_the_callers_clock_across_midnight() {
    let redis = RedisServer::start();
    let counter = name("clock", "home");
    let visitor = Visitor {
        secret: b"s",
        ip: "203.0.113.9",
        user_agent: "ua",
    };
    let request = HitRequest {
        visitor: Some(visitor),
        ..Default::default()
    };
    let before = hit_at(&redis, &counter, &request, NEAR_MIDNIGHT);
    assert_eq!((before.today, before.uniques_today), (1, 1));
    // Twenty seconds later it is tomorrow: a new day's buckets, and the visitor is new there.
    let after = hit_at(&redis, &counter, &request, NEAR_MIDNIGHT + 20);
    assert_eq!((after.value, after.today, after.uniques_today), (2, 1, 1));
    let keys = CounterKeys::new(&counter);
    assert_eq!(redis.cli(&["GET", &keys.daily("20261125")]), "1");
    assert_eq!(redis.cli(&["GET", &keys.daily("20261126")]), "1");
    assert_eq!(redis.cli(&["GET", &keys.hourly("2026112523")]), "1");
    assert_eq!(redis.cli(&["GET", &keys.hourly("2026112600")]), "1");
    assert_eq!(redis.cli(&["PFCOUNT", &keys.uniques("20261125")]), "1");
    assert_eq!(redis.cli(&["PFCOUNT", &keys.uniques("20261126")]), "1");
    // And the service-wide hits of each day got theirs.
    let shard = edgecount::core::counter::keys::global_shard(&counter);
    for day in ["20261125", "20261126"] {
        let key = edgecount::core::counter::keys::global_hits_key(day, shard);
        assert_eq!(redis.cli(&["GET", &key]), "1", "{key}");
    }
}

#[test]
fn create_is_exclusive_and_stores_only_the_admin_key_hash() {
    let redis = RedisServer::start();
    let counter = name("shop", "stock");
    let spec = CreateSpec::parse(Some("10"), Some("1"), Some("-5"), Some("3")).unwrap();
    let (call, admin_key) = create_call(&counter, &spec, now()).unwrap();
    let created = parse_create(run(&redis, &call), &counter, &admin_key).unwrap();
    assert_eq!(
        serde_json::to_value(&created).unwrap(),
        serde_json::json!({"namespace": "shop", "key": "stock", "value": 10, "admin_key": admin_key.as_str()})
    );
    let meta = redis.cli(&["HGET", &CounterKeys::new(&counter).meta(), "admin"]);
    assert_eq!(meta, admin_key.hash());
    assert!(!redis
        .cli(&["HGETALL", &CounterKeys::new(&counter).meta()])
        .contains(admin_key.as_str()));

    let (again, other_key) = create_call(&counter, &CreateSpec::default(), now()).unwrap();
    assert_eq!(
        parse_create(run(&redis, &again), &counter, &other_key),
        Err(CounterError::AlreadyExists)
    );
    assert_eq!(
        CounterError::AlreadyExists.status(),
        http::StatusCode::CONFLICT
    );
    // A hit continues from the initial value and keeps the creator's meta.
    assert_eq!(hit(&redis, &counter, &HitRequest::default()).value, 11);
    let info = parse_info(run(&redis, &info_call(&counter)), &counter).unwrap();
    assert_eq!(
        (
            info.enable_reset,
            info.update_lowerbound,
            info.update_upperbound
        ),
        (true, -5, 3)
    );
    // Created counters exist even if never hit; an existing hit-created counter conflicts too.
    let hit_first = name("shop", "hit-first");
    hit(&redis, &hit_first, &HitRequest::default());
    let (call, key) = create_call(
        &hit_first,
        &CreateSpec::parse(Some("5"), None, None, None).unwrap(),
        now(),
    )
    .unwrap();
    assert_eq!(
        parse_create(run(&redis, &call), &hit_first, &key),
        Err(CounterError::AlreadyExists)
    );
    let clocked = name("shop", "clocked");
    let (call, key) = create_call(&clocked, &CreateSpec::default(), 1_000).unwrap();
    parse_create(run(&redis, &call), &clocked, &key).unwrap();
    let info = parse_info(run(&redis, &info_call(&clocked)), &clocked).unwrap();
    assert_eq!(info.created, Some(1_000_000));
}

/// Settle the authority of `bearer` the way the service does (global token "global-token").
fn authority(redis: &RedisServer, counter: &Name, bearer: Option<&str>) -> Authority {
    match begin_auth(counter, bearer, Some("global-token")) {
        AuthStep::Done(a) => a,
        AuthStep::ReadStoredHashes([meta, namespace]) => {
            let (meta, namespace) = (command(redis, &meta), command(redis, &namespace));
            finish_auth(bearer.unwrap(), [&meta, &namespace]).unwrap()
        }
    }
}

#[test]
fn set_needs_admin_or_enable_reset() {
    let redis = RedisServer::start();
    let locked = name("set", "locked");
    let (call, key) = create_call(&locked, &CreateSpec::default(), now()).unwrap();
    parse_create(run(&redis, &call), &locked, &key).unwrap();

    let public = authority(&redis, &locked, None);
    assert_eq!(
        parse_set(run(&redis, &set_call(&locked, 5, &public))),
        Err(CounterError::AdminRequired)
    );
    let wrong = authority(&redis, &locked, Some("not-the-key"));
    assert_eq!(wrong, Authority::Public);
    let owner = authority(&redis, &locked, Some(key.as_str()));
    assert!(matches!(owner, Authority::CounterAdmin { .. }));
    assert_eq!(
        parse_set(run(&redis, &set_call(&locked, 5, &owner))),
        Ok(SetOutcome {
            old_value: 0,
            value: 5
        })
    );
    let global = authority(&redis, &locked, Some("global-token"));
    assert_eq!(global, Authority::GlobalAdmin);
    let big = i64::MAX - 1;
    assert_eq!(
        parse_set(run(&redis, &set_call(&locked, big, &global))),
        Ok(SetOutcome {
            old_value: 5,
            value: big
        })
    );
    assert_eq!(parse_get(command(&redis, &get_command(&locked))), Ok(big));

    // A verified hash that is no longer the stored one (deleted and re-created) is refused.
    let stale = Authority::CounterAdmin {
        admin_hash: hash_admin_key("an old key"),
    };
    assert_eq!(
        parse_set(run(&redis, &set_call(&locked, 1, &stale))),
        Err(CounterError::AdminRequired)
    );

    let open = name("set", "open");
    let spec = CreateSpec::parse(None, Some("1"), None, None).unwrap();
    let (call, key) = create_call(&open, &spec, now()).unwrap();
    parse_create(run(&redis, &call), &open, &key).unwrap();
    assert_eq!(
        parse_set(run(&redis, &set_call(&open, -7, &Authority::Public))),
        Ok(SetOutcome {
            old_value: 0,
            value: -7
        })
    );
    assert_eq!(
        parse_set(run(&redis, &set_call(&name("set", "missing"), 1, &global))),
        Err(CounterError::NotFound)
    );
}

#[test]
fn updates_stay_within_bounds_unless_admin_and_never_overflow() {
    let redis = RedisServer::start();
    let counter = name("upd", "votes");
    let spec = CreateSpec::parse(Some("0"), None, Some("-2"), Some("3")).unwrap();
    let (call, _key) = create_call(&counter, &spec, now()).unwrap();
    run(&redis, &call);
    let update =
        |amount, auth: &Authority| parse_update(run(&redis, &update_call(&counter, amount, auth)));
    assert_eq!(update(3, &Authority::Public), Ok(3));
    assert_eq!(update(-2, &Authority::Public), Ok(1));
    assert_eq!(
        update(4, &Authority::Public),
        Err(CounterError::OutsideBounds)
    );
    assert_eq!(
        update(-3, &Authority::Public),
        Err(CounterError::OutsideBounds)
    );
    assert_eq!(update(1000, &Authority::GlobalAdmin), Ok(1001));
    assert_eq!(
        CounterError::OutsideBounds.status(),
        http::StatusCode::FORBIDDEN
    );

    // Values beyond 2^53 stay exact (never through Lua doubles).
    run(
        &redis,
        &set_call(&counter, 9_007_199_254_740_993, &Authority::GlobalAdmin),
    );
    assert_eq!(update(2, &Authority::Public), Ok(9_007_199_254_740_995));
    run(
        &redis,
        &set_call(&counter, i64::MAX - 1, &Authority::GlobalAdmin),
    );
    assert_eq!(
        hit(&redis, &counter, &HitRequest::default()).value,
        i64::MAX
    );
    assert_eq!(update(1, &Authority::Public), Err(CounterError::Overflow));
    assert_eq!(
        parse_hit(run(
            &redis,
            &hit_call(&counter, &HitRequest::default(), now(), Figures::InScript).unwrap()
        )),
        Err(CounterError::Overflow)
    );
    assert_eq!(
        parse_get(command(&redis, &get_command(&counter))),
        Ok(i64::MAX)
    );
    assert_eq!(
        update(1, &Authority::Public).unwrap_err().status(),
        http::StatusCode::BAD_REQUEST
    );
    assert_eq!(
        parse_update(run(
            &redis,
            &update_call(&name("upd", "missing"), 1, &Authority::GlobalAdmin)
        )),
        Err(CounterError::NotFound)
    );
    // A counter created by a hit has CountAPI's default bounds, -1..1.
    let hit_made = name("upd", "hit-made");
    hit(&redis, &hit_made, &HitRequest::default());
    assert_eq!(
        parse_update(run(&redis, &update_call(&hit_made, 1, &Authority::Public))),
        Ok(2)
    );
    assert_eq!(
        parse_update(run(&redis, &update_call(&hit_made, 2, &Authority::Public))),
        Err(CounterError::OutsideBounds)
    );
}

#[test]
fn reset_is_admin_only_and_keeps_history() {
    let redis = RedisServer::start();
    let counter = name("rst", "home");
    hit(&redis, &counter, &HitRequest::default());
    hit(&redis, &counter, &HitRequest::default());
    assert_eq!(
        parse_reset(run(&redis, &reset_call(&counter, &Authority::Public))),
        Err(CounterError::AdminRequired)
    );
    assert_eq!(
        parse_reset(run(&redis, &reset_call(&counter, &Authority::GlobalAdmin))),
        Ok(0)
    );
    let after = hit(&redis, &counter, &HitRequest::default());
    assert_eq!((after.value, after.today), (1, 3));
    assert_eq!(
        parse_reset(run(
            &redis,
            &reset_call(&name("rst", "none"), &Authority::GlobalAdmin)
        )),
        Err(CounterError::NotFound)
    );
}

#[test]
fn delete_removes_the_counter_and_its_buckets() {
    let redis = RedisServer::start();
    let counter = name("del", "home");
    let neighbour = name("del", "other");
    let now = now();
    let visitor = Visitor {
        secret: b"s",
        ip: "203.0.113.1",
        user_agent: "ua",
    };
    // Buckets today, 3 hours ago, 10 days ago and 390 days ago (all within their TTLs).
    for offset in [0, 3 * 3600, 10 * 86_400, 390 * 86_400] {
        let request = HitRequest {
            visitor: Some(visitor),
            ..Default::default()
        };
        hit_at(&redis, &counter, &request, now - offset);
    }
    hit(
        &redis,
        &counter,
        &HitRequest {
            idempotency_key: Some("once"),
            ..Default::default()
        },
    );
    hit(&redis, &neighbour, &HitRequest::default());
    assert!(keys_of(&redis, &counter).len() >= 12);

    assert_eq!(
        parse_delete(run(&redis, &delete_call(&counter, &Authority::Public, now))),
        Err(CounterError::AdminRequired)
    );
    assert_eq!(
        parse_delete(run(
            &redis,
            &delete_call(&counter, &Authority::GlobalAdmin, now)
        )),
        Ok(())
    );
    // Only the idempotency record is left, to expire within a day (it cannot be named), and the
    // hourly buckets of the hits made with an old clock: in production an hourly bucket expires
    // 72 h after its hour was written, so none older than the delete's window exists.
    let oldest_live_hour = hour_label(now - 72 * 3600);
    let left: Vec<String> = keys_of(&redis, &counter)
        .into_iter()
        .filter(|k| {
            let hour = k.rsplit_once(":h:").map(|(_, h)| h.to_owned());
            !matches!(hour, Some(h) if h < oldest_live_hour)
        })
        .collect();
    assert_eq!(left, [CounterKeys::new(&counter).idempotency("once")]);
    assert_eq!(
        parse_get(command(&redis, &get_command(&counter))),
        Err(CounterError::NotFound)
    );
    assert_eq!(
        parse_delete(run(
            &redis,
            &delete_call(&counter, &Authority::GlobalAdmin, now)
        )),
        Err(CounterError::NotFound)
    );
    // The neighbour is untouched, and a re-created counter starts clean.
    assert_eq!(parse_get(command(&redis, &get_command(&neighbour))), Ok(1));
    let again = hit_at(&redis, &counter, &HitRequest::default(), now);
    assert_eq!((again.value, again.today, again.created), (1, 1, true));
}

#[test]
fn stats_have_days_and_48_hours_on_the_callers_clock() {
    let redis = RedisServer::start();
    let counter = name("stats", "home");
    assert_eq!(
        parse_stats(
            run(&redis, &stats_call(&counter, 7, NEAR_MIDNIGHT)),
            7,
            NEAR_MIDNIGHT
        ),
        Err(CounterError::NotFound)
    );
    let visit = |ip: &'static str| HitRequest {
        visitor: Some(Visitor {
            secret: b"s",
            ip,
            user_agent: "ua",
        }),
        ..Default::default()
    };
    // Two days ago once; today three times by two visitors, in two different hours.
    hit_at(
        &redis,
        &counter,
        &visit("10.0.0.1"),
        NEAR_MIDNIGHT - 2 * 86_400,
    );
    hit_at(&redis, &counter, &visit("10.0.0.1"), NEAR_MIDNIGHT - 3600);
    hit_at(&redis, &counter, &visit("10.0.0.1"), NEAR_MIDNIGHT);
    hit_at(&redis, &counter, &visit("10.0.0.2"), NEAR_MIDNIGHT);

    let stats = parse_stats(
        run(&redis, &stats_call(&counter, 3, NEAR_MIDNIGHT)),
        3,
        NEAR_MIDNIGHT,
    )
    .unwrap();
    assert_eq!(stats.total, 4);
    let days: Vec<(&str, i64, i64)> = stats
        .days
        .iter()
        .map(|d| (d.date.as_str(), d.hits, d.uniques))
        .collect();
    assert_eq!(
        days,
        [
            ("2026-11-23", 1, 1),
            ("2026-11-24", 0, 0),
            ("2026-11-25", 3, 2)
        ]
    );
    assert_eq!(stats.hours.len(), 48);
    assert_eq!(stats.hours[47].hour, "2026-11-25T23:00:00Z");
    assert_eq!(stats.hours[47].hits, 2);
    assert_eq!(stats.hours[46].hits, 1);
    assert_eq!(stats.hours[0].hour, "2026-11-24T00:00:00Z");
    assert_eq!(stats.hours.iter().map(|h| h.hits).sum::<i64>(), 3);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(
        json["days"][2],
        serde_json::json!({"date": "2026-11-25", "hits": 3, "uniques": 2})
    );

    // Asking for more than the daily buckets keep gives what they keep (400 days), ending today.
    let days = parse_days(Some("5000")).unwrap();
    let today = now();
    let long = parse_stats(run(&redis, &stats_call(&counter, days, today)), days, today).unwrap();
    assert_eq!(long.days.len(), 400);
    assert_eq!(
        long.days.last().unwrap().date,
        edgecount::core::counter::calendar::iso_date(&day_label(today))
    );
}

#[test]
fn a_batch_is_one_pipeline_with_results_by_index() {
    let redis = RedisServer::start();
    let items: Vec<serde_json::Value> = vec![
        serde_json::json!({"op": "hit", "namespace": "batch", "key": "aaa"}),
        serde_json::json!({"op": "hit", "namespace": "batch", "key": "aaa"}),
        serde_json::json!({"op": "hit", "namespace": "batch", "key": "bbb", "idempotency_key": "k1"}),
        serde_json::json!({"op": "hit", "namespace": "batch", "key": "bbb", "idempotency_key": "k1"}),
        serde_json::json!({"op": "update", "namespace": "batch", "key": "aaa", "amount": 1}),
        serde_json::json!({"op": "update", "namespace": "batch", "key": "aaa", "amount": 50}),
        serde_json::json!({"op": "update", "namespace": "batch", "key": "nope", "amount": 1}),
    ];
    // A fresh server has no scripts cached: the plan's SCRIPT LOADs make EVALSHA work.
    let plan = plan_batch(&items, &Authority::Public, now()).unwrap();
    let results = plan.parse(pipeline(&redis, &plan.commands));
    let values: Vec<Result<i64, CounterError>> = results
        .into_iter()
        .map(|r| {
            r.map(|o| match o {
                BatchOutcome::Hit(h) => h.value,
                BatchOutcome::Update { value } => value,
            })
        })
        .collect();
    assert_eq!(values[..5], [Ok(1), Ok(2), Ok(1), Ok(1), Ok(3)]);
    assert_eq!(values[5], Err(CounterError::OutsideBounds));
    assert_eq!(values[6], Err(CounterError::NotFound));
    // The hit counters joined their namespace's listing in the same pipeline.
    let members = command(
        &redis,
        &edgecount::core::command::Command::new("SMEMBERS").arg("ec:{batch}:counters"),
    );
    let mut members: Vec<String> = members
        .into_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    members.sort();
    assert_eq!(members, ["aaa", "bbb"]);
    // A malformed operation refuses the whole batch before anything is sent.
    let mut bad = items.clone();
    bad.push(serde_json::json!({"op": "hit", "key": "x"}));
    assert!(matches!(
        plan_batch(&bad, &Authority::Public, now()),
        Err(CounterError::InvalidBatchItem(_))
    ));
}

#[test]
fn global_figures_sum_their_shards() {
    let redis = RedisServer::start();
    let now = now();
    let mut commands = Vec::new();
    for key in ["aaa", "bbb", "ccc", "aaa"] {
        commands.extend(global_hit_commands(&name("glob", key), now));
    }
    assert!(pipeline(&redis, &commands).iter().all(Result::is_ok));
    let stats = parse_global_stats(pipeline(&redis, &global_stats_commands(now))).unwrap();
    assert_eq!(
        stats,
        GlobalStats {
            counters: 3,
            hits_today: 4
        }
    );
    // The same figures in one script (where one may span the shards' slots).
    let one = parse_global_stats_reply(run(&redis, &global_stats_call(now))).unwrap();
    assert_eq!(one, stats);
    let shard_key = edgecount::core::counter::keys::global_hits_key(
        &day_label(now),
        edgecount::core::counter::keys::global_shard(&name("glob", "aaa")),
    );
    assert!(ttl(&redis, &shard_key) > 399 * 86_400);
}

#[test]
fn abuse_limit_caps_counted_hits_per_client_and_counter() {
    use edgecount::core::counter::AbuseLimit;
    let redis = RedisServer::start();
    let counter = Name::parse("blog", "abuse").unwrap();
    let other = Name::parse("blog", "other").unwrap();
    let limited = |ip| HitRequest {
        abuse: Some(AbuseLimit {
            ip,
            limit: 3,
            window_secs: 3600,
            secret: Some(b"s3cret"),
        }),
        ..Default::default()
    };
    // One window for every hit, even when the test runs across a window's end.
    let at = now();
    let outcomes: Vec<HitOutcome> = (0..5)
        .map(|_| hit_at(&redis, &counter, &limited("203.0.113.9"), at))
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .map(|o| (o.value, o.counted, o.limited))
            .collect::<Vec<_>>(),
        [
            (1, true, false),
            (2, true, false),
            (3, true, false),
            (3, false, true),
            (3, false, true)
        ]
    );
    // Another client, and the same client on another counter, have their own budgets.
    assert!(hit_at(&redis, &counter, &limited("203.0.113.10"), at).counted);
    assert!(hit_at(&redis, &other, &limited("203.0.113.9"), at).counted);
    // A refused hit wrote nothing service-wide: the day's figure holds the counted ones only.
    let figures = parse_global_stats(pipeline(&redis, &global_stats_commands(at))).unwrap();
    assert_eq!(figures.hits_today, 5);
    // The client key holds a hash, never the IP, and expires with its window.
    let keys = redis.cli(&["KEYS", "ec:{blog:abuse}:a:*"]);
    assert_eq!(keys.lines().count(), 2, "{keys}");
    for key in keys.lines() {
        assert!(!key.contains("203.0.113"), "{key}");
        let ttl: i64 = redis.cli(&["TTL", key]).parse().unwrap();
        assert!((1..=3600).contains(&ttl), "{key} ttl {ttl}");
    }
}
