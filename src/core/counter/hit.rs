//! A hit: +1 and everything around it (buckets, uniques, idempotency, live update, the
//! service-wide figures, the namespace's registry) in one script: one Redis command.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::calendar::{day_label, hour_label};
use super::keys::{
    global_counters_key, global_hits_key, global_shard, CounterKeys, NamespaceKeys, DAILY_TTL_SECS,
    HOURLY_TTL_SECS, IDEMPOTENCY_TTL_SECS,
};
use super::namespace::register_command;
use super::ops::{DEFAULT_LOWER_BOUND, DEFAULT_UPPER_BOUND};
use super::{field, script_answer, scripts, CounterError, ScriptCall};
use crate::core::command::{Command, Reply};
use crate::core::names::Name;

/// Who is hitting, for the uniques HyperLogLog. The IP is hashed here and never leaves Rust.
#[derive(Clone, Copy, Debug)]
pub struct Visitor<'a> {
    /// `EDGECOUNT_UNIQUES_SECRET`
    pub secret: &'a [u8],
    pub ip: &'a str,
    pub user_agent: &'a str,
}

/// Per-client abuse protection on a counter: at most `limit` counted hits per `window_secs` from
/// one client (identified by a hash of its IP, never the IP itself).
#[derive(Clone, Copy, Debug)]
pub struct AbuseLimit<'a> {
    pub ip: &'a str,
    pub limit: u64,
    pub window_secs: u64,
    /// Keys the client hash when set (`EDGECOUNT_UNIQUES_SECRET`), so it cannot be reversed by
    /// hashing every IPv4 address.
    pub secret: Option<&'a [u8]>,
}

impl AbuseLimit<'_> {
    /// The client's tally key for the window `now` (unix seconds) falls in, and the script's
    /// `limit/window` argument.
    fn key_and_arg(&self, keys: &CounterKeys, now: i64) -> (String, String) {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.unwrap_or(b"edgecount-abuse"))
            .expect("HMAC takes keys of any length");
        mac.update(self.ip.as_bytes());
        let client = hex::encode(&mac.finalize().into_bytes()[..8]);
        let window = self.window_secs.max(1);
        let key = keys.abuse(&client, now.div_euclid(window as i64));
        (key, format!("{}/{window}", self.limit))
    }
}

/// How to hit.
#[derive(Clone, Copy, Debug)]
pub struct HitRequest<'a> {
    /// False for bots, `HEAD`, prefetch and the owner: the answer has `counted: false` and nothing
    /// changes.
    pub count: bool,
    /// `Idempotency-Key` header or `?rid=`: a retry answers the original value, counting once.
    pub idempotency_key: Option<&'a str>,
    /// `None` when uniques are off (no secret) or the client's IP is unknown.
    pub visitor: Option<Visitor<'a>>,
    /// `None` turns the per-client limit off.
    pub abuse: Option<AbuseLimit<'a>>,
}

impl Default for HitRequest<'_> {
    fn default() -> Self {
        HitRequest {
            count: true,
            idempotency_key: None,
            visitor: None,
            abuse: None,
        }
    }
}

/// The answer of a hit: `{"value":N,"today":T,"uniques_today":U,"counted":true}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HitOutcome {
    pub value: i64,
    pub today: i64,
    pub uniques_today: i64,
    pub counted: bool,
    /// The answer of an earlier request with the same idempotency key (nothing counted now).
    #[serde(skip)]
    pub replay: bool,
    /// This hit created the counter.
    #[serde(skip)]
    pub created: bool,
    /// Not counted: the client is over its abuse limit on this counter.
    #[serde(skip)]
    pub limited: bool,
}

/// HMAC-SHA256(secret, `ip|user agent|namespace|YYYYMMDD`), first 16 bytes in hex: the same
/// visitor on the same day in the same namespace gives the same hash; nothing else can be learnt
/// from it without the secret. (Only the user agent may contain `|`, and it sits between fields
/// that cannot, so the input is unambiguous.)
pub fn visitor_hash(secret: &[u8], ip: &str, user_agent: &str, ns: &str, day: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{ip}|{user_agent}|{ns}|{day}").as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Check an idempotency key: 1–128 visible ASCII characters (it becomes part of a Redis key).
pub fn validate_idempotency_key(id: &str) -> Result<&str, CounterError> {
    let ok = (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(id).ok_or(CounterError::InvalidIdempotencyKey)
}

/// Where a counted hit writes the service-wide figures and its namespace's registry: their keys
/// live in other Redis Cluster slots than the counter's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figures {
    /// In the hit script itself, their keys declared beside the counter's: a hit is one command.
    /// For every Redis whose scripts may span slots (standalone, Upstash, Valkey).
    InScript,
    /// Not in the script: Redis Cluster refuses a script whose keys span slots (`CROSSSLOT`), so
    /// [`global_hit_commands`] go beside it in the same pipeline, and [`global_hit_undo`] takes
    /// their +1 back when the script then counts nothing.
    Beside,
}

/// The hit script call, every key it touches declared: the counter's, the day's and hour's
/// buckets by `now` (unix seconds, the caller's clock), and with [`Figures::InScript`] the
/// service-wide figures and the namespace's registry. Run it with `store.run` (EVALSHA, EVAL on
/// `NOSCRIPT`); with [`Figures::Beside`] first in a pipeline with [`global_hit_commands`].
pub fn hit_call(
    name: &Name,
    request: &HitRequest<'_>,
    now: i64,
    figures: Figures,
) -> Result<ScriptCall, CounterError> {
    let keys = CounterKeys::new(name);
    let day = day_label(now);
    let mut script_keys = vec![
        keys.value(),
        keys.meta(),
        keys.daily(&day),
        keys.hourly(&hour_label(now)),
        keys.uniques(&day),
    ];
    let mut declare = |key: String| {
        script_keys.push(key);
        script_keys.len().to_string()
    };
    let idempotency = match request.idempotency_key {
        Some(id) => declare(keys.idempotency(validate_idempotency_key(id)?)),
        None => String::new(),
    };
    let (abuse, abuse_limit) = match request.abuse.filter(|_| request.count) {
        Some(limit) => {
            let (key, arg) = limit.key_and_arg(&keys, now);
            (declare(key), arg)
        }
        None => Default::default(),
    };
    let (global, global_expiry) = match figures {
        Figures::InScript if request.count => {
            let [counters, hits, registry] = global_keys(name, now);
            let first = declare(counters);
            declare(hits);
            declare(registry);
            (first, global_hits_expiry(now).to_string())
        }
        _ => Default::default(),
    };
    let visitor = request
        .visitor
        .map(|v| visitor_hash(v.secret, v.ip, v.user_agent, name.ns.as_str(), &day))
        .unwrap_or_default();
    Ok(ScriptCall {
        script: &scripts::HIT,
        keys: script_keys,
        args: vec![
            if request.count { "1" } else { "0" }.to_owned(),
            visitor,
            HOURLY_TTL_SECS.to_string(),
            DAILY_TTL_SECS.to_string(),
            IDEMPOTENCY_TTL_SECS.to_string(),
            DEFAULT_LOWER_BOUND.to_string(),
            DEFAULT_UPPER_BOUND.to_string(),
            now.to_string(),
            abuse_limit,
            idempotency,
            abuse,
            global,
            global_expiry,
        ],
    })
}

/// A counter's shard of the counter names and of the day's hits, and its namespace's registry.
fn global_keys(name: &Name, now: i64) -> [String; 3] {
    let shard = global_shard(name);
    [
        global_counters_key(shard),
        global_hits_key(&day_label(now), shard),
        NamespaceKeys::new(&name.ns).counters(),
    ]
}

/// When the service-wide hits of `now`'s day expire: the day's start plus the daily retention,
/// a fixed time, so setting it again changes nothing.
fn global_hits_expiry(now: i64) -> i64 {
    now - now.rem_euclid(86_400) + DAILY_TTL_SECS as i64
}

pub fn parse_hit(reply: Reply) -> Result<HitOutcome, CounterError> {
    let items = script_answer(reply, CounterError::AdminRequired)?;
    let flag = |i| -> Result<bool, CounterError> { Ok(field(&items, i)?.as_i64()? == 1) };
    Ok(HitOutcome {
        value: field(&items, 0)?.as_i64()?,
        today: field(&items, 1)?.as_i64()?,
        uniques_today: field(&items, 2)?.as_i64()?,
        counted: flag(3)?,
        replay: flag(4)?,
        created: flag(5)?,
        limited: flag(6)?,
    })
}

/// On Redis Cluster ([`Figures::Beside`]): what a counted hit feeds outside its counter's slot —
/// the counter's name into its shard's HyperLogLog of counters, +1 in its shard's hits of the
/// day, and the counter into its namespace's registry — sent in the same pipeline as the hit
/// script. When the script then counts nothing, [`global_hit_undo`] takes the +1 back.
pub fn global_hit_commands(name: &Name, now: i64) -> Vec<Command> {
    let [counters, hits, _] = global_keys(name, now);
    vec![
        Command::new("PFADD").arg(counters).arg(name.path()),
        Command::new("INCR").arg(&hits),
        Command::new("EXPIREAT")
            .arg(&hits)
            .arg(global_hits_expiry(now)),
        register_command(name),
    ]
}

/// Undo the +1 of [`global_hit_commands`] (same `now`): for a hit the script did not count (a
/// retry, a client over its abuse limit, an overflow), so the day's figure stays exact and a
/// refused hit leaves Redis as it was. One more round trip, on those hits only, on Cluster only.
pub fn global_hit_undo(name: &Name, now: i64) -> ScriptCall {
    let [_, hits, _] = global_keys(name, now);
    ScriptCall {
        script: &scripts::GLOBAL_HIT_UNDO,
        keys: vec![hits],
        args: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> Name {
        Name::parse("blog", "home").unwrap()
    }

    /// 2026-11-25T13:05Z
    const NOW: i64 = 1_795_611_900;

    #[test]
    fn hit_call_declares_every_key_it_touches() {
        let call = hit_call(&name(), &HitRequest::default(), NOW, Figures::Beside).unwrap();
        assert_eq!(
            call.keys,
            [
                "ec:{blog:home}:v",
                "ec:{blog:home}:m",
                "ec:{blog:home}:d:20261125",
                "ec:{blog:home}:h:2026112513",
                "ec:{blog:home}:u:20261125",
            ]
        );
        assert_eq!(call.args[0], "1");
        assert_eq!(call.args[1], "");
        assert_eq!(call.args[7], NOW.to_string());
        assert_eq!(&call.args[9..], ["", "", "", ""]);

        let request = HitRequest {
            idempotency_key: Some("req-1"),
            abuse: Some(AbuseLimit {
                ip: "203.0.113.7",
                limit: 5,
                window_secs: 3600,
                secret: None,
            }),
            ..Default::default()
        };
        let call = hit_call(&name(), &request, NOW, Figures::InScript).unwrap();
        let shard = global_shard(&name());
        assert_eq!(call.keys[5], "ec:{blog:home}:i:req-1");
        let abuse = &call.keys[6];
        assert!(abuse.starts_with("ec:{blog:home}:a:"), "{abuse}");
        assert!(abuse.ends_with(&format!(":{}", NOW / 3600)), "{abuse}");
        assert!(!abuse.contains("203.0.113.7"));
        assert_eq!(
            &call.keys[7..],
            [
                format!("ec:global:counters:{shard}"),
                format!("ec:global:hits:20261125:{shard}"),
                "ec:{blog}:counters".to_owned(),
            ]
        );
        assert_eq!(call.args[8], "5/3600");
        assert_eq!(&call.args[9..12], ["6", "7", "8"]);
        assert_eq!(
            call.args[12],
            (1_795_564_800 + DAILY_TTL_SECS as i64).to_string()
        );
        assert_eq!(call.evalsha().name(), "EVALSHA");
    }

    #[test]
    fn a_hit_that_cannot_count_declares_no_figures_and_no_tally() {
        let request = HitRequest {
            count: false,
            abuse: Some(AbuseLimit {
                ip: "203.0.113.7",
                limit: 5,
                window_secs: 60,
                secret: None,
            }),
            ..Default::default()
        };
        let call = hit_call(&name(), &request, NOW, Figures::InScript).unwrap();
        assert_eq!(call.keys.len(), 5);
        assert_eq!(call.args[0], "0");
        assert_eq!(&call.args[9..], ["", "", "", ""]);
    }

    #[test]
    fn idempotency_keys_are_checked() {
        for bad in ["", "has space", "é", &"x".repeat(129)] {
            let request = HitRequest {
                idempotency_key: Some(bad),
                ..Default::default()
            };
            assert_eq!(
                hit_call(&name(), &request, NOW, Figures::InScript).unwrap_err(),
                CounterError::InvalidIdempotencyKey
            );
        }
    }

    #[test]
    fn the_visitor_hash_is_the_days_and_hides_the_ip() {
        let visitor = Visitor {
            secret: b"secret",
            ip: "203.0.113.7",
            user_agent: "Mozilla/5.0",
        };
        let request = HitRequest {
            visitor: Some(visitor),
            ..Default::default()
        };
        let args = hit_call(&name(), &request, NOW, Figures::Beside)
            .unwrap()
            .args;
        assert!(!args.iter().any(|a| a.contains("203.0.113.7")));
        let today = visitor_hash(b"secret", "203.0.113.7", "Mozilla/5.0", "blog", "20261125");
        assert_eq!(args[1], today);
        assert_eq!(today.len(), 32);
        // Another day, namespace or secret gives another hash.
        assert_ne!(
            today,
            visitor_hash(b"secret", "203.0.113.7", "Mozilla/5.0", "blog", "20261126")
        );
        assert_ne!(
            today,
            visitor_hash(b"secret", "203.0.113.7", "Mozilla/5.0", "shop", "20261125")
        );
        assert_ne!(
            today,
            visitor_hash(b"other", "203.0.113.7", "Mozilla/5.0", "blog", "20261125")
        );
    }

    #[test]
    fn hit_replies_parse() {
        let reply = Reply::Array(vec![
            Reply::Bytes(b"ok".to_vec()),
            Reply::Bytes(b"9007199254740993".to_vec()),
            Reply::Bytes(b"3".to_vec()),
            Reply::Int(2),
            Reply::Int(1),
            Reply::Int(0),
            Reply::Int(1),
            Reply::Int(0),
        ]);
        let outcome = parse_hit(reply).unwrap();
        assert_eq!(outcome.value, 9_007_199_254_740_993);
        assert!(outcome.counted && outcome.created && !outcome.replay);
        assert_eq!(
            serde_json::to_value(&outcome).unwrap(),
            serde_json::json!({"value": 9_007_199_254_740_993i64, "today": 3, "uniques_today": 2, "counted": true})
        );
        let overflow = Reply::Array(vec![Reply::Bytes(b"overflow".to_vec())]);
        assert_eq!(parse_hit(overflow), Err(CounterError::Overflow));
    }

    #[test]
    fn global_commands_use_sharded_keys() {
        let cmds = global_hit_commands(&name(), NOW);
        let shard = global_shard(&name());
        assert_eq!(
            cmds[0].parts(),
            [
                "PFADD".to_owned(),
                format!("ec:global:counters:{shard}"),
                "blog/home".to_owned()
            ]
        );
        assert_eq!(
            cmds[1].parts()[1],
            format!("ec:global:hits:20261125:{shard}")
        );
        // 2026-11-25T00:00Z plus 400 days, whatever the time of day.
        let expiry = (1_795_564_800 + DAILY_TTL_SECS as i64).to_string();
        assert_eq!(cmds[2].parts()[2], expiry);
        assert_eq!(
            global_hit_commands(&name(), 1_795_564_800 + 86_399)[2].parts()[2],
            expiry
        );
        assert_eq!(cmds[3].parts(), ["SADD", "ec:{blog}:counters", "home"]);
        assert_eq!(
            global_hit_undo(&name(), NOW).keys,
            [cmds[1].parts()[1].clone()]
        );
    }
}
