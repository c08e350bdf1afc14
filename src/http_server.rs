//! How `edgecount proxy` and `edgecount serve` take HTTP/1.1 connections: an accept loop of our
//! own around hyper's connections, so that a slow or idle client cannot hold a connection — and a
//! file descriptor — for ever, nor crowd out the clients that send whole requests.
//!
//! Per connection ([`ConnectionArgs`], the same flags on both servers):
//! - **Header-read timeout.** A new connection must send its first request head (request line
//!   and headers) within `--header-read-timeout-ms` of being accepted; on a kept-alive connection a
//!   later head must be complete within that time of its first byte. Otherwise it is closed.
//! - **Idle timeout.** A kept-alive connection with no request in flight is closed once it has
//!   waited `--idle-timeout-ms` for its next request. A request is in flight from its head until
//!   its response body is done, so an open event stream or a long request is never idle.
//! - **Connection cap.** At `--max-connections` open connections (at most what the descriptor
//!   limit leaves once Redis and the rest have theirs), a newcomer sheds the connection that has
//!   been idle the longest (one still sending its first head counts as idle; one idle for less
//!   than 250 ms is not shed); when none can be shed, the newcomer waits and the next ones wait in
//!   the listen backlog until a connection ends or turns idle. When `accept()` fails for want of
//!   descriptors all the same (`EMFILE`, `ENFILE`: the process's own connections took them) the
//!   loop sheds the same way and backs off; it never spins and never stops serving.
//!
//! Why these timers are ours and not hyper's `http1::Builder::header_read_timeout` (with
//! `timer(TokioTimer)`; `axum::serve` sets no timer, so there it is silently off): in hyper 1.12
//! (`proto/h1/conn.rs`: `poll_read_head` arms it, `State::idle` re-arms it) that timer starts
//! when the connection is served and again the moment a response is done, so on a kept-alive
//! connection it is the idle timeout too, one duration for both (hyper#3828; hyper has no
//! separate idle timeout). With it at 10 s every kept-alive connection would close after 10 s
//! without a request — `tests/slow_clients.rs` fails so with hyper's timer in place of ours —
//! sooner than clients' pools give up idle connections (serve's own REST client keeps them
//! 60 s), and those clients would keep sending requests into connections being closed. Shedding
//! needs to know which connections are idle, which hyper does not say either. So hyper's timer is
//! off, and a watchdog task per connection applies both timeouts from what the connection's
//! socket reads and its requests tell it (`Connection`).
//!
//! Shutdown: the loop stops accepting, idle connections close at once, connections with a
//! request in flight finish it (hyper's graceful shutdown: no further request on them), and
//! [`serve`] returns when none is left or after the grace, whichever comes first.
//!
//! Cost per request on top of hyper's: four uncontended atomic read-modify-writes and a few plain
//! atomic loads and stores on the connection's own state, and two clock reads; no allocation, no
//! lock. Locks and allocations are per connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// `--header-read-timeout-ms` by default: a real client's request head arrives in a packet or
/// two, so 10 s leaves slow links plenty of room.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// `--idle-timeout-ms` by default: longer than the usual clients keep an idle pooled connection
/// (serve's REST client 60 s, reqwest's and Go's defaults 90 s), so that the client, not the
/// server, closes it; a request sent into a connection the server is closing fails, and a
/// `POST` is not retried. Idle connections are shed first at the cap, so holding them is cheap.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 120_000;

/// The largest `--max-connections` (Linux's default ceiling on a process's descriptors).
pub const MAX_CONNECTIONS: u64 = 1 << 20;

/// How long shutdown waits for requests in flight after SIGTERM/SIGINT before returning anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The connection flags of `edgecount proxy` and `edgecount serve` (flattened into both).
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct ConnectionArgs {
    /// How long a client may take to send a request head (request line and headers), in
    /// milliseconds: from connecting for its first request, from the head's first byte for
    /// later ones on a kept-alive connection. Then the connection is closed: clients that
    /// trickle headers ("slowloris") hold no connection for longer.
    #[arg(
        long,
        env = "EDGECOUNT_HEADER_READ_TIMEOUT_MS",
        default_value_t = DEFAULT_HEADER_READ_TIMEOUT_MS,
        value_parser = clap::value_parser!(u64).range(50..=600_000)
    )]
    pub header_read_timeout_ms: u64,
    /// How long a kept-alive connection may wait for its next request, in milliseconds, before
    /// it is closed. A connection with a request in flight (an open event stream, a long
    /// request) is not idle. Longer than clients' pools keep idle connections (60–90 s), so that
    /// they close them first.
    #[arg(
        long,
        env = "EDGECOUNT_IDLE_TIMEOUT_MS",
        default_value_t = DEFAULT_IDLE_TIMEOUT_MS,
        value_parser = clap::value_parser!(u64).range(50..=3_600_000)
    )]
    pub idle_timeout_ms: u64,
    /// Open client connections at most. At the cap a newcomer sheds the connection idle the
    /// longest (one still sending its first request head counts as idle; none idle for less
    /// than 250 ms); when none can be shed it waits for one to end or turn idle [default, and
    /// most: the soft descriptor limit (RLIMIT_NOFILE, `ulimit -n`) less a quarter of it, at
    /// least 32, kept for Redis and REST connections, listeners and logs: 768 under
    /// `ulimit -n 1024`].
    #[arg(
        long,
        env = "EDGECOUNT_MAX_CONNECTIONS",
        value_parser = clap::value_parser!(u64).range(1..=MAX_CONNECTIONS)
    )]
    pub max_connections: Option<u64>,
}

impl Default for ConnectionArgs {
    /// The CLI's defaults.
    fn default() -> ConnectionArgs {
        ConnectionArgs {
            header_read_timeout_ms: DEFAULT_HEADER_READ_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_connections: None,
        }
    }
}

impl ConnectionArgs {
    /// The limits these flags ask for. The connection cap is what the process's descriptor
    /// limit leaves, or less when asked: clients holding every descriptor would leave none for
    /// the connections to Redis, and each request would fail for want of one.
    pub fn limits(&self) -> Limits {
        let most = max_connections_under(open_files_limit());
        if self.max_connections.is_some_and(|asked| asked > most) {
            tracing::warn!(
                asked = self.max_connections,
                max_connections = most,
                open_files_limit = open_files_limit(),
                "--max-connections lowered to what the descriptor limit leaves (raise `ulimit -n` \
                 for more)"
            );
        }
        Limits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections.map_or(most, |asked| asked.min(most)) as usize,
        }
    }
}

/// What a server enforces on its connections ([`ConnectionArgs::limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// The soft RLIMIT_NOFILE (`ulimit -n`), `None` when unlimited or unknown.
#[allow(clippy::unnecessary_cast, reason = "rlim_t is not u64 on every target")]
fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (read && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

/// The cap under a soft descriptor limit of `open_files` (the default, and the most allowed): a
/// quarter of them (at least 32) stay for what is not a client connection — Redis or REST
/// connections, listeners, logs, the runtime — so the cap is met before `accept()` runs out of
/// descriptors.
fn max_connections_under(open_files: Option<u64>) -> u64 {
    let Some(open_files) = open_files else {
        return MAX_CONNECTIONS;
    };
    let reserve = (open_files / 4).max(32);
    open_files.saturating_sub(reserve).clamp(1, MAX_CONNECTIONS)
}

/// What a connection accepted here tells the app: axum's `ConnectInfo<SocketAddr>` through
/// `Router::into_make_service_with_connect_info::<SocketAddr>()`, as with `axum::serve`.
#[derive(Clone, Copy, Debug)]
pub struct Accepted {
    pub peer: SocketAddr,
}

impl axum::extract::connect_info::Connected<Accepted> for SocketAddr {
    fn connect_info(accepted: Accepted) -> SocketAddr {
        accepted.peer
    }
}

/// Serve HTTP/1.1 on `listener` until `stop` resolves, then shut down (see the module): returns
/// once no connection is left, or after `grace`. `make_service` makes each connection's service,
/// as for `axum::serve`: `router.into_make_service()`, or
/// `router.into_make_service_with_connect_info::<SocketAddr>()` for the peer address.
pub async fn serve<M, S>(
    listener: TcpListener,
    mut make_service: M,
    limits: Limits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) where
    M: Service<Accepted, Response = S, Error = Infallible>,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        header_read_timeout_ms = limits.header_read_timeout.as_millis() as u64,
        idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
        max_connections = limits.max_connections,
        open_files_limit = open_files_limit(),
        "connection limits"
    );
    let connections = Arc::new(Registry::default());
    let mut stop = pin!(stop);
    let mut backoff = Backoff::default();
    let (mut warned_accept, mut warned_cap) = (Warned::default(), Warned::default());
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // The client gave up before we took it: nothing is wrong with the listener.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                let out_of_descriptors = is_out_of_descriptors(&e);
                warned_accept.now(|suppressed| {
                    tracing::warn!(
                        error = %e,
                        open = connections.len(),
                        suppressed,
                        "accept failed{}",
                        if out_of_descriptors {
                            ": out of file descriptors (the connection idle the longest, if any, \
                             is shed)"
                        } else {
                            ""
                        }
                    )
                });
                // Freeing a descriptor is what lets the next accept() succeed; without one to
                // shed, only time helps. Either way accept() is not retried at once: it would
                // fail the same way, as fast as it can.
                let shedding = out_of_descriptors && connections.shed_oldest_idle();
                let wait = if shedding { SHED_WAIT } else { backoff.next() };
                tokio::select! {
                    () = &mut stop => break,
                    () = connections.one_closed(wait) => {}
                }
                continue;
            }
        };
        backoff = Backoff::default();
        if connections.len() >= limits.max_connections {
            warned_cap.now(|suppressed| {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    suppressed,
                    "at --max-connections: shedding idle connections, or waiting for one to end"
                )
            });
            tokio::select! {
                () = &mut stop => break,
                () = connections.make_room(limits.max_connections) => {}
            }
        }
        // Small request/response pairs on kept-alive connections: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        let Ok(make) = make_service.ready().await;
        let Ok(app) = make.call(Accepted { peer }).await;
        let connection = connections.open();
        tokio::spawn(serve_connection(stream, app, connection, limits));
    }
    drop(listener);
    tracing::info!(open = connections.len(), "shutting down");
    connections.stop_all();
    let deadline = Instant::now() + grace;
    while connections.len() > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(
                open = connections.len(),
                "open requests did not finish in time; exiting anyway"
            );
            return;
        }
        connections.one_closed(left).await;
    }
}

/// How long a connection is idle before it can be shed. A newcomer's head is usually in its socket
/// already: it gets the moment its task needs to read it, or, out of descriptors with every other
/// connection busy, each accept would shed the newcomer before it and none would be served.
const SHED_AFTER: Duration = Duration::from_millis(250);

/// How long the accept loop waits for a shed connection to close before it looks again.
const SHED_WAIT: Duration = Duration::from_millis(200);

/// How often the accept loop, at the cap with none to shed, looks again for one idle long enough.
const BUSY_RECHECK: Duration = Duration::from_millis(100);

/// Errors of one connection, not of the listener (as hyper's and axum's accept loops list them).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// `accept()` found no descriptor (or no kernel memory) for the connection.
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Waits after failed accepts: 10 ms, doubling to 1 s, until one succeeds.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = Duration::from_millis(10 << self.failures.min(7)).min(Duration::from_secs(1));
        self.failures = self.failures.saturating_add(1);
        wait
    }
}

/// One warning a second at most for a condition that can repeat thousands of times a second.
#[derive(Default)]
struct Warned {
    last: Option<Instant>,
    suppressed: u64,
}

impl Warned {
    fn now(&mut self, warn: impl FnOnce(u64)) {
        if self
            .last
            .is_some_and(|last| last.elapsed() < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        warn(self.suppressed);
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// The open connections, for the cap, shedding and shutdown.
struct Registry {
    /// Where the connections' clocks start ([`Connection::idle_since`] and friends count
    /// milliseconds from here).
    epoch: Instant,
    state: Mutex<RegistryState>,
    /// Told each time a connection has closed.
    closed: Notify,
}

#[derive(Default)]
struct RegistryState {
    open: HashMap<u64, Arc<Connection>>,
    next_id: u64,
    /// Connections told to close by [`Registry::shed_oldest_idle`] that have not yet.
    shedding: usize,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            epoch: Instant::now(),
            state: Mutex::default(),
            closed: Notify::new(),
        }
    }
}

impl Registry {
    fn state(&self) -> MutexGuard<'_, RegistryState> {
        // The state stays consistent whatever panicked while holding it: counts and a map.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.state().open.len()
    }

    /// A new connection, idle from now and with its first head to send.
    fn open(self: &Arc<Registry>) -> Registration {
        let now = millis_since(self.epoch);
        let connection = Arc::new(Connection {
            epoch: self.epoch,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now),
            head_since: AtomicU64::new(now),
            shed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let mut state = self.state();
        let id = state.next_id;
        state.next_id += 1;
        state.open.insert(id, connection.clone());
        Registration {
            registry: self.clone(),
            id,
            connection,
        }
    }

    /// Tells the connection idle the longest to close, unless one told so is still closing (a
    /// second would free nothing sooner). False when none has been idle for [`SHED_AFTER`]: every
    /// connection has a request in flight, or has only just been accepted or answered.
    fn shed_oldest_idle(&self) -> bool {
        let mut state = self.state();
        if state.shedding > 0 {
            return true;
        }
        let Some(oldest) = state
            .open
            .values()
            .filter(|c| c.is_idle())
            .min_by_key(|c| c.idle_since.load(Ordering::Relaxed))
            .cloned()
        else {
            return false;
        };
        let idle_for = Duration::from_millis(
            millis_since(self.epoch).saturating_sub(oldest.idle_since.load(Ordering::Relaxed)),
        );
        if idle_for < SHED_AFTER {
            return false;
        }
        tracing::debug!(
            idle_ms = idle_for.as_millis() as u64,
            "shedding the connection idle the longest"
        );
        oldest.shed.store(true, Ordering::Relaxed);
        oldest.wake.notify_one();
        state.shedding += 1;
        true
    }

    /// Returns once fewer than `max` connections are open: sheds idle ones, else waits for a
    /// connection to end (and looks for one turned idle every [`BUSY_RECHECK`]).
    async fn make_room(&self, max: usize) {
        while self.len() >= max {
            let wait = if self.shed_oldest_idle() {
                SHED_WAIT
            } else {
                BUSY_RECHECK
            };
            self.one_closed(wait).await;
        }
    }

    /// Returns when a connection has closed (since the last call), or after `at_most`.
    async fn one_closed(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.closed.notified()).await;
    }

    /// Tells every connection that the server is stopping.
    fn stop_all(&self) {
        for connection in self.state().open.values() {
            connection.stopping.store(true, Ordering::Relaxed);
            connection.wake.notify_one();
        }
    }
}

/// A connection's place in the [`Registry`], given up when its task ends, however it ends.
struct Registration {
    registry: Arc<Registry>,
    id: u64,
    connection: Arc<Connection>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.registry.state();
        state.open.remove(&self.id);
        if self.connection.shed.load(Ordering::Relaxed) {
            state.shedding -= 1;
        }
        drop(state);
        // A permit if nobody waits: the next wait returns at once and counts again.
        self.registry.closed.notify_one();
    }
}

/// What the watchdog of one connection knows of it: written by its socket ([`Watched`]) and its
/// requests ([`InFlight`]), read by its task and by the [`Registry`]. Times are milliseconds
/// since `epoch`, plus one, so that 0 can mean "not set".
struct Connection {
    epoch: Instant,
    /// Requests whose response body is not done (HTTP/1.1: one at most).
    in_flight: AtomicU32,
    /// When the last response was done (or the connection accepted).
    idle_since: AtomicU64,
    /// When the head being received started (its first byte; for the first head, the accept),
    /// 0 when none is.
    head_since: AtomicU64,
    /// Shed to make room: close now.
    shed: AtomicBool,
    /// The server is stopping: close now if idle, else after the request in flight.
    stopping: AtomicBool,
    /// Wakes the connection's watchdog for `shed` or `stopping`.
    wake: Notify,
}

fn millis_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64 + 1
}

impl Connection {
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// When the connection times out if nothing changes; `None` while a request is in flight.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if !self.is_idle() {
            return None;
        }
        let at = |millis: u64, limit: Duration| {
            self.epoch + Duration::from_millis(millis.saturating_sub(1)) + limit
        };
        Some(match self.head_since.load(Ordering::Relaxed) {
            0 => at(self.idle_since.load(Ordering::Relaxed), limits.idle_timeout),
            head => at(head, limits.header_read_timeout),
        })
    }

    /// The socket read bytes: while idle, the first ones start a head.
    fn bytes_arrived(&self) {
        if self.is_idle() && self.head_since.load(Ordering::Relaxed) == 0 {
            self.head_since
                .store(millis_since(self.epoch), Ordering::Relaxed);
        }
    }
}

/// A request from its complete head until its response body is done (or dropped).
struct InFlight(Arc<Connection>);

impl InFlight {
    fn begin(connection: &Arc<Connection>) -> InFlight {
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        connection.head_since.store(0, Ordering::Relaxed);
        InFlight(connection.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let connection = &self.0;
        connection
            .idle_since
            .store(millis_since(connection.epoch), Ordering::Relaxed);
        // Release: whoever sees the connection idle sees when it became so.
        connection.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// A response body that keeps its request [`InFlight`] until hyper is done with it.
struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's socket, telling the watchdog when bytes arrive.
struct Watched {
    stream: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.connection.bytes_arrived();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// One connection: hyper serves `app` on it until it ends or its [`watch`] orders otherwise.
/// Returning closes the socket.
async fn serve_connection<S>(stream: TcpStream, app: S, registration: Registration, limits: Limits)
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let connection = registration.connection.clone();
    // The watchdog is a task of its own: this one is woken for every request, and polling the
    // watchdog's timer and `Notify` (a lock) on each of those wake-ups would cost every request;
    // polling a oneshot receiver costs a load.
    let (orders, mut order) = tokio::sync::oneshot::channel();
    tokio::spawn(watch(connection.clone(), limits, orders));
    let requests = connection.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let in_flight = InFlight::begin(&requests);
        let answer = app.clone().oneshot(request.map(Body::new));
        async move {
            let Ok(response) = answer.await;
            Ok::<_, Infallible>(response.map(|body| TrackedBody {
                body,
                _in_flight: in_flight,
            }))
        }
    });
    let io = TokioIo::new(Watched { stream, connection });
    let mut http = pin!(hyper::server::conn::http1::Builder::new()
        // Off: the watchdog times heads and idleness (see the module for why).
        .header_read_timeout(None)
        .serve_connection(io, service));
    tokio::select! {
        biased;
        _ = http.as_mut() => {}
        order = &mut order => {
            if let Ok(Order::Finish) = order {
                // The request in flight finishes; no other is read.
                http.as_mut().graceful_shutdown();
                let _ = http.await;
            }
        }
    }
    drop(registration);
}

/// What a connection's watchdog tells it, once.
enum Order {
    /// Close now (a timeout, shed, or idle at shutdown).
    Close,
    /// Finish the request in flight, then close (shutdown).
    Finish,
}

/// The watchdog of one connection: applies its timeouts and passes on shedding and shutdown.
/// Ends with its one order, or when the connection has ended by itself.
async fn watch(
    connection: Arc<Connection>,
    limits: Limits,
    mut orders: tokio::sync::oneshot::Sender<Order>,
) {
    // The first head's deadline: the connection is new.
    let mut check = pin!(tokio::time::sleep_until(
        Instant::now() + limits.header_read_timeout
    ));
    let order = loop {
        tokio::select! {
            () = orders.closed() => return,
            () = connection.wake.notified() => {
                if connection.shed.load(Ordering::Relaxed) {
                    break Order::Close;
                }
                if connection.stopping.load(Ordering::Relaxed) {
                    break if connection.is_idle() { Order::Close } else { Order::Finish };
                }
            }
            () = check.as_mut() => {
                let now = Instant::now();
                let deadline = connection.deadline(&limits);
                if deadline.is_some_and(|deadline| deadline <= now) {
                    let timeout = if connection.head_since.load(Ordering::Relaxed) == 0 {
                        "idle"
                    } else {
                        "header-read"
                    };
                    tracing::debug!(timeout, "closing a connection");
                    break Order::Close;
                }
                // Nothing tells the watchdog when a request ends or a head begins (that would
                // cost every request a wake-up), so it looks again at least once a header-read
                // timeout: a head begun since is still within its time then, and is timed from
                // its first byte on.
                let look_again = now + limits.header_read_timeout;
                check
                    .as_mut()
                    .reset(deadline.map_or(look_again, |deadline| deadline.min(look_again)));
            }
        }
    };
    let _ = orders.send(order);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        connections: ConnectionArgs,
    }

    #[test]
    fn the_cli_defaults_are_the_default() {
        assert_eq!(
            Cli::parse_from(["x"]).connections,
            ConnectionArgs::default()
        );
    }

    #[test]
    fn zero_and_absurd_values_are_refused() {
        for argv in [
            ["x", "--header-read-timeout-ms", "0"],
            ["x", "--header-read-timeout-ms", "600001"],
            ["x", "--idle-timeout-ms", "0"],
            ["x", "--idle-timeout-ms", "86400000"],
            ["x", "--max-connections", "0"],
            ["x", "--max-connections", "99999999"],
            ["x", "--max-connections", "lots"],
        ] {
            let e = Cli::try_parse_from(argv).err().expect("refused");
            assert!(e.to_string().contains("invalid value"), "{argv:?}: {e}");
        }
        let cli = Cli::parse_from([
            "x",
            "--header-read-timeout-ms",
            "500",
            "--idle-timeout-ms",
            "1500",
            "--max-connections",
            "8",
        ]);
        assert_eq!(
            cli.connections.limits(),
            Limits {
                header_read_timeout: Duration::from_millis(500),
                idle_timeout: Duration::from_millis(1500),
                max_connections: 8,
            }
        );
    }

    #[test]
    fn a_cap_above_what_the_descriptors_leave_is_lowered() {
        let asked = ConnectionArgs {
            max_connections: Some(MAX_CONNECTIONS),
            ..ConnectionArgs::default()
        };
        assert_eq!(
            asked.limits().max_connections as u64,
            max_connections_under(open_files_limit())
        );
    }

    #[test]
    fn the_default_cap_leaves_a_quarter_of_the_descriptors() {
        assert_eq!(max_connections_under(Some(1024)), 768);
        assert_eq!(max_connections_under(Some(256)), 192);
        // At least 32 stay free, and the cap is never 0.
        assert_eq!(max_connections_under(Some(100)), 68);
        assert_eq!(max_connections_under(Some(20)), 1);
        assert_eq!(max_connections_under(None), MAX_CONNECTIONS);
        assert_eq!(max_connections_under(Some(u64::MAX / 2)), MAX_CONNECTIONS);
    }

    #[test]
    fn accept_backs_off_to_a_second() {
        let mut backoff = Backoff::default();
        let waits: Vec<_> = (0..10).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }
}
