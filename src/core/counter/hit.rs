//! A hit: +1 and everything around it (buckets, uniques, idempotency, live update) in one script.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::calendar::day_label;
use super::keys::{
    global_counters_key, global_hits_key, global_shard, CounterKeys, DAILY_TTL_SECS,
    HOURLY_TTL_SECS, IDEMPOTENCY_TTL_SECS,
};
use super::namespace::register_command;
use super::ops::{DEFAULT_LOWER_BOUND, DEFAULT_UPPER_BOUND};
use super::{field, script_answer, scripts, CounterError, ScriptCall};
use crate::core::command::{Command, Reply};
use crate::core::names::Name;

/// Whose clock names buckets and stamps `created`. Production always uses [`Clock::Redis`]
/// (`TIME` inside the script); [`Clock::At`] (unix seconds) exists so tests can cross midnight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    Redis,
    At(i64),
}

impl Clock {
    /// The scripts' clock-override argument: empty means `TIME`.
    pub fn script_arg(self) -> String {
        match self {
            Clock::Redis => String::new(),
            Clock::At(secs) => secs.to_string(),
        }
    }
}

/// Who is hitting, for the uniques HyperLogLog. The IP is hashed here and never leaves Rust.
#[derive(Clone, Copy, Debug)]
pub struct Visitor<'a> {
    /// `EDGECOUNT_UNIQUES_SECRET`
    pub secret: &'a [u8],
    pub ip: &'a str,
    pub user_agent: &'a str,
    /// The edge's clock (unix seconds). It only chooses which days' hashes to offer the script:
    /// yesterday, today and tomorrow by this clock; the script takes the one for Redis's day. So
    /// an edge clock within a day of Redis's counts uniques exactly, across midnight too; beyond
    /// that (a broken clock) the hit still counts but its visitor does not.
    pub edge_now_secs: i64,
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
    fn script_arg(&self) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.unwrap_or(b"edgecount-abuse"))
            .expect("HMAC takes keys of any length");
        mac.update(self.ip.as_bytes());
        let client = hex::encode(&mac.finalize().into_bytes()[..8]);
        format!("{client}={}/{}", self.limit, self.window_secs.max(1))
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
    pub clock: Clock,
}

impl Default for HitRequest<'_> {
    fn default() -> Self {
        HitRequest {
            count: true,
            idempotency_key: None,
            visitor: None,
            abuse: None,
            clock: Clock::Redis,
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

/// `YYYYMMDD=hash,…` for yesterday, today and tomorrow by the edge's clock.
fn visitor_candidates(visitor: &Visitor<'_>, name: &Name) -> String {
    [-1i64, 0, 1]
        .iter()
        .map(|offset| {
            let day = day_label(visitor.edge_now_secs + offset * 86_400);
            let hash = visitor_hash(
                visitor.secret,
                visitor.ip,
                visitor.user_agent,
                name.ns.as_str(),
                &day,
            );
            format!("{day}={hash}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Check an idempotency key: 1–128 visible ASCII characters (it becomes part of a Redis key).
pub fn validate_idempotency_key(id: &str) -> Result<&str, CounterError> {
    let ok = (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(id).ok_or(CounterError::InvalidIdempotencyKey)
}

/// The hit script call. Run it alone (`store.eval`) or first in a pipeline with
/// [`global_hit_commands`]; if that pipeline's first entry is `NOSCRIPT`, nothing of the hit ran:
/// run [`ScriptCall::eval`] alone (the global figures already counted).
pub fn hit_call(name: &Name, request: &HitRequest<'_>) -> Result<ScriptCall, CounterError> {
    let keys = CounterKeys::new(name);
    let mut script_keys = vec![keys.value(), keys.meta()];
    if let Some(id) = request.idempotency_key {
        script_keys.push(keys.idempotency(validate_idempotency_key(id)?));
    }
    let candidates = request
        .visitor
        .map(|v| visitor_candidates(&v, name))
        .unwrap_or_default();
    Ok(ScriptCall {
        script: &scripts::HIT,
        keys: script_keys,
        args: vec![
            if request.count { "1" } else { "0" }.to_owned(),
            candidates,
            HOURLY_TTL_SECS.to_string(),
            DAILY_TTL_SECS.to_string(),
            IDEMPOTENCY_TTL_SECS.to_string(),
            DEFAULT_LOWER_BOUND.to_string(),
            DEFAULT_UPPER_BOUND.to_string(),
            request.clock.script_arg(),
            request.abuse.map(|a| a.script_arg()).unwrap_or_default(),
        ],
    })
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

/// What a counted hit feeds outside its counter's slot (so not in the script): the counter's
/// name into its shard's HyperLogLog of counters, +1 in its shard's hits of the day (by the edge
/// clock: the figure is informative, and the script cannot reach this slot), and the counter into
/// its namespace's registry. Send them in the same pipeline as the hit; when the script then
/// counts nothing, [`global_hit_undo`] takes the +1 back. The day's key expires at a fixed time
/// (the day's start plus the daily retention), so setting it again changes nothing.
pub fn global_hit_commands(name: &Name, edge_now_secs: i64) -> Vec<Command> {
    let shard = global_shard(name);
    let hits = global_hits_key(&day_label(edge_now_secs), shard);
    let day_start = edge_now_secs - edge_now_secs.rem_euclid(86_400);
    vec![
        Command::new("PFADD")
            .arg(global_counters_key(shard))
            .arg(name.path()),
        Command::new("INCR").arg(&hits),
        Command::new("EXPIREAT")
            .arg(&hits)
            .arg(day_start + DAILY_TTL_SECS as i64),
        register_command(name),
    ]
}

/// Undo the +1 of [`global_hit_commands`] (same `edge_now_secs`): for a hit the script did not
/// count (a retry, a client over its abuse limit, an overflow), so the day's figure stays exact
/// and a refused hit leaves Redis as it was. One more round trip, on those hits only.
pub fn global_hit_undo(name: &Name, edge_now_secs: i64) -> ScriptCall {
    ScriptCall {
        script: &scripts::GLOBAL_HIT_UNDO,
        keys: vec![global_hits_key(
            &day_label(edge_now_secs),
            global_shard(name),
        )],
        args: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> Name {
        Name::parse("blog", "home").unwrap()
    }

    #[test]
    fn hit_call_declares_value_meta_and_idempotency_keys() {
        let call = hit_call(&name(), &HitRequest::default()).unwrap();
        assert_eq!(call.keys, ["ec:{blog:home}:v", "ec:{blog:home}:m"]);
        assert_eq!(call.args[0], "1");
        assert_eq!(call.args[1], "");
        assert_eq!(call.args[7], "");
        let request = HitRequest {
            idempotency_key: Some("req-1"),
            count: false,
            clock: Clock::At(1_795_611_900),
            ..Default::default()
        };
        let call = hit_call(&name(), &request).unwrap();
        assert_eq!(call.keys[2], "ec:{blog:home}:i:req-1");
        assert_eq!(call.args[0], "0");
        assert_eq!(call.args[7], "1795611900");
        assert_eq!(call.evalsha().name(), "EVALSHA");
    }

    #[test]
    fn idempotency_keys_are_checked() {
        for bad in ["", "has space", "é", &"x".repeat(129)] {
            let request = HitRequest {
                idempotency_key: Some(bad),
                ..Default::default()
            };
            assert_eq!(
                hit_call(&name(), &request).unwrap_err(),
                CounterError::InvalidIdempotencyKey
            );
        }
    }

    #[test]
    fn visitor_hashes_are_offered_for_three_days_and_hide_the_ip() {
        let visitor = Visitor {
            secret: b"secret",
            ip: "203.0.113.7",
            user_agent: "Mozilla/5.0",
            edge_now_secs: 1_795_611_900, // 2026-11-25T13:05Z
        };
        let request = HitRequest {
            visitor: Some(visitor),
            ..Default::default()
        };
        let args = hit_call(&name(), &request).unwrap().args;
        let candidates: Vec<&str> = args[1].split(',').collect();
        assert_eq!(candidates.len(), 3);
        assert!(candidates[0].starts_with("20261124="));
        assert!(candidates[1].starts_with("20261125="));
        assert!(candidates[2].starts_with("20261126="));
        assert!(!args.iter().any(|a| a.contains("203.0.113.7")));
        let today = visitor_hash(b"secret", "203.0.113.7", "Mozilla/5.0", "blog", "20261125");
        assert_eq!(candidates[1], format!("20261125={today}"));
        assert_eq!(today.len(), 32);
        // Another day, namespace or secret gives another hash.
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
        let cmds = global_hit_commands(&name(), 1_795_611_900);
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
            global_hit_undo(&name(), 1_795_611_900).keys,
            [cmds[1].parts()[1].clone()]
        );
    }
}
