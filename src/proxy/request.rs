//! Request bodies and paths → Redis commands (pure: no I/O).
//!
//! JSON arguments are read as borrowed [`RawValue`]s so numbers keep their literal digits (a
//! Python client may send integers beyond 2^53; `1.25` stays `1.25`) and plain strings are
//! copied straight from the body into the packed command without an intermediate `String`.

use std::borrow::Cow;

use std::fmt;

use percent_encoding::percent_decode_str;
use redis::Cmd;
use serde::de::{DeserializeSeed, Deserializer, Error as _, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::error::ProxyError;

/// One command from a JSON array like `["SET","k","v","EX",100]`.
pub fn parse_command(body: &[u8]) -> Result<Cmd, ProxyError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let cmd = CommandSeed
        .deserialize(&mut de)
        .and_then(|cmd| de.end().map(|()| cmd))
        .map_err(|e| ProxyError::bad_request(format!("ERR failed to parse command: {e}")))?;
    cmd.ok_or_else(|| ProxyError::bad_request("ERR empty command"))
}

/// The commands of a `/pipeline` or `/multi-exec` body: an array of command arrays. Parsed in one
/// pass straight into packed commands (this is the hot path of pipelined benchmarks).
pub fn parse_pipeline(body: &[u8]) -> Result<Vec<Cmd>, ProxyError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let cmds = PipelineSeed
        .deserialize(&mut de)
        .and_then(|cmds| de.end().map(|()| cmds))
        .map_err(|e| ProxyError::bad_request(format!("ERR failed to parse pipeline: {e}")))?;
    if cmds.is_empty() {
        return Err(ProxyError::bad_request("ERR empty pipeline"));
    }
    cmds.into_iter()
        .enumerate()
        .map(|(i, c)| c.ok_or_else(|| ProxyError::bad_request(format!("ERR command {i} is empty"))))
        .collect()
}

/// Deserializes one JSON array of scalars into a command (`None` for `[]`).
struct CommandSeed;

impl<'de> DeserializeSeed<'de> for CommandSeed {
    type Value = Option<Cmd>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CommandSeed {
    type Value = Option<Cmd>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a command: a JSON array of strings, numbers or booleans")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut cmd: Option<Cmd> = None;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let arg = json_arg(raw).map_err(A::Error::custom)?;
            cmd.get_or_insert_with(|| Cmd::with_capacity(4, 64))
                .arg(arg.as_bytes());
        }
        Ok(cmd)
    }
}

/// Deserializes an array of command arrays.
struct PipelineSeed;

impl<'de> DeserializeSeed<'de> for PipelineSeed {
    type Value = Vec<Option<Cmd>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PipelineSeed {
    type Value = Vec<Option<Cmd>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of command arrays")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut cmds = Vec::with_capacity(seq.size_hint().unwrap_or(16));
        while let Some(cmd) = seq.next_element_seed(CommandSeed)? {
            cmds.push(cmd);
        }
        Ok(cmds)
    }
}

/// One JSON array element as a Redis argument: strings unescaped, numbers and booleans as written.
/// The error is a bare reason; the caller prefixes it once (`ERR failed to parse …: <reason>`).
fn json_arg(raw: &RawValue) -> Result<Cow<'_, str>, String> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => {
            let inner = &text[1..text.len() - 1];
            if inner.contains('\\') {
                serde_json::from_str::<String>(text)
                    .map(Cow::Owned)
                    .map_err(|e| format!("bad string argument: {e}"))
            } else {
                Ok(Cow::Borrowed(inner))
            }
        }
        Some(b'-' | b'0'..=b'9') | Some(b't' | b'f') => Ok(Cow::Borrowed(text)),
        _ => Err(
            "command arguments must be strings, numbers or booleans (got an object, array or null)"
                .to_owned(),
        ),
    }
}

/// The path form `/CMD/arg1/arg2…`: segments percent-decoded, then the raw body (POST/PUT, when
/// not empty), then query parameters other than `_token` as `name value` (a parameter without `=`
/// gives the name only).
pub fn parse_path(path: &str, query: Option<&str>, body: Option<&[u8]>) -> Result<Cmd, ProxyError> {
    let mut cmd = Cmd::new();
    let mut count = 0usize;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        // Borrowed unless the segment has escapes: no allocation for `/INCR/key`.
        cmd.arg(&*Cow::<[u8]>::from(percent_decode_str(segment)));
        count += 1;
    }
    if count == 0 {
        return Err(ProxyError::bad_request(
            "ERR empty command: POST a JSON array to / or use /COMMAND/arg…",
        ));
    }
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        cmd.arg(body);
    }
    for (name, value) in query_pairs(query) {
        if name.as_slice() == b"_token" {
            continue;
        }
        cmd.arg(&*name);
        if let Some(value) = value {
            cmd.arg(&*value);
        }
    }
    Ok(cmd)
}

/// Query parameters as percent-decoded `(name, Some(value) | None)`. Hand-written rather than
/// `url::form_urlencoded` because that cannot tell `?NX` from `?NX=` and turns `+` into a space
/// (`+inf` is a common Redis argument).
pub fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + '_ {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((n, v)) => (
                percent_decode_str(n).collect(),
                Some(percent_decode_str(v).collect()),
            ),
            None => (percent_decode_str(pair).collect(), None),
        })
}

/// The value of `_token` in a query string, if any.
pub fn query_token(query: Option<&str>) -> Option<Vec<u8>> {
    query_pairs(query).find_map(|(n, v)| (n.as_slice() == b"_token").then(|| v.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &Cmd) -> Vec<Vec<u8>> {
        cmd.args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => b"<cursor>".to_vec(),
            })
            .collect()
    }

    fn strs(cmd: &Cmd) -> Vec<String> {
        args(cmd)
            .into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect()
    }

    #[test]
    fn json_scalars_are_stringified_literally() {
        let cmd = parse_command(
            br#"["SET","k","v","EX",100,1.25,true,false,-3,12345678901234567890123,1e3]"#,
        )
        .unwrap();
        assert_eq!(
            strs(&cmd),
            [
                "SET",
                "k",
                "v",
                "EX",
                "100",
                "1.25",
                "true",
                "false",
                "-3",
                "12345678901234567890123",
                "1e3"
            ]
        );
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let cmd = parse_command(br#"["SET","a\"b","line\nnext \u00e9 \ud83d\ude00"]"#).unwrap();
        assert_eq!(strs(&cmd), ["SET", "a\"b", "line\nnext é 😀"]);
    }

    #[test]
    fn bad_bodies_are_400() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            b"\"GET\"",
            br#"["SET","k",{"a":1}]"#,
            br#"["SET","k",[1]]"#,
            br#"["SET","k",null]"#,
            b"",
            br#"["GET","k""#,
        ] {
            let err = parse_command(body).unwrap_err();
            assert!(
                matches!(err, ProxyError::BadRequest(_)),
                "{body:?} -> {err:?}"
            );
        }
    }

    #[test]
    fn pipelines_need_arrays_of_arrays() {
        let cmds = parse_pipeline(br#"[["SET","a",1],["GET","a"]]"#).unwrap();
        assert_eq!(strs(&cmds[0]), ["SET", "a", "1"]);
        assert_eq!(strs(&cmds[1]), ["GET", "a"]);
        for body in [
            &b"[]"[..],
            b"[[]]",
            br#"["GET"]"#,
            br#"[["GET","a"],"x"]"#,
            br#"[["GET",null]]"#,
            b"{}",
        ] {
            assert!(parse_pipeline(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn path_form_decodes_segments_body_and_query() {
        let cmd = parse_path(
            "/set/k%2Fx/",
            Some("EX=100&_token=secret&NX"),
            Some(b"v a\0l"),
        )
        .unwrap();
        assert_eq!(
            args(&cmd),
            [
                b"set".to_vec(),
                b"k/x".to_vec(),
                b"v a\0l".to_vec(),
                b"EX".to_vec(),
                b"100".to_vec(),
                b"NX".to_vec()
            ]
        );
        let cmd = parse_path("/zrangebyscore/z/-inf/+inf", None, Some(b"")).unwrap();
        assert_eq!(strs(&cmd), ["zrangebyscore", "z", "-inf", "+inf"]);
        assert!(parse_path("/", None, None).is_err());
    }

    #[test]
    fn token_from_query() {
        assert_eq!(query_token(Some("a=1&_token=s%3Dx")), Some(b"s=x".to_vec()));
        assert_eq!(query_token(Some("a=1")), None);
        assert_eq!(query_token(None), None);
    }
}
