//! The one way a test waits for something to become true: poll `ok` every 20 ms until it holds,
//! failing the test (naming `what`) when it has not within `within`. Bounded in time, never in
//! luck: pick `within` for a loaded CI box ([`PATIENCE`] unless the test has a reason), since a
//! deadline only decides how long a failing test takes to say so.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a condition that should hold "soon" may take on a loaded box.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Between two polls.
const POLL: Duration = Duration::from_millis(20);

/// Block until `ok()` holds; panics after `within`.
#[track_caller]
pub fn eventually(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(POLL);
    }
}

/// [`eventually`] in a tokio test: sleeps without blocking the runtime, `ok` may be async.
pub async fn eventually_async<F, Fut>(what: &str, within: Duration, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !ok().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(POLL).await;
    }
}
