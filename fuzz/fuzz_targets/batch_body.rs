//! `POST /batch` bodies (with the admin token, so every operation is allowed to run), through
//! the driver the worker runs: the whole body is validated before anything is written. Never a
//! panic, never a 500, every answer JSON.
#![no_main]

#[path = "../support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let head = format!(
        "authorization:Bearer {}\ncontent-type:application/json\n",
        support::ADMIN_TOKEN
    );
    support::check_step("POST", "http://edge.test/batch", &head, Some(data.to_vec()));
});
