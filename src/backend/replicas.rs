//! Read-your-writes over Redis replicas, the pure half: what a client's `Upstash-Sync-Token` asks
//! of a read, what `ROLE` says about a server, and whether a replica may answer.
//!
//! The token is the primary's replication offset. After a write the proxy sends `ROLE` to the
//! primary on the same connection, right behind the write, so the offset it reads already counts
//! the write; that offset is the answer's token. A read that presents it goes to a replica as
//! `ROLE` followed by the read, in one round trip: Redis runs a connection's commands in order and
//! a replica's offset only grows, so when `ROLE` reports an offset at or past the token the read
//! behind it sees the write. Otherwise the proxy asks the primary instead.

use redis::Value;

/// What a read asks of the server that answers it, from the client's `Upstash-Sync-Token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// No token (or an empty one, which `@upstash/redis` sends first): any replica that is
    /// connected to its primary.
    Any,
    /// A replica that has applied the primary's replication stream up to this offset.
    AtLeast(u64),
    /// A token that is not an offset (a user's own string): only the primary is sure to have
    /// whatever it stands for.
    PrimaryOnly,
}

impl Freshness {
    /// From the request's `Upstash-Sync-Token` header value, if any. Any value is accepted
    /// (docs/UPSTASH-REST.md §7): one that is not a number is answered by the primary.
    pub fn of(token: Option<&[u8]>) -> Freshness {
        let Some(token) = token.map(<[u8]>::trim_ascii).filter(|t| !t.is_empty()) else {
            return Freshness::Any;
        };
        std::str::from_utf8(token)
            .ok()
            .and_then(|t| t.parse().ok())
            .map_or(Freshness::PrimaryOnly, Freshness::AtLeast)
    }

    /// May a replica whose `ROLE` reported `offset` (`None`: not connected to its primary)
    /// answer this read?
    pub fn satisfied_by(self, offset: Option<u64>) -> bool {
        match (self, offset) {
            (_, None) | (Freshness::PrimaryOnly, _) => false,
            (Freshness::Any, Some(_)) => true,
            (Freshness::AtLeast(wanted), Some(have)) => have >= wanted,
        }
    }
}

fn integer(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// The replication offset of a primary, from its `ROLE` reply
/// (`["master", offset, [[ip, port, acked], …]]`).
pub fn primary_offset(role: &Value) -> Option<u64> {
    let Value::Array(items) = role else {
        return None;
    };
    match items.as_slice() {
        [kind, offset, ..] if text(kind) == Some(b"master") => integer(offset),
        _ => None,
    }
}

/// The offset a replica has applied, from its `ROLE` reply
/// (`["slave", primary ip, primary port, state, offset]`), but only while its link to the
/// primary is up (`connected`): a replica that lost its primary serves data of unknown age.
pub fn replica_offset(role: &Value) -> Option<u64> {
    let Value::Array(items) = role else {
        return None;
    };
    match items.as_slice() {
        [kind, _, _, state, offset, ..]
            if text(kind) == Some(b"slave") && text(state) == Some(b"connected") =>
        {
            integer(offset)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn tokens_say_what_a_read_needs() {
        assert_eq!(Freshness::of(None), Freshness::Any);
        assert_eq!(Freshness::of(Some(b"")), Freshness::Any);
        assert_eq!(Freshness::of(Some(b" 42 ")), Freshness::AtLeast(42));
        assert_eq!(
            Freshness::of(Some(b"my-new-sync-token")),
            Freshness::PrimaryOnly
        );
        assert_eq!(Freshness::of(Some(b"-1")), Freshness::PrimaryOnly);
        assert_eq!(Freshness::of(Some(&[0xff][..])), Freshness::PrimaryOnly);
    }

    #[test]
    fn only_a_caught_up_connected_replica_serves_a_token() {
        assert!(Freshness::AtLeast(10).satisfied_by(Some(10)));
        assert!(Freshness::AtLeast(10).satisfied_by(Some(11)));
        assert!(!Freshness::AtLeast(10).satisfied_by(Some(9)));
        assert!(!Freshness::AtLeast(0).satisfied_by(None));
        assert!(Freshness::Any.satisfied_by(Some(0)));
        assert!(!Freshness::Any.satisfied_by(None));
        assert!(!Freshness::PrimaryOnly.satisfied_by(Some(u64::MAX)));
    }

    #[test]
    fn role_replies_give_offsets() {
        let primary = Value::Array(vec![
            bulk("master"),
            Value::Int(3129659),
            Value::Array(vec![Value::Array(vec![
                bulk("127.0.0.1"),
                bulk("9001"),
                bulk("3129242"),
            ])]),
        ]);
        assert_eq!(primary_offset(&primary), Some(3129659));
        assert_eq!(replica_offset(&primary), None);

        let replica = |state: &str, offset: i64| {
            Value::Array(vec![
                bulk("slave"),
                bulk("127.0.0.1"),
                Value::Int(9000),
                bulk(state),
                Value::Int(offset),
            ])
        };
        assert_eq!(
            replica_offset(&replica("connected", 3167038)),
            Some(3167038)
        );
        assert_eq!(replica_offset(&replica("sync", 0)), None);
        assert_eq!(replica_offset(&replica("connect", -1)), None);
        assert_eq!(primary_offset(&replica("connected", 5)), None);
        assert_eq!(replica_offset(&Value::Nil), None);
    }
}
