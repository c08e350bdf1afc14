//! Upstash REST wire format.
