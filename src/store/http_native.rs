//! reqwest transport.
