//! Pure rules: no I/O, no async runtime, no `cfg(target)`. Tested natively with no network.

pub mod badge;
pub mod command;
pub mod counter;
pub mod headers;
pub mod names;
pub mod ratelimit;
pub mod visit;
