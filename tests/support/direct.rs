//! Run a core `Command` straight against a test redis-server with the redis crate (RESP2),
//! bypassing REST: for testing Lua scripts and key layouts on real Redis.

use edgecount::core::command::{Command, Reply};

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
