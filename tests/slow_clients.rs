//! Slow and idle clients against the real binaries (issue 18): `edgecount proxy` and `edgecount
//! serve` (straight to a private Redis) close connections that do not send a whole request head
//! in time and kept-alive connections left idle, never one with a request in flight, and keep
//! answering real requests when slow connections fill their connection cap or their descriptor
//! limit (the child's RLIMIT_NOFILE lowered to 256). On SIGTERM idle and slow connections close at
//! once, a request in flight is answered, and the process exits as soon as nothing is left.
//!
//! Raw TCP, so the tests decide byte by byte what a connection has sent. The tests take turns
//! (`SERIAL`): each holds up to ~300 sockets and times what the server does, which a busy 2-core
//! box blurs enough without the others' load.

mod support;

use std::time::{Duration, Instant};

use support::proxy::{
    spawn_proxy_with, spawn_proxy_with_open_files, spawn_serve_with, spawn_serve_with_open_files,
    ProxyProcess,
};
use support::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "slow-clients-token";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// A request head cut off before its blank line: the server waits for the rest.
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n";

/// How long a server gets for what it must do "at once" (close, answer) on a loaded box.
const SOON: Duration = Duration::from_secs(10);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Proxy,
    Serve,
}

struct Server {
    kind: Kind,
    process: ProxyProcess,
    _redis: RedisServer,
}

impl Server {
    fn start(kind: Kind, flags: &[&str]) -> Server {
        Server::start_under(kind, flags, None)
    }

    /// With the child's descriptor limit lowered to `open_files`.
    fn start_under(kind: Kind, flags: &[&str], open_files: Option<u64>) -> Server {
        let redis = RedisServer::start();
        let process = match (kind, open_files) {
            (Kind::Proxy, None) => spawn_proxy_with(&[redis.url()], TOKEN, flags, &[]),
            (Kind::Proxy, Some(limit)) => {
                spawn_proxy_with_open_files(&[redis.url()], TOKEN, flags, limit)
            }
            (Kind::Serve, open_files) => {
                let url = redis.url();
                let args: Vec<&str> = ["--redis-url", url.as_str()]
                    .into_iter()
                    .chain(flags.iter().copied())
                    .collect();
                match open_files {
                    None => spawn_serve_with(&args, &[]),
                    Some(limit) => spawn_serve_with_open_files(&args, limit),
                }
            }
        };
        Server {
            kind,
            process,
            _redis: redis,
        }
    }

    fn addr(&self) -> &str {
        self.process
            .url()
            .strip_prefix("http://")
            .expect("an http:// URL")
    }

    async fn connect(&self) -> Conn {
        Conn {
            stream: TcpStream::connect(self.addr()).await.expect("connect"),
            buf: Vec::new(),
        }
    }

    /// What a real client asks: the proxy `["PING"]`, serve `/healthz`.
    fn real_request(&self) -> Vec<u8> {
        match self.kind {
            Kind::Proxy => {
                let mut request = self.slow_body_head();
                request.extend_from_slice(SLOW_BODY_PROXY);
                request
            }
            Kind::Serve => b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        }
    }

    /// Checks the answer to [`Server::real_request`].
    fn assert_real_answer(&self, answer: &Answer) {
        assert_eq!(answer.status, 200, "{answer:?}\n{}", self.process.log());
        match self.kind {
            Kind::Proxy => assert_eq!(answer.body, r#"{"result":"PONG"}"#),
            Kind::Serve => assert!(answer.body.contains(r#""ok":true"#), "{answer:?}"),
        }
    }

    /// A new connection sends the real request; its answer, checked, within `within`.
    async fn real_client(&self, within: Duration) -> Conn {
        let started = Instant::now();
        let mut conn = tokio::time::timeout(within, self.connect())
            .await
            .expect("connected in time");
        conn.send(&self.real_request()).await;
        let answer =
            tokio::time::timeout(within.saturating_sub(started.elapsed()), conn.try_answer())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| {
                    panic!(
                        "{:?}: no answer to a real request within {within:?}\n{}",
                        self.kind,
                        self.process.log()
                    )
                });
        self.assert_real_answer(&answer);
        conn
    }

    /// The head of a request whose body is still to come ([`Server::slow_body`]): in flight
    /// once sent.
    fn slow_body_head(&self) -> Vec<u8> {
        match self.kind {
            Kind::Proxy => format!(
                "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Length: {}\r\n\r\n",
                SLOW_BODY_PROXY.len()
            ),
            Kind::Serve => format!(
                "POST /hit/slow/body HTTP/1.1\r\nHost: x\r\nUser-Agent: {BROWSER}\r\n\
                 Content-Length: {}\r\n\r\n",
                SLOW_BODY_SERVE.len()
            ),
        }
        .into_bytes()
    }

    fn slow_body(&self) -> &'static [u8] {
        match self.kind {
            Kind::Proxy => SLOW_BODY_PROXY,
            Kind::Serve => SLOW_BODY_SERVE,
        }
    }

    /// A connection that has sent a whole request and read its answer: kept alive, idle.
    async fn idle_connection(&self) -> Conn {
        let mut conn = self.connect().await;
        conn.send(&self.real_request()).await;
        let answer = tokio::time::timeout(SOON, conn.answer())
            .await
            .expect("an answer");
        self.assert_real_answer(&answer);
        conn
    }

    /// An open event stream (the proxy's `/subscribe`, serve's `/stream`), its first event read.
    async fn event_stream(&self) -> Conn {
        let path = match self.kind {
            Kind::Proxy => "/subscribe/slow-clients",
            Kind::Serve => {
                // A counter to stream.
                self.hit().await;
                "/stream/slow/live"
            }
        };
        let mut conn = self.connect().await;
        conn.send(
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                 User-Agent: {BROWSER}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        let first = match self.kind {
            Kind::Proxy => "subscribe,slow-clients,1",
            Kind::Serve => "data: {\"value\":",
        };
        assert!(
            conn.read_until(first, SOON).await,
            "{:?}: the stream's first event\n{}",
            self.kind,
            self.process.log()
        );
        conn
    }

    /// Makes an event on [`Server::event_stream`]'s stream, from another connection; the text
    /// that event carries.
    async fn make_event(&self) -> &'static str {
        match self.kind {
            Kind::Proxy => {
                let body = br#"["PUBLISH","slow-clients","still-here"]"#;
                let mut conn = self.connect().await;
                conn.send(
                    format!(
                        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                         Content-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
                conn.send(body).await;
                let answer = tokio::time::timeout(SOON, conn.answer())
                    .await
                    .expect("PUBLISH answered");
                assert_eq!(answer.body, r#"{"result":1}"#, "{answer:?}");
                "message,slow-clients,still-here"
            }
            Kind::Serve => {
                self.hit().await;
                "data: {\"value\":2}"
            }
        }
    }

    /// serve: one hit on the streamed counter.
    async fn hit(&self) {
        let mut conn = self.connect().await;
        conn.send(
            format!(
                "POST /hit/slow/live HTTP/1.1\r\nHost: x\r\nUser-Agent: {BROWSER}\r\n\
                 Content-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        let answer = tokio::time::timeout(SOON, conn.answer())
            .await
            .expect("hit answered");
        assert_eq!(answer.status, 200, "{answer:?}");
    }

    /// CPU seconds the server process has used so far (user + system).
    fn cpu_seconds(&self) -> f64 {
        let pid = self.process.pid().expect("running");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
        // After the parenthesised command name: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("a stat line")
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        // SAFETY: sysconf only reads a constant.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    fn is_running(&mut self) -> bool {
        self.process.wait_exit(Duration::from_millis(50)).is_none()
    }
}

const SLOW_BODY_PROXY: &[u8] = br#"["PING"]"#;
const SLOW_BODY_SERVE: &[u8] = b"{}";

#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

/// One raw connection and what it has read but not yet consumed.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send");
    }

    /// Reads more into the buffer: false on EOF or reset.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// One response, its body by `Content-Length` or chunked.
    async fn answer(&mut self) -> Answer {
        self.try_answer()
            .await
            .expect("closed before the answer's end")
    }

    /// [`Conn::answer`], `None` when the connection closes first.
    async fn try_answer(&mut self) -> Option<Answer> {
        let head =
            String::from_utf8_lossy(&self.take_through(b"\r\n\r\n").await?).to_ascii_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map(|n| n.trim().parse::<usize>().expect("a length"));
        let body = match length {
            Some(length) => self.take(length).await?,
            None => {
                assert!(
                    head.contains("transfer-encoding: chunked"),
                    "no length: {head}"
                );
                let mut body = Vec::new();
                loop {
                    let line = self.take_through(b"\r\n").await?;
                    let size = std::str::from_utf8(&line).expect("a chunk size").trim();
                    let size = usize::from_str_radix(size, 16).expect("a hex chunk size");
                    body.extend(self.take(size).await?);
                    self.take_through(b"\r\n").await?;
                    if size == 0 {
                        break;
                    }
                }
                body
            }
        };
        Some(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// The buffered bytes up to and with `end`, reading more as needed (`None`: closed first).
    async fn take_through(&mut self, end: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(at) = self.buf.windows(end.len()).position(|w| w == end) {
                return Some(self.buf.drain(..at + end.len()).collect());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next `n` bytes, reading more as needed (`None`: closed first).
    async fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// Reads until `text` has arrived (true), or `within` passed or the connection closed.
    async fn read_until(&mut self, text: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(at) = self
                .buf
                .windows(text.len())
                .position(|w| w == text.as_bytes())
            {
                self.buf.drain(..at + text.len());
                return true;
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return false,
            }
        }
    }

    /// Whether the server closes the connection (EOF or reset) within `within`; what arrives
    /// before is read and dropped.
    async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(true) => self.buf.clear(),
                Ok(false) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Not closed by the server, as far as a short read can tell (a close already made is seen
    /// at once).
    async fn is_open(&mut self) -> bool {
        !self.closed_within(Duration::from_millis(20)).await
    }
}

/// `n` connections that each sent [`PARTIAL_HEAD`] and nothing more.
async fn partial_heads(server: &Server, n: usize) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut conn = server.connect().await;
        conn.send(PARTIAL_HEAD).await;
        conns.push(conn);
    }
    conns
}

/// How many of `conns` the server closed by `deadline` (each waited for until then).
async fn closed_by(conns: &mut [Conn], deadline: Instant) -> usize {
    let mut closed = 0;
    for conn in conns {
        if conn
            .closed_within(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            closed += 1;
        }
    }
    closed
}

// Header-read timeout ----------------------------------------------------------------------------

async fn slow_heads_are_closed_after_the_header_read_timeout(kind: Kind) {
    let _serial = SERIAL.lock().await;
    let server = Server::start(kind, &["--header-read-timeout-ms", "500"]);
    // Connections that completed their heads: one idle after its answer, one streaming.
    let mut idle = server.idle_connection().await;
    let mut stream = server.event_stream().await;
    // Not before the timeout: half of it after its head began, a slow head is still open.
    let mut lone = partial_heads(&server, 1).await.remove(0);
    let lone_sent = Instant::now();
    tokio::time::sleep_until((lone_sent + Duration::from_millis(250)).into()).await;
    assert!(
        lone.is_open().await,
        "{kind:?}: closed before the header-read timeout"
    );
    let mut slow = partial_heads(&server, 200).await;
    let slow_sent = Instant::now();
    let closed = closed_by(&mut slow, slow_sent + Duration::from_millis(500) + SOON).await;
    assert_eq!(closed, slow.len(), "{kind:?}: slow heads still open");
    assert!(lone.closed_within(SOON).await, "the lone slow head stayed");
    eprintln!(
        "{kind:?}: {closed} slow heads closed {:?} after they were sent",
        slow_sent.elapsed()
    );
    // Past the header-read timeout, what completed its heads is open: the idle connection
    // (it waits for its next request under the idle timeout, 120 s) and the stream.
    assert!(
        idle.is_open().await,
        "{kind:?}: the idle connection was closed"
    );
    assert!(stream.is_open().await, "{kind:?}: the stream was closed");
    // A later head on a kept-alive connection is timed from its first byte.
    idle.send(PARTIAL_HEAD).await;
    let second_head = Instant::now();
    assert!(
        !idle
            .closed_within(Duration::from_millis(250).saturating_sub(second_head.elapsed()))
            .await,
        "{kind:?}: a second head was cut off before the header-read timeout"
    );
    assert!(
        idle.closed_within(SOON).await,
        "{kind:?}: a slow second head stayed open"
    );
    // (Less a little: the server counts whole milliseconds.)
    assert!(
        second_head.elapsed() >= Duration::from_millis(490),
        "{kind:?}: the second head's timeout ran from before its first byte: {:?}",
        second_head.elapsed()
    );
}

#[tokio::test]
async fn proxy_closes_slow_heads_after_the_header_read_timeout() {
    slow_heads_are_closed_after_the_header_read_timeout(Kind::Proxy).await;
}

#[tokio::test]
async fn serve_closes_slow_heads_after_the_header_read_timeout() {
    slow_heads_are_closed_after_the_header_read_timeout(Kind::Serve).await;
}

// A low descriptor limit -------------------------------------------------------------------------

/// The child's RLIMIT_NOFILE in these tests: the default cap is then 192 connections.
const OPEN_FILES: u64 = 256;

/// More slow clients than the descriptor limit leaves room for.
const SLOW_CLIENTS: usize = 300;

async fn a_real_request_is_answered_past_the_descriptor_limit(kind: Kind) {
    let _serial = SERIAL.lock().await;
    // The default header-read timeout (10 s): the cap, not the timeout, makes room here.
    let server = Server::start_under(kind, &[], Some(OPEN_FILES));
    let mut slow = partial_heads(&server, SLOW_CLIENTS).await;
    let started = Instant::now();
    server.real_client(Duration::from_secs(5)).await;
    let answered = started.elapsed();
    // Room was made by closing the slow connections that had waited longest, not the newest.
    let shed = closed_by(&mut slow, Instant::now()).await;
    assert!(shed > 0, "{kind:?}: nothing was shed");
    for conn in &mut slow[SLOW_CLIENTS - 10..] {
        assert!(
            conn.is_open().await,
            "{kind:?}: a newest slow connection was shed"
        );
    }
    eprintln!(
        "{kind:?}: under RLIMIT_NOFILE {OPEN_FILES}, {SLOW_CLIENTS} slow heads held, a real \
         request answered in {answered:?} ({shed} slow connections shed)"
    );
}

#[tokio::test]
async fn proxy_answers_a_real_request_past_its_descriptor_limit() {
    a_real_request_is_answered_past_the_descriptor_limit(Kind::Proxy).await;
}

#[tokio::test]
async fn serve_answers_a_real_request_past_its_descriptor_limit() {
    a_real_request_is_answered_past_the_descriptor_limit(Kind::Serve).await;
}

/// Redis connections the server dials before its descriptors run out: they take most of what
/// the cap (192) leaves to the process.
const REDIS_CONNECTIONS: usize = 100;

/// Requests in flight beyond what the descriptors left by the Redis connections allow.
const BUSY_CLIENTS: usize = 180;

async fn out_of_descriptors_the_server_backs_off_and_recovers(kind: Kind) {
    let _serial = SERIAL.lock().await;
    let redis_connections = REDIS_CONNECTIONS.to_string();
    let mut server = Server::start_under(
        kind,
        &["--redis-connections", &redis_connections],
        Some(OPEN_FILES),
    );
    // Requests go round robin over the Redis connections, each dialled on its first.
    let mut warm = server.connect().await;
    for _ in 0..REDIS_CONNECTIONS {
        warm.send(&server.real_request()).await;
        let answer = tokio::time::timeout(SOON, warm.answer())
            .await
            .expect("an answer");
        server.assert_real_answer(&answer);
    }
    drop(warm);
    // Requests in flight (their bodies to come) take the rest: accept() runs out of descriptors
    // below the cap, with nothing idle to shed.
    let head = server.slow_body_head();
    let mut busy = Vec::with_capacity(BUSY_CLIENTS);
    for _ in 0..BUSY_CLIENTS {
        let mut conn = server.connect().await;
        conn.send(&head).await;
        busy.push(conn);
    }
    let deadline = Instant::now() + SOON;
    while !server.process.log().contains("out of file descriptors") {
        assert!(
            Instant::now() < deadline,
            "{kind:?}: accept() never ran out of descriptors\n{}",
            server.process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Out of descriptors with nothing to shed: the accept loop waits, it does not spin.
    let cpu_before = server.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = server.cpu_seconds() - cpu_before;
    assert!(
        cpu < 0.5,
        "{kind:?}: {cpu:.2} s of CPU in 2 s out of descriptors"
    );
    assert!(
        server.is_running(),
        "{kind:?}: exited\n{}",
        server.process.log()
    );
    // None was shed: with every other connection busy, newcomers wait in the backlog.
    let shed = closed_by(&mut busy, Instant::now()).await;
    assert_eq!(shed, 0, "{kind:?}: busy connections were closed");
    // The requests finish; their connections turn idle and are shed for those waiting, the
    // real client last among them.
    let body = server.slow_body();
    for conn in &mut busy {
        conn.send(body).await;
    }
    server.real_client(SOON).await;
    assert!(
        server.is_running(),
        "{kind:?}: exited\n{}",
        server.process.log()
    );
    eprintln!("{kind:?}: out of descriptors, {cpu:.2} s of CPU in 2 s, then recovered");
}

#[tokio::test]
async fn proxy_backs_off_and_recovers_out_of_descriptors() {
    out_of_descriptors_the_server_backs_off_and_recovers(Kind::Proxy).await;
}

#[tokio::test]
async fn serve_backs_off_and_recovers_out_of_descriptors() {
    out_of_descriptors_the_server_backs_off_and_recovers(Kind::Serve).await;
}

// Idle timeout -----------------------------------------------------------------------------------

async fn idle_connections_close_but_streams_and_long_requests_stay(kind: Kind) {
    let _serial = SERIAL.lock().await;
    let server = Server::start(
        kind,
        &[
            "--header-read-timeout-ms",
            "500",
            "--idle-timeout-ms",
            "3000",
        ],
    );
    let mut idle = server.idle_connection().await;
    let idle_from = Instant::now();
    let mut stream = server.event_stream().await;
    let mut long = server.connect().await;
    long.send(&server.slow_body_head()).await;
    // Past the header-read timeout, short of the idle timeout: still open.
    tokio::time::sleep_until((idle_from + Duration::from_millis(1500)).into()).await;
    assert!(
        idle.is_open().await,
        "{kind:?}: an idle connection was closed before the idle timeout"
    );
    assert!(
        idle.closed_within(Duration::from_millis(3000) + SOON).await,
        "{kind:?}: the idle connection stayed open"
    );
    let closed_after = idle_from.elapsed();
    assert!(
        closed_after >= Duration::from_millis(2500),
        "{kind:?}: idle connection closed after {closed_after:?}"
    );
    // Past the idle timeout since they began: the stream still delivers, the long request
    // still gets its answer.
    tokio::time::sleep_until((idle_from + Duration::from_millis(3500)).into()).await;
    assert!(stream.is_open().await, "{kind:?}: the stream was closed");
    let event = server.make_event().await;
    assert!(
        stream.read_until(event, SOON).await,
        "{kind:?}: the stream stopped delivering\n{}",
        server.process.log()
    );
    assert!(
        long.is_open().await,
        "{kind:?}: the long request was cut off"
    );
    long.send(server.slow_body()).await;
    let answer = tokio::time::timeout(SOON, long.answer())
        .await
        .expect("the long request answered");
    assert_eq!(answer.status, 200, "{kind:?}: {answer:?}");
    eprintln!(
        "{kind:?}: an idle connection closed after {closed_after:?}; the stream and the long \
         request stayed"
    );
}

#[tokio::test]
async fn proxy_closes_idle_connections_but_not_streams_or_long_requests() {
    idle_connections_close_but_streams_and_long_requests_stay(Kind::Proxy).await;
}

#[tokio::test]
async fn serve_closes_idle_connections_but_not_streams_or_long_requests() {
    idle_connections_close_but_streams_and_long_requests_stay(Kind::Serve).await;
}

// Connection cap ---------------------------------------------------------------------------------

async fn at_the_cap_the_oldest_idle_connection_is_shed(kind: Kind) {
    let _serial = SERIAL.lock().await;
    let server = Server::start(kind, &["--max-connections", "4"]);
    // Oldest first: one still sending its first head (idle for this purpose), then three
    // kept-alive connections idle after their answers.
    let mut first_head = partial_heads(&server, 1).await.remove(0);
    let mut idle = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        idle.push(server.idle_connection().await);
    }
    // A newcomer is answered: the connection idle longest made room. It stays, idle.
    let _newcomer = server.real_client(SOON).await;
    assert!(
        first_head.closed_within(SOON).await,
        "{kind:?}: the oldest idle connection was not shed"
    );
    for (i, conn) in idle.iter_mut().enumerate() {
        assert!(
            conn.is_open().await,
            "{kind:?}: idle connection {i} shed too"
        );
    }
    // The next one sheds the oldest of the kept-alive ones.
    server.real_client(SOON).await;
    assert!(
        idle[0].closed_within(SOON).await,
        "{kind:?}: the oldest kept-alive connection was not shed"
    );
    assert!(idle[1].is_open().await && idle[2].is_open().await);
}

#[tokio::test]
async fn proxy_sheds_the_oldest_idle_connection_at_the_cap() {
    at_the_cap_the_oldest_idle_connection_is_shed(Kind::Proxy).await;
}

#[tokio::test]
async fn serve_sheds_the_oldest_idle_connection_at_the_cap() {
    at_the_cap_the_oldest_idle_connection_is_shed(Kind::Serve).await;
}

async fn at_the_cap_with_every_request_in_flight_a_newcomer_waits(kind: Kind) {
    let _serial = SERIAL.lock().await;
    let server = Server::start(kind, &["--max-connections", "2"]);
    let head = server.slow_body_head();
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut conn = server.connect().await;
        conn.send(&head).await;
        busy.push(conn);
    }
    // Let the server take both before the newcomer comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut newcomer = server.connect().await;
    newcomer.send(&server.real_request()).await;
    let cpu_before = server.cpu_seconds();
    assert!(
        !newcomer.closed_within(Duration::from_secs(1)).await && newcomer.buf.is_empty(),
        "{kind:?}: the newcomer was answered or closed while every connection was busy"
    );
    let cpu = server.cpu_seconds() - cpu_before;
    assert!(cpu < 0.3, "{kind:?}: {cpu:.2} s of CPU in 1 s of waiting");
    // One request finishes: its connection turns idle, is shed, and the newcomer is served.
    busy[0].send(server.slow_body()).await;
    let answer = tokio::time::timeout(SOON, busy[0].answer())
        .await
        .expect("the busy request answered");
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = tokio::time::timeout(SOON, newcomer.answer())
        .await
        .expect("the newcomer answered once a connection turned idle");
    server.assert_real_answer(&answer);
    assert!(
        busy[0].closed_within(SOON).await,
        "the idle one was not shed"
    );
    assert!(busy[1].is_open().await, "the busy one was shed");
}

#[tokio::test]
async fn proxy_makes_a_newcomer_wait_while_every_request_is_in_flight() {
    at_the_cap_with_every_request_in_flight_a_newcomer_waits(Kind::Proxy).await;
}

#[tokio::test]
async fn serve_makes_a_newcomer_wait_while_every_request_is_in_flight() {
    at_the_cap_with_every_request_in_flight_a_newcomer_waits(Kind::Serve).await;
}

// Shutdown ---------------------------------------------------------------------------------------

async fn on_sigterm_idle_connections_close_and_requests_in_flight_finish(kind: Kind) {
    let _serial = SERIAL.lock().await;
    let mut server = Server::start(kind, &[]);
    let mut idle = server.idle_connection().await;
    let mut slow_head = partial_heads(&server, 1).await.remove(0);
    let mut in_flight = server.connect().await;
    in_flight.send(&server.slow_body_head()).await;
    // The head is read (and the request in flight) before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.process.signal(libc::SIGTERM);
    let signalled = Instant::now();
    assert!(
        idle.closed_within(SOON).await,
        "{kind:?}: an idle connection stayed open after SIGTERM"
    );
    assert!(
        slow_head.closed_within(SOON).await,
        "{kind:?}: a slow head stayed open after SIGTERM"
    );
    // Still running: a request is in flight, and it is answered.
    assert!(
        server.is_running(),
        "{kind:?}: exited with a request in flight\n{}",
        server.process.log()
    );
    in_flight.send(server.slow_body()).await;
    let answer = tokio::time::timeout(SOON, in_flight.answer())
        .await
        .expect("the request in flight answered after SIGTERM");
    assert_eq!(answer.status, 200, "{kind:?}: {answer:?}");
    // Then nothing is left: the process exits at once, not at the end of the grace (10 s).
    let status = server
        .process
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{kind:?}: still running\n{}", server.process.log()));
    assert!(status.success(), "{kind:?}: {status:?}");
    eprintln!(
        "{kind:?}: exited {:?} after SIGTERM, its request in flight answered",
        signalled.elapsed()
    );
}

#[tokio::test]
async fn proxy_on_sigterm_closes_idle_connections_and_finishes_requests_in_flight() {
    on_sigterm_idle_connections_close_and_requests_in_flight_finish(Kind::Proxy).await;
}

#[tokio::test]
async fn serve_on_sigterm_closes_idle_connections_and_finishes_requests_in_flight() {
    on_sigterm_idle_connections_close_and_requests_in_flight_finish(Kind::Serve).await;
}
