//! The counter rules, pure: for each operation a function that builds the Redis call and one that
//! reads the reply into a typed answer. The async service (`Counters<S: Store>`) only moves them.
//!
//! | operation | build | run with | read |
//! |---|---|---|---|
//! | hit | [`hit_call`] (on Redis Cluster + [`global_hit_commands`]) | `store.eval` (on Cluster one pipeline) | [`parse_hit`] |
//! | get | [`get_command`] | `store.command` | [`parse_get`] |
//! | create | [`create_call`] | `store.eval` | [`parse_create`] |
//! | set | [`set_call`] | `store.eval` | [`parse_set`] |
//! | update | [`update_call`] | `store.eval` | [`parse_update`] |
//! | reset | [`reset_call`] | `store.eval` | [`parse_reset`] |
//! | delete | [`delete_call`] | `store.eval` | [`parse_delete`] |
//! | info | [`info_call`] | `store.eval` | [`parse_info`] |
//! | stats | [`stats_call`] | `store.eval` | [`parse_stats`] |
//! | global stats | [`global_stats_call`] (on Redis Cluster [`global_stats_commands`]) | `store.eval` (on Cluster `store.pipeline`) | [`parse_global_stats_reply`] ([`parse_global_stats`]) |
//! | batch | [`plan_batch`] | `store.pipeline` | [`BatchPlan::parse`] |
//!
//! Admin rights ([`Authority`]) are settled before a mutating call, see [`begin_auth`].
//! Key layout and TTLs: [`keys`]. Time comes from the caller (`now`, unix seconds: the serving
//! process's clock) and names every day and hour bucket, so each script declares every key it
//! touches in `KEYS` and none reads `TIME`.

pub mod admin;
pub mod batch;
pub mod calendar;
pub mod hit;
pub mod keys;
pub mod namespace;
pub mod ops;
pub mod stats;
pub mod transfer;

use http::StatusCode;

use crate::core::command::{Reply, ReplyError, Script};
use crate::core::names::NameError;

pub use admin::{
    admin_key_matches, bearer_token, begin_auth, finish_auth, hash_admin_key, is_global_admin,
    opens_namespace, AdminKey, AuthStep, Authority,
};
pub use batch::{plan_batch, BatchItem, BatchOp, BatchOutcome, BatchPlan, MAX_BATCH_OPS};
pub use hit::{
    global_hit_commands, global_hit_undo, hit_call, parse_hit, validate_idempotency_key,
    visitor_hash, AbuseLimit, Figures, HitOutcome, HitRequest, Visitor,
};
pub use keys::{CounterKeys, NamespaceKeys};
pub use ops::{
    countapi_create_name, create_call, delete_call, get_command, info_call, parse_create,
    parse_delete, parse_get, parse_info, parse_reset, parse_set, parse_update, random_uuid,
    reset_call, set_call, update_call, CounterInfo, CreateSpec, Created, SetOutcome,
};
pub use stats::{
    global_stats_call, global_stats_commands, parse_days, parse_global_stats,
    parse_global_stats_reply, parse_stats, stats_call, CounterStats, DayStats, GlobalStats,
    HourStats,
};
pub use transfer::{ExportedCounter, ImportError};

/// Everything a counter operation can refuse or fail with. [`CounterError::status`] gives the
/// HTTP status; the `Display` text is the `"error"` message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CounterError {
    /// 400
    #[error(transparent)]
    Name(#[from] NameError),
    /// 400: a number parameter that is not an integer.
    #[error("{field} must be an integer")]
    NotAnInteger { field: &'static str },
    /// 400: an integer parameter beyond 64 bits (or beyond its own range, e.g. `days`).
    #[error("{field} is out of range")]
    OutOfRange { field: &'static str },
    /// 400: a flag parameter that is not 0/1/true/false.
    #[error("{field} must be 0 or 1")]
    NotAFlag { field: &'static str },
    /// 400 (CountAPI's message)
    #[error("update_upperbound must be positive")]
    UpperBoundNotPositive,
    /// 400 (CountAPI's message)
    #[error("update_lowerbound must be negative")]
    LowerBoundNotNegative,
    /// 400: an `Idempotency-Key`/`rid` that is empty, too long or not visible ASCII.
    #[error("Idempotency-Key must be 1 to 128 visible ASCII characters")]
    InvalidIdempotencyKey,
    /// 400
    #[error("a batch holds 1 to {max} operations")]
    BatchSize { max: usize },
    /// 400: a batch entry that is not a known operation.
    #[error("{0}")]
    InvalidBatchItem(String),
    /// 400: the change would take the value beyond a 64-bit integer.
    #[error("the value would overflow a 64-bit integer")]
    Overflow,
    /// 404
    #[error("counter not found")]
    NotFound,
    /// 409
    #[error("counter already exists")]
    AlreadyExists,
    /// 403: set without admin rights on a counter without enable_reset (CountAPI's status, with
    /// or without credentials); reset and delete with credentials that are not an admin's.
    #[error("admin key required (Authorization: Bearer …)")]
    AdminRequired,
    /// 403: update without admin rights beyond the counter's update bounds (CountAPI's status).
    #[error("amount outside the counter's update bounds (an admin key lifts them: Authorization: Bearer …)")]
    OutsideBounds,
    /// 401: a namespace route without a token; the message says which token opens it.
    #[error("{0}")]
    TokenRequired(&'static str),
    /// 403: a token that does not open this namespace (or is not the admin token).
    #[error("{0}")]
    TokenRefused(&'static str),
    /// 400: an import body that does not hold up (nothing was imported).
    #[error(transparent)]
    Import(#[from] ImportError),
    /// 500: the platform's random source failed (admin key, UUID).
    #[error("random source failed: {0}")]
    Random(String),
    /// 502: Redis answered a shape the scripts never produce.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// 502: Redis refused one entry of a pipeline (a batch entry, a global figure).
    #[error("redis error: {0}")]
    Redis(String),
}

impl CounterError {
    pub fn status(&self) -> StatusCode {
        use CounterError::*;
        match self {
            Name(_)
            | NotAnInteger { .. }
            | OutOfRange { .. }
            | NotAFlag { .. }
            | UpperBoundNotPositive
            | LowerBoundNotNegative
            | InvalidIdempotencyKey
            | BatchSize { .. }
            | InvalidBatchItem(_)
            | Import(_)
            | Overflow => StatusCode::BAD_REQUEST,
            NotFound => StatusCode::NOT_FOUND,
            AlreadyExists => StatusCode::CONFLICT,
            TokenRequired(_) => StatusCode::UNAUTHORIZED,
            AdminRequired | OutsideBounds | TokenRefused(_) => StatusCode::FORBIDDEN,
            Random(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Reply(_) | Redis(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

pub use crate::core::command::ScriptCall;

/// The counter scripts, each with the shared prelude `counter_lib.lua` prepended; embedded as the
/// minified copies `build.rs` assembles (no comments or indentation; same code), with their SHA1s.
pub mod scripts {
    use super::*;

    /// The whole hit: value, buckets, uniques, idempotency, publish.
    pub static HIT: Script = crate::embedded_script!("counter_hit");
    pub static CREATE: Script = crate::embedded_script!("counter_create");
    pub static SET: Script = crate::embedded_script!("counter_set");
    pub static UPDATE: Script = crate::embedded_script!("counter_update");
    pub static RESET: Script = crate::embedded_script!("counter_reset");
    pub static DELETE: Script = crate::embedded_script!("counter_delete");
    pub static INFO: Script = crate::embedded_script!("counter_info");
    pub static STATS: Script = crate::embedded_script!("counter_stats");
    pub static EXPORT: Script = crate::embedded_script!("counter_export");
    pub static IMPORT: Script = crate::embedded_script!("counter_import");
    /// Not about one counter (no prelude): a namespace's registry and token after a create.
    pub static NAMESPACE_CLAIM: Script = crate::embedded_script!("namespace_claim");
    /// Not about one counter (no prelude): see [`super::hit::global_hit_undo`].
    pub static GLOBAL_HIT_UNDO: Script = crate::embedded_script!("global_hit_undo");
    /// Not about one counter (no prelude): see [`super::stats::global_stats_call`].
    pub static GLOBAL_STATS: Script = crate::embedded_script!("global_stats");

    /// Every counter script, e.g. to `SCRIPT LOAD` them ahead of a pipeline.
    pub fn all() -> [&'static Script; 10] {
        [
            &HIT, &CREATE, &SET, &UPDATE, &RESET, &DELETE, &INFO, &STATS, &EXPORT, &IMPORT,
        ]
    }
}

/// Parse an integer query parameter: `field` names it in the error.
pub fn parse_integer(field: &'static str, raw: &str) -> Result<i64, CounterError> {
    use std::num::IntErrorKind;
    raw.trim().parse::<i64>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => CounterError::OutOfRange { field },
        _ => CounterError::NotAnInteger { field },
    })
}

/// Parse a flag parameter: `1`/`true`/`0`/`false` (CountAPI sent 0/1).
pub fn parse_flag(field: &'static str, raw: &str) -> Result<bool, CounterError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" | "" => Ok(false),
        _ => Err(CounterError::NotAFlag { field }),
    }
}

/// Split a script answer `{status, …}`: `ok` gives the rest, other statuses become errors
/// (`forbidden` becomes `forbidden`, which differs per operation).
fn script_answer(reply: Reply, forbidden: CounterError) -> Result<Vec<Reply>, CounterError> {
    let mut items = reply.into_array()?;
    if items.is_empty() {
        return Err(ReplyError {
            expected: "script answer",
            got: "[]".into(),
        }
        .into());
    }
    let rest = items.split_off(1);
    match items[0].as_str()? {
        "ok" => Ok(rest),
        "not_found" => Err(CounterError::NotFound),
        "exists" => Err(CounterError::AlreadyExists),
        "forbidden" => Err(forbidden),
        "overflow" => Err(CounterError::Overflow),
        other => Err(ReplyError {
            expected: "script status",
            got: other.to_owned(),
        }
        .into()),
    }
}

/// The `i`-th field of a script answer, which must be there.
fn field(items: &[Reply], i: usize) -> Result<&Reply, CounterError> {
    items.get(i).ok_or_else(|| {
        ReplyError {
            expected: "more fields in the script answer",
            got: format!("{} fields", items.len()),
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_with_clear_errors() {
        assert_eq!(parse_integer("value", " -42 "), Ok(-42));
        assert_eq!(
            parse_integer("value", "1.5").unwrap_err().to_string(),
            "value must be an integer"
        );
        assert_eq!(
            parse_integer("amount", "99999999999999999999"),
            Err(CounterError::OutOfRange { field: "amount" })
        );
        assert!(parse_integer("value", "").is_err());
        assert_eq!(parse_flag("enable_reset", "1"), Ok(true));
        assert_eq!(parse_flag("enable_reset", "false"), Ok(false));
        assert!(parse_flag("enable_reset", "yes").is_err());
    }

    #[test]
    fn statuses_map_to_http() {
        assert_eq!(CounterError::NotFound.status(), StatusCode::NOT_FOUND);
        assert_eq!(CounterError::AlreadyExists.status(), StatusCode::CONFLICT);
        assert_eq!(CounterError::OutsideBounds.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            CounterError::from(NameError {
                part: crate::core::names::NamePart::Key
            })
            .to_string(),
            "Malformed Namespace/Key"
        );
    }

    #[test]
    fn scripts_carry_the_prelude() {
        for script in scripts::all() {
            assert!(script.source().contains("local function counter_prefix"));
            // Time comes from the caller, who names every key.
            assert!(!script.source().contains("TIME"), "{}", script.source());
        }
        // counter_hit.lua's own body follows the prelude (embedded minified: no comments).
        assert!(scripts::HIT.source().contains("local function key_at"));
        for script in scripts::all() {
            assert!(!script.source().contains("--"), "{}", script.source());
        }
    }

    #[test]
    fn script_statuses_become_errors() {
        let answer = |s: &str| Reply::Array(vec![Reply::Bytes(s.as_bytes().to_vec())]);
        assert_eq!(
            script_answer(answer("not_found"), CounterError::AdminRequired),
            Err(CounterError::NotFound)
        );
        assert_eq!(
            script_answer(answer("forbidden"), CounterError::OutsideBounds),
            Err(CounterError::OutsideBounds)
        );
        assert_eq!(
            script_answer(answer("ok"), CounterError::AdminRequired),
            Ok(vec![])
        );
        assert!(script_answer(Reply::Int(1), CounterError::AdminRequired).is_err());
    }
}
