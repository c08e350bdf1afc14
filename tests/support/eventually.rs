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

/// If the system clock (the one serve and the worker name day and hour buckets by, UTC) is less
/// than `margin` before the next UTC midnight, sleep until just after it: for tests whose
/// "today" figures need every step in one UTC day. Never assumes no boundary is crossed: it
/// makes sure none is within `margin`.
pub fn clear_of_utc_midnight(margin: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let into_day = Duration::from_millis((now.as_millis() % 86_400_000) as u64);
    let left = Duration::from_secs(86_400) - into_day;
    if left < margin {
        std::thread::sleep(left + Duration::from_millis(500));
    }
}

/// The margin [`clear_of_utc_midnight`] keeps for one API test: far longer than any test takes.
pub const DAY_MARGIN: Duration = Duration::from_secs(300);
