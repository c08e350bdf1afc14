//! One Redis pub/sub connection for every `/subscribe` and `/psubscribe` stream of the process.
//!
//! Readers of a channel (or pattern) share its one subscription: the first reader subscribes,
//! the last one to leave unsubscribes. A dispatcher task reads the connection and hands each
//! message, formatted once, to a bounded broadcast channel per subscription; every reader's
//! stream takes from it. So 10,000 readers of one counter cost Redis one connection (not
//! 10,000: Redis's default `maxclients` is 10,000), and a reader that stops reading holds at
//! most [`BACKLOG`] messages in the proxy — the redis crate buffers a connection's messages
//! without bound until they are taken, which the dispatcher always does at once. A reader
//! that falls more than [`BACKLOG`] messages behind skips the oldest ones (for live counters
//! the newest value is the one that matters).
//!
//! When the connection drops, every stream on it ends (clients reconnect: `EventSource` does by
//! itself) and the next subscriber opens a new connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::stream::{self, Stream, StreamExt};
use redis::aio::PubSubSink;
use redis::Msg;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use super::error::ProxyError;
use super::sse;
use crate::backend::Backend;

/// Messages a subscription keeps for a reader that has not taken them yet.
pub const BACKLOG: usize = 1024;

/// A channel, or a pattern of `PSUBSCRIBE`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Topic {
    pattern: bool,
    name: Vec<u8>,
}

struct Subscription {
    lines: broadcast::Sender<Arc<str>>,
    readers: usize,
}

type Topics = Arc<Mutex<HashMap<Topic, Subscription>>>;

/// The shared connection while it is up.
struct Connection {
    sink: PubSubSink,
    topics: Topics,
    /// Set by the dispatcher when Redis dropped the connection.
    closed: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct Hub {
    /// Held while (un)subscribing, so a `SUBSCRIBE` and the `UNSUBSCRIBE` of the same topic never
    /// cross on the wire.
    connection: tokio::sync::Mutex<Option<Connection>>,
}

impl Hub {
    /// Subscribe to `names` (channels, or patterns when `pattern`): the lines of every message
    /// from now on, `message,<ch>,<payload>` / `pmessage,<pat>,<ch>,<payload>`.
    pub async fn subscribe(
        self: &Arc<Self>,
        backend: &Backend,
        names: Vec<Vec<u8>>,
        pattern: bool,
    ) -> Result<impl Stream<Item = Arc<str>> + Send + 'static, ProxyError> {
        let mut guard = self.connection.lock().await;
        if guard
            .as_ref()
            .is_none_or(|c| c.closed.load(Ordering::Acquire))
        {
            *guard = Some(Self::connect(backend).await?);
        }
        let connection = guard.as_mut().expect("connected above");
        let mut receivers = Vec::with_capacity(names.len());
        let mut joined = Joined {
            hub: self.clone(),
            of: connection.topics.clone(),
            topics: Vec::with_capacity(names.len()),
        };
        for name in names {
            let topic = Topic { pattern, name };
            let (receiver, first) = {
                let mut topics = connection.topics.lock().expect("topics lock");
                match topics.get_mut(&topic) {
                    Some(subscription) => {
                        subscription.readers += 1;
                        (subscription.lines.subscribe(), false)
                    }
                    None => {
                        let (lines, receiver) = broadcast::channel(BACKLOG);
                        topics.insert(topic.clone(), Subscription { lines, readers: 1 });
                        (receiver, true)
                    }
                }
            };
            // Counted before subscribing: if this fails, `joined` drops and takes it back.
            joined.topics.push(topic.clone());
            receivers.push(BroadcastStream::new(receiver));
            if first {
                let result = if topic.pattern {
                    connection.sink.psubscribe(topic.name.as_slice()).await
                } else {
                    connection.sink.subscribe(topic.name.as_slice()).await
                };
                if let Err(e) = result {
                    connection.closed.store(true, Ordering::Release);
                    return Err(ProxyError::from_redis(&e));
                }
            }
        }
        drop(guard);
        // Lagged readers skip what they missed; the stream ends when the connection does.
        let lines = stream::select_all(receivers).filter_map(|r| std::future::ready(r.ok()));
        Ok(lines.map(move |line| {
            let _ = &joined;
            line
        }))
    }

    async fn connect(backend: &Backend) -> Result<Connection, ProxyError> {
        let (sink, mut messages) = backend.pubsub().await?.split();
        let topics: Topics = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let dispatch = {
            let (topics, closed) = (topics.clone(), closed.clone());
            async move {
                while let Some(msg) = messages.next().await {
                    let topic = topic_of(&msg);
                    let topics = topics.lock().expect("topics lock");
                    if let Some(subscription) = topics.get(&topic) {
                        let _ = subscription.lines.send(line_of(&msg).into());
                    }
                }
                closed.store(true, Ordering::Release);
                // Every reader's stream ends with its sender.
                topics.lock().expect("topics lock").clear();
            }
        };
        tokio::spawn(dispatch);
        Ok(Connection {
            sink,
            topics,
            closed,
        })
    }

    /// A reader of `topics` on the connection whose map is `of` left: unsubscribe from each one
    /// it was the last reader of.
    async fn leave(&self, of: &Topics, topics: Vec<Topic>) {
        let mut guard = self.connection.lock().await;
        let Some(connection) = guard.as_mut() else {
            return;
        };
        // A reader of an earlier connection: that one is gone, and its map with it.
        if !Arc::ptr_eq(of, &connection.topics) {
            return;
        }
        for topic in topics {
            let last = {
                let mut map = connection.topics.lock().expect("topics lock");
                match map.get_mut(&topic) {
                    Some(subscription) if subscription.readers <= 1 => {
                        map.remove(&topic);
                        true
                    }
                    Some(subscription) => {
                        subscription.readers -= 1;
                        false
                    }
                    None => false,
                }
            };
            if last && !connection.closed.load(Ordering::Acquire) {
                let result = if topic.pattern {
                    connection.sink.punsubscribe(topic.name.as_slice()).await
                } else {
                    connection.sink.unsubscribe(topic.name.as_slice()).await
                };
                if result.is_err() {
                    connection.closed.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Channels and patterns subscribed right now (for tests and `/metrics`).
    pub async fn subscriptions(&self) -> usize {
        match self.connection.lock().await.as_ref() {
            Some(c) if !c.closed.load(Ordering::Acquire) => c.topics.lock().expect("lock").len(),
            _ => 0,
        }
    }
}

/// The topics one stream holds; dropping it (the client left) gives them back. Counts change
/// only under the hub's lock, so a reader arriving as the last one leaves keeps the subscription.
struct Joined {
    hub: Arc<Hub>,
    of: Topics,
    topics: Vec<Topic>,
}

impl Drop for Joined {
    fn drop(&mut self) {
        let topics = std::mem::take(&mut self.topics);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // the runtime is going away, and the connection with it
        };
        if topics.is_empty() {
            return;
        }
        let (hub, of) = (self.hub.clone(), self.of.clone());
        runtime.spawn(async move { hub.leave(&of, topics).await });
    }
}

fn topic_of(msg: &Msg) -> Topic {
    match msg.get_pattern::<Option<Vec<u8>>>().ok().flatten() {
        Some(pattern) => Topic {
            pattern: true,
            name: pattern,
        },
        None => Topic {
            pattern: false,
            name: msg.get_channel().unwrap_or_default(),
        },
    }
}

fn line_of(msg: &Msg) -> String {
    let channel: Vec<u8> = msg.get_channel().unwrap_or_default();
    let pattern: Option<Vec<u8>> = msg.get_pattern().unwrap_or_default();
    sse::message_line(pattern.as_deref(), &channel, msg.get_payload_bytes())
}
