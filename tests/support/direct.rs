//! Run a core `Command` straight against a test redis-server with the redis crate (RESP2),
//! bypassing REST: for testing Lua scripts and key layouts on real Redis.

use edgecount::core::command::{Command, Reply, ScriptCall};

pub fn to_reply(value: redis::Value) -> Reply {
    match value {
        redis::Value::Nil => Reply::Nil,
        redis::Value::Int(n) => Reply::Int(n),
        redis::Value::BulkString(b) => Reply::Bytes(b),
        redis::Value::SimpleString(s) => Reply::Bytes(s.into_bytes()),
        redis::Value::Okay => Reply::Bytes(b"OK".to_vec()),
        redis::Value::Array(items) => Reply::Array(items.into_iter().map(to_reply).collect()),
        redis::Value::ServerError(e) => Reply::Error(server_error_text(&e)),
        other => panic!("RESP3-only reply from a RESP2 connection: {other:?}"),
    }
}

fn server_error_text(e: &redis::ServerError) -> String {
    match e.details() {
        Some(details) => format!("{} {}", e.code(), details),
        None => e.code().to_string(),
    }
}

/// Run one command on a fresh connection; a top-level error reply is `Err(text)`.
pub fn exec(redis_url: &str, cmd: &Command) -> Result<Reply, String> {
    let client = redis::Client::open(redis_url).expect("redis url");
    let mut conn = client.get_connection().expect("connect to test redis");
    let mut c = redis::cmd(cmd.name());
    for arg in &cmd.parts()[1..] {
        c.arg(arg.as_str());
    }
    match c.query::<redis::Value>(&mut conn) {
        Ok(v) => Ok(to_reply(v)),
        Err(e) => Err(match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            _ => e.to_string(),
        }),
    }
}

/// One persistent connection to a test server (per-call connections would make long sequences
/// slow); test files add their own methods on it.
pub struct Conn(pub redis::Connection);

impl Conn {
    pub fn open(redis: &super::RedisServer) -> Conn {
        let client = redis::Client::open(redis.url()).expect("redis url");
        Conn(client.get_connection().expect("connect to test redis"))
    }

    /// One command; a top-level error reply is `Err(text)`.
    pub fn run(&mut self, cmd: &Command) -> Result<Reply, String> {
        let mut c = redis::cmd(cmd.name());
        for arg in &cmd.parts()[1..] {
            c.arg(arg.as_str());
        }
        c.query::<redis::Value>(&mut self.0)
            .map(to_reply)
            .map_err(|e| match (e.code(), e.detail()) {
                (Some(code), Some(detail)) => format!("{code} {detail}"),
                _ => e.to_string(),
            })
    }

    /// A script call, EVALSHA falling back to EVAL on NOSCRIPT (as `Store::run` does).
    pub fn eval(&mut self, call: &ScriptCall) -> Reply {
        match self.run(&call.evalsha()) {
            Err(e) if e.starts_with("NOSCRIPT") => self.run(&call.eval()),
            other => other,
        }
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }
}

/// The leases live in `key` right now, read from the set itself against Redis's clock in one
/// transaction (`TIME` and `ZRANGE` see the same instant): members whose expiry is after now.
pub fn live_leases(conn: &mut redis::Connection, key: &str) -> u64 {
    let (time, members): (Vec<String>, Vec<(String, f64)>) = redis::pipe()
        .atomic()
        .cmd("TIME")
        .cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(conn)
        .expect("MULTI TIME ZRANGE EXEC");
    let now_ms = time[0].parse::<u64>().unwrap() * 1000 + time[1].parse::<u64>().unwrap() / 1000;
    members
        .iter()
        .filter(|(_, expiry)| *expiry > now_ms as f64)
        .count() as u64
}
