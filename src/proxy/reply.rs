//! Redis replies → response bodies (pure: no I/O).
//!
//! JSON (docs/UPSTASH-REST.md §4): simple and bulk strings → strings (lossy UTF-8, or base64 of
//! the raw bytes with `Upstash-Encoding: base64`, except the status `OK`), integers → numbers,
//! nil → `null`, arrays nested to any depth. The connection speaks RESP2, so floats arrive as bulk
//! strings and stay strings. RESP3-only shapes cannot occur on a RESP2 connection; they are still
//! mapped to their RESP2 equivalents (maps flattened, doubles as strings) rather than failing.
//!
//! RESP2 (`Upstash-Response-Format: resp2`): the reply re-encoded byte for byte. Hand-written
//! because the redis crate parses RESP but exposes no encoder for a `Value`.

use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use redis::Value;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::backend::error_text;

/// How strings are written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Base64,
}

/// A reply as a JSON value.
pub struct Json<'a>(pub &'a Value, pub Encoding);

impl Json<'_> {
    fn string<S: Serializer>(&self, s: S, bytes: &[u8]) -> Result<S::Ok, S::Error> {
        match self.1 {
            Encoding::Utf8 => s.serialize_str(&String::from_utf8_lossy(bytes)),
            Encoding::Base64 => s.collect_str(&Base64Display::new(bytes, &STANDARD)),
        }
    }

    fn seq<'v, S: Serializer>(
        &self,
        s: S,
        items: impl ExactSizeIterator<Item = &'v Value>,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&Json(item, self.1))?;
        }
        seq.end()
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Nil => s.serialize_unit(),
            Value::Int(n) => s.serialize_i64(*n),
            Value::BulkString(b) => self.string(s, b),
            Value::SimpleString(t) => self.string(s, t.as_bytes()),
            // Upstash leaves "OK" readable in base64 mode and both SDKs special-case it.
            Value::Okay => s.serialize_str("OK"),
            Value::Array(items) | Value::Set(items) => self.seq(s, items.iter()),
            Value::Push { data, .. } => self.seq(s, data.iter()),
            Value::Map(pairs) => {
                let mut seq = s.serialize_seq(Some(pairs.len() * 2))?;
                for (k, v) in pairs {
                    seq.serialize_element(&Json(k, self.1))?;
                    seq.serialize_element(&Json(v, self.1))?;
                }
                seq.end()
            }
            Value::Attribute { data, .. } => Json(data, self.1).serialize(s),
            Value::Double(d) => self.string(s, d.to_string().as_bytes()),
            Value::Boolean(b) => s.serialize_i64(i64::from(*b)),
            Value::VerbatimString { text, .. } => self.string(s, text.as_bytes()),
            // An error nested in an array (Lua table with redis.error_reply): its text, as a
            // string like any other so SDK decoders see a uniform array.
            Value::ServerError(e) => self.string(s, error_text(e).as_bytes()),
            // BigNumber (RESP3 only) and any later variant: visible rather than a panic.
            other => self.string(s, format!("{other:?}").as_bytes()),
        }
    }
}

/// One entry of a pipeline or transaction reply: `{"result":…}` or `{"error":"…"}`, never both.
pub struct Entry<'a>(pub &'a Value, pub Encoding);

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            Value::ServerError(e) => map.serialize_entry("error", &error_text(e))?,
            v => map.serialize_entry("result", &Json(v, self.1))?,
        }
        map.end()
    }
}

/// `{"result":…}` for a single command, or the error text of a top-level error reply.
pub fn single(value: &Value, enc: Encoding) -> Result<Vec<u8>, String> {
    if let Value::ServerError(e) = value {
        return Err(error_text(e));
    }
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(b"{\"result\":");
    serde_json::to_writer(&mut out, &Json(value, enc)).map_err(|e| format!("ERR {e}"))?;
    out.push(b'}');
    Ok(out)
}

/// The array of entries for `/pipeline` and `/multi-exec`.
pub fn entries(values: &[Value], enc: Encoding) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * values.len() + 2);
    out.push(b'[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing to a Vec cannot fail, and every Value serializes.
        let _ = serde_json::to_writer(&mut out, &Entry(v, enc));
    }
    out.push(b']');
    out
}

/// Append the RESP2 encoding of `value` to `out`.
pub fn write_resp2(value: &Value, out: &mut Vec<u8>) {
    fn line(out: &mut Vec<u8>, prefix: u8, text: &[u8]) {
        out.push(prefix);
        // Simple strings and errors must not contain CR/LF; Redis never sends them, but keep the
        // framing intact whatever happens.
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        out.extend_from_slice(b"\r\n");
    }
    fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
        out.push(b'$');
        out.extend_from_slice(bytes.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    fn header(out: &mut Vec<u8>, len: usize) {
        out.push(b'*');
        out.extend_from_slice(len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match value {
        Value::Nil => out.extend_from_slice(b"$-1\r\n"),
        Value::Int(n) => line(out, b':', n.to_string().as_bytes()),
        Value::BulkString(b) => bulk(out, b),
        Value::SimpleString(s) => line(out, b'+', s.as_bytes()),
        Value::Okay => out.extend_from_slice(b"+OK\r\n"),
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
            header(out, items.len());
            for item in items {
                write_resp2(item, out);
            }
        }
        Value::Map(pairs) => {
            header(out, pairs.len() * 2);
            for (k, v) in pairs {
                write_resp2(k, out);
                write_resp2(v, out);
            }
        }
        Value::Attribute { data, .. } => write_resp2(data, out),
        Value::Double(d) => bulk(out, d.to_string().as_bytes()),
        Value::Boolean(b) => line(out, b':', if *b { b"1" } else { b"0" }),
        Value::VerbatimString { text, .. } => bulk(out, text.as_bytes()),
        Value::ServerError(e) => line(out, b'-', error_text(e).as_bytes()),
        other => bulk(out, format!("{other:?}").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse RESP2 bytes with the redis crate's own parser (what Redis would have sent).
    fn parse(resp: &[u8]) -> Value {
        redis::parse_redis_value(resp).unwrap()
    }

    fn json(v: &Value, enc: Encoding) -> serde_json::Value {
        serde_json::from_slice(&single(v, enc).unwrap()).unwrap()
    }

    #[test]
    fn scalars_map_like_upstash() {
        use serde_json::json;
        let u = Encoding::Utf8;
        assert_eq!(json(&parse(b"+OK\r\n"), u), json!({"result": "OK"}));
        assert_eq!(json(&parse(b"+PONG\r\n"), u), json!({"result": "PONG"}));
        assert_eq!(json(&parse(b"$-1\r\n"), u), json!({"result": null}));
        assert_eq!(json(&parse(b"*-1\r\n"), u), json!({"result": null}));
        assert_eq!(
            json(&parse(b":9223372036854775807\r\n"), u),
            json!({"result": i64::MAX})
        );
        assert_eq!(
            json(&parse(b":-9223372036854775808\r\n"), u),
            json!({"result": i64::MIN})
        );
        // Floats are bulk strings in RESP2 and stay strings.
        assert_eq!(json(&parse(b"$3\r\n1.5\r\n"), u), json!({"result": "1.5"}));
        // Invalid UTF-8 becomes U+FFFD.
        assert_eq!(
            json(&parse(b"$2\r\n\xffa\r\n"), u),
            json!({"result": "\u{fffd}a"})
        );
    }

    #[test]
    fn nested_arrays_keep_nil_and_depth() {
        let v = parse(b"*3\r\n$1\r\na\r\n$-1\r\n*2\r\n:1\r\n*1\r\n$1\r\nb\r\n");
        assert_eq!(
            json(&v, Encoding::Utf8),
            serde_json::json!({"result": ["a", null, [1, ["b"]]]})
        );
    }

    #[test]
    fn base64_reaches_every_string_but_not_ok_ints_or_nil() {
        let v = parse(b"*4\r\n+PONG\r\n$2\r\n\x00\xff\r\n:7\r\n*2\r\n$-1\r\n$1\r\na\r\n");
        assert_eq!(
            json(&v, Encoding::Base64),
            serde_json::json!({"result": ["UE9ORw==", "AP8=", 7, [null, "YQ=="]]})
        );
        assert_eq!(
            json(&parse(b"+OK\r\n"), Encoding::Base64),
            serde_json::json!({"result": "OK"})
        );
    }

    #[test]
    fn top_level_errors_are_verbatim_and_pipeline_entries_are_exclusive() {
        let err = parse(b"-ERR wrong number of arguments for 'get' command\r\n");
        assert_eq!(
            single(&err, Encoding::Base64).unwrap_err(),
            "ERR wrong number of arguments for 'get' command"
        );
        let values = [
            parse(b"+OK\r\n"),
            parse(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            parse(b"$-1\r\n"),
        ];
        let body: serde_json::Value =
            serde_json::from_slice(&entries(&values, Encoding::Base64)).unwrap();
        assert_eq!(
            body,
            serde_json::json!([
                {"result": "OK"},
                {"error": "WRONGTYPE Operation against a key holding the wrong kind of value"},
                {"result": null}
            ])
        );
    }

    #[test]
    fn resp2_round_trips() {
        for resp in [
            &b"+OK\r\n"[..],
            b"+PONG\r\n",
            b"$-1\r\n",
            b":-42\r\n",
            b"$3\r\n\x00\r\n\r\n",
            b"-ERR unknown command 'x'\r\n",
            b"*3\r\n$1\r\na\r\n$-1\r\n*2\r\n:1\r\n*0\r\n",
        ] {
            let mut out = Vec::new();
            write_resp2(&parse(resp), &mut out);
            assert_eq!(out, resp, "{}", String::from_utf8_lossy(resp));
        }
    }
}
