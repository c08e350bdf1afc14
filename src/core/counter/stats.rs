//! History of one counter (`GET /stats/{ns}/{key}`) and the service-wide figures (`GET /stats`).

use serde::Serialize;

use super::calendar::{day_label, iso_date, iso_hour};
use super::hit::Clock;
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

pub fn stats_call(name: &Name, days: u32) -> ScriptCall {
    stats_call_at(name, days, Clock::Redis)
}

/// [`stats_call`] with an explicit clock (tests).
pub fn stats_call_at(name: &Name, days: u32, clock: Clock) -> ScriptCall {
    ScriptCall {
        script: &scripts::STATS,
        keys: vec![CounterKeys::new(name).value()],
        args: vec![
            days.clamp(1, MAX_STATS_DAYS).to_string(),
            STATS_HOURS.to_string(),
            clock.script_arg(),
        ],
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
/// ending with today and the current hour by Redis's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CounterStats {
    pub total: i64,
    pub days: Vec<DayStats>,
    pub hours: Vec<HourStats>,
}

/// The history, or 404.
pub fn parse_stats(reply: Reply) -> Result<CounterStats, CounterError> {
    let items = script_answer(reply, CounterError::AdminRequired)?;
    let total = field(&items, 0)?.as_i64()?;
    let n_days = usize::try_from(field(&items, 1)?.as_i64()?).unwrap_or(0);
    let day_fields = &items[2.min(items.len())..];
    let days = day_fields
        .chunks(3)
        .take(n_days)
        .map(|c| {
            Ok(DayStats {
                date: iso_date(field(c, 0)?.as_str()?),
                hits: field(c, 1)?.as_i64()?,
                uniques: field(c, 2)?.as_i64()?,
            })
        })
        .collect::<Result<Vec<_>, CounterError>>()?;
    let hour_fields = day_fields.get(n_days * 3..).unwrap_or_default();
    let hours = hour_fields
        .chunks(2)
        .map(|c| {
            Ok(HourStats {
                hour: iso_hour(field(c, 0)?.as_str()?),
                hits: field(c, 1)?.as_i64()?,
            })
        })
        .collect::<Result<Vec<_>, CounterError>>()?;
    Ok(CounterStats { total, days, hours })
}

/// The service-wide figures: one `PFCOUNT` and one `GET` per shard, as separate commands (the
/// shards live in different Cluster slots, so no multi-key command may span them). One pipeline.
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
    fn stats_reply_parses() {
        let mut items = vec![s("ok"), s("42"), Reply::Int(2)];
        items.extend([s("20261124"), s("1"), Reply::Int(1)]);
        items.extend([s("20261125"), s("4"), Reply::Int(2)]);
        items.extend([s("2026112512"), s("3"), s("2026112513"), s("1")]);
        let stats = parse_stats(Reply::Array(items)).unwrap();
        assert_eq!(stats.total, 42);
        assert_eq!(stats.days.len(), 2);
        assert_eq!(stats.days[1].date, "2026-11-25");
        assert_eq!(stats.days[1].uniques, 2);
        assert_eq!(stats.hours[1].hour, "2026-11-25T13:00:00Z");
        assert_eq!(
            parse_stats(Reply::Array(vec![s("not_found")])),
            Err(CounterError::NotFound)
        );
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
