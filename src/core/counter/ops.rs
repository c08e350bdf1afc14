//! Read, create, set, update, reset, delete and describe one counter.

use serde::Serialize;

use super::admin::{AdminKey, Authority};
use super::keys::{CounterKeys, DAILY_TTL_SECS, HOURLY_TTL_SECS};
use super::{field, parse_flag, parse_integer, script_answer, scripts, CounterError, ScriptCall};
use crate::core::command::{Command, Reply};
use crate::core::names::{CounterKey, Name, RequestContext, DEFAULT_NAMESPACE};

/// CountAPI's default update bounds: anyone may add -1..=1.
pub const DEFAULT_LOWER_BOUND: i64 = -1;
pub const DEFAULT_UPPER_BOUND: i64 = 1;

// ---- get -------------------------------------------------------------------------------------

/// `GET ec:{ns:key}:v`: reads, never changes anything (a plain command, no script).
pub fn get_command(name: &Name) -> Command {
    Command::new("GET").arg(CounterKeys::new(name).value())
}

/// The value, or [`CounterError::NotFound`] (the route answers `"value": null` with it).
pub fn parse_get(reply: Reply) -> Result<i64, CounterError> {
    reply.as_opt_i64()?.ok_or(CounterError::NotFound)
}

// ---- create ----------------------------------------------------------------------------------

/// How a new counter starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateSpec {
    pub value: i64,
    pub enable_reset: bool,
    pub lower_bound: i64,
    pub upper_bound: i64,
}

impl Default for CreateSpec {
    fn default() -> Self {
        CreateSpec {
            value: 0,
            enable_reset: false,
            lower_bound: DEFAULT_LOWER_BOUND,
            upper_bound: DEFAULT_UPPER_BOUND,
        }
    }
}

impl CreateSpec {
    /// The options of both create forms (CountAPI's `GET /create?value=&enable_reset=
    /// &update_lowerbound=&update_upperbound=`, Abacus's `/create/{ns}/{key}?initializer=`), with
    /// CountAPI's rules: the lower bound ≤ 0 ≤ the upper bound, so a range is never inverted. A
    /// bound of 0 is accepted (0..0 allows no public update), as CountAPI did.
    pub fn parse(
        value: Option<&str>,
        enable_reset: Option<&str>,
        update_lowerbound: Option<&str>,
        update_upperbound: Option<&str>,
    ) -> Result<Self, CounterError> {
        let spec = CreateSpec {
            value: opt_integer("value", value)?.unwrap_or(0),
            enable_reset: enable_reset
                .map(|v| parse_flag("enable_reset", v))
                .transpose()?
                .unwrap_or(false),
            lower_bound: opt_integer("update_lowerbound", update_lowerbound)?
                .unwrap_or(DEFAULT_LOWER_BOUND),
            upper_bound: opt_integer("update_upperbound", update_upperbound)?
                .unwrap_or(DEFAULT_UPPER_BOUND),
        };
        if spec.upper_bound < 0 {
            return Err(CounterError::UpperBoundNotPositive);
        }
        if spec.lower_bound > 0 {
            return Err(CounterError::LowerBoundNotNegative);
        }
        Ok(spec)
    }
}

/// An optional integer parameter; empty counts as absent (`?value=` from a form).
fn opt_integer(field: &'static str, raw: Option<&str>) -> Result<Option<i64>, CounterError> {
    raw.filter(|v| !v.trim().is_empty())
        .map(|v| parse_integer(field, v))
        .transpose()
}

/// A random (version 4) UUID, CountAPI's default key: valid as a name (hex and `-`, 36 chars).
pub fn random_uuid() -> Result<String, CounterError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| CounterError::Random(e.to_string()))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The name of a CountAPI `/create`: namespace defaults to `default`, key to a random UUID;
/// placeholders are resolved as on every route.
pub fn countapi_create_name(
    namespace: Option<&str>,
    key: Option<&str>,
    request: &RequestContext<'_>,
) -> Result<Name, CounterError> {
    let ns = namespace
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE);
    match key.filter(|k| !k.is_empty()) {
        Some(key) => Ok(Name::resolve(ns, key, request)?),
        None => Ok(Name {
            ns: Name::resolve(ns, "placeholder", request)?.ns,
            key: CounterKey::parse(&random_uuid()?)?,
        }),
    }
}

/// The create script call and the admin key to show once (only its hash goes to Redis); `now`
/// (unix seconds) is its `created`.
pub fn create_call(
    name: &Name,
    spec: &CreateSpec,
    now: i64,
) -> Result<(ScriptCall, AdminKey), CounterError> {
    let admin_key = AdminKey::generate()?;
    let keys = CounterKeys::new(name);
    let call = ScriptCall {
        script: &scripts::CREATE,
        keys: vec![keys.value(), keys.meta()],
        args: vec![
            spec.value.to_string(),
            admin_key.hash(),
            if spec.enable_reset { "1" } else { "0" }.to_owned(),
            spec.lower_bound.to_string(),
            spec.upper_bound.to_string(),
            now.to_string(),
        ],
    };
    Ok((call, admin_key))
}

/// The answer of a create: `{"namespace","key","value","admin_key"}`, and `"namespace_token"`
/// when this was the namespace's first counter (both shown this once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Created {
    pub namespace: String,
    pub key: String,
    pub value: i64,
    pub admin_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_token: Option<String>,
}

/// The created counter, or [`CounterError::AlreadyExists`] (409).
pub fn parse_create(
    reply: Reply,
    name: &Name,
    admin_key: &AdminKey,
) -> Result<Created, CounterError> {
    let items = script_answer(reply, CounterError::AdminRequired)?;
    Ok(Created {
        namespace: name.ns.to_string(),
        key: name.key.to_string(),
        value: field(&items, 0)?.as_i64()?,
        admin_key: admin_key.as_str().to_owned(),
        namespace_token: None,
    })
}

// ---- set, update, reset, delete --------------------------------------------------------------

fn value_and_meta(name: &Name) -> Vec<String> {
    let keys = CounterKeys::new(name);
    vec![keys.value(), keys.meta()]
}

/// Set the value (admin, or anyone when the counter has `enable_reset`).
pub fn set_call(name: &Name, value: i64, authority: &Authority) -> ScriptCall {
    ScriptCall {
        script: &scripts::SET,
        keys: value_and_meta(name),
        args: vec![value.to_string(), authority.script_arg()],
    }
}

/// `{"old_value":O,"value":V}`
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SetOutcome {
    pub old_value: i64,
    pub value: i64,
}

/// 404 missing, 403 [`CounterError::AdminRequired`].
pub fn parse_set(reply: Reply) -> Result<SetOutcome, CounterError> {
    let items = script_answer(reply, CounterError::AdminRequired)?;
    Ok(SetOutcome {
        old_value: field(&items, 0)?.as_i64()?,
        value: field(&items, 1)?.as_i64()?,
    })
}

/// Add `amount` (admin, or anyone within the counter's update bounds).
pub fn update_call(name: &Name, amount: i64, authority: &Authority) -> ScriptCall {
    ScriptCall {
        script: &scripts::UPDATE,
        keys: value_and_meta(name),
        args: vec![amount.to_string(), authority.script_arg()],
    }
}

/// The new value; 404 missing, 403 [`CounterError::OutsideBounds`], 400 overflow.
pub fn parse_update(reply: Reply) -> Result<i64, CounterError> {
    let items = script_answer(reply, CounterError::OutsideBounds)?;
    Ok(field(&items, 0)?.as_i64()?)
}

/// Back to 0 (admin only).
pub fn reset_call(name: &Name, authority: &Authority) -> ScriptCall {
    ScriptCall {
        script: &scripts::RESET,
        keys: value_and_meta(name),
        args: vec![authority.script_arg()],
    }
}

/// The new value (0); 404 missing, 403 [`CounterError::AdminRequired`].
pub fn parse_reset(reply: Reply) -> Result<i64, CounterError> {
    let items = script_answer(reply, CounterError::AdminRequired)?;
    Ok(field(&items, 0)?.as_i64()?)
}

/// Remove the counter with all its buckets (admin only): every day and hour inside the retention
/// windows ending at `now` (unix seconds), one step past them on both sides (a bucket written a
/// moment before its TTL was refreshed, a clock a little ahead).
pub fn delete_call(name: &Name, authority: &Authority, now: i64) -> ScriptCall {
    let counter = CounterKeys::new(name);
    let mut keys = value_and_meta(name);
    keys.extend(counter.days_back(now, (DAILY_TTL_SECS / 86_400) as u32 + 2, 1));
    keys.extend(counter.hours_back(now, (HOURLY_TTL_SECS / 3600) as u32 + 2, 1));
    ScriptCall {
        script: &scripts::DELETE,
        keys,
        args: vec![authority.script_arg()],
    }
}

/// `Ok(())` once deleted; 404 missing, 403 [`CounterError::AdminRequired`].
pub fn parse_delete(reply: Reply) -> Result<(), CounterError> {
    script_answer(reply, CounterError::AdminRequired).map(|_| ())
}

// ---- info ------------------------------------------------------------------------------------

pub fn info_call(name: &Name) -> ScriptCall {
    ScriptCall {
        script: &scripts::INFO,
        keys: value_and_meta(name),
        args: vec![],
    }
}

/// `{"namespace","key","value","created","expires_in","enable_reset","update_lowerbound",
/// "update_upperbound"}`. `created` is unix milliseconds (CountAPI's unit); `expires_in` is
/// `null`: counters do not expire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CounterInfo {
    pub namespace: String,
    pub key: String,
    pub value: i64,
    pub created: Option<i64>,
    pub expires_in: Option<i64>,
    pub enable_reset: bool,
    pub update_lowerbound: i64,
    pub update_upperbound: i64,
}

pub fn parse_info(reply: Reply, name: &Name) -> Result<CounterInfo, CounterError> {
    let items = script_answer(reply, CounterError::AdminRequired)?;
    let ttl = field(&items, 1)?.as_i64()?;
    // Bounds missing from a meta allow no public update (see counter_update.lua): show that.
    let bound =
        |i| -> Result<i64, CounterError> { Ok(field(&items, i)?.as_opt_i64()?.unwrap_or(0)) };
    Ok(CounterInfo {
        namespace: name.ns.to_string(),
        key: name.key.to_string(),
        value: field(&items, 0)?.as_i64()?,
        created: field(&items, 2)?
            .as_opt_i64()?
            .map(|s| s.saturating_mul(1000)),
        expires_in: (ttl >= 0).then_some(ttl),
        enable_reset: field(&items, 3)?.as_opt_i64()? == Some(1),
        update_lowerbound: bound(4)?,
        update_upperbound: bound(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(items: Vec<Reply>) -> Reply {
        let mut all = vec![Reply::Bytes(b"ok".to_vec())];
        all.extend(items);
        Reply::Array(all)
    }

    fn s(v: &str) -> Reply {
        Reply::Bytes(v.as_bytes().to_vec())
    }

    #[test]
    fn countapi_create_rules() {
        assert_eq!(
            CreateSpec::parse(None, None, None, None).unwrap(),
            CreateSpec::default()
        );
        let spec = CreateSpec::parse(Some("10"), Some("1"), Some("-5"), Some("5")).unwrap();
        assert_eq!((spec.value, spec.enable_reset), (10, true));
        assert_eq!((spec.lower_bound, spec.upper_bound), (-5, 5));
        assert_eq!(
            CreateSpec::parse(None, None, None, Some("-1"))
                .unwrap_err()
                .to_string(),
            "update_upperbound must be positive"
        );
        assert_eq!(
            CreateSpec::parse(None, None, Some("2"), None)
                .unwrap_err()
                .to_string(),
            "update_lowerbound must be negative"
        );
        assert_eq!(
            CreateSpec::parse(Some("x"), None, None, None).unwrap_err(),
            CounterError::NotAnInteger { field: "value" }
        );
        assert_eq!(
            CreateSpec::parse(Some("7"), None, None, None)
                .unwrap()
                .value,
            7
        );
        assert!(CreateSpec::parse(Some("1e3"), None, None, None).is_err());
        // An inverted range is refused whichever bound is checked first.
        assert!(CreateSpec::parse(None, None, Some("5"), Some("-5")).is_err());
    }

    #[test]
    fn countapi_names_default_to_a_uuid_in_default() {
        let name = countapi_create_name(None, None, &RequestContext::default()).unwrap();
        assert_eq!(name.ns.as_str(), "default");
        let key = name.key.as_str();
        assert_eq!(key.len(), 36);
        assert_eq!(&key[14..15], "4");
        let name =
            countapi_create_name(Some("blog"), Some("home"), &RequestContext::default()).unwrap();
        assert_eq!(name.path(), "blog/home");
        assert_eq!(
            countapi_create_name(Some("x"), None, &RequestContext::default())
                .unwrap_err()
                .to_string(),
            "Malformed Namespace/Key"
        );
    }

    #[test]
    fn create_stores_only_the_hash() {
        let name = Name::parse("blog", "home").unwrap();
        let (call, key) = create_call(&name, &CreateSpec::default(), 1_795_611_900).unwrap();
        assert_eq!(call.keys, ["ec:{blog:home}:v", "ec:{blog:home}:m"]);
        assert_eq!(call.args[5], "1795611900");
        assert_eq!(call.args[1], key.hash());
        assert!(!call.args.iter().any(|a| a == key.as_str()));
        let created = parse_create(ok(vec![s("0")]), &name, &key).unwrap();
        assert_eq!(created.admin_key, key.as_str());
        let exists = Reply::Array(vec![s("exists")]);
        assert_eq!(
            parse_create(exists, &name, &key),
            Err(CounterError::AlreadyExists)
        );
    }

    #[test]
    fn mutations_carry_the_authority() {
        let name = Name::parse("blog", "home").unwrap();
        assert_eq!(set_call(&name, 5, &Authority::GlobalAdmin).args, ["5", "*"]);
        assert_eq!(update_call(&name, -1, &Authority::Public).args, ["-1", ""]);
        assert_eq!(
            parse_set(ok(vec![s("3"), s("5")])).unwrap(),
            SetOutcome {
                old_value: 3,
                value: 5
            }
        );
        let forbidden = || Reply::Array(vec![s("forbidden")]);
        assert_eq!(parse_set(forbidden()), Err(CounterError::AdminRequired));
        assert_eq!(parse_update(forbidden()), Err(CounterError::OutsideBounds));
        assert_eq!(parse_delete(forbidden()), Err(CounterError::AdminRequired));
        assert_eq!(parse_get(Reply::Nil), Err(CounterError::NotFound));
        assert_eq!(parse_get(s("12")), Ok(12));
        // Every bucket inside the retention windows (400 days, 72 hours) and one past each side.
        let delete = delete_call(&name, &Authority::GlobalAdmin, 1_795_611_900);
        assert_eq!(delete.args, ["*"]);
        assert_eq!(delete.keys.len(), 2 + 2 * 403 + 75);
        assert_eq!(delete.keys[2], "ec:{blog:home}:d:20251020");
        assert!(delete
            .keys
            .contains(&"ec:{blog:home}:u:20261126".to_owned()));
        assert_eq!(delete.keys.last().unwrap(), "ec:{blog:home}:h:2026112514");
    }

    #[test]
    fn info_parses() {
        let name = Name::parse("blog", "home").unwrap();
        let reply = ok(vec![
            s("5"),
            Reply::Int(-1),
            s("1795611900"),
            s("0"),
            s("-1"),
            s("1"),
        ]);
        let info = parse_info(reply, &name).unwrap();
        assert_eq!(info.created, Some(1_795_611_900_000));
        assert_eq!(info.expires_in, None);
        assert_eq!((info.update_lowerbound, info.update_upperbound), (-1, 1));
        assert!(!info.enable_reset);
    }
}
