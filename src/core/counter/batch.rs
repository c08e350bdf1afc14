//! `POST /batch`: up to [`MAX_BATCH_OPS`] hits and updates in one pipeline, one round trip.
//!
//! Each operation is its own script call (counters live in different Cluster slots, so one script
//! cannot span them); the pipeline starts with a `SCRIPT LOAD` of each script it uses so no entry
//! can fail with `NOSCRIPT` (on Cluster the proxy must send `SCRIPT LOAD` to every primary, as the
//! redis crate's cluster client does). A malformed operation refuses the whole batch before
//! anything is sent; otherwise entries are independent: one that Redis refuses (a missing counter,
//! an amount outside the bounds) fails alone, by index. Batch hits carry no visitor (uniques) and
//! feed no service-wide figures; they do join their namespaces' listings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admin::Authority;
use super::hit::{hit_call, Figures, HitOutcome, HitRequest};
use super::namespace::register_command;
use super::ops::update_call;
use super::{parse_hit, parse_update, scripts, CounterError};
use crate::core::command::{Command, Reply, Script};
use crate::core::names::{Name, RequestContext, DEFAULT_NAMESPACE};

pub const MAX_BATCH_OPS: usize = 500;

/// One entry of a batch body, e.g. `{"op":"hit","namespace":"blog","key":"home"}` or
/// `{"op":"update","key":"stock","amount":-1}` (namespace defaults to `default`).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum BatchItem {
    Hit {
        namespace: Option<String>,
        key: String,
        idempotency_key: Option<String>,
    },
    Update {
        namespace: Option<String>,
        key: String,
        #[serde(deserialize_with = "whole_number")]
        amount: i64,
    },
}

/// A JSON number that is a whole 64-bit integer, written `7` or `7.0` alike (JSON itself does not
/// tell them apart, and JSON Schema calls both integers). A float is taken only where it is
/// exact (below 2^53); `1.5` is refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!(
            "amount must be a whole number within 64 bits, got {number}"
        ))),
    }
}

/// A checked batch operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    Hit {
        name: Name,
        idempotency_key: Option<String>,
    },
    Update {
        name: Name,
        amount: i64,
    },
}

impl BatchOp {
    /// Check one entry of the body (placeholders are not resolved: a batch has no page).
    pub fn from_json(item: &Value) -> Result<Self, CounterError> {
        let item = BatchItem::deserialize(item)
            .map_err(|e| CounterError::InvalidBatchItem(e.to_string()))?;
        let name = |ns: &Option<String>, key: &str| {
            Name::resolve(
                ns.as_deref().unwrap_or(DEFAULT_NAMESPACE),
                key,
                &RequestContext::default(),
            )
        };
        Ok(match item {
            BatchItem::Hit {
                namespace,
                key,
                idempotency_key,
            } => BatchOp::Hit {
                name: name(&namespace, &key)?,
                idempotency_key,
            },
            BatchItem::Update {
                namespace,
                key,
                amount,
            } => BatchOp::Update {
                name: name(&namespace, &key)?,
                amount,
            },
        })
    }
}

/// The answer of one batch entry: a hit's answer or `{"value":N}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BatchOutcome {
    Hit(HitOutcome),
    Update { value: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Hit,
    Update,
}

/// The pipeline to send and how to read it back.
#[derive(Debug)]
pub struct BatchPlan {
    /// Send these with `store.pipeline` (one round trip).
    pub commands: Vec<Command>,
    /// Per input index: the pipeline entry that answers it.
    slots: Vec<(Kind, usize)>,
}

/// Plan a batch. `authority` applies to every update (pass [`Authority::GlobalAdmin`] for the
/// service admin token, else [`Authority::Public`]: bounds apply). Every operation is checked
/// before anything is planned: one malformed operation refuses the whole batch (naming its
/// index), so a refused batch writes nothing. What only Redis can tell (a missing counter, an
/// amount outside the bounds) fails that operation alone, in [`BatchPlan::parse`]. `now` (unix
/// seconds) names the hits' buckets.
pub fn plan_batch(
    items: &[Value],
    authority: &Authority,
    now: i64,
) -> Result<BatchPlan, CounterError> {
    if items.is_empty() || items.len() > MAX_BATCH_OPS {
        return Err(CounterError::BatchSize { max: MAX_BATCH_OPS });
    }
    let mut calls = Vec::with_capacity(items.len());
    let mut hit_names: Vec<Name> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let planned = BatchOp::from_json(item).and_then(|op| match op {
            BatchOp::Hit {
                name,
                idempotency_key,
            } => {
                let request = HitRequest {
                    idempotency_key: idempotency_key.as_deref(),
                    ..Default::default()
                };
                let call = hit_call(&name, &request, now, Figures::Beside)?.evalsha();
                if !hit_names.contains(&name) {
                    hit_names.push(name);
                }
                Ok((Kind::Hit, call))
            }
            BatchOp::Update { name, amount } => Ok((
                Kind::Update,
                update_call(&name, amount, authority).evalsha(),
            )),
        });
        let planned =
            planned.map_err(|e| CounterError::InvalidBatchItem(format!("operation {i}: {e}")))?;
        calls.push(planned);
    }
    let used = |kind| calls.iter().any(|(k, _)| *k == kind);
    let mut loads: Vec<&Script> = Vec::new();
    if used(Kind::Hit) {
        loads.push(&scripts::HIT);
    }
    if used(Kind::Update) {
        loads.push(&scripts::UPDATE);
    }
    let offset = loads.len();
    let mut commands: Vec<Command> = loads
        .iter()
        .map(|s| Command::new("SCRIPT").arg("LOAD").arg(s.source()))
        .collect();
    let mut slots = Vec::with_capacity(calls.len());
    for (i, (kind, command)) in calls.into_iter().enumerate() {
        slots.push((kind, offset + i));
        commands.push(command);
    }
    // Hit counters join their namespaces' listings, in the same round trip.
    commands.extend(hit_names.iter().map(register_command));
    Ok(BatchPlan { commands, slots })
}

impl BatchPlan {
    /// Per input index, its answer or its error (in input order).
    pub fn parse(
        &self,
        entries: Vec<Result<Reply, String>>,
    ) -> Vec<Result<BatchOutcome, CounterError>> {
        let mut entries: Vec<Option<Result<Reply, String>>> =
            entries.into_iter().map(Some).collect();
        self.slots
            .iter()
            .map(|&(kind, index)| {
                let entry = entries
                    .get_mut(index)
                    .and_then(Option::take)
                    .ok_or_else(|| CounterError::Redis("missing pipeline entry".into()))?;
                let reply = match entry.map_err(CounterError::Redis)? {
                    Reply::Error(e) => return Err(CounterError::Redis(e)),
                    reply => reply,
                };
                match kind {
                    Kind::Hit => parse_hit(reply).map(BatchOutcome::Hit),
                    Kind::Update => parse_update(reply).map(|value| BatchOutcome::Update { value }),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_611_900;

    #[test]
    fn plans_one_pipeline_with_script_loads_first_and_registrations_last() {
        let items = vec![
            json!({"op": "hit", "namespace": "blog", "key": "home"}),
            json!({"op": "update", "key": "stock", "amount": -1}),
            json!({"op": "hit", "namespace": "blog", "key": "home"}),
        ];
        let plan = plan_batch(&items, &Authority::Public, NOW).unwrap();
        assert_eq!(plan.commands.len(), 6);
        assert_eq!(plan.commands[0].parts()[..2], ["SCRIPT", "LOAD"]);
        assert_eq!(plan.commands[2].parts()[3], "ec:{blog:home}:v");
        assert_eq!(plan.commands[3].parts()[3], "ec:{default:stock}:v");
        assert_eq!(
            plan.commands[5].parts(),
            ["SADD", "ec:{blog}:counters", "home"]
        );
        let ok_hit = |value: &[u8]| {
            Reply::Array(vec![
                Reply::Bytes(b"ok".to_vec()),
                Reply::Bytes(value.to_vec()),
                Reply::Bytes(b"1".to_vec()),
                Reply::Int(0),
                Reply::Int(1),
                Reply::Int(0),
                Reply::Int(1),
                Reply::Int(0),
            ])
        };
        let results = plan.parse(vec![
            Ok(Reply::Bytes(b"sha".to_vec())),
            Ok(Reply::Bytes(b"sha".to_vec())),
            Ok(ok_hit(b"1")),
            Ok(Reply::Array(vec![Reply::Bytes(b"forbidden".to_vec())])),
            Ok(ok_hit(b"2")),
            Ok(Reply::Int(1)),
        ]);
        assert_eq!(results.len(), 3);
        assert!(matches!(results[0], Ok(BatchOutcome::Hit(ref h)) if h.value == 1));
        assert_eq!(results[1], Err(CounterError::OutsideBounds));
        assert!(matches!(results[2], Ok(BatchOutcome::Hit(ref h)) if h.value == 2));
    }

    #[test]
    fn amounts_are_whole_numbers_however_written() {
        for (amount, ok) in [
            (json!(7), true),
            (json!(-7041.0), true),
            (json!(1.5), false),
            (json!(1e300), false),
            (json!("7"), false),
        ] {
            let items = vec![json!({"op": "update", "key": "stock", "amount": amount})];
            assert_eq!(
                plan_batch(&items, &Authority::Public, NOW).is_ok(),
                ok,
                "{amount}"
            );
        }
    }

    #[test]
    fn one_malformed_operation_refuses_the_whole_batch() {
        for bad in [
            json!({"op": "explode", "key": "home"}),
            json!({"op": "update", "key": "stock", "amount": 1.5}),
            json!({"op": "hit", "namespace": "b", "key": "x"}),
            json!({"op": "hit", "key": "home", "idempotency_key": "has space"}),
        ] {
            let items = vec![json!({"op": "hit", "key": "home"}), bad.clone()];
            let e = plan_batch(&items, &Authority::Public, NOW).unwrap_err();
            assert!(
                matches!(e, CounterError::InvalidBatchItem(ref m) if m.starts_with("operation 1: ")),
                "{bad}: {e}"
            );
            assert_eq!(e.status().as_u16(), 400);
        }
    }

    #[test]
    fn batch_size_is_limited() {
        assert!(plan_batch(&[], &Authority::Public, NOW).is_err());
        let many = vec![json!({"op": "hit", "key": "home"}); MAX_BATCH_OPS + 1];
        assert_eq!(
            plan_batch(&many, &Authority::Public, NOW).unwrap_err(),
            CounterError::BatchSize { max: 500 }
        );
        let plan = plan_batch(&many[..MAX_BATCH_OPS], &Authority::Public, NOW).unwrap();
        // One SCRIPT LOAD, the hits, one registration of the one counter.
        assert_eq!(plan.commands.len(), MAX_BATCH_OPS + 2);
    }
}
