//! The edge worker's wasm exports (wasm only): the JavaScript entry module
//! (`scripts/worker-shim.js`) receives the runtime's `fetch` event and drives each request through
//! these calls, doing the HTTP itself (see [`crate::driver`] for the protocol and why).
//! Configuration is read once per isolate from `[vars]` and secrets on the first request.

use std::cell::RefCell;
use std::sync::OnceLock;

use http::StatusCode;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use crate::api::{Api, ApiError, Config, Platform};
use crate::driver::{self, Driver, WorkerStore};

/// Talc instead of std's dlmalloc: the same job in 2.7 KB less gzipped wasm (single-threaded
/// wasm, no atomics).
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// The API, or why it could not be configured; decided on the first request of the isolate.
static API: OnceLock<Result<Api<WorkerStore>, String>> = OnceLock::new();

thread_local! {
    static DRIVER: RefCell<Option<Driver>> = const { RefCell::new(None) };
}

/// The JavaScript runtime's clock, case mapping and randomness (Rust's `SystemTime` panics in
/// wasm, its case tables would add ~16 KB, `getrandom`'s JavaScript backend ~1.7 KB).
const PLATFORM: Platform = Platform {
    // In Workers the clock moves between requests and I/O, which is all the read caches and the
    // buckets need.
    now_ms: || js_sys::Date::now() as u64,
    uppercase: |text| js_sys::JsString::from(text).to_upper_case().into(),
    random: |buffer| {
        crypto_get_random_values(buffer);
        true
    },
};

// The runtime objects this module touches, declared directly rather than through the `worker`
// crate: linking that crate exports its whole JS surface (containers, R2 ranges, stream
// adapters, …) from every wasm that uses it, whether called or not — measured: 11 KB of gzipped
// wasm and 12 KB of JS glue for `Env` and `console.error` alone.
#[wasm_bindgen]
extern "C" {
    /// The worker's `env`: `[vars]` and secrets are string properties.
    pub type Env;

    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);

    /// Fills the buffer (at most 64 KiB) with cryptographically secure random bytes.
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn crypto_get_random_values(buffer: &mut [u8]);
}

fn configure(env: &Env) -> Result<Api<WorkerStore>, String> {
    // Plain `[vars]` and secrets are both strings on `env`.
    let lookup = |name: &str| {
        js_sys::Reflect::get(env, &JsValue::from_str(name))
            .ok()
            .and_then(|value| value.as_string())
    };
    let url = lookup("UPSTASH_REDIS_REST_URL").ok_or("UPSTASH_REDIS_REST_URL is not set")?;
    let token = lookup("UPSTASH_REDIS_REST_TOKEN").ok_or("UPSTASH_REDIS_REST_TOKEN is not set")?;
    let config = Config::from_lookup(lookup).map_err(|e| e.to_string())?;
    driver::worker_api(&url, &token, config, PLATFORM).map_err(|e| e.to_string())
}

fn with_driver(call: impl FnOnce(&mut Driver) -> String) -> String {
    DRIVER.with_borrow_mut(|driver| match driver {
        Some(driver) => call(driver),
        // Only `begin` creates the driver; a later call without one belongs to a replaced
        // instance's request.
        None => driver::lost(0),
    })
}

/// A new request (header lines `name:value\n`…, the body as the shim read it): the first step.
#[wasm_bindgen]
pub fn begin(env: Env, method: &str, url: &str, headers: &str, body: Option<Vec<u8>>) -> String {
    let api = match API.get_or_init(|| configure(&env)) {
        Ok(api) => api,
        Err(e) => {
            // The detail is for the operator (the runtime's log, `wrangler tail`), not for
            // whoever sent the request: it names variables and may quote their values.
            console_error(&format!("edgecount is misconfigured: {e}"));
            let e = ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "worker misconfigured (the worker's log says what is wrong)",
            );
            return driver::error_step(0, e);
        }
    };
    DRIVER.with_borrow_mut(|driver| {
        driver
            .get_or_insert_with(|| Driver::new(api, console_error))
            .begin(method, url, headers, body)
    })
}

/// The answer to an `F` step (`status` 0: the fetch failed and `body` says why).
#[wasm_bindgen]
pub fn resume(task: u32, status: u16, sync_token: Option<String>, body: String) -> String {
    with_driver(|driver| driver.resume(task, status, sync_token, body))
}

/// The status of the stream an `O` step opened, or why opening it failed.
#[wasm_bindgen]
pub fn opened(task: u32, status: u16, error: Option<String>) -> String {
    with_driver(|driver| driver.opened(task, status, error))
}

/// The next chunk of the stream an `O` step opened (`None` at its end), or why reading failed.
#[wasm_bindgen]
pub fn feed(task: u32, chunk: Option<Vec<u8>>, error: Option<String>) -> String {
    with_driver(|driver| driver.feed(task, chunk, error))
}

/// The next step of an event stream's body.
#[wasm_bindgen]
pub fn pull(task: u32) -> String {
    with_driver(|driver| driver.pull(task))
}

/// The client went away; forget the task.
#[wasm_bindgen]
pub fn cancel(task: u32) {
    DRIVER.with_borrow_mut(|driver| {
        if let Some(driver) = driver {
            driver.cancel(task);
        }
    });
}
