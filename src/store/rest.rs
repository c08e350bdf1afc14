//! The Upstash REST wire format, independent of how bytes travel.
//!
//! [`RestStore`] turns [`Command`]s into Upstash JSON requests (`POST /`, `/pipeline`,
//! `/multi-exec`, `/subscribe/<ch>`) and their answers back into [`Reply`]s. It always asks for
//! `Upstash-Encoding: base64` so binary values survive JSON, and carries the
//! `Upstash-Sync-Token` from each answer into the next request (read-your-writes across
//! replicas). The HTTP round trip itself is a [`Transport`]: reqwest natively
//! ([`super::http_native`]), the edge worker's JavaScript `fetch()` in wasm (`super::fetch`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::Stream;
use serde_json::Value;

use super::{EntryResult, Store, StoreError};
use crate::core::command::{Command, Reply};

/// One HTTP request to the REST endpoint, fully described; transports only move it.
pub struct RestRequest {
    pub url: String,
    /// Header name/value pairs to send as they are (auth, encoding, sync token, accept).
    pub headers: Vec<(&'static str, String)>,
    /// JSON body (`None` for `/subscribe`, which has none).
    pub body: Option<String>,
}

/// The `Authorization` header's value never reaches a log line, not even through `{:?}`.
impl std::fmt::Debug for RestRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| match *name {
                "authorization" => (*name, "<redacted>"),
                _ => (*name, value.as_str()),
            })
            .collect();
        f.debug_struct("RestRequest")
            .field("url", &self.url)
            .field("headers", &headers)
            .field("body", &self.body)
            .finish()
    }
}

/// The answer to a [`RestRequest`]: status, the sync token header if any, and the whole body.
#[derive(Debug)]
pub struct RestResponse {
    pub status: u16,
    pub sync_token: Option<String>,
    pub body: Bytes,
}

/// Moves [`RestRequest`]s over HTTP. Network failures are `StoreError::Unavailable`.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// The body of a streaming answer (`text/event-stream`), chunk by chunk.
    type ByteStream: Stream<Item = Result<Bytes, StoreError>> + Unpin;

    async fn send(&self, request: RestRequest) -> Result<RestResponse, StoreError>;

    /// Send a request whose answer is a long-lived stream; returns the status and the body.
    async fn open_stream(
        &self,
        request: RestRequest,
    ) -> Result<(u16, Self::ByteStream), StoreError>;
}

/// Where the REST endpoint is and how to authenticate: `UPSTASH_REDIS_REST_URL` and
/// `UPSTASH_REDIS_REST_TOKEN`.
#[derive(Clone)]
pub struct RestConfig {
    base_url: String,
    token: String,
}

impl std::fmt::Debug for RestConfig {
    // Never print the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl RestConfig {
    pub fn new(url: &str, token: &str) -> Result<Self, StoreError> {
        let parsed: http::Uri = url.parse().map_err(|e| {
            StoreError::Protocol(format!("UPSTASH_REDIS_REST_URL is not a URL: {e}"))
        })?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return Err(StoreError::Protocol(
                "UPSTASH_REDIS_REST_URL must be http:// or https://".into(),
            ));
        }
        if token.is_empty() {
            return Err(StoreError::Protocol(
                "UPSTASH_REDIS_REST_TOKEN is empty".into(),
            ));
        }
        Ok(RestConfig {
            base_url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// A [`Store`] over the Upstash REST API.
pub struct RestStore<T> {
    config: RestConfig,
    transport: T,
    /// The newest `Upstash-Sync-Token` seen, sent with the next request.
    sync_token: Mutex<String>,
}

impl<T: Transport> RestStore<T> {
    pub fn new(config: RestConfig, transport: T) -> Self {
        RestStore {
            config,
            transport,
            sync_token: Mutex::new(String::new()),
        }
    }

    pub fn config(&self) -> &RestConfig {
        &self.config
    }

    fn request(&self, path: &str, body: Option<String>, encoded: bool) -> RestRequest {
        let mut headers = vec![("authorization", format!("Bearer {}", self.config.token))];
        if encoded {
            headers.push(("upstash-encoding", "base64".to_owned()));
        }
        if body.is_some() {
            headers.push(("content-type", "application/json".to_owned()));
        } else {
            headers.push(("accept", "text/event-stream".to_owned()));
        }
        let token = self.sync_token.lock().expect("sync token lock").clone();
        if !token.is_empty() {
            headers.push(("upstash-sync-token", token));
        }
        RestRequest {
            url: format!("{}{}", self.config.base_url, path),
            headers,
            body,
        }
    }

    async fn post_json(&self, path: &str, body: String) -> Result<Value, StoreError> {
        let response = self
            .transport
            .send(self.request(path, Some(body), true))
            .await?;
        if let Some(token) = response.sync_token.filter(|t| !t.is_empty()) {
            *self.sync_token.lock().expect("sync token lock") = token;
        }
        decode_body(response.status, &response.body)
    }
}

impl<T: Transport> Store for RestStore<T> {
    type Messages = Messages<T::ByteStream>;

    async fn command(&self, cmd: &Command) -> Result<Reply, StoreError> {
        let answer = self.post_json("", encode_command(cmd)).await?;
        decode_entry(answer)?.map_err(redis_error)
    }

    async fn pipeline(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        let answer = self.post_json("/pipeline", encode_commands(cmds)).await?;
        decode_entries(answer, cmds.len())
    }

    async fn multi_exec(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        let answer = self.post_json("/multi-exec", encode_commands(cmds)).await?;
        decode_entries(answer, cmds.len())
    }

    async fn subscribe(&self, channel: &str) -> Result<Self::Messages, StoreError> {
        let path = format!(
            "/subscribe/{}",
            percent_encoding::utf8_percent_encode(channel, percent_encoding::NON_ALPHANUMERIC)
        );
        let (status, stream) = self
            .transport
            .open_stream(self.request(&path, None, false))
            .await?;
        if status != 200 {
            return Err(status_error(status, "subscribe refused".to_owned()));
        }
        Ok(Messages {
            events: SseLines::default(),
            stream,
            channel: channel.to_owned(),
        })
    }
}

/// `["SET","k","v"]`
pub fn encode_command(cmd: &Command) -> String {
    serde_json::to_string(cmd.parts()).expect("strings always serialize")
}

/// `[["SET","k","v"],["GET","k"]]`
pub fn encode_commands(cmds: &[Command]) -> String {
    let parts: Vec<&[String]> = cmds.iter().map(Command::parts).collect();
    serde_json::to_string(&parts).expect("strings always serialize")
}

/// Error replies by which Redis says it cannot serve *now* — loading its dataset after a restart,
/// a script running too long, a replica cut off from its primary, a Cluster slot moving or down —
/// rather than that the command is wrong.
const TRANSIENT_ERRORS: [&str; 5] = ["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"];

/// A Redis error reply as a [`StoreError`]: the `TRANSIENT_ERRORS` (`LOADING`, `BUSY`, …) are an outage like an
/// unreachable Redis (503, the policies' fail modes), the rest Redis refusing the command.
pub fn redis_error(message: String) -> StoreError {
    let code = message.split(' ').next().unwrap_or_default();
    if TRANSIENT_ERRORS.contains(&code) {
        StoreError::Unavailable(message)
    } else {
        StoreError::Redis(message)
    }
}

fn status_error(status: u16, message: String) -> StoreError {
    match status {
        401 => StoreError::Unauthorized(message),
        400..=499 => redis_error(message),
        _ => StoreError::Unavailable(format!("HTTP {status}: {message}")),
    }
}

/// A whole answer: the JSON value on 2xx, the mapped error otherwise.
pub fn decode_body(status: u16, body: &[u8]) -> Result<Value, StoreError> {
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    if (200..300).contains(&status) {
        return parsed.map_err(|e| StoreError::Protocol(format!("answer is not JSON: {e}")));
    }
    let message = match parsed {
        Ok(Value::Object(mut map)) => match map.remove("error") {
            Some(Value::String(text)) => Some(text),
            _ => None,
        },
        _ => None,
    }
    .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    Err(status_error(status, message))
}

/// One `{"result":…}` or `{"error":"…"}` object.
pub fn decode_entry(entry: Value) -> Result<EntryResult, StoreError> {
    let Value::Object(mut map) = entry else {
        return Err(StoreError::Protocol(format!(
            "expected {{\"result\"}} or {{\"error\"}}, got {}",
            kind(&entry)
        )));
    };
    if let Some(error) = map.remove("error") {
        return Ok(Err(match error {
            Value::String(text) => text,
            other => format!("(an error that is {})", kind(&other)),
        }));
    }
    match map.remove("result") {
        Some(result) => decode_value(result).map(Ok),
        None => Err(StoreError::Protocol(
            "answer has neither result nor error".into(),
        )),
    }
}

fn decode_entries(answer: Value, expected: usize) -> Result<Vec<EntryResult>, StoreError> {
    let Value::Array(entries) = answer else {
        return Err(StoreError::Protocol(format!(
            "expected an array of answers, got {}",
            kind(&answer)
        )));
    };
    if entries.len() != expected {
        return Err(StoreError::Protocol(format!(
            "sent {expected} commands, got {} answers",
            entries.len()
        )));
    }
    entries.into_iter().map(decode_entry).collect()
}

/// A `result` value under `Upstash-Encoding: base64`: strings are base64 of the raw bytes,
/// except the literal `OK` that Upstash sends plain.
pub fn decode_value(value: Value) -> Result<Reply, StoreError> {
    Ok(match value {
        Value::Null => Reply::Nil,
        Value::Number(n) => Reply::Int(
            n.as_i64()
                .ok_or_else(|| StoreError::Protocol("a non-integer number in result".to_owned()))?,
        ),
        Value::String(s) if s == "OK" => Reply::Bytes(b"OK".to_vec()),
        Value::String(s) => Reply::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|e| StoreError::Protocol(format!("bad base64 \"{s}\": {e}")))?,
        ),
        Value::Array(items) => Reply::Array(
            items
                .into_iter()
                .map(decode_value)
                .collect::<Result<_, _>>()?,
        ),
        Value::Bool(b) => Reply::Int(b as i64),
        Value::Object(map) => match map.get("error") {
            Some(Value::String(text)) => Reply::Error(text.clone()),
            _ => {
                return Err(StoreError::Protocol(
                    "unexpected object (not an error) in result".to_owned(),
                ))
            }
        },
    })
}

/// What kind of JSON value `value` is, for protocol errors. (Not the value itself: printing a
/// `Value` would keep serde_json's whole `Value` serialiser, float printing included, in the
/// worker for messages nobody should ever see.)
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Splits a `text/event-stream` body into `data:` payloads. Hand-written because it is a dozen
/// lines over bytes we already have; an SSE crate would bring its own stream types for no gain.
#[derive(Default)]
pub struct SseLines {
    pending: Vec<u8>,
    ready: VecDeque<Vec<u8>>,
}

impl SseLines {
    /// Feed a chunk; the `data:` payloads of the lines it completes become available to `next`.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(data) = line.strip_prefix(b"data:") {
                let data = data.strip_prefix(b" ").unwrap_or(data);
                self.ready.push_back(data.to_vec());
            }
        }
    }

    /// The next complete `data:` payload, if any.
    pub fn next_data(&mut self) -> Option<Vec<u8>> {
        self.ready.pop_front()
    }
}

/// The messages of one subscribed channel, out of the proxy's SSE lines
/// (`message,<channel>,<payload>`; `subscribe,…` confirmations and comments are skipped).
pub struct Messages<S> {
    events: SseLines,
    stream: S,
    channel: String,
}

impl<S> Messages<S> {
    fn payload(&self, event: &[u8]) -> Option<Vec<u8>> {
        let rest = event.strip_prefix(b"message,")?;
        let rest = rest.strip_prefix(self.channel.as_bytes())?;
        rest.strip_prefix(b",").map(<[u8]>::to_vec)
    }
}

impl<S> Stream for Messages<S>
where
    S: Stream<Item = Result<Bytes, StoreError>> + Unpin,
{
    type Item = Result<Vec<u8>, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            while let Some(event) = this.events.next_data() {
                if let Some(payload) = this.payload(&event) {
                    return Poll::Ready(Some(Ok(payload)));
                }
            }
            match Pin::new(&mut this.stream).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.events.feed(&chunk),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_encode_as_json_arrays() {
        let cmd = Command::new("SET").arg("k").arg(12);
        assert_eq!(encode_command(&cmd), r#"["SET","k","12"]"#);
        assert_eq!(
            encode_commands(&[cmd, Command::new("GET").arg("k")]),
            r#"[["SET","k","12"],["GET","k"]]"#
        );
    }

    #[test]
    fn base64_results_decode_at_every_depth() {
        let v = json!(["YQ==", null, 42, ["AP8=", "OK"]]);
        assert_eq!(
            decode_value(v).unwrap(),
            Reply::Array(vec![
                Reply::Bytes(b"a".to_vec()),
                Reply::Nil,
                Reply::Int(42),
                Reply::Array(vec![
                    Reply::Bytes(vec![0, 255]),
                    Reply::Bytes(b"OK".to_vec())
                ]),
            ])
        );
        assert!(decode_value(json!("not base64!")).is_err());
        assert!(decode_value(json!(1.5)).is_err());
    }

    #[test]
    fn entries_keep_their_own_errors() {
        assert_eq!(
            decode_entry(json!({"result": "YQ=="})).unwrap(),
            Ok(Reply::Bytes(b"a".to_vec()))
        );
        assert_eq!(
            decode_entry(json!({"error": "WRONGTYPE x"})).unwrap(),
            Err("WRONGTYPE x".to_owned())
        );
        assert!(decode_entry(json!({})).is_err());
        assert!(decode_entries(json!([{"result": 1}]), 2).is_err());
    }

    #[test]
    fn statuses_map_to_errors() {
        let body = br#"{"error":"WRONGPASS invalid or missing auth token"}"#;
        assert!(matches!(
            decode_body(401, body),
            Err(StoreError::Unauthorized(_))
        ));
        assert!(matches!(
            decode_body(400, br#"{"error":"ERR unknown command"}"#),
            Err(StoreError::Redis(m)) if m == "ERR unknown command"
        ));
        assert!(matches!(
            decode_body(503, b"<html>"),
            Err(StoreError::Unavailable(_))
        ));
        // Redis restarting (or otherwise unable to serve for now) is an outage, not a refusal.
        for transient in [
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        ] {
            let body = serde_json::to_vec(&json!({ "error": transient })).unwrap();
            assert!(
                matches!(decode_body(400, &body), Err(StoreError::Unavailable(_))),
                "{transient}"
            );
        }
        assert!(matches!(
            decode_body(
                400,
                br#"{"error":"BUSYKEY Target key name already exists."}"#
            ),
            Err(StoreError::Redis(_))
        ));
        assert!(matches!(
            decode_body(200, b"nope"),
            Err(StoreError::Protocol(_))
        ));
    }

    #[test]
    fn sse_lines_survive_any_chunking() {
        let body = b"data: subscribe,c,1\n\n: keep-alive\n\ndata: message,c,{\"value\":1}\r\n\n";
        for split in 1..body.len() {
            let mut lines = SseLines::default();
            lines.feed(&body[..split]);
            lines.feed(&body[split..]);
            let mut all = Vec::new();
            while let Some(d) = lines.next_data() {
                all.push(String::from_utf8(d).unwrap());
            }
            assert_eq!(
                all,
                ["subscribe,c,1", r#"message,c,{"value":1}"#],
                "split {split}"
            );
        }
    }

    #[test]
    fn config_validates_and_hides_the_token() {
        let c = RestConfig::new("https://x.upstash.io/", "secret").unwrap();
        assert_eq!(c.base_url(), "https://x.upstash.io");
        assert!(!format!("{c:?}").contains("secret"));
        assert!(RestConfig::new("ftp://x", "t").is_err());
        assert!(RestConfig::new("http://x", "").is_err());
    }

    #[test]
    fn requests_hide_the_authorization_header() {
        let request = RestRequest {
            url: "https://x.upstash.io".into(),
            headers: vec![
                ("authorization", "Bearer tok-Zq81".into()),
                ("upstash-encoding", "base64".into()),
            ],
            body: Some(r#"["PING"]"#.into()),
        };
        let shown = format!("{request:?}");
        assert!(!shown.contains("tok-Zq81"), "{shown}");
        assert!(
            shown.contains("upstash-encoding") && shown.contains("PING"),
            "{shown}"
        );
    }
}
