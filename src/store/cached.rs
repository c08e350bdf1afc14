//! Briefly cached counter reads for the edge worker: a counter whose badge is read thousands of
//! times a second costs one REST call per read-cache window per isolate, not one per read.
//!
//! - **A read of a counter's value** ([`value_read`]: `/get`, badges, shields, the first event of
//!   `/stream`) is answered from this isolate's memory when one read of it was *sent* less than
//!   the window ago (`EDGECOUNT_READ_CACHE_MS`, default 250 ms, `0` = off). When the window has
//!   passed, one read goes to Redis for the value, and the reads that come while it is in flight
//!   are answered the value it refreshes, for at most one more window: an answer is never older
//!   than two windows, and a hot counter costs one call per window, not one per read in flight.
//! - **Every other call** (hits, set, update, reset, delete, scripts, pipelines) goes to Redis
//!   uncached; when it completes, the cached value of every counter it names is dropped, and a
//!   read that was in flight meanwhile is not kept: a client whose hit and read land in the same
//!   isolate reads its own hit. Changes made through other isolates are seen within the window.
//!
//! Serve's [`crate::serve::HotStore`] coalesces *concurrent* reads (single flight) instead: they
//! wait for the one in flight. Here that would need one request's future to wait for another's,
//! which the worker's driver ([`crate::driver`]: each future is polled when its own exchange
//! completes) does not do; answering the value being refreshed needs no waiting. The clock comes
//! from the host (the runtime's `Date.now()`), as everything time-dependent in the core does.

use std::sync::Mutex;
use std::time::Duration;

use super::{EntryResult, Store, StoreError};
use crate::core::command::{Command, Reply};
use crate::core::counter::keys::{counter_prefix, value_read};

/// Counters whose value one isolate keeps. A list, not a map: hot counters are few per isolate,
/// a scan of a few dozen keys costs nothing next to a REST call, and a `HashMap` would add 3 KB
/// to the worker's gzipped wasm (its size is budgeted).
const KEEP: usize = 64;

struct Cached {
    key: String,
    sent_ms: u64,
    reply: Reply,
    /// A read of it is in flight: until it completes (at most another window), this value
    /// answers the others.
    refreshing: bool,
}

#[derive(Default)]
struct Values {
    kept: Vec<Cached>,
    /// Counts completed writes: a read answered after one that completed while it was in flight
    /// may predate it, so it is not kept.
    writes: u64,
}

/// A store whose counter-value reads are cached for a short window (see the module docs).
pub struct CachedReads<S> {
    inner: S,
    window_ms: u64,
    now_ms: fn() -> u64,
    /// A `Mutex` only for `Sync` (the worker keeps its API in a `static`); wasm has one thread.
    values: Mutex<Values>,
}

impl<S> CachedReads<S> {
    /// `window`: how long a read answers further reads (`Duration::ZERO`: off); `now_ms`: the
    /// host's clock in milliseconds.
    pub fn new(inner: S, window: Duration, now_ms: fn() -> u64) -> Self {
        CachedReads {
            inner,
            window_ms: window.as_millis() as u64,
            now_ms,
            values: Mutex::default(),
        }
    }

    fn values(&self) -> std::sync::MutexGuard<'_, Values> {
        self.values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drop the cached value of every counter `parts` names (a write completed).
    fn forget<'a>(&self, parts: impl Iterator<Item = &'a String>) {
        if self.window_ms == 0 {
            return;
        }
        let mut values = self.values();
        values.writes += 1;
        if values.kept.is_empty() {
            return;
        }
        for prefix in parts.filter_map(|part| counter_prefix(part)) {
            values
                .kept
                .retain(|c| !(c.key.len() == prefix.len() + 2 && c.key.starts_with(prefix)));
        }
    }
}

impl<S: Store> Store for CachedReads<S> {
    type Messages = S::Messages;

    async fn command(&self, cmd: &Command) -> Result<Reply, StoreError> {
        let Some(key) = value_read(cmd).filter(|_| self.window_ms > 0) else {
            let answer = self.inner.command(cmd).await;
            self.forget(cmd.parts().iter());
            return answer;
        };
        let sent_ms = (self.now_ms)();
        let writes = {
            let mut values = self.values();
            if let Some(cached) = values.kept.iter_mut().find(|c| c.key == key) {
                let age = sent_ms.saturating_sub(cached.sent_ms);
                if age < self.window_ms || (cached.refreshing && age < 2 * self.window_ms) {
                    return Ok(cached.reply.clone());
                }
                // This read refreshes it.
                cached.refreshing = true;
            }
            values.writes
        };
        let reply = match self.inner.command(cmd).await {
            Ok(reply) => reply,
            Err(e) => {
                // Let the next read try again.
                if let Some(cached) = self.values().kept.iter_mut().find(|c| c.key == key) {
                    cached.refreshing = false;
                }
                return Err(e);
            }
        };
        let mut values = self.values();
        if values.writes == writes {
            values.kept.retain(|c| c.key != key);
            if values.kept.len() >= KEEP {
                // The oldest goes: a counter read again soon is read again anyway.
                values.kept.remove(0);
            }
            values.kept.push(Cached {
                key: key.to_owned(),
                sent_ms,
                reply: reply.clone(),
                refreshing: false,
            });
        }
        Ok(reply)
    }

    async fn pipeline(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        let answer = self.inner.pipeline(cmds).await;
        self.forget(cmds.iter().flat_map(|c| c.parts().iter()));
        answer
    }

    async fn multi_exec(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
        let answer = self.inner.multi_exec(cmds).await;
        self.forget(cmds.iter().flat_map(|c| c.parts().iter()));
        answer
    }

    async fn subscribe(&self, channel: &str) -> Result<Self::Messages, StoreError> {
        self.inner.subscribe(channel).await
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};

    use futures_util::stream::{self, BoxStream};

    use super::*;

    /// Redis as a map of counter values, counting the calls that reach it.
    #[derive(Default)]
    struct Counted {
        value: Cell<i64>,
        calls: Cell<u32>,
    }

    impl Store for Counted {
        type Messages = BoxStream<'static, Result<Vec<u8>, StoreError>>;

        async fn command(&self, cmd: &Command) -> Result<Reply, StoreError> {
            self.calls.set(self.calls.get() + 1);
            if cmd.parts()[0] == "INCR" {
                self.value.set(self.value.get() + 1);
            }
            Ok(Reply::Int(self.value.get()))
        }

        async fn pipeline(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
            let mut out = Vec::new();
            for cmd in cmds {
                out.push(Ok(self.command(cmd).await?));
            }
            Ok(out)
        }

        async fn multi_exec(&self, cmds: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
            self.pipeline(cmds).await
        }

        async fn subscribe(&self, _: &str) -> Result<Self::Messages, StoreError> {
            Ok(Box::pin(stream::empty()))
        }
    }

    static NOW_MS: AtomicU64 = AtomicU64::new(1_000);

    fn now_ms() -> u64 {
        NOW_MS.load(Ordering::Relaxed)
    }

    fn get(key: &str) -> Command {
        Command::new("GET").arg(key)
    }

    fn value(reply: Result<Reply, StoreError>) -> i64 {
        match reply {
            Ok(Reply::Int(n)) => n,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn reads_are_cached_for_the_window_and_writes_drop_them() {
        let store = CachedReads::new(Counted::default(), Duration::from_millis(250), now_ms);
        let redis = &store.inner;
        let key = "ec:{blog:home}:v";
        NOW_MS.store(1_000, Ordering::Relaxed);
        assert_eq!(value(store.command(&get(key)).await), 0);
        for _ in 0..100 {
            assert_eq!(value(store.command(&get(key)).await), 0);
        }
        assert_eq!(redis.calls.get(), 1, "one call for 101 reads in the window");

        // Another counter, or another kind of key, is not served from this one's entry.
        store.command(&get("ec:{blog:about}:v")).await.unwrap();
        store.command(&get("ec:{blog:home}:m")).await.unwrap();
        assert_eq!(redis.calls.get(), 3);

        // A write naming the counter drops its value: the next read sees it.
        let hit = Command::new("INCR").arg(key);
        assert_eq!(value(store.command(&hit).await), 1);
        assert_eq!(value(store.command(&get(key)).await), 1);
        let calls = redis.calls.get();
        store.pipeline(std::slice::from_ref(&hit)).await.unwrap();
        assert_eq!(value(store.command(&get(key)).await), 2);
        assert_eq!(redis.calls.get(), calls + 2);

        // The window is counted from when the read was sent.
        NOW_MS.store(1_000 + 249, Ordering::Relaxed);
        store.command(&get(key)).await.unwrap();
        assert_eq!(redis.calls.get(), calls + 2);
        NOW_MS.store(1_000 + 250, Ordering::Relaxed);
        store.command(&get(key)).await.unwrap();
        assert_eq!(redis.calls.get(), calls + 3);
    }

    /// Redis answering only when told to: a read in flight stays in flight.
    struct Gated {
        open: Cell<bool>,
        calls: Cell<u32>,
    }

    impl Store for Gated {
        type Messages = BoxStream<'static, Result<Vec<u8>, StoreError>>;

        async fn command(&self, _: &Command) -> Result<Reply, StoreError> {
            self.calls.set(self.calls.get() + 1);
            let calls = self.calls.get();
            std::future::poll_fn(|_| {
                if self.open.get() {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
            Ok(Reply::Int(calls.into()))
        }

        async fn pipeline(&self, _: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
            unreachable!()
        }

        async fn multi_exec(&self, _: &[Command]) -> Result<Vec<EntryResult>, StoreError> {
            unreachable!()
        }

        async fn subscribe(&self, _: &str) -> Result<Self::Messages, StoreError> {
            Ok(Box::pin(stream::empty()))
        }
    }

    #[test]
    fn reads_during_a_refresh_get_the_value_being_refreshed_for_one_more_window() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let clock = || CLOCK.load(Ordering::Relaxed);
        static CLOCK: AtomicU64 = AtomicU64::new(0);
        let store = CachedReads::new(
            Gated {
                open: Cell::new(true),
                calls: Cell::new(0),
            },
            Duration::from_millis(250),
            clock,
        );
        let key = get("ec:{blog:home}:v");
        let read = || store.command(&key);
        fn poll<F: Future>(future: &mut std::pin::Pin<&mut F>) -> Poll<F::Output> {
            future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
        }
        let mut first = std::pin::pin!(read());
        assert!(matches!(poll(&mut first), Poll::Ready(Ok(Reply::Int(1)))));
        // The window passes; a refresh goes out and hangs.
        CLOCK.store(300, Ordering::Relaxed);
        store.inner.open.set(false);
        let mut refresh = std::pin::pin!(read());
        assert!(poll(&mut refresh).is_pending());
        // Meanwhile, within one more window, the others get the value being refreshed, free.
        for at in [300, 400, 499] {
            CLOCK.store(at, Ordering::Relaxed);
            let mut other = std::pin::pin!(read());
            assert!(matches!(poll(&mut other), Poll::Ready(Ok(Reply::Int(1)))));
        }
        assert_eq!(store.inner.calls.get(), 2);
        // Two windows after it was read, never: that read goes to Redis too.
        CLOCK.store(500, Ordering::Relaxed);
        let mut late = std::pin::pin!(read());
        assert!(poll(&mut late).is_pending());
        assert_eq!(store.inner.calls.get(), 3);
        // The refresh lands: the fresh value answers from then on.
        store.inner.open.set(true);
        assert!(matches!(poll(&mut refresh), Poll::Ready(Ok(Reply::Int(2)))));
        let mut next = std::pin::pin!(read());
        assert!(matches!(poll(&mut next), Poll::Ready(Ok(Reply::Int(2)))));
    }

    #[tokio::test]
    async fn a_zero_window_reads_redis_every_time() {
        let store = CachedReads::new(Counted::default(), Duration::ZERO, now_ms);
        for _ in 0..5 {
            store.command(&get("ec:{blog:home}:v")).await.unwrap();
        }
        assert_eq!(store.inner.calls.get(), 5);
    }
}
