//! Every script the project has declares every key it touches in `KEYS` — Redis's documented
//! rule for scripts (Dragonfly refuses undeclared keys by default, Upstash locks by them, a
//! Cluster routes by them). Each script's paths are driven on a private redis-server under
//! `MONITOR`; every command a script ran itself (MONITOR's `lua` lines) has its keys read by
//! Redis (`COMMAND GETKEYS`) and checked against the `KEYS` of the call that ran it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgecount::core::command::{Command, Reply, Script, ScriptCall};
use edgecount::core::counter::*;
use edgecount::core::names::Name;
use edgecount::core::ratelimit::deny::{self, DenyTarget, DenyWrite};
use edgecount::core::ratelimit::lease::{self, LeaseId, LeaseOp};
use edgecount::core::ratelimit::tiers::{set_override_command, Override};
use edgecount::core::ratelimit::{self, decision_call, Mode, PolicySet, Subject, Tiers};
use support::direct::Conn;
use support::RedisServer;

/// 2026-11-25T13:05Z: the scripts' clock where the caller gives it.
const NOW: i64 = 1_795_611_900;

/// Everything MONITOR printed, collected by a thread from a connection of its own.
struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Monitor {
    fn start(redis: &RedisServer) -> Monitor {
        let stream = TcpStream::connect(("127.0.0.1", redis.port())).expect("connect");
        let mut writer = stream.try_clone().expect("clone");
        writer.write_all(b"MONITOR\r\n").expect("MONITOR");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        let monitor = Monitor { lines };
        monitor.wait_for("+OK");
        monitor
    }

    /// Wait (bounded) until a line containing `text` arrived.
    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.lines.lock().unwrap().iter().any(|l| l.contains(text)) {
            assert!(Instant::now() < deadline, "MONITOR never showed {text:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

/// One MONITOR line: whether a script ran it, and the command's words (raw bytes).
fn parse_line(line: &str) -> Option<(bool, Vec<Vec<u8>>)> {
    // `+<time> [<db> <client>] "NAME" "arg" …`; the client is `lua` for a script's own calls.
    let (head, command) = line.split_once("] ")?;
    let lua = head.ends_with(" lua");
    let mut words = Vec::new();
    let bytes = command.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let mut word = Vec::new();
        while bytes[i] != b'"' {
            if bytes[i] == b'\\' {
                let escaped = bytes[i + 1];
                i += 2;
                word.push(match escaped {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'a' => 7,
                    b'b' => 8,
                    b'x' => {
                        let hex = std::str::from_utf8(&bytes[i..i + 2]).unwrap();
                        i += 2;
                        u8::from_str_radix(hex, 16).unwrap()
                    }
                    other => other,
                });
            } else {
                word.push(bytes[i]);
                i += 1;
            }
        }
        i += 1;
        words.push(word);
    }
    Some((lua, words))
}

/// Whether Redis's command table gives `name` any key arguments (`TIME`, `PUBLISH` have none).
fn takes_keys(conn: &mut Conn, name: &[u8]) -> bool {
    let info: redis::Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(name)
        .query(&mut conn.0)
        .expect("COMMAND INFO");
    let redis::Value::Array(entries) = info else {
        panic!("COMMAND INFO answered {info:?}")
    };
    let Some(redis::Value::Array(entry)) = entries.into_iter().next() else {
        panic!("unknown command {:?}", String::from_utf8_lossy(name))
    };
    let movable = matches!(&entry[2], redis::Value::Array(flags)
        if flags.iter().any(|f| matches!(f, redis::Value::SimpleString(s) if s == "movablekeys")));
    !matches!(entry[3], redis::Value::Int(0)) || movable
}

/// The keys of one command, as Redis itself finds them.
fn keys_of(conn: &mut Conn, words: &[Vec<u8>]) -> Vec<Vec<u8>> {
    if !takes_keys(conn, &words[0]) {
        return Vec::new();
    }
    let mut getkeys = redis::cmd("COMMAND");
    getkeys.arg("GETKEYS");
    for word in words {
        getkeys.arg(&word[..]);
    }
    match getkeys.query::<Vec<Vec<u8>>>(&mut conn.0) {
        Ok(keys) => keys,
        // "The command has no key arguments" (PUBLISH, TIME, …).
        Err(e) if e.to_string().contains("no key arguments") => Vec::new(),
        Err(e) => panic!(
            "COMMAND GETKEYS {:?}: {e}",
            String::from_utf8_lossy(&words[0])
        ),
    }
}

/// What was seen of one script: its calls, and the keys its own commands touched.
#[derive(Default)]
struct Seen {
    calls: usize,
    keys_checked: usize,
}

/// Check every script call in `lines`; per script (by SHA1 or source), what was seen.
fn check(lines: &[String], conn: &mut Conn, order_lua_first: bool) -> BTreeMap<String, Seen> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let parsed: Vec<(bool, Vec<Vec<u8>>)> = lines.iter().filter_map(|l| parse_line(l)).collect();
    // Group each script call with the commands it ran: MONITOR shows them before it or after it
    // (the calibration decides), never interleaved with another client's (scripts are atomic and
    // this test's calls are sequential).
    let mut pending_lua: Vec<&Vec<Vec<u8>>> = Vec::new();
    let mut current: Option<(String, BTreeSet<Vec<u8>>)> = None;
    let mut settle = |script: &(String, BTreeSet<Vec<u8>>),
                      lua: &[&Vec<Vec<u8>>],
                      seen: &mut BTreeMap<String, Seen>| {
        let entry = seen.entry(script.0.clone()).or_default();
        entry.calls += 1;
        for words in lua {
            for key in keys_of(conn, words) {
                assert!(
                    script.1.contains(&key),
                    "script {} ran {:?} on key {:?}, not among its KEYS {:?}",
                    script.0,
                    String::from_utf8_lossy(&words[0]),
                    String::from_utf8_lossy(&key),
                    script
                        .1
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect::<Vec<_>>()
                );
                entry.keys_checked += 1;
            }
        }
    };
    for (lua, words) in &parsed {
        if *lua {
            pending_lua.push(words);
            continue;
        }
        let name = String::from_utf8_lossy(&words[0]).to_ascii_uppercase();
        let script = (name == "EVAL" || name == "EVALSHA").then(|| {
            let id = if name == "EVALSHA" {
                String::from_utf8_lossy(&words[1]).into_owned()
            } else {
                sha1_smol::Sha1::from(&words[1]).digest().to_string()
            };
            let numkeys: usize = std::str::from_utf8(&words[2]).unwrap().parse().unwrap();
            let keys: BTreeSet<Vec<u8>> = words[3..3 + numkeys].iter().cloned().collect();
            (id, keys)
        });
        if order_lua_first {
            if let Some(script) = &script {
                settle(script, &pending_lua, &mut seen);
            } else {
                assert!(pending_lua.is_empty(), "script commands without a script");
            }
            pending_lua.clear();
        } else {
            if let Some(previous) = current.take() {
                settle(&previous, &pending_lua, &mut seen);
            }
            assert!(
                pending_lua.is_empty() || current.is_none(),
                "script commands without a script"
            );
            pending_lua.clear();
            current = script;
        }
    }
    if let Some(last) = current.take() {
        settle(&last, &pending_lua, &mut seen);
    }
    seen
}

/// Run a script call as the stores do (EVALSHA, EVAL on NOSCRIPT), whatever it answers.
fn run(conn: &mut Conn, call: &ScriptCall) -> Result<Reply, String> {
    match conn.run(&call.evalsha()) {
        Err(e) if e.starts_with("NOSCRIPT") => conn.run(&call.eval()),
        other => other,
    }
}

fn name(ns: &str, key: &str) -> Name {
    Name::parse(ns, key).unwrap()
}

/// Every path of every counter script.
fn drive_counter_scripts(conn: &mut Conn) {
    let home = name("blog", "home");
    let visitor = Visitor {
        secret: b"s",
        ip: "203.0.113.7",
        user_agent: "ua",
    };
    let abuse = AbuseLimit {
        ip: "203.0.113.7",
        limit: 2,
        window_secs: 60,
        secret: None,
    };
    let full = HitRequest {
        visitor: Some(visitor),
        idempotency_key: Some("req-1"),
        abuse: Some(abuse),
        ..Default::default()
    };
    for figures in [Figures::InScript, Figures::Beside] {
        // New counter, then a replay, an uncounted read, a client over its abuse limit.
        run(conn, &hit_call(&home, &full, NOW, figures).unwrap()).unwrap();
        run(conn, &hit_call(&home, &full, NOW, figures).unwrap()).unwrap();
        let uncounted = HitRequest {
            count: false,
            ..full
        };
        run(conn, &hit_call(&home, &uncounted, NOW, figures).unwrap()).unwrap();
        let limited = HitRequest {
            idempotency_key: None,
            ..full
        };
        for _ in 0..3 {
            run(conn, &hit_call(&home, &limited, NOW, figures).unwrap()).unwrap();
        }
        let plain = HitRequest::default();
        run(
            conn,
            &hit_call(&home, &plain, NOW + 86_400, figures).unwrap(),
        )
        .unwrap();
    }
    // The figures beside the script on Cluster, and their undo.
    run(conn, &global_hit_undo(&home, NOW)).unwrap();
    run(conn, &global_stats_call(NOW)).unwrap();
    // An overflow.
    let full_up = name("blog", "full");
    run(
        conn,
        &set_call(&full_up, 1, &Authority::GlobalAdmin), // not found yet
    )
    .unwrap();
    let (create, _) = create_call(&full_up, &CreateSpec::default(), NOW).unwrap();
    run(conn, &create).unwrap();
    run(conn, &set_call(&full_up, i64::MAX, &Authority::GlobalAdmin)).unwrap();
    run(
        conn,
        &hit_call(&full_up, &HitRequest::default(), NOW, Figures::InScript).unwrap(),
    )
    .unwrap();

    // Create, exclusive; set, update, reset, delete with every authority.
    let shop = name("shop", "stock");
    let spec = CreateSpec::parse(Some("10"), Some("0"), Some("-2"), Some("2")).unwrap();
    let (create, key) = create_call(&shop, &spec, NOW).unwrap();
    run(conn, &create).unwrap();
    run(conn, &create).unwrap();
    let owner = Authority::CounterAdmin {
        admin_hash: key.hash(),
    };
    for authority in [Authority::Public, owner.clone(), Authority::GlobalAdmin] {
        run(conn, &set_call(&shop, 5, &authority)).unwrap();
        run(conn, &update_call(&shop, 1, &authority)).unwrap();
        run(conn, &update_call(&shop, 100, &authority)).unwrap();
        run(conn, &reset_call(&shop, &authority)).unwrap();
    }
    run(conn, &update_call(&full_up, 1, &Authority::GlobalAdmin)).unwrap();
    run(conn, &info_call(&shop)).unwrap();
    run(conn, &info_call(&name("shop", "missing"))).unwrap();
    run(conn, &stats_call(&home, 30, NOW)).unwrap();
    run(conn, &stats_call(&name("shop", "missing"), 3, NOW)).unwrap();
    run(conn, &transfer::export_call(&home, NOW + 86_400)).unwrap();
    run(conn, &transfer::export_call(&name("shop", "missing"), NOW)).unwrap();
    // Import: a counter with daily (and a HyperLogLog) and hourly buckets, then again (skipped).
    let exported = transfer::parse_export(
        run(conn, &transfer::export_call(&home, NOW + 86_400)).unwrap(),
        &home,
        NOW + 86_400,
    )
    .unwrap();
    assert!(exported.days.iter().any(|d| d.uniques_hll.is_some()));
    let line = serde_json::to_string(&ExportedCounter {
        key: "moved".into(),
        ..exported
    })
    .unwrap();
    for _ in 0..2 {
        for imported in transfer::parse_import(line.as_bytes(), NOW).unwrap() {
            run(conn, &imported.call).unwrap();
        }
    }
    let moved = name("blog", "moved");
    for authority in [
        Authority::Public,
        Authority::GlobalAdmin,
        Authority::GlobalAdmin,
    ] {
        run(conn, &delete_call(&moved, &authority, NOW + 86_400)).unwrap();
    }
    let token = AdminKey::generate().unwrap();
    run(
        conn,
        &namespace::claim_call(&name("fresh", "first"), &token),
    )
    .unwrap();
    run(
        conn,
        &namespace::claim_call(&name("fresh", "second"), &token),
    )
    .unwrap();
}

/// Every path of the rate-limit, lease and deny-list scripts.
fn drive_limit_scripts(conn: &mut Conn) {
    let set = PolicySet::parse(
        "f=fixed:3/1h; s=sliding:3/1h; t=token:3/1h; g=gcra:3/1h; \
         uf=upstash-fixed:3/1h; us=upstash-sliding:3/1h; ut=upstash-token:3/1h; \
         soft=sliding:1/1h shadow; conc=concurrency:2/30s",
    )
    .unwrap();
    let tiers = Tiers::parse("pro: f=gcra:100/1h", &set).unwrap();
    let everything = set.select("f+s+t+g+uf+us+ut+soft").unwrap();
    let now_ms = NOW as u64 * 1000;
    let subjects = [
        Subject::from("user:1"),
        Subject::at("user:2", Some("203.0.113.9")),
        Subject::at("user:3", Some("2001:db8::1")),
    ];
    // The identity's overrides: a limit, and a tier.
    conn.run(
        &set_override_command(
            "user:1",
            "s",
            &Override::Limit {
                limit: 5,
                window_ms: 60_000,
            },
        )
        .unwrap(),
    )
    .unwrap();
    conn.run(&set_override_command("user:1", "f", &Override::Tier("pro".into())).unwrap())
        .unwrap();
    // Denied: an identity and a range.
    let mark = DenyTarget::parse("user:3", true).unwrap();
    let range = DenyTarget::parse("203.0.113.0/24", false).unwrap();
    for target in [&mark, &range] {
        match deny::add_commands(target, Some(60_000)).unwrap() {
            DenyWrite::Script(call) => {
                run(conn, &call).unwrap();
            }
            DenyWrite::Commands(commands) => {
                for c in commands {
                    conn.run(&c).unwrap();
                }
            }
        }
    }
    for subject in subjects {
        for mode in [Mode::Consume, Mode::Consume, Mode::Consume, Mode::Consume] {
            run(
                conn,
                &decision_call(&everything, &tiers, subject, 1, mode, now_ms).unwrap(),
            )
            .unwrap();
        }
        for mode in [Mode::Peek, Mode::Refund, Mode::Reset] {
            run(
                conn,
                &decision_call(&everything, &tiers, subject, 1, mode, now_ms).unwrap(),
            )
            .unwrap();
        }
        // On Cluster the ranges are asked apart, then the decision told the answer.
        let call = decision_call(&everything, &tiers, subject, 1, Mode::Consume, now_ms).unwrap();
        if let Some(ranges) = ratelimit::ranges_call(&call) {
            run(conn, &ranges).unwrap();
            run(conn, &ratelimit::with_ranges_answer(call, true)).unwrap();
        }
    }
    // A cost the identity's limit cannot take: refused by the script itself.
    let small = set.select("s").unwrap();
    let _ = run(
        conn,
        &decision_call(&small, &tiers, "user:1", 6, Mode::Consume, now_ms).unwrap(),
    );

    // Leases: acquire (twice over the limit), renew, release, and a denied acquire.
    let conc = set.get("conc").unwrap();
    let ids: Vec<LeaseId> = (0..3).map(|_| LeaseId::generate().unwrap()).collect();
    for id in &ids {
        run(
            conn,
            &lease::lease_call(conc, "user:1", LeaseOp::Acquire, id).unwrap(),
        )
        .unwrap();
    }
    for op in [
        LeaseOp::Renew,
        LeaseOp::Release,
        LeaseOp::Renew,
        LeaseOp::Release,
    ] {
        run(
            conn,
            &lease::lease_call(conc, "user:1", op, &ids[0]).unwrap(),
        )
        .unwrap();
    }
    run(
        conn,
        &lease::lease_call(conc, "user:3", LeaseOp::Acquire, &ids[1]).unwrap(),
    )
    .unwrap();

    // The deny list's ranges: read, list, replace, remove.
    for write in [
        deny::show_command(&range).unwrap(),
        DenyWrite::Script(deny::list_networks_call()),
        deny::add_commands(&range, None).unwrap(),
        deny::remove_commands(&range).unwrap(),
        deny::remove_commands(&range).unwrap(),
    ] {
        match write {
            DenyWrite::Script(call) => {
                run(conn, &call).unwrap();
            }
            DenyWrite::Commands(commands) => {
                for c in commands {
                    conn.run(&c).unwrap();
                }
            }
        }
    }
}

#[test]
fn every_script_declares_every_key_it_touches() {
    let redis = RedisServer::start();
    let monitor = Monitor::start(&redis);
    let mut conn = Conn::open(&redis);
    let mut keys_conn = Conn::open(&redis);

    // Calibration: does MONITOR show a script's own commands before or after the script?
    conn.run(
        &Command::new("EVAL")
            .arg("return redis.call('GET', KEYS[1])")
            .arg(1)
            .arg("calibration"),
    )
    .unwrap();
    conn.run(&Command::new("ECHO").arg("calibrated")).unwrap();
    monitor.wait_for("calibrated");
    let calibration: Vec<(bool, String)> = monitor
        .take()
        .iter()
        .filter_map(|l| parse_line(l))
        .map(|(lua, words)| (lua, String::from_utf8_lossy(&words[0]).into_owned()))
        .collect();
    let eval = calibration.iter().position(|(lua, w)| !lua && w == "EVAL");
    let get = calibration.iter().position(|(lua, w)| *lua && w == "GET");
    let (Some(eval), Some(get)) = (eval, get) else {
        panic!("MONITOR showed neither the script nor its GET: {calibration:?}");
    };
    let lua_first = get < eval;

    drive_counter_scripts(&mut conn);
    drive_limit_scripts(&mut conn);
    conn.run(&Command::new("ECHO").arg("driven")).unwrap();
    monitor.wait_for("driven");
    let seen = check(&monitor.take(), &mut keys_conn, lua_first);

    // Every script of the project ran, and touched keys that were checked.
    let mut ours: Vec<(&str, &Script)> = vec![
        ("counter_hit", &scripts::HIT),
        ("counter_create", &scripts::CREATE),
        ("counter_set", &scripts::SET),
        ("counter_update", &scripts::UPDATE),
        ("counter_reset", &scripts::RESET),
        ("counter_delete", &scripts::DELETE),
        ("counter_info", &scripts::INFO),
        ("counter_stats", &scripts::STATS),
        ("counter_export", &scripts::EXPORT),
        ("counter_import", &scripts::IMPORT),
        ("namespace_claim", &scripts::NAMESPACE_CLAIM),
        ("global_hit_undo", &scripts::GLOBAL_HIT_UNDO),
        ("global_stats", &scripts::GLOBAL_STATS),
        ("limit", ratelimit::script()),
        ("lease", lease::script()),
        ("deny_networks", deny::networks_script()),
    ];
    ours.sort_by_key(|(name, _)| *name);
    for (script_name, script) in ours {
        let Some(seen) = seen.get(script.sha1()) else {
            panic!("{script_name} never ran");
        };
        assert!(
            seen.keys_checked > 0,
            "{script_name}: {} calls, no key checked",
            seen.calls
        );
    }
    let checked: usize = seen.values().map(|s| s.keys_checked).sum();
    assert!(checked > 1_000, "only {checked} keys checked");
}
