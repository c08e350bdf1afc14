//! Briefly cached counter reads for the edge worker: a counter whose badge is read thousands of
//! times a second costs one REST call per read-cache window per isolate, not one per read.
//!
//! - **A read of a counter's value** ([`value_read`]: `/get`, badges, shields, the first event of
//!   `/stream`) is answered from this isolate's memory when one read of it was *sent* less than
//!   the window ago (`EDGECOUNT_READ_CACHE_MS`, default 250 ms, `0` = off), so an answer is never
//!   older than the window.
//! - **Every other call** (hits, set, update, reset, delete, scripts, pipelines) goes to Redis
//!   uncached; when it completes, the cached value of every counter it names is dropped, and a
//!   read that was in flight meanwhile is not kept: a client whose hit and read land in the same
//!   isolate reads its own hit. Changes made through other isolates are seen within the window.
//!
//! Serve's [`crate::serve::HotStore`] also coalesces *concurrent* reads (single flight). Here
//! that would need one request's future to wait for another's, which the worker's driver
//! ([`crate::driver`]: each future is polled when its own exchange completes) does not do: at
//! the moment a window ends, the reads already in flight each make their call. The clock comes
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
            let values = self.values();
            let cached = values.kept.iter().find(|c| c.key == key);
            if let Some(cached) =
                cached.filter(|c| sent_ms.saturating_sub(c.sent_ms) < self.window_ms)
            {
                return Ok(cached.reply.clone());
            }
            values.writes
        };
        let reply = self.inner.command(cmd).await?;
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

    #[tokio::test]
    async fn a_zero_window_reads_redis_every_time() {
        let store = CachedReads::new(Counted::default(), Duration::ZERO, now_ms);
        for _ in 0..5 {
            store.command(&get("ec:{blog:home}:v")).await.unwrap();
        }
        assert_eq!(store.inner.calls.get(), 5);
    }
}
