//! Runs the [`Api`] for a JavaScript host that does the I/O itself: the edge worker's entry
//! module (`scripts/worker-shim.js`) hands each request in as plain strings, performs the REST
//! exchanges the request's future asks for (see [`crate::store::fetch`]), and turns the final
//! step into its runtime's `Response`. Everything crosses the wasm boundary as one string per
//! step — one UTF-8 decode instead of a call per header, per field and per promise — which is
//! most of what made the worker slower than a plain JavaScript one (BENCHMARKS.md).
//!
//! Target-independent on purpose: the wasm adapter (`worker.rs`) only exports these calls, and
//! the protocol is unit-tested natively.
//!
//! # Steps
//! Every call returns one step; its first character says what it is. Fields are separated by
//! `\n`; header lines are `name:value` (neither may contain `\n`: HTTP forbids it), ended by an
//! empty line.
//!
//! | step | layout | the host then |
//! |---|---|---|
//! | `F` fetch | `F{task}\n{url}\n{headers}\n{body}` | POSTs it, calls [`Driver::resume`] |
//! | `O` open | `O{task}\n{url}\n{headers}\n` | POSTs it, calls [`Driver::opened`] when the headers arrive, keeps the body |
//! | `N` next | `N{task}\n` | reads the next chunk of that body, calls [`Driver::feed`] |
//! | `R` respond | `R{task}\n{status}\n{headers}\n{body}` | answers with it; the task is over |
//! | `E` events | `E{task}\n{status}\n{headers}\n` | answers with a stream whose chunks come from [`Driver::pull`] |
//! | `C` chunk | `C{data}` | enqueues `data` on that stream |
//! | `Z` end | `Z` | closes that stream; the task is over |
//! | `G` gateway | `G{task}\n{url}\n{headers}\n` | forwards the incoming request to `url` and adds these headers to the origin's answer; the task is over |
//! | `A` asset | `A{task}\n{file}\n{headers}\n` | answers 200 with `file` from its static files (the `ASSETS` binding) and these headers; the task is over |
//! | `D` delegate | `D{task}\n` | starts the request again in the management module (a build with the `management` feature, see `api/manage.rs`); the task is over |

use std::borrow::Cow;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body::Body as _;

use crate::api::{
    Api, ApiBody, ApiError, ApiRequest, ApiResponse, Asset, Client, Config, Handled, Platform,
    RequestHeaders,
};
use crate::store::cached::CachedReads;
use crate::store::fetch::{self, Exchange, FetchRestStore, Io, Outcome, EXCHANGE};
use crate::store::rest::{RestRequest, RestResponse};
use crate::store::{Store, StoreError};

/// Largest request body the API reads; the host passes at most one byte more, so a larger body
/// is refused without being read whole.
pub use crate::api::MAX_BODY;

/// The worker's store: Upstash REST over the host's `fetch()`, counter reads briefly cached.
pub type WorkerStore = CachedReads<FetchRestStore>;

/// The worker's API: Upstash REST at `url` with `token`, reads cached for the configuration's
/// window by the platform's clock.
pub fn worker_api(
    url: &str,
    token: &str,
    config: Config,
    platform: Platform,
) -> Result<Api<WorkerStore>, StoreError> {
    let store = CachedReads::new(
        fetch::connect(url, token)?,
        config.read_cache,
        platform.now_ms,
    );
    Ok(Api::new(store, config, platform))
}

type Messages = <WorkerStore as Store>::Messages;
type Handling = Pin<Box<dyn Future<Output = Handled<Messages>>>>;

enum Task {
    /// The API is still working out the answer.
    Handling(Handling),
    /// The answer is an event stream; this is its body.
    Streaming(ApiBody<Messages>),
}

/// The requests in flight in one isolate, and the API they run on.
pub struct Driver {
    api: &'static Api<WorkerStore>,
    tasks: Vec<Option<Task>>,
    /// Where errors nobody else sees are reported (the runtime's console).
    log: fn(&str),
}

impl Driver {
    pub fn new(api: &'static Api<WorkerStore>, log: fn(&str)) -> Self {
        Driver {
            api,
            tasks: Vec::new(),
            log,
        }
    }

    /// A new request: method, URL, header lines (`name:value\n`…) and the body as read so far
    /// (at most [`MAX_BODY`] + 1 bytes).
    pub fn begin(
        &mut self,
        method: &str,
        url: &str,
        headers: &str,
        body: Option<Vec<u8>>,
    ) -> String {
        let request = match request(method, url, headers, body) {
            Ok(request) => request,
            Err(e) => return error_step(0, e),
        };
        // Cloudflare sets CF-Connecting-IP to the real client and does not let clients forge it;
        // a bare workerd (development) sets nothing, and EDGECOUNT_DEV_CLIENT_IP may stand in.
        let client = Client {
            ip: request
                .headers
                .get("cf-connecting-ip")
                .and_then(client_ip)
                .or_else(|| self.api.config().dev_client_ip.clone()),
        };
        let api = self.api;
        let task = self.insert(Task::Handling(Box::pin(api.serve(request, client))));
        self.step(task, None)
    }

    /// The answer to the task's `F` step (`status` 0: the fetch failed, `body` says why).
    pub fn resume(
        &mut self,
        task: u32,
        status: u16,
        sync_token: Option<String>,
        body: String,
    ) -> String {
        let outcome = match status {
            0 => Outcome::Failed(body),
            _ => Outcome::Answer(RestResponse {
                status,
                sync_token,
                body: body.into(),
            }),
        };
        self.step(task, Some(outcome))
    }

    /// The status of the stream the task's `O` step opened, or why opening it failed.
    pub fn opened(&mut self, task: u32, status: u16, error: Option<String>) -> String {
        let outcome = match error {
            Some(e) => Outcome::Failed(e),
            None => Outcome::Opened(status),
        };
        self.step(task, Some(outcome))
    }

    /// The next chunk of the task's open stream (`None` at its end), or why reading it failed.
    pub fn feed(&mut self, task: u32, chunk: Option<Vec<u8>>, error: Option<String>) -> String {
        let outcome = match error {
            Some(e) => Outcome::Failed(e),
            None => Outcome::Chunk(chunk.map(Bytes::from)),
        };
        self.step(task, Some(outcome))
    }

    /// The next chunk of the task's event stream (a `C` or `Z` step, or the I/O it needs first).
    pub fn pull(&mut self, task: u32) -> String {
        self.step(task, None)
    }

    /// The host gave up on the task (the client went away).
    pub fn cancel(&mut self, task: u32) {
        self.remove(task);
    }

    /// How many requests are in flight (tests check that finished ones are gone).
    pub fn in_flight(&self) -> usize {
        self.tasks.iter().flatten().count()
    }

    fn insert(&mut self, task: Task) -> u32 {
        let slot = match self.tasks.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.tasks.push(None);
                self.tasks.len() - 1
            }
        };
        self.tasks[slot] = Some(task);
        slot as u32
    }

    fn remove(&mut self, task: u32) {
        if let Some(slot) = self.tasks.get_mut(task as usize) {
            *slot = None;
        }
    }

    /// Poll the task once, with `outcome` for the exchange it waits on, and say what comes next.
    fn step(&mut self, task: u32, outcome: Option<Outcome>) -> String {
        let Some(Some(state)) = self.tasks.get_mut(task as usize) else {
            return lost(task);
        };
        EXCHANGE.set(Exchange { io: None, outcome });
        let mut cx = Context::from_waker(Waker::noop());
        let next = match state {
            Task::Handling(future) => match future.as_mut().poll(&mut cx) {
                Poll::Ready(Handled::Respond(response)) => Ready::Respond(response),
                Poll::Ready(Handled::Forward(forward)) => {
                    Ready::Forward(forward.url, forward.response_headers)
                }
                Poll::Ready(Handled::Asset(asset)) => Ready::Asset(asset),
                Poll::Ready(Handled::Delegate) => Ready::Delegate,
                Poll::Pending => Ready::Nothing,
            },
            Task::Streaming(body) => match Pin::new(body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => Ready::Chunk(frame.into_data().unwrap_or_default()),
                Poll::Ready(Some(Err(e))) => {
                    (self.log)(&format!("event stream ended: {e}"));
                    Ready::End
                }
                Poll::Ready(None) => Ready::End,
                Poll::Pending => Ready::Nothing,
            },
        };
        let Exchange { io, .. } = EXCHANGE.take();
        match next {
            Ready::Respond(response) => {
                let (parts, body) = response.into_parts();
                match body {
                    ApiBody::Full(bytes) => {
                        self.remove(task);
                        respond_step(task, &parts, bytes.as_deref().unwrap_or_default())
                    }
                    events => {
                        self.tasks[task as usize] = Some(Task::Streaming(events));
                        head(
                            'E',
                            task,
                            parts.status.as_u16(),
                            answer_headers(&parts.headers),
                            0,
                        )
                    }
                }
            }
            Ready::Forward(url, headers) => {
                self.remove(task);
                head('G', task, url, answer_headers(&headers), 0)
            }
            Ready::Asset(asset) => {
                self.remove(task);
                let headers = asset.headers().into_iter();
                head(
                    'A',
                    task,
                    asset.file,
                    headers.map(|(name, value)| (name, Cow::Borrowed(value))),
                    0,
                )
            }
            Ready::Delegate => {
                self.remove(task);
                format!("D{task}\n")
            }
            Ready::Chunk(data) => format!("C{}", text(&data)),
            Ready::End => {
                self.remove(task);
                "Z".to_owned()
            }
            Ready::Nothing => match io {
                Some(Io::Send(request)) => exchange_step('F', task, request),
                Some(Io::Open(request)) => exchange_step('O', task, request),
                Some(Io::Read) => format!("N{task}\n"),
                None => {
                    // Nothing will ever wake it: only REST exchanges do, and it asked for none.
                    self.remove(task);
                    (self.log)("a request stalled without asking for I/O");
                    error_step(
                        task,
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "request stalled"),
                    )
                }
            },
        }
    }
}

/// What one poll produced, taken out of the task before the task table changes.
enum Ready {
    Respond(ApiResponse<Messages>),
    Forward(String, HeaderMap),
    Asset(&'static Asset),
    Delegate,
    Chunk(Bytes),
    End,
    Nothing,
}

/// The incoming request as the API takes it. A method the `http` crate refuses or a header
/// line without a name is the caller's error (400); a body over [`MAX_BODY`] is a 413.
fn request(
    method: &str,
    url: &str,
    header_lines: &str,
    body: Option<Vec<u8>>,
) -> Result<ApiRequest, ApiError> {
    let malformed = |what: &str| ApiError::bad_request(format!("malformed request {what}"));
    let body = body.unwrap_or_default();
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes"),
        ));
    }
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| malformed("method"))?;
    let mut headers = RequestHeaders::new();
    for line in header_lines.split('\n').filter(|line| !line.is_empty()) {
        match line.split_once(':') {
            Some((name, value)) if is_token(name) => headers.append(name, value),
            _ => return Err(malformed("header")),
        }
    }
    Ok(ApiRequest {
        method,
        target: target(url).to_owned(),
        headers,
        body: body.into(),
    })
}

/// The path and query of an absolute URL (`https://host/a/b?c` → `/a/b?c`; `/` when it has
/// neither).
fn target(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(url, |at| &url[at + 3..]);
    match after_scheme.find(['/', '?']) {
        Some(at) if after_scheme[at..].starts_with('/') => &after_scheme[at..],
        Some(_) | None => "/",
    }
}

/// `CF-Connecting-IP` as the client's IP: Cloudflare writes it in canonical form; anything that
/// is not an IPv4 or IPv6 address in text (digits, hex, `.`, `:`) is ignored.
fn client_ip(value: &str) -> Option<String> {
    let ip = value.trim();
    let plausible = (2..=45).contains(&ip.len())
        && ip.contains(['.', ':'])
        && ip
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':');
    plausible.then(|| ip.to_ascii_lowercase())
}

/// An HTTP field name (RFC 9110 `token`).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `{kind}{task}\n{target}\n{name:value\n…}\n`: how every step that carries headers starts
/// (the one writer of the layout the entry module's `parseStep` reads).
/// `body_len` is what the caller appends after it: the step is sized once for both.
fn head<'a>(
    kind: char,
    task: u32,
    target: impl std::fmt::Display,
    headers: impl IntoIterator<Item = (&'a str, Cow<'a, str>)>,
    body_len: usize,
) -> String {
    let mut step = String::with_capacity(512 + body_len);
    let _ = write!(step, "{kind}{task}\n{target}\n");
    for (name, value) in headers {
        step.push_str(name);
        step.push(':');
        step.push_str(&value);
        step.push('\n');
    }
    step.push('\n');
    step
}

/// An answer's headers as [`head`] takes them (values are ours, so ASCII; lossy just in case).
fn answer_headers(headers: &HeaderMap) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), text(value.as_bytes())))
}

/// Bytes we produced as text: borrowed when they are UTF-8, as they always are (checking that is
/// much cheaper than the replacing decoder, which every answer would otherwise go through).
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

fn exchange_step(kind: char, task: u32, request: RestRequest) -> String {
    let headers = request.headers.iter();
    let body = request.body.as_deref().unwrap_or_default();
    let mut step = head(
        kind,
        task,
        &request.url,
        headers.map(|(name, value)| (*name, Cow::Borrowed(value.as_str()))),
        body.len(),
    );
    step.push_str(body);
    step
}

/// An `R` step: status, headers and the whole body (our bodies are UTF-8 text: JSON, SVG, SSE).
fn respond_step(task: u32, parts: &http::response::Parts, body: &[u8]) -> String {
    let mut step = head(
        'R',
        task,
        parts.status.as_u16(),
        answer_headers(&parts.headers),
        body.len(),
    );
    step.push_str(&text(body));
    step
}

/// An `R` step answering with `e`.
pub fn error_step(task: u32, e: ApiError) -> String {
    let (parts, body) = e.into_response::<()>().into_parts();
    respond_step(task, &parts, body.as_bytes().unwrap_or_default())
}

/// The answer for a task this isolate does not know (its instance was replaced mid-request).
pub fn lost(task: u32) -> String {
    error_step(
        task,
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "request lost by the worker",
        ),
    )
}

#[cfg(test)]
mod tests {
    //! The step protocol with this test in the host's place: it reads each step and answers
    //! the exchanges itself (the real host, workerd + the proxy + Redis, is tests/worker_e2e.rs).
    use super::*;

    fn driver() -> Driver {
        driver_with(&[])
    }

    fn driver_with(vars: &[(&str, &str)]) -> Driver {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        let config = Config::from_lookup(lookup).expect("config");
        let api = worker_api("http://rest.test", "secret-token", config, Platform::std());
        let api = Box::leak(Box::new(api.expect("api")));
        Driver::new(api, |message| panic!("unexpected log: {message}"))
    }

    /// The visitor-hash argument of the hit script in an `F` step's body: a hit is one command.
    fn visitor_argument(step: &Parsed) -> String {
        let command: Vec<String> = serde_json::from_str(&step.body).expect("one command");
        assert_eq!(command[0], "EVALSHA", "{step:?}");
        // EVALSHA sha numkeys key… ARGV[1] ARGV[2] …
        let keys: usize = command[2].parse().expect("numkeys");
        command[3 + keys + 1].clone()
    }

    #[test]
    fn a_dev_client_address_stands_in_when_the_runtime_gives_none() {
        let secret = ("EDGECOUNT_UNIQUES_SECRET", "s");
        let hit = |driver: &mut Driver, headers: &str| {
            let headers = format!("user-agent:Mozilla/5.0 (X11; Linux x86_64)\n{headers}");
            parse(&driver.begin("POST", "http://edge.test/hit/docs/home", &headers, None))
        };
        let mut plain = driver_with(&[secret]);
        assert_eq!(visitor_argument(&hit(&mut plain, "")), "");
        let mut dev = driver_with(&[secret, ("EDGECOUNT_DEV_CLIENT_IP", "127.0.0.1")]);
        assert_eq!(visitor_argument(&hit(&mut dev, "")).len(), 32);
        // Cloudflare's header, when there, is the client.
        let theirs = visitor_argument(&hit(&mut dev, "cf-connecting-ip:203.0.113.9\n"));
        assert_ne!(theirs, visitor_argument(&hit(&mut dev, "")));
    }

    /// One step taken apart.
    #[derive(Debug)]
    struct Parsed {
        kind: char,
        task: u32,
        target: String,
        headers: Vec<String>,
        body: String,
    }

    fn parse(step: &str) -> Parsed {
        let kind = step.chars().next().expect("a step");
        let (task, rest) = step[1..].split_once('\n').expect("task line");
        let (target, mut rest) = rest.split_once('\n').expect("target line");
        let mut headers = Vec::new();
        while let Some((line, after)) = rest.split_once('\n') {
            rest = after;
            if line.is_empty() {
                break;
            }
            headers.push(line.to_owned());
        }
        Parsed {
            kind,
            task: task.parse().expect("task id"),
            target: target.to_owned(),
            headers,
            body: rest.to_owned(),
        }
    }

    impl Parsed {
        fn has(&self, line: &str) -> bool {
            self.headers.iter().any(|h| h == line)
        }
    }

    #[test]
    fn answers_without_io_in_one_step() {
        let mut driver = driver();
        let step = parse(&driver.begin("GET", "http://edge.test/no/such/route", "", None));
        assert_eq!((step.kind, step.target.as_str()), ('R', "404"));
        assert!(step.has("content-type:application/json"), "{step:?}");
        assert_eq!(step.body, r#"{"error":"no such route"}"#);
        assert_eq!(driver.in_flight(), 0);
    }

    #[test]
    fn a_rest_exchange_goes_out_as_a_step_and_its_answer_comes_back() {
        let mut driver = driver();
        let step = parse(&driver.begin("GET", "http://edge.test/healthz", "accept:*/*\n", None));
        assert_eq!((step.kind, step.target.as_str()), ('F', "http://rest.test"));
        assert_eq!(step.body, r#"["PING"]"#);
        assert!(step.has("authorization:Bearer secret-token"), "{step:?}");
        assert_eq!(driver.in_flight(), 1);

        let answer = r#"{"result":"UE9ORw=="}"#.to_owned();
        let done = parse(&driver.resume(step.task, 200, Some("sync-1".into()), answer));
        assert_eq!((done.kind, done.target.as_str()), ('R', "200"));
        assert_eq!(done.body, r#"{"ok":true}"#);
        assert_eq!(driver.in_flight(), 0);

        // The sync token of that answer goes out with the next request.
        let next = parse(&driver.begin("GET", "http://edge.test/healthz", "", None));
        assert!(next.has("upstash-sync-token:sync-1"), "{next:?}");
    }

    #[test]
    fn a_failed_exchange_is_redis_unavailable() {
        let mut driver = driver();
        let step = parse(&driver.begin("GET", "http://edge.test/healthz", "", None));
        let done = parse(&driver.resume(step.task, 0, None, "TypeError: refused".into()));
        assert_eq!((done.kind, done.target.as_str()), ('R', "503"));
        assert!(done.body.contains("redis unavailable"), "{done:?}");
        assert_eq!(driver.in_flight(), 0);
    }

    #[test]
    fn an_event_stream_is_pulled_chunk_by_chunk() {
        let mut driver = driver();
        // Subscribe first, so no change between subscribing and reading is missed.
        let open = parse(&driver.begin("GET", "http://edge.test/stream/docs/home", "", None));
        assert_eq!(open.kind, 'O', "{open:?}");
        assert!(
            open.target.starts_with("http://rest.test/subscribe/"),
            "{open:?}"
        );
        assert!(open.has("accept:text/event-stream"), "{open:?}");
        let task = open.task;
        let read = parse(&driver.opened(task, 200, None));
        assert_eq!((read.kind, read.task), ('F', task));
        assert!(read.body.starts_with(r#"["GET","#), "{read:?}");
        let head = parse(&driver.resume(task, 200, None, r#"{"result":"Nw=="}"#.into()));
        assert_eq!((head.kind, head.target.as_str()), ('E', "200"));
        assert!(head.has("content-type:text/event-stream"), "{head:?}");

        assert_eq!(driver.pull(task), "Cdata: {\"value\":7}\n\n");
        assert_eq!(driver.pull(task), format!("N{task}\n"));
        let channel = open.target.rsplit('/').next().expect("channel");
        let channel = percent_encoding::percent_decode_str(channel).decode_utf8_lossy();
        let chunk = format!("data: subscribe,{channel},1\n\ndata: message,{channel},8\n\n");
        assert_eq!(
            driver.feed(task, Some(chunk.into_bytes()), None),
            "Cdata: 8\n\n"
        );
        assert_eq!(driver.pull(task), format!("N{task}\n"));
        assert_eq!(driver.feed(task, None, None), "Z");
        assert_eq!(driver.in_flight(), 0);
    }

    #[test]
    fn a_static_file_is_an_asset_step_with_its_headers() {
        let mut driver = driver();
        let step = parse(&driver.begin("GET", "http://edge.test/", "", None));
        assert_eq!((step.kind, step.target.as_str()), ('A', "index.html"));
        assert!(
            step.has("content-type:text/html; charset=utf-8"),
            "{step:?}"
        );
        assert!(
            step.headers
                .iter()
                .any(|h| h.starts_with("content-security-policy:default-src 'none'")),
            "{step:?}"
        );
        assert_eq!(step.body, "");
        assert_eq!(driver.in_flight(), 0);
        // Only GET and HEAD read files; other methods are the API's JSON 405.
        let step = parse(&driver.begin("POST", "http://edge.test/embed.js", "", None));
        assert_eq!((step.kind, step.target.as_str()), ('R', "405"));
        assert!(step.has("allow:GET, HEAD"), "{step:?}");
    }

    #[test]
    fn a_cancelled_task_is_forgotten() {
        let mut driver = driver();
        let step = parse(&driver.begin("GET", "http://edge.test/healthz", "", None));
        driver.cancel(step.task);
        assert_eq!(driver.in_flight(), 0);
        let late = parse(&driver.resume(step.task, 200, None, "{}".into()));
        assert_eq!((late.kind, late.target.as_str()), ('R', "500"));
        assert!(late.body.contains("request lost"), "{late:?}");
    }

    #[test]
    fn the_client_ip_is_the_cloudflare_header_when_it_is_an_address() {
        assert_eq!(client_ip(" 203.0.113.7 ").as_deref(), Some("203.0.113.7"));
        assert_eq!(client_ip("2001:DB8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(client_ip("unknown"), None);
        assert_eq!(client_ip("1234"), None);
        assert_eq!(client_ip("1.2.3.4; drop"), None);
    }

    #[test]
    fn the_target_is_the_path_and_query_of_the_url() {
        assert_eq!(target("https://edge.test/hit/a/b?x=1"), "/hit/a/b?x=1");
        assert_eq!(target("http://edge.test"), "/");
        assert_eq!(target("http://edge.test?x=1"), "/");
        assert_eq!(target("http://user@edge.test:8787/a"), "/a");
    }

    #[test]
    fn the_entry_module_reads_bodies_up_to_the_same_limit() {
        let shim = include_str!("../scripts/worker-shim.js");
        let line = shim
            .lines()
            .find(|l| l.starts_with("const MAX_BODY = "))
            .expect("MAX_BODY in scripts/worker-shim.js");
        let value: usize = line
            .trim_start_matches("const MAX_BODY = ")
            .trim_end_matches(';')
            .split(" * ")
            .map(|n| n.parse::<usize>().expect("a product of numbers"))
            .product();
        assert_eq!(value, MAX_BODY);
    }

    #[test]
    fn bad_requests_are_refused_before_the_api() {
        let mut driver = driver();
        let mut status = |method: &str, headers: &str, body: Option<Vec<u8>>| {
            parse(&driver.begin(method, "http://edge.test/batch", headers, body)).target
        };
        assert_eq!(status("POST", "", Some(vec![b'x'; MAX_BODY + 1])), "413");
        assert_eq!(status("GET", "bad header:x\n", None), "400");
        assert_eq!(status("GET", "no-colon\n", None), "400");
        assert_eq!(status("G E T", "", None), "400");
        assert_eq!(driver.in_flight(), 0);
    }
}
