//! The rules: no network or file I/O, no async runtime, no `cfg(target)`; time comes in as an
//! argument. Tested natively with no network.
//!
//! One thing comes from the platform: three generators of secrets read the operating system's
//! randomness through `getrandom` (in wasm its JavaScript backend, `crypto.getRandomValues`):
//! [`counter::AdminKey::generate`] (admin keys and namespace tokens, 32 bytes; also called by
//! [`counter::create_call`]), [`counter::random_uuid`] (CountAPI's default key, 16 bytes; also
//! called by [`counter::countapi_create_name`] without a key) and
//! [`ratelimit::lease::LeaseId::generate`] (lease ids, 16 bytes). Everything else is
//! deterministic in its arguments; [`ratelimit::lease::LeaseId::from_random`] takes bytes the
//! host drew (the API's lease route does, from `api::Platform::random`). See
//! `docs/DESIGN.md` §14.

pub mod badge;
pub mod command;
pub mod counter;
pub mod headers;
pub mod names;
pub mod ratelimit;
pub mod visit;
