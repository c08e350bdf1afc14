//! History of one counter (`GET /stats/{ns}/{key}`) and the service-wide figures (`GET /stats`).

use serde::Serialize;

use super::calendar::{day_label, hour_label, iso_date, iso_hour};
use super::keys::{
    global_counters_key, global_hits_key, CounterKeys, GLOBAL_SHARDS, MAX_STATS_DAYS, STATS_HOURS,
};
use super::{field, parse_integer, script_answer, scripts, CounterError, ScriptCall};
use crate::core::command::{Command, Reply};
use crate::core::names::Name;

/// Days of history when the route does not say.
pub const DEFAULT_STATS_DAYS: u32 = 30;

/// `?days=`: default 30, at least 1, capped at [`MAX_STATS_DAYS`] (asking more gives 400, not an
/// error: buckets older than that are gone anyway); not a number → 400.
pub fn parse_days(raw: Option<&str>) -> Result<u32, CounterError> {
    match raw.filter(|v| !v.trim().is_empty()) {
        None => Ok(DEFAULT_STATS_DAYS),
        Some(v) => {
            let days = parse_integer("days", v)?;
            if days < 1 {
                return Err(CounterError::OutOfRange { field: "days" });
            }
            Ok(days.min(i64::from(MAX_STATS_DAYS)) as u32)
        }
    }
}

/// The history of the `days` days and [`STATS_HOURS`] hours ending with `now` (unix seconds, the
/// caller's clock), every bucket named here and declared. Read it back with [`parse_stats`] and
/// the same `days` and `now`.
pub fn stats_call(name: &Name, days: u32, now: i64) -> ScriptCall {
    let days = days.clamp(1, MAX_STATS_DAYS);
    let counter = CounterKeys::new(name);
    let mut keys = vec![counter.value()];
    keys.extend(counter.days_back(now, days, 0));
    keys.extend(counter.hours_back(now, STATS_HOURS, 0));
    ScriptCall {
        script: &scripts::STATS,
        keys,
        args: vec![days.to_string()],
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DayStats {
    /// `2026-11-25` (UTC)
    pub date: String,
    pub hits: i64,
    pub uniques: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HourStats {
    /// `2026-11-25T13:00:00Z`, the start of the hour
    pub hour: String,
    pub hits: i64,
}

/// `{"total":N,"days":[{"date","hits","uniques"}…],"hours":[{"hour","hits"}…48]}`, oldest first,
/// ending with today and the current hour by the serving process's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CounterStats {
    pub total: i64,
    pub days: Vec<DayStats>,
    pub hours: Vec<HourStats>,
}

/// The history [`stats_call`] asked for (the same `days` and `now`), or 404.
pub fn parse_stats(reply: Reply, days: u32, now: i64) -> Result<CounterStats, CounterError> {
    let days = days.clamp(1, MAX_STATS_DAYS);
    let items = script_answer(reply, CounterError::AdminRequired)?;
    let total = field(&items, 0)?.as_i64()?;
    let day_fields = &items[1.min(items.len())..];
    let first_day = now - (i64::from(days) - 1) * 86_400;
    let days = (0..days as usize)
        .map(|i| {
            Ok(DayStats {
                date: iso_date(&day_label(first_day + i as i64 * 86_400)),
                hits: field(day_fields, 2 * i)?.as_i64()?,
                uniques: field(day_fields, 2 * i + 1)?.as_i64()?,
            })
        })
        .collect::<Result<Vec<_>, CounterError>>()?;
    let hour_fields = day_fields.get(days.len() * 2..).unwrap_or_default();
    let first_hour = now - (i64::from(STATS_HOURS) - 1) * 3600;
    let hours = (0..STATS_HOURS as usize)
        .map(|i| {
            Ok(HourStats {
                hour: iso_hour(&hour_label(first_hour + i as i64 * 3600)),
                hits: field(hour_fields, i)?.as_i64()?,
            })
        })
        .collect::<Result<Vec<_>, CounterError>>()?;
    Ok(CounterStats { total, days, hours })
}

/// Every shard's HyperLogLog of counter names, then every shard's hits of `now`'s day.
fn global_stats_keys(now: i64) -> Vec<String> {
    let today = day_label(now);
    (0..GLOBAL_SHARDS)
        .map(global_counters_key)
        .chain((0..GLOBAL_SHARDS).map(|shard| global_hits_key(&today, shard)))
        .collect()
}

/// The service-wide figures of `now`'s day (unix seconds) in one script, every shard's keys
/// declared: one command where a script may span slots. Read it with
/// [`parse_global_stats_reply`]; on Redis Cluster (`CROSSSLOT`) use [`global_stats_commands`].
pub fn global_stats_call(now: i64) -> ScriptCall {
    ScriptCall {
        script: &scripts::GLOBAL_STATS,
        keys: global_stats_keys(now),
        args: Vec::new(),
    }
}

/// `{counters, hits today}` from [`global_stats_call`].
pub fn parse_global_stats_reply(reply: Reply) -> Result<GlobalStats, CounterError> {
    let items = reply.into_array()?;
    Ok(GlobalStats {
        counters: field(&items, 0)?.as_i64()?,
        hits_today: field(&items, 1)?.as_i64()?,
    })
}

/// On Redis Cluster: the service-wide figures as one `PFCOUNT` and one `GET` per shard, separate
/// commands (the shards live in different slots, so no multi-key command may span them), in one
/// pipeline: 32 commands where [`global_stats_call`] is one.
pub fn global_stats_commands(edge_now_secs: i64) -> Vec<Command> {
    let today = day_label(edge_now_secs);
    let mut commands = Vec::with_capacity(2 * GLOBAL_SHARDS as usize);
    for shard in 0..GLOBAL_SHARDS {
        commands.push(Command::new("PFCOUNT").arg(global_counters_key(shard)));
    }
    for shard in 0..GLOBAL_SHARDS {
        commands.push(Command::new("GET").arg(global_hits_key(&today, shard)));
    }
    commands
}

/// `{"counters":N,"hits_today":H}`. `counters` is approximate (HyperLogLog, ±1%) and counts
/// counters ever hit or created, deleted ones included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GlobalStats {
    pub counters: i64,
    pub hits_today: i64,
}

/// Sum the shards of [`global_stats_commands`]'s pipeline answer.
pub fn parse_global_stats(
    entries: Vec<Result<Reply, String>>,
) -> Result<GlobalStats, CounterError> {
    let shards = GLOBAL_SHARDS as usize;
    if entries.len() != 2 * shards {
        return Err(CounterError::Redis(format!(
            "expected {} pipeline entries, got {}",
            2 * shards,
            entries.len()
        )));
    }
    let mut sums = [0i64; 2];
    for (i, entry) in entries.into_iter().enumerate() {
        let n = entry
            .map_err(CounterError::Redis)?
            .as_opt_i64()?
            .unwrap_or(0);
        sums[i / shards] = sums[i / shards].saturating_add(n);
    }
    Ok(GlobalStats {
        counters: sums[0],
        hits_today: sums[1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Reply {
        Reply::Bytes(v.as_bytes().to_vec())
    }

    #[test]
    fn days_parameter() {
        assert_eq!(parse_days(None), Ok(30));
        assert_eq!(parse_days(Some("7")), Ok(7));
        assert_eq!(parse_days(Some("100000")), Ok(400));
        assert!(parse_days(Some("0")).is_err());
        assert!(parse_days(Some("seven")).is_err());
    }

    #[test]
    fn stats_calls_name_every_bucket_and_replies_parse() {
        let name = Name::parse("blog", "home").unwrap();
        let now = 1_795_611_900; // 2026-11-25T13:05Z
        let call = stats_call(&name, 2, now);
        assert_eq!(call.args, ["2"]);
        assert_eq!(call.keys.len(), 1 + 2 * 2 + STATS_HOURS as usize);
        assert_eq!(
            &call.keys[..5],
            [
                "ec:{blog:home}:v",
                "ec:{blog:home}:d:20261124",
                "ec:{blog:home}:u:20261124",
                "ec:{blog:home}:d:20261125",
                "ec:{blog:home}:u:20261125",
            ]
        );
        assert_eq!(call.keys[5], "ec:{blog:home}:h:2026112314");
        assert_eq!(call.keys.last().unwrap(), "ec:{blog:home}:h:2026112513");

        let mut items = vec![s("ok"), s("42")];
        items.extend([s("1"), Reply::Int(1), s("4"), Reply::Int(2)]);
        items.extend((0..STATS_HOURS).map(|h| s(&h.to_string())));
        let stats = parse_stats(Reply::Array(items), 2, now).unwrap();
        assert_eq!(stats.total, 42);
        assert_eq!(stats.days.len(), 2);
        assert_eq!(stats.days[0].date, "2026-11-24");
        assert_eq!(stats.days[1].date, "2026-11-25");
        assert_eq!((stats.days[1].hits, stats.days[1].uniques), (4, 2));
        assert_eq!(stats.hours.len(), STATS_HOURS as usize);
        assert_eq!(stats.hours[47].hour, "2026-11-25T13:00:00Z");
        assert_eq!(stats.hours[47].hits, 47);
        assert_eq!(
            parse_stats(Reply::Array(vec![s("not_found")]), 2, now),
            Err(CounterError::NotFound)
        );
        // A short answer is an error, not a made-up zero.
        assert!(parse_stats(Reply::Array(vec![s("ok"), s("1")]), 2, now).is_err());
    }

    #[test]
    fn global_stats_sum_shards() {
        let commands = global_stats_commands(1_795_611_900);
        assert_eq!(commands.len(), 32);
        assert_eq!(commands[16].parts()[1], "ec:global:hits:20261125:0");
        let mut entries: Vec<Result<Reply, String>> = vec![Ok(Reply::Int(2)); 16];
        entries.extend(vec![Ok(Reply::Nil); 15]);
        entries.push(Ok(s("5")));
        assert_eq!(
            parse_global_stats(entries).unwrap(),
            GlobalStats {
                counters: 32,
                hits_today: 5
            }
        );
    }
}
