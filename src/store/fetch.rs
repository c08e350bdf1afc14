//! The wasm REST transport: every HTTP round trip is made by the worker's JavaScript entry module
//! (`scripts/worker-shim.js`) with the runtime's own `fetch()`, on behalf of the Rust future that
//! asked for it.
//!
//! Why not `fetch()` through `web_sys` from Rust: measured in workerd, building the `Request`,
//! `Headers`, timeout timer and promise plumbing across the wasm boundary call by call was most
//! of the worker's own CPU per request (a hit went from 271 to ~230 µs of workerd CPU with this
//! design; BENCHMARKS.md), and the bindings cost wasm size. Here an exchange is a plain value
//! instead: a transport future records the [`Io`] it needs in this isolate's [`EXCHANGE`] and
//! returns `Pending`; the task driver ([`crate::driver`]) hands that to JavaScript, which performs
//! it and brings the [`Outcome`] back, and the driver polls the future again with the outcome in
//! the exchange. wasm is single-threaded and polling is synchronous, so one slot per poll is
//! enough: each request's future is polled on its own, and it waits for one REST exchange at a
//! time (the API never runs two at once; a second one in the same poll fails cleanly instead of
//! waiting forever).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::rest::{RestConfig, RestRequest, RestResponse, RestStore, Transport};
use super::StoreError;

/// What a request's future needs JavaScript to do before it can go on.
#[derive(Debug)]
pub enum Io {
    /// POST this REST request and bring back its whole answer.
    Send(RestRequest),
    /// POST this REST request whose answer is an event stream; bring back its status once the
    /// headers arrive and keep the body for [`Io::Read`].
    Open(RestRequest),
    /// The next chunk of the stream [`Io::Open`] opened.
    Read,
}

/// How an [`Io`] ended.
#[derive(Debug)]
pub enum Outcome {
    /// The answer to [`Io::Send`].
    Answer(RestResponse),
    /// The status of the stream [`Io::Open`] opened.
    Opened(u16),
    /// The next chunk of the open stream; `None` at its end.
    Chunk(Option<Bytes>),
    /// The exchange failed (network error, timeout): the message says why.
    Failed(String),
}

/// The one slot between the request future being polled and the driver polling it.
#[derive(Default)]
pub struct Exchange {
    /// Set by a transport future during a poll: what it waits for.
    pub io: Option<Io>,
    /// Set by the driver before a poll: the outcome the waiting future asked for.
    pub outcome: Option<Outcome>,
}

thread_local! {
    pub static EXCHANGE: RefCell<Exchange> = RefCell::default();
}

/// Waits for one [`Io`]: records it on the first poll, then finishes when the driver brings
/// its outcome.
struct Exchanged {
    io: Option<Io>,
}

impl Future for Exchanged {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Outcome> {
        EXCHANGE.with_borrow_mut(|slot| {
            if let Some(io) = self.io.take() {
                if slot.io.is_some() {
                    return Poll::Ready(Outcome::Failed(
                        "one REST exchange at a time per request".to_owned(),
                    ));
                }
                slot.io = Some(io);
                return Poll::Pending;
            }
            slot.outcome.take().map_or(Poll::Pending, Poll::Ready)
        })
    }
}

fn exchange(io: Io) -> Exchanged {
    Exchanged { io: Some(io) }
}

fn unexpected(outcome: Outcome) -> StoreError {
    let kind = match outcome {
        Outcome::Failed(message) => return StoreError::Unavailable(message),
        Outcome::Answer(_) => "an answer",
        Outcome::Opened(_) => "an opened stream",
        Outcome::Chunk(_) => "a stream chunk",
    };
    StoreError::Protocol(format!("the host brought {kind} for a different exchange"))
}

/// `fetch()` from the worker's JavaScript: stateless here, the runtime owns the connections.
#[derive(Clone, Copy, Debug, Default)]
pub struct FetchTransport;

impl Transport for FetchTransport {
    type ByteStream = Chunks;

    async fn send(&self, request: RestRequest) -> Result<RestResponse, StoreError> {
        match exchange(Io::Send(request)).await {
            Outcome::Answer(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    async fn open_stream(&self, request: RestRequest) -> Result<(u16, Chunks), StoreError> {
        match exchange(Io::Open(request)).await {
            Outcome::Opened(status) => Ok((status, Chunks::default())),
            other => Err(unexpected(other)),
        }
    }
}

/// The body of a stream [`Io::Open`] opened, read chunk by chunk through [`Io::Read`].
#[derive(Default)]
pub struct Chunks {
    waiting: Option<Exchanged>,
    ended: bool,
}

impl Stream for Chunks {
    type Item = Result<Bytes, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let waiting = self.waiting.get_or_insert_with(|| exchange(Io::Read));
        let outcome = std::task::ready!(Pin::new(waiting).poll(cx));
        self.waiting = None;
        Poll::Ready(match outcome {
            Outcome::Chunk(Some(chunk)) => Some(Ok(chunk)),
            Outcome::Chunk(None) => {
                self.ended = true;
                None
            }
            other => {
                self.ended = true;
                Some(Err(unexpected(other)))
            }
        })
    }
}

/// The store the worker uses: Upstash REST over `fetch()`.
pub type FetchRestStore = RestStore<FetchTransport>;

/// From `UPSTASH_REDIS_REST_URL` / `UPSTASH_REDIS_REST_TOKEN` values.
pub fn connect(url: &str, token: &str) -> Result<FetchRestStore, StoreError> {
    Ok(RestStore::new(RestConfig::new(url, token)?, FetchTransport))
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn request() -> RestRequest {
        RestRequest {
            url: "http://rest.test".into(),
            headers: Vec::new(),
            body: Some(r#"["PING"]"#.into()),
        }
    }

    #[test]
    fn a_second_exchange_in_the_same_poll_fails_instead_of_waiting_forever() {
        let transport = FetchTransport;
        let mut both = Box::pin(futures_util::future::join(
            transport.send(request()),
            transport.send(request()),
        ));
        let mut cx = Context::from_waker(Waker::noop());
        EXCHANGE.set(Exchange::default());
        assert!(both.as_mut().poll(&mut cx).is_pending());
        assert!(matches!(EXCHANGE.take().io, Some(Io::Send(_))));

        let answer = RestResponse {
            status: 200,
            sync_token: None,
            body: Bytes::from_static(br#"{"result":"PONG"}"#),
        };
        EXCHANGE.set(Exchange {
            io: None,
            outcome: Some(Outcome::Answer(answer)),
        });
        let Poll::Ready((first, second)) = both.as_mut().poll(&mut cx) else {
            panic!("both exchanges should be settled");
        };
        assert_eq!(first.expect("the first exchange").status, 200);
        assert!(
            matches!(&second, Err(StoreError::Unavailable(m)) if m.contains("one REST exchange")),
            "{second:?}"
        );
        assert!(EXCHANGE.take().io.is_none());
    }
}
