//! What the driver-based targets share: one driver per process, configured like a busy
//! deployment, and the checks every step must pass.

use std::cell::RefCell;

use edgecount::api::{Config, Platform};
use edgecount::driver::{self, Driver};

pub const ADMIN_TOKEN: &str = "fuzz-admin-token";

const VARIABLES: &[(&str, &str)] = &[
    ("EDGECOUNT_ADMIN_TOKEN", ADMIN_TOKEN),
    ("EDGECOUNT_UNIQUES_SECRET", "fuzz-secret"),
    ("EDGECOUNT_ALLOWED_ORIGINS", "https://my.site, https://other.site"),
    (
        "EDGECOUNT_RATE_LIMITS",
        "api=sliding:100/1m; daily=fixed:1000/1d fail=closed; burst=gcra:5/1s shadow; \
         tok=token:50/1h; ut=upstash-token:50/1h refill=5; conc=concurrency:3/30s; up=upstash-sliding:10/1h",
    ),
    ("EDGECOUNT_TIERS", "pro: api=sliding:1000/1m; free: api=fixed:10/1m"),
];

thread_local! {
    static DRIVER: RefCell<Driver> = RefCell::new(driver());
}

fn driver() -> Driver {
    let lookup = |name: &str| {
        VARIABLES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    };
    let config = Config::from_lookup(lookup).expect("the fuzz configuration is valid");
    let api = driver::worker_api(
        "http://rest.test",
        "fuzz-rest-token",
        config,
        Platform::std(),
    );
    let api = Box::leak(Box::new(api.expect("the fuzz store")));
    Driver::new(api, |message| panic!("the driver logged: {message}"))
}

/// Begin a request and check its first step; cancel whatever is left in flight.
pub fn check_step(method: &str, url: &str, head: &str, body: Option<Vec<u8>>) {
    DRIVER.with_borrow_mut(|driver| {
        let step = driver.begin(method, url, head, body);
        let kind = step.chars().next().expect("a step is never empty");
        assert!("FOREAGD".contains(kind), "unknown step: {step:?}");
        let (task, rest) = step[1..].split_once('\n').unwrap_or((&step[1..], ""));
        let task: u32 = task.parse().expect("a task number");
        if kind == 'R' {
            let (status, rest) = rest.split_once('\n').expect("a status line");
            let status: u16 = status.parse().expect("a numeric status");
            assert!((200..600).contains(&status), "status {status}");
            assert_ne!(status, 500, "a 500 for {method} {url}: {step}");
            let (headers, body) = rest.split_once("\n\n").unwrap_or((rest, ""));
            let json = headers
                .lines()
                .any(|h| h.starts_with("content-type:application/") && h.contains("json"));
            if json && !body.is_empty() && method != "HEAD" {
                serde_json::from_str::<serde_json::Value>(body)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
            }
        }
        driver.cancel(task);
        assert_eq!(driver.in_flight(), 0);
    });
}
