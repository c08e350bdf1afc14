//! The shape of one Redis call and its reply, independent of how it travels (REST, RESP).
//!
//! The core builds [`Command`]s and reads [`Reply`]s; `store` moves them. Arguments are strings
//! because the Upstash REST body is JSON: a binary argument cannot be expressed there.
use std::borrow::Cow;
use std::fmt;

/// One Redis command: name first, then its arguments, as they go on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command(Vec<String>);

impl Command {
    pub fn new(name: &str) -> Self {
        Command(vec![name.to_owned()])
    }

    pub fn arg(mut self, arg: impl ToString) -> Self {
        self.0.push(arg.to_string());
        self
    }

    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: ToString,
    {
        self.0.extend(args.into_iter().map(|a| a.to_string()));
        self
    }

    /// Name and arguments, in order.
    pub fn parts(&self) -> &[String] {
        &self.0
    }

    pub fn name(&self) -> &str {
        &self.0[0]
    }
}

/// A Redis reply as RESP2 knows it, with error replies inside arrays kept in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Int(i64),
    /// Bulk or simple string: raw bytes.
    Bytes(Vec<u8>),
    Array(Vec<Reply>),
    /// An error reply nested in an array (EXEC results, Lua tables). A top-level error is
    /// `Err(StoreError::Redis(..))` instead.
    Error(String),
}

/// A reply was not of the shape the caller expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unexpected reply: expected {expected}, got {got}")]
pub struct ReplyError {
    pub expected: &'static str,
    pub got: String,
}

impl Reply {
    fn unexpected(&self, expected: &'static str) -> ReplyError {
        ReplyError {
            expected,
            got: self.to_string(),
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Reply::Nil)
    }

    /// An integer, also accepting a string of digits (Lua may return either).
    pub fn as_i64(&self) -> Result<i64, ReplyError> {
        match self {
            Reply::Int(n) => Ok(*n),
            Reply::Bytes(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.unexpected("integer")),
            _ => Err(self.unexpected("integer")),
        }
    }

    /// An integer, or `None` for nil.
    pub fn as_opt_i64(&self) -> Result<Option<i64>, ReplyError> {
        match self {
            Reply::Nil => Ok(None),
            other => other.as_i64().map(Some),
        }
    }

    pub fn as_bytes(&self) -> Result<&[u8], ReplyError> {
        match self {
            Reply::Bytes(b) => Ok(b),
            _ => Err(self.unexpected("string")),
        }
    }

    pub fn as_str(&self) -> Result<&str, ReplyError> {
        std::str::from_utf8(self.as_bytes()?).map_err(|_| self.unexpected("UTF-8 string"))
    }

    pub fn as_array(&self) -> Result<&[Reply], ReplyError> {
        match self {
            Reply::Array(items) => Ok(items),
            _ => Err(self.unexpected("array")),
        }
    }

    pub fn into_array(self) -> Result<Vec<Reply>, ReplyError> {
        match self {
            Reply::Array(items) => Ok(items),
            other => Err(other.unexpected("array")),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Nil => f.write_str("nil"),
            Reply::Int(n) => write!(f, "{n}"),
            Reply::Bytes(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Reply::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Reply::Error(e) => write!(f, "(error) {e}"),
        }
    }
}

/// A Lua script with its SHA1, computed once, so callers can `EVALSHA` and fall back to `EVAL`.
#[derive(Clone, Debug)]
pub struct Script {
    source: &'static str,
    sha1: Cow<'static, str>,
}

impl Script {
    /// A script whose SHA1 is computed now (tests, ad-hoc scripts).
    pub fn new(source: &'static str) -> Self {
        Script {
            source,
            sha1: Cow::Owned(sha1_smol::Sha1::from(source).digest().to_string()),
        }
    }

    /// A script embedded at build time with the SHA1 `build.rs` computed from the same bytes
    /// (see [`embedded_script!`](crate::embedded_script)).
    pub const fn embedded(source: &'static str, sha1: &'static str) -> Self {
        Script {
            source,
            sha1: Cow::Borrowed(sha1),
        }
    }

    pub fn source(&self) -> &'static str {
        self.source
    }

    pub fn sha1(&self) -> &str {
        &self.sha1
    }

    /// `EVALSHA sha numkeys keys… args…`
    pub fn evalsha(&self, keys: &[String], args: &[String]) -> Command {
        Self::invocation("EVALSHA", self.sha1(), keys, args)
    }

    /// `EVAL source numkeys keys… args…`, used after a `NOSCRIPT` reply.
    pub fn eval(&self, keys: &[String], args: &[String]) -> Command {
        Self::invocation("EVAL", self.source, keys, args)
    }

    fn invocation(verb: &str, body: &str, keys: &[String], args: &[String]) -> Command {
        Command::new(verb)
            .arg(body)
            .arg(keys.len())
            .args(keys)
            .args(args)
    }
}

/// A [`Script`] assembled by `build.rs` (`$OUT_DIR/scripts/<name>.lua`), with its SHA1.
#[macro_export]
#[doc(hidden)]
macro_rules! embedded_script {
    ($name:literal) => {
        $crate::core::command::Script::embedded(
            include_str!(concat!(env!("OUT_DIR"), "/scripts/", $name, ".lua")),
            include_str!(concat!(env!("OUT_DIR"), "/scripts/", $name, ".sha1")),
        )
    };
}

/// One script invocation, built by the core: run it with `Store::run` (EVALSHA, falling back to
/// EVAL), or put [`ScriptCall::evalsha`] in a pipeline.
#[derive(Clone, Debug)]
pub struct ScriptCall {
    pub script: &'static Script,
    pub keys: Vec<String>,
    pub args: Vec<String>,
}

impl ScriptCall {
    /// `EVALSHA …` for this call.
    pub fn evalsha(&self) -> Command {
        self.script.evalsha(&self.keys, &self.args)
    }

    /// `EVAL …` for this call (after `NOSCRIPT`).
    pub fn eval(&self) -> Command {
        self.script.eval(&self.keys, &self.args)
    }
}

#[cfg(test)]
mod tests {
    use crate::core::{counter, ratelimit};

    #[test]
    fn embedded_scripts_carry_the_sha1_of_their_source() {
        let mut embedded: Vec<&Script> = counter::scripts::all().to_vec();
        embedded.push(ratelimit::script());
        for script in embedded {
            let computed = Script::new(script.source());
            assert_eq!(script.sha1(), computed.sha1(), "{}", &script.source()[..60]);
            assert_eq!(script.sha1().len(), 40);
        }
    }

    use super::*;

    #[test]
    fn script_sha_matches_redis() {
        // `redis-cli SCRIPT LOAD "return 1"` answers this digest.
        let s = Script::new("return 1");
        assert_eq!(s.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        let c = s.evalsha(&["k".into()], &["a".into()]);
        assert_eq!(c.parts(), ["EVALSHA", s.sha1(), "1", "k", "a"]);
    }

    #[test]
    fn integer_replies_accept_digit_strings() {
        assert_eq!(Reply::Bytes(b"42".to_vec()).as_i64(), Ok(42));
        assert!(Reply::Bytes(b"x".to_vec()).as_i64().is_err());
        assert_eq!(Reply::Nil.as_opt_i64(), Ok(None));
    }
}
