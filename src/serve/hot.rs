//! Hot counters in `edgecount serve`: a counter read tens of thousands of times a second (a badge
//! in a viral README) costs Redis a few calls a second, not one per read, and its live viewers
//! share one subscription.
//!
//! [`HotStore`] wraps serve's store:
//! - **Reads of a counter's value** (`GET ec:{ns:key}:v`: `/get`, badges, shields, the first event
//!   of `/stream`) are coalesced: concurrent identical reads wait for one call in flight (single
//!   flight), and its answer serves further reads for at most the read-cache window (default
//!   250 ms, `EDGECOUNT_READ_CACHE_MS` / `--read-cache-ms`, `0` = off). The window is counted
//!   from when the call was *sent*, so a cached answer is never older than the window.
//! - **Every other call** (hits, set, update, reset, delete, scripts, pipelines) goes to Redis
//!   uncached; when it completes, the cached value of every counter it names is dropped, so a
//!   client that hits through this process and then reads through it sees its own hit. Writes
//!   made through *other* processes are seen within the window, no sooner.
//! - **Subscriptions** are shared: the readers of one channel (`/stream` of one counter or one
//!   namespace) share one upstream subscription per process, fanned out by a bounded broadcast
//!   ([`BACKLOG`]; a reader more than that far behind skips the oldest, as in the proxy's hub).
//!   The first reader subscribes, the last one to leave drops it; when the upstream ends, every
//!   reader's stream ends (`EventSource` reconnects by itself).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use tokio::sync::{broadcast, OnceCell};
use tokio_stream::wrappers::BroadcastStream;

use crate::core::command::{Command, Reply};
use crate::core::counter::keys::{counter_prefix, value_read};
use crate::store::{EntryResult, Store, StoreError};

/// Messages a shared subscription keeps for a reader that has not taken them yet.
pub const BACKLOG: usize = 1024;

/// Cached values kept before expired ones are swept.
const SWEEP_AT: usize = 16_384;

/// One read in flight or answered: every reader of the window takes its answer.
struct Flight {
    sent: Instant,
    answer: OnceCell<Result<Reply, StoreError>>,
}

struct Feed {
    messages: broadcast::Sender<bytes::Bytes>,
    readers: usize,
    pump: tokio::task::AbortHandle,
}

type Feeds = Arc<Mutex<HashMap<String, Feed>>>;

/// Serve's store with coalesced, briefly cached counter reads and shared subscriptions.
pub struct HotStore<S> {
    inner: S,
    window: Duration,
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    feeds: Feeds,
    /// Held while subscribing upstream, so two first readers of a channel subscribe once.
    subscribing: tokio::sync::Mutex<()>,
}

impl<S> HotStore<S> {
    /// `window`: how long an answer serves further reads (`Duration::ZERO`: every read goes to
    /// Redis; concurrent reads are then not coalesced either).
    pub fn new(inner: S, window: Duration) -> Self {
        HotStore {
            inner,
            window,
            flights: Mutex::default(),
            feeds: Arc::default(),
            subscribing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Channels with a shared subscription right now (for tests).
    pub fn subscriptions(&self) -> usize {
        self.feeds.lock().expect("feeds lock").len()
    }

    /// The key of a command whose answer may be cached: a counter's value.
    fn cacheable<'c>(&self, cmd: &'c Command) -> Option<&'c str> {
        if self.window.is_zero() {
            return None;
        }
        value_read(cmd)
    }

    /// Drop the cached value of every counter `parts` names (after a write completed).
    fn invalidate<'a>(&self, parts: impl Iterator<Item = &'a String>) {
        if self.window.is_zero() {
            return;
        }
        let mut flights = None;
        for part in parts {
            let Some(prefix) = counter_prefix(part) else {
                continue;
            };
            let flights = flights.get_or_insert_with(|| self.flights.lock().expect("lock"));
            if !flights.is_empty() {
                flights.remove(&format!("{prefix}:v"));
            }
        }
    }
}

/// The same error again, for every reader of one flight.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Redis(m) => StoreError::Redis(m.clone()),
        StoreError::Unauthorized(m) => StoreError::Unauthorized(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Protocol(m) => StoreError::Protocol(m.clone()),
    }
}

/// A reader of a shared subscription; dropping it (the client left) gives its place back.
struct Reader {
    feeds: Feeds,
    channel: String,
    /// The feed it joined (its pump), to tell it from a later one of the same channel.
    pump: tokio::task::Id,
}

impl Drop for Reader {
    fn drop(&mut self) {
        let mut feeds = self.feeds.lock().expect("feeds lock");
        if let Some(feed) = feeds.get_mut(&self.channel) {
            if feed.pump.id() != self.pump {
                return;
            }
            feed.readers -= 1;
            if feed.readers == 0 {
                feed.pump.abort();
                feeds.remove(&self.channel);
            }
        }
    }
}

/// A shared subscription's messages, as one reader takes them.
pub type SharedMessages = Pin<Box<dyn Stream<Item = Result<Vec<u8>, StoreError>> + Send>>;

impl<S> Store for HotStore<S>
where
    S: Store + Sync,
    S::Messages: Send + 'static,
{
    type Messages = SharedMessages;

    async fn command(&self, cmd: &Command) -> Result<Reply, StoreError> {
        let Some(key) = self.cacheable(cmd) else {
            let answer = self.inner.command(cmd).await;
            self.invalidate(cmd.parts().iter());
            return answer;
        };
        let flight = {
            let mut flights = self.flights.lock().expect("flights lock");
            match flights.get(key) {
                Some(flight) if flight.sent.elapsed() < self.window => flight.clone(),
                _ => {
                    if flights.len() >= SWEEP_AT {
                        let window = self.window;
                        flights.retain(|_, f| f.sent.elapsed() < window);
                    }
                    let flight = Arc::new(Flight {
                        sent: Instant::now(),
                        answer: OnceCell::new(),
                    });
                    flights.insert(key.to_owned(), flight.clone());
                    flight
                }
            }
        };
        let answer = flight.answer.get_or_init(|| self.inner.command(cmd)).await;
        match answer {
            Ok(reply) => Ok(reply.clone()),
            Err(e) => {
                // Not kept: the next read asks Redis again.
                let mut flights = self.flights.lock().expect("flights lock");
                if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                    flights.remove(key);
                }
                Err(copy(e))
            }
        }
    }

    async fn pipeline(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        let answer = self.inner.pipeline(cmds).await;
        self.invalidate(cmds.iter().flat_map(|c| c.parts().iter()));
        answer
    }

    async fn multi_exec(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        let answer = self.inner.multi_exec(cmds).await;
        self.invalidate(cmds.iter().flat_map(|c| c.parts().iter()));
        answer
    }

    async fn subscribe(&self, channel: &str) -> Result<Self::Messages, StoreError> {
        let join = |feeds: &mut HashMap<String, Feed>| {
            feeds.get_mut(channel).map(|feed| {
                feed.readers += 1;
                (feed.messages.subscribe(), feed.pump.id())
            })
        };
        let joined = join(&mut self.feeds.lock().expect("feeds lock"));
        let (receiver, pump) = match joined {
            Some(joined) => joined,
            None => {
                let _subscribing = self.subscribing.lock().await;
                // Another first reader may have subscribed while this one waited.
                let joined = join(&mut self.feeds.lock().expect("feeds lock"));
                match joined {
                    Some(joined) => joined,
                    None => {
                        let mut upstream = self.inner.subscribe(channel).await?;
                        let (messages, receiver) = broadcast::channel(BACKLOG);
                        let sender = messages.clone();
                        let (feeds, name) = (self.feeds.clone(), channel.to_owned());
                        let mut feeds_guard = self.feeds.lock().expect("feeds lock");
                        let pump = tokio::spawn(async move {
                            while let Some(Ok(message)) = upstream.next().await {
                                let _ = sender.send(bytes::Bytes::from(message));
                            }
                            // The upstream ended: so does every reader's stream.
                            let id = tokio::task::id();
                            let mut feeds = feeds.lock().expect("feeds lock");
                            if feeds.get(&name).is_some_and(|f| f.pump.id() == id) {
                                feeds.remove(&name);
                            }
                        })
                        .abort_handle();
                        let id = pump.id();
                        feeds_guard.insert(
                            channel.to_owned(),
                            Feed {
                                messages,
                                readers: 1,
                                pump,
                            },
                        );
                        (receiver, id)
                    }
                }
            }
        };
        let reader = Reader {
            feeds: self.feeds.clone(),
            channel: channel.to_owned(),
            pump,
        };
        // Lagged readers skip what they missed; the stream ends with the feed's sender.
        let messages = BroadcastStream::new(receiver).filter_map(move |m| {
            let _ = &reader;
            std::future::ready(m.ok().map(|b| Ok(b.to_vec())))
        });
        Ok(Box::pin(messages))
    }
}
