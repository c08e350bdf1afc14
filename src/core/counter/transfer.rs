//! Export and import: a namespace as NDJSON, one counter a line, with everything needed to
//! rebuild it elsewhere — value, settings, admin-key hash, daily hits and uniques (the
//! HyperLogLog itself, so uniques survive exactly), hourly hits.
//!
//! ```json
//! {"namespace":"blog","key":"home","value":12,"created":1795611900000,"enable_reset":false,
//!  "update_lowerbound":-1,"update_upperbound":1,"admin_key_hash":"…64 hex…",
//!  "days":[{"date":"2026-11-25","hits":3,"uniques":2,"uniques_hll":"48594c4c01…"}],
//!  "hours":[{"hour":"2026-11-25T13:00:00Z","hits":3}]}
//! ```
//!
//! Import checks every line completely ([`parse_import`]) before the first write, then creates
//! each counter that does not exist yet in one script (`counter_import.lua`); a counter that
//! exists is skipped untouched, so importing the same file twice changes nothing.

use serde::Serialize;
use serde_json::{Map, Value};

use super::calendar::{day_label, hour_label, iso_date, iso_hour, parse_iso_date, parse_iso_hour};
use super::keys::{CounterKeys, DAILY_TTL_SECS, HOURLY_TTL_SECS};
use super::ops::{DEFAULT_LOWER_BOUND, DEFAULT_UPPER_BOUND};
use super::{field, script_answer, scripts, CounterError, ScriptCall};
use crate::core::command::Reply;
use crate::core::names::Name;

/// Daily buckets an export looks at: today and the retention before it.
pub const EXPORT_DAYS: u32 = (DAILY_TTL_SECS / 86_400) as u32 + 1;
/// Hourly buckets an export looks at: this hour and the retention before it.
pub const EXPORT_HOURS: u32 = (HOURLY_TTL_SECS / 3600) as u32 + 1;
/// The most daily or hourly entries one imported counter may carry.
pub const MAX_IMPORTED_BUCKETS: usize = 1000;
/// Counters per pipeline when exporting.
pub const EXPORT_CHUNK: usize = 20;
/// The most key and argument bytes one import pipeline carries: a REST request must stay under the 1 MiB
/// body Upstash (and `edgecount proxy`) accept, JSON quoting included.
pub const IMPORT_CHUNK_BYTES: usize = 800_000;

/// One counter, as one NDJSON line. Read back with [`ExportedCounter::from_json`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedCounter {
    pub namespace: String,
    pub key: String,
    pub value: i64,
    /// Unix milliseconds (as `/info` says); the import time when absent.
    pub created: Option<i64>,
    pub enable_reset: bool,
    pub update_lowerbound: i64,
    pub update_upperbound: i64,
    /// SHA-256 hex of the counter's admin key: the owner's key keeps working after a move.
    pub admin_key_hash: Option<String>,
    pub days: Vec<ExportedDay>,
    pub hours: Vec<ExportedHour>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedDay {
    /// `2026-11-25` (UTC)
    pub date: String,
    pub hits: i64,
    /// The day's unique visitors as counted (informative: the HyperLogLog is what is imported).
    pub uniques: i64,
    /// The day's HyperLogLog (Redis's own string), in hex: the form the import script takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uniques_hll: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedHour {
    /// `2026-11-25T13:00:00Z`, the start of the hour
    pub hour: String,
    pub hits: i64,
}

impl ExportedCounter {
    /// Read one line's object: required fields present, optional ones defaulted, every value of
    /// the right type, no unknown field (a typo must not pass silently). By hand over
    /// `serde_json::Value` rather than a derived `Deserialize`, which costs the wasm worker
    /// several KB of gzipped code (measured).
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let object = value.as_object().ok_or("a line must be a JSON object")?;
        only(
            object,
            &[
                "namespace",
                "key",
                "value",
                "created",
                "enable_reset",
                "update_lowerbound",
                "update_upperbound",
                "admin_key_hash",
                "days",
                "hours",
            ],
        )?;
        let days = list(object, "days")?
            .iter()
            .map(|day| {
                let day = day.as_object().ok_or("days must hold objects")?;
                only(day, &["date", "hits", "uniques", "uniques_hll"])?;
                Ok(ExportedDay {
                    date: required(text(day, "date")?, "date")?,
                    hits: required(integer(day, "hits")?, "hits")?,
                    uniques: integer(day, "uniques")?.unwrap_or(0),
                    uniques_hll: text(day, "uniques_hll")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let hours = list(object, "hours")?
            .iter()
            .map(|hour| {
                let hour = hour.as_object().ok_or("hours must hold objects")?;
                only(hour, &["hour", "hits"])?;
                Ok(ExportedHour {
                    hour: required(text(hour, "hour")?, "hour")?,
                    hits: required(integer(hour, "hits")?, "hits")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ExportedCounter {
            namespace: required(text(object, "namespace")?, "namespace")?,
            key: required(text(object, "key")?, "key")?,
            value: required(integer(object, "value")?, "value")?,
            created: integer(object, "created")?,
            enable_reset: match object.get("enable_reset") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(flag)) => *flag,
                Some(_) => return Err("enable_reset must be true or false".to_owned()),
            },
            update_lowerbound: integer(object, "update_lowerbound")?.unwrap_or(DEFAULT_LOWER_BOUND),
            update_upperbound: integer(object, "update_upperbound")?.unwrap_or(DEFAULT_UPPER_BOUND),
            admin_key_hash: text(object, "admin_key_hash")?,
            days,
            hours,
        })
    }
}

/// Refuse fields outside `known`.
fn only(object: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(format!("unknown field {unknown:?}")),
        None => Ok(()),
    }
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("{name} is required"))
}

/// A string field; absent or null is `None`.
fn text(object: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

/// A 64-bit integer field; absent or null is `None`.
fn integer(object: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{name} must be a 64-bit integer")),
    }
}

/// An array field; absent or null is empty.
fn list<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a [Value], String> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("{name} must be an array")),
    }
}

/// The export script call of one counter: every bucket inside the retention windows ending at
/// `now` (unix seconds), named and declared. Read it back with [`parse_export`] and the same `now`.
pub fn export_call(name: &Name, now: i64) -> ScriptCall {
    let counter = CounterKeys::new(name);
    let mut keys = vec![counter.value(), counter.meta()];
    keys.extend(counter.days_back(now, EXPORT_DAYS, 0));
    keys.extend(counter.hours_back(now, EXPORT_HOURS, 0));
    ScriptCall {
        script: &scripts::EXPORT,
        keys,
        args: vec![EXPORT_DAYS.to_string()],
    }
}

/// The exported counter (the buckets that exist, oldest first), or [`CounterError::NotFound`]
/// (deleted since it was listed).
pub fn parse_export(reply: Reply, name: &Name, now: i64) -> Result<ExportedCounter, CounterError> {
    let items = script_answer(reply, CounterError::AdminRequired)?;
    let text =
        |i: usize| -> Result<String, CounterError> { Ok(field(&items, i)?.as_str()?.to_owned()) };
    let number = |i: usize, default: i64| -> Result<i64, CounterError> {
        match field(&items, i)?.as_str()? {
            "" => Ok(default),
            _ => Ok(field(&items, i)?.as_i64()?),
        }
    };
    let admin = text(5)?;
    let day_fields = items.get(6..).unwrap_or_default();
    let first_day = now - (i64::from(EXPORT_DAYS) - 1) * 86_400;
    let mut days = Vec::new();
    for i in 0..EXPORT_DAYS as usize {
        let hits = match field(day_fields, 3 * i)? {
            Reply::Bytes(bytes) if bytes.is_empty() => None,
            hits => Some(hits.as_i64()?),
        };
        let hll = match field(day_fields, 3 * i + 2)? {
            Reply::Bytes(bytes) if !bytes.is_empty() => Some(hex::encode(bytes)),
            _ => None,
        };
        if hits.is_none() && hll.is_none() {
            continue;
        }
        days.push(ExportedDay {
            date: iso_date(&day_label(first_day + i as i64 * 86_400)),
            hits: hits.unwrap_or(0),
            uniques: field(day_fields, 3 * i + 1)?.as_i64()?,
            uniques_hll: hll,
        });
    }
    let hour_fields = day_fields
        .get(EXPORT_DAYS as usize * 3..)
        .unwrap_or_default();
    let first_hour = now - (i64::from(EXPORT_HOURS) - 1) * 3600;
    let mut hours = Vec::new();
    for i in 0..EXPORT_HOURS as usize {
        let hits = field(hour_fields, i)?;
        if matches!(hits, Reply::Bytes(bytes) if bytes.is_empty()) {
            continue;
        }
        hours.push(ExportedHour {
            hour: iso_hour(&hour_label(first_hour + i as i64 * 3600)),
            hits: hits.as_i64()?,
        });
    }
    Ok(ExportedCounter {
        namespace: name.ns.to_string(),
        key: name.key.to_string(),
        value: field(&items, 0)?.as_i64()?,
        created: match number(1, -1)? {
            -1 => None,
            secs => Some(secs.saturating_mul(1000)),
        },
        enable_reset: number(2, 0)? == 1,
        // Bounds missing from a meta allow no public update (counter_update.lua).
        update_lowerbound: number(3, 0)?,
        update_upperbound: number(4, 0)?,
        admin_key_hash: (!admin.is_empty()).then_some(admin),
        days,
        hours,
    })
}

/// A counter as another CountAPI- or Abacus-compatible service describes it, ready to import
/// into `name`: its value from `GET /get/{ns}/{key}` (`{"value":N}`), and whatever settings its
/// `GET /info/{ns}/{key}` has (`info`: CountAPI and edgecount give `created` in milliseconds,
/// `enable_reset`, `update_lowerbound`, `update_upperbound`; Abacus gives none of them; absent
/// or unreadable settings take the defaults). No history: those services publish none.
pub fn from_service(
    name: &Name,
    get: &Value,
    info: Option<&Value>,
) -> Result<ExportedCounter, String> {
    let value = get
        .get("value")
        .and_then(Value::as_i64)
        .ok_or("its /get answer has no integer \"value\"")?;
    let setting = |field: &str| info.and_then(|info| info.get(field));
    let bound =
        |field: &str, default: i64| setting(field).and_then(Value::as_i64).unwrap_or(default);
    Ok(ExportedCounter {
        namespace: name.ns.to_string(),
        key: name.key.to_string(),
        value,
        created: setting("created")
            .and_then(Value::as_i64)
            .filter(|ms| *ms >= 0),
        enable_reset: match setting("enable_reset") {
            Some(Value::Bool(flag)) => *flag,
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        },
        // CountAPI's rule (lower ≤ 0 ≤ upper), so the line imports.
        update_lowerbound: bound("update_lowerbound", DEFAULT_LOWER_BOUND).min(0),
        update_upperbound: bound("update_upperbound", DEFAULT_UPPER_BOUND).max(0),
        admin_key_hash: None,
        days: Vec::new(),
        hours: Vec::new(),
    })
}

/// A line of an import that does not hold up; `line` counts from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    pub line: usize,
    pub message: String,
}

/// A checked counter, ready to import.
#[derive(Clone, Debug)]
pub struct ImportedCounter {
    pub name: Name,
    pub call: ScriptCall,
    /// The bytes of its script keys and arguments (what a pipeline of it carries).
    pub size: usize,
}

/// Check a whole NDJSON body: every line parses, every name, number, date, bound and
/// HyperLogLog holds up, and no counter comes twice. Nothing is written before this succeeds.
/// `now` (unix seconds) is the `created` of a line without one.
pub fn parse_import(body: &[u8], now: i64) -> Result<Vec<ImportedCounter>, ImportError> {
    let text = std::str::from_utf8(body).map_err(|e| ImportError {
        line: 1 + body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        message: "not UTF-8 text".to_owned(),
    })?;
    let mut counters: Vec<ImportedCounter> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fail = |message: String| ImportError {
            line: line_no,
            message,
        };
        let value: Value =
            serde_json::from_str(line).map_err(|e| fail(format!("not JSON: {e}")))?;
        let counter = ExportedCounter::from_json(&value)
            .and_then(|exported| check(&exported, now))
            .map_err(fail)?;
        if counters.iter().any(|c| c.name == counter.name) {
            return Err(fail(format!("{} comes twice", counter.name)));
        }
        counters.push(counter);
    }
    if counters.is_empty() {
        return Err(ImportError {
            line: 1,
            message: "no counters: send one exported counter per line (NDJSON)".to_owned(),
        });
    }
    Ok(counters)
}

/// One line's checks, and its script call.
fn check(counter: &ExportedCounter, now: i64) -> Result<ImportedCounter, String> {
    let name = Name::parse(&counter.namespace, &counter.key).map_err(|e| e.to_string())?;
    if counter.update_upperbound < 0 {
        return Err("update_upperbound must be positive".to_owned());
    }
    if counter.update_lowerbound > 0 {
        return Err("update_lowerbound must be negative".to_owned());
    }
    let created = match counter.created {
        Some(ms) if ms < 0 => return Err("created must be unix milliseconds ≥ 0".to_owned()),
        Some(ms) => ms / 1000,
        None => now,
    };
    let admin = match &counter.admin_key_hash {
        Some(hash)
            if hash.len() != 64
                || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            return Err("admin_key_hash must be 64 lower-case hex digits".to_owned())
        }
        Some(hash) => hash.clone(),
        None => String::new(),
    };
    if counter.days.len() > MAX_IMPORTED_BUCKETS || counter.hours.len() > MAX_IMPORTED_BUCKETS {
        return Err(format!(
            "at most {MAX_IMPORTED_BUCKETS} days and {MAX_IMPORTED_BUCKETS} hours per counter"
        ));
    }
    let counter_keys = CounterKeys::new(&name);
    let mut keys = vec![counter_keys.value(), counter_keys.meta()];
    let mut args = vec![
        counter.value.to_string(),
        created.to_string(),
        if counter.enable_reset { "1" } else { "0" }.to_owned(),
        counter.update_lowerbound.to_string(),
        counter.update_upperbound.to_string(),
        admin,
        counter.days.len().to_string(),
    ];
    let mut seen_days = Vec::with_capacity(counter.days.len());
    for day in &counter.days {
        let days = parse_iso_date(&day.date)
            .ok_or_else(|| format!("date {:?} is not a YYYY-MM-DD date", day.date))?;
        if seen_days.contains(&days) {
            return Err(format!("date {} comes twice", day.date));
        }
        seen_days.push(days);
        if day.hits < 0 {
            return Err(format!("hits of {} must be ≥ 0", day.date));
        }
        let hll = match &day.uniques_hll {
            None => String::new(),
            Some(encoded) => {
                let bytes = hex::decode(encoded)
                    .map_err(|_| format!("uniques_hll of {} is not hex", day.date))?;
                check_hyperloglog(&bytes)
                    .map_err(|e| format!("uniques_hll of {}: {e}", day.date))?;
                hex::encode(bytes)
            }
        };
        let start = days * 86_400;
        let label = day_label(start);
        keys.extend([counter_keys.daily(&label), counter_keys.uniques(&label)]);
        args.extend([
            day.hits.to_string(),
            hll,
            (start + DAILY_TTL_SECS as i64).to_string(),
        ]);
    }
    let mut seen_hours = Vec::with_capacity(counter.hours.len());
    for hour in &counter.hours {
        let start = parse_iso_hour(&hour.hour)
            .ok_or_else(|| format!("hour {:?} is not like 2026-11-25T13:00:00Z", hour.hour))?;
        if seen_hours.contains(&start) {
            return Err(format!("hour {} comes twice", hour.hour));
        }
        seen_hours.push(start);
        if hour.hits < 0 {
            return Err(format!("hits of {} must be ≥ 0", hour.hour));
        }
        keys.push(counter_keys.hourly(&hour_label(start)));
        args.extend([
            hour.hits.to_string(),
            (start + HOURLY_TTL_SECS as i64).to_string(),
        ]);
    }
    let size = keys.iter().chain(&args).map(String::len).sum::<usize>();
    if size > IMPORT_CHUNK_BYTES {
        return Err(format!(
            "its history is {size} bytes, more than one request to Redis may carry \
             ({IMPORT_CHUNK_BYTES}): split its days over several lines of another counter name"
        ));
    }
    Ok(ImportedCounter {
        call: ScriptCall {
            script: &scripts::IMPORT,
            keys,
            args,
        },
        size,
        name,
    })
}

/// Group checked counters into pipelines of at most [`IMPORT_CHUNK_BYTES`] of arguments.
pub fn import_chunks(counters: &[ImportedCounter]) -> Vec<&[ImportedCounter]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, counter) in counters.iter().enumerate() {
        if i > start && bytes + counter.size > IMPORT_CHUNK_BYTES {
            chunks.push(&counters[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += counter.size;
    }
    if start < counters.len() {
        chunks.push(&counters[start..]);
    }
    chunks
}

/// Whether the import script created the counter (`false`: it existed and was skipped).
pub fn parse_imported(reply: Reply) -> Result<bool, CounterError> {
    let items = reply.into_array()?;
    match items.first().map(Reply::as_str).transpose()? {
        Some("imported") => Ok(true),
        Some("skipped") => Ok(false),
        other => Err(crate::core::command::ReplyError {
            expected: "imported or skipped",
            got: format!("{other:?}"),
        }
        .into()),
    }
}

/// Registers of a Redis HyperLogLog (2^14) and the size of its dense form (header + 6-bit
/// registers).
const HLL_REGISTERS: usize = 16_384;
const HLL_HEADER: usize = 16;
const HLL_DENSE_SIZE: usize = HLL_HEADER + HLL_REGISTERS * 6 / 8;

/// Check that `bytes` is a Redis HyperLogLog string (`HYLL`, dense or sparse, every register
/// accounted for), so an import cannot plant a value Redis would later refuse as corrupt.
/// Written by hand: the format is Redis's own (hyperloglog.c), no crate reads it.
pub fn check_hyperloglog(bytes: &[u8]) -> Result<(), &'static str> {
    if bytes.len() < HLL_HEADER || &bytes[..4] != b"HYLL" {
        return Err("not a Redis HyperLogLog");
    }
    match bytes[4] {
        0 if bytes.len() == HLL_DENSE_SIZE => Ok(()),
        0 => Err("dense HyperLogLog of the wrong size"),
        1 => {
            // Sparse: ZERO (00xxxxxx: 1..64 registers), XZERO (01xxxxxx yyyyyyyy: 1..16384),
            // VAL (1vvvvvxx: 1..4 registers); together exactly every register.
            let mut registers = 0usize;
            let mut at = HLL_HEADER;
            while at < bytes.len() {
                let op = bytes[at];
                registers += match op >> 6 {
                    0 => usize::from(op & 0x3f) + 1,
                    1 => {
                        let low = *bytes.get(at + 1).ok_or("truncated sparse HyperLogLog")?;
                        at += 1;
                        ((usize::from(op & 0x3f) << 8) | usize::from(low)) + 1
                    }
                    _ => usize::from(op & 0x03) + 1,
                };
                at += 1;
                if registers > HLL_REGISTERS {
                    return Err("sparse HyperLogLog covers too many registers");
                }
            }
            if registers == HLL_REGISTERS {
                Ok(())
            } else {
                Err("sparse HyperLogLog does not cover every register")
            }
        }
        _ => Err("unknown HyperLogLog encoding"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-25T13:05Z
    const NOW: i64 = 1_795_611_900;

    fn line(extra: &str) -> String {
        format!(r#"{{"namespace":"blog","key":"home","value":12{extra}}}"#)
    }

    /// An empty sparse HyperLogLog as Redis writes it: the header and one XZERO of 16384.
    fn empty_sparse() -> Vec<u8> {
        let mut hll = b"HYLL".to_vec();
        hll.extend([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        hll.extend([0x7f, 0xff]);
        hll
    }

    #[test]
    fn a_minimal_line_imports_with_defaults() {
        let counters = parse_import(line("").as_bytes(), NOW).unwrap();
        assert_eq!(counters.len(), 1);
        let call = &counters[0].call;
        assert_eq!(call.keys, ["ec:{blog:home}:v", "ec:{blog:home}:m"]);
        assert_eq!(call.args, ["12", &NOW.to_string(), "0", "-1", "1", "", "0"]);
    }

    #[test]
    fn buckets_become_labels_values_and_expiry_times() {
        let hll = hex::encode(empty_sparse());
        let body = line(&format!(
            r#","created":1795611900000,"days":[{{"date":"2026-11-25","hits":3,"uniques":0,"uniques_hll":"{hll}"}}],"hours":[{{"hour":"2026-11-25T13:00:00Z","hits":3}}]"#
        ));
        let call = &parse_import(body.as_bytes(), 1).unwrap()[0].call;
        assert_eq!(
            call.keys[2..],
            [
                "ec:{blog:home}:d:20261125",
                "ec:{blog:home}:u:20261125",
                "ec:{blog:home}:h:2026112513"
            ]
        );
        assert_eq!(call.args[1], "1795611900");
        assert_eq!(call.args[6], "1");
        assert_eq!(call.args[7], "3");
        assert_eq!(call.args[8], hex::encode(empty_sparse()));
        assert_eq!(
            call.args[9],
            (1_795_564_800 + DAILY_TTL_SECS as i64).to_string()
        );
        assert_eq!(
            call.args[10..],
            ["3", &(1_795_611_600 + HOURLY_TTL_SECS as i64).to_string()]
        );
    }

    #[test]
    fn every_bad_line_is_refused_with_its_number() {
        let cases = [
            ("not json".to_owned(), "not JSON"),
            ("[1]".to_owned(), "object"),
            (
                r#"{"namespace":"blog","key":"home"}"#.to_owned(),
                "value is required",
            ),
            (line(r#","extra":1"#), "unknown field"),
            (line(r#","enable_reset":1"#), "true or false"),
            (line(r#","days":{}"#), "array"),
            (
                line(r#","days":[{"date":"2026-02-01"}]"#),
                "hits is required",
            ),
            (
                line(r#","days":[{"date":"2026-02-01","hits":1,"x":1}]"#),
                "unknown field",
            ),
            (
                r#"{"namespace":"x","key":"home","value":1}"#.to_owned(),
                "Malformed",
            ),
            (line(r#","update_lowerbound":5"#), "lowerbound"),
            (line(r#","update_upperbound":-5"#), "upperbound"),
            (line(r#","admin_key_hash":"abc""#), "admin_key_hash"),
            (
                line(r#","days":[{"date":"2026-02-30","hits":1}]"#),
                "not a YYYY-MM-DD",
            ),
            (line(r#","days":[{"date":"2026-02-01","hits":-1}]"#), "≥ 0"),
            (
                line(r#","days":[{"date":"2026-02-01","hits":1},{"date":"2026-02-01","hits":2}]"#),
                "twice",
            ),
            (
                line(r#","days":[{"date":"2026-02-01","hits":1,"uniques_hll":"!!"}]"#),
                "hex",
            ),
            (
                line(r#","days":[{"date":"2026-02-01","hits":1,"uniques_hll":"48594c4c"}]"#),
                "HyperLogLog",
            ),
            (
                line(r#","hours":[{"hour":"2026-11-25T13:30:00Z","hits":1}]"#),
                "hour",
            ),
            (line(r#","created":-5"#), "created"),
            (
                r#"{"namespace":"blog","key":"home","value":"12"}"#.to_owned(),
                "64-bit integer",
            ),
            (
                r#"{"namespace":"blog","key":"home","value":1.5}"#.to_owned(),
                "64-bit integer",
            ),
        ];
        for (bad, expected) in cases {
            let body = format!("{}\n{bad}\n", line(""));
            let body = body.replacen("home", "first", 1);
            let e = parse_import(body.as_bytes(), NOW).unwrap_err();
            assert_eq!(e.line, 2, "{bad}: {e}");
            assert!(e.message.contains(expected), "{bad}: {e}");
        }
        let twice = format!("{}\n{}", line(""), line(""));
        assert!(parse_import(twice.as_bytes(), NOW)
            .unwrap_err()
            .message
            .contains("twice"));
        assert!(parse_import(b"\n\n", NOW).is_err());
        assert_eq!(parse_import(b"{}\n\xff", NOW).unwrap_err().line, 2);
    }

    #[test]
    fn imports_go_in_pipelines_of_bounded_size() {
        let dense = hex::encode({
            let mut hll = b"HYLL".to_vec();
            hll.resize(HLL_DENSE_SIZE, 0);
            hll
        });
        // 30 days of dense HyperLogLogs: ~740 KB of arguments, one counter to a pipeline.
        let days: Vec<String> = (1..=30)
            .map(|d| format!(r#"{{"date":"2026-01-{d:02}","hits":1,"uniques_hll":"{dense}"}}"#))
            .collect();
        let heavy = |key: &str| {
            format!(
                r#"{{"namespace":"blog","key":"{key}","value":1,"days":[{}]}}"#,
                days.join(",")
            )
        };
        let body = [
            heavy("one"),
            heavy("two"),
            line("").replace("home", "light"),
        ]
        .join("\n");
        let counters = parse_import(body.as_bytes(), NOW).unwrap();
        let chunks = import_chunks(&counters);
        assert_eq!(chunks.iter().map(|c| c.len()).collect::<Vec<_>>(), [1, 2]);
        // 40 such days no longer fit in one request: refused with the line's number.
        let too_big = format!(
            r#"{{"namespace":"blog","key":"big","value":1,"days":[{}]}}"#,
            (0..40)
                .map(|d| format!(
                    r#"{{"date":"{}","hits":1,"uniques_hll":"{dense}"}}"#,
                    iso_date(&day_label(1_767_225_600 + d * 86_400))
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let e = parse_import(too_big.as_bytes(), NOW).unwrap_err();
        assert!(e.message.contains("more than one request"), "{e}");
    }

    #[test]
    fn counters_of_other_services_become_import_lines() {
        use serde_json::json;
        let name = Name::parse("blog", "home").unwrap();
        let countapi = json!({"namespace": "x", "key": "y", "value": 7, "created": 1_600_000_000_000i64,
            "enable_reset": 1, "update_lowerbound": -2, "update_upperbound": 3, "ttl": 0});
        let line = from_service(&name, &json!({"value": 42}), Some(&countapi)).unwrap();
        assert_eq!(
            (line.value, line.created, line.enable_reset),
            (42, Some(1_600_000_000_000), true)
        );
        assert_eq!((line.update_lowerbound, line.update_upperbound), (-2, 3));
        assert_eq!(
            (line.namespace.as_str(), line.key.as_str()),
            ("blog", "home")
        );
        // Abacus's /info has none of the settings; a service without /info neither.
        let abacus =
            json!({"value": 42, "full_key": "blog:home", "is_genuine": true, "exists": true});
        let line = from_service(&name, &json!({"value": 42}), Some(&abacus)).unwrap();
        assert_eq!(
            (line.created, line.enable_reset, line.update_upperbound),
            (None, false, 1)
        );
        assert!(from_service(&name, &json!({"value": 1}), None).is_ok());
        assert!(from_service(&name, &json!({"value": "many"}), None).is_err());
        // The line it makes imports.
        let text = serde_json::to_string(
            &from_service(&name, &json!({"value": 42}), Some(&countapi)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            parse_import(text.as_bytes(), NOW).unwrap()[0].call.args[..6],
            ["42", "1600000000", "1", "-2", "3", ""]
        );
    }

    #[test]
    fn hyperloglogs_are_checked_structurally() {
        assert_eq!(check_hyperloglog(&empty_sparse()), Ok(()));
        let mut dense = b"HYLL".to_vec();
        dense.resize(HLL_DENSE_SIZE, 0);
        assert_eq!(check_hyperloglog(&dense), Ok(()));
        dense.push(0);
        assert!(check_hyperloglog(&dense).is_err());
        let mut short = empty_sparse();
        short.truncate(HLL_HEADER + 1);
        assert!(check_hyperloglog(&short).is_err());
        let mut long = empty_sparse();
        long.push(0x80);
        assert!(check_hyperloglog(&long).is_err());
        assert!(check_hyperloglog(b"HYLL\x02............").is_err());
        assert!(check_hyperloglog(b"nope").is_err());
    }

    #[test]
    fn exports_parse_from_the_script_answer() {
        let s = |v: &str| Reply::Bytes(v.as_bytes().to_vec());
        let name = Name::parse("blog", "home").unwrap();
        let mut items = vec![
            s("ok"),
            s("12"),
            s("1795611900"),
            s("1"),
            s("-2"),
            s("3"),
            s(""),
        ];
        // Every day but today is empty; today has hits and a HyperLogLog.
        for _ in 1..EXPORT_DAYS {
            items.extend([s(""), Reply::Int(0), s("")]);
        }
        items.extend([s("3"), Reply::Int(1), Reply::Bytes(empty_sparse())]);
        // Only this hour has hits.
        items.extend((1..EXPORT_HOURS).map(|_| s("")));
        items.push(s("3"));
        let call = export_call(&name, NOW);
        assert_eq!(
            call.keys.len(),
            2 + 2 * EXPORT_DAYS as usize + EXPORT_HOURS as usize
        );
        assert_eq!(call.keys.last().unwrap(), "ec:{blog:home}:h:2026112513");
        let reply = Reply::Array(items);
        let exported = parse_export(reply, &name, NOW).unwrap();
        assert_eq!(exported.value, 12);
        assert_eq!(exported.created, Some(1_795_611_900_000));
        assert!(exported.enable_reset);
        assert_eq!(
            (exported.update_lowerbound, exported.update_upperbound),
            (-2, 3)
        );
        assert_eq!(exported.admin_key_hash, None);
        assert_eq!(exported.days.len(), 1);
        assert_eq!(exported.days[0].date, "2026-11-25");
        assert_eq!((exported.days[0].hits, exported.days[0].uniques), (3, 1));
        assert_eq!(exported.hours.len(), 1);
        assert_eq!(exported.hours[0].hour, "2026-11-25T13:00:00Z");
        // What is exported imports again.
        let line = serde_json::to_string(&exported).unwrap();
        let imported = parse_import(line.as_bytes(), NOW).unwrap();
        assert_eq!(imported[0].call.args[8], hex::encode(empty_sparse()));
    }
}
