//! Where a command's keys are and whether it only reads (pure tables, no I/O): what the backend
//! needs to group a Cluster pipeline by slot, send reads to replicas and add `WAIT` behind writes.
//! The proxy's own access and lockdown tables (`proxy::commands`) build on `Name` and
//! `is_read_command`.

use redis::{Arg, Cmd};

/// Longest command name we look up; anything longer is unknown to Redis anyway.
const NAME_MAX: usize = 24;

/// The command name upper-cased into a stack buffer (no allocation on the hot path).
pub(crate) struct Name {
    buf: [u8; NAME_MAX],
    len: usize,
}

/// The part of an argument that Redis compares: up to the first NUL byte. Redis finds a command
/// by hashing the whole name but matches it with `strcasecmp`, so `CONFIG\0<n>` runs CONFIG for
/// one `n` in a few hundred; option words (`XREAD … BLOCK\0x`) are matched the same way.
pub(crate) fn as_redis_compares(arg: &[u8]) -> &[u8] {
    arg.split(|&b| b == 0).next().unwrap_or_default()
}

impl Name {
    pub(crate) fn of(bytes: &[u8]) -> Option<Name> {
        let bytes = as_redis_compares(bytes);
        if bytes.len() > NAME_MAX {
            return None;
        }
        let mut buf = [0u8; NAME_MAX];
        for (dst, src) in buf.iter_mut().zip(bytes) {
            *dst = src.to_ascii_uppercase();
        }
        Some(Name {
            buf,
            len: bytes.len(),
        })
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }
}

pub(crate) fn simple_args(cmd: &Cmd) -> impl Iterator<Item = &[u8]> {
    cmd.args_iter().map(|a| match a {
        Arg::Simple(b) => b,
        // Cursor arguments and later kinds never come out of a parsed request.
        _ => b"",
    })
}

/// Whether a replica may answer `cmd` (with `--replica-url`): the read commands of the
/// read-only token's list, except those whose answer is the primary's own — scripts (a replica
/// does not have the scripts loaded on its primary), `PUBSUB` (subscribers are on the primary),
/// server and connection commands.
pub fn reads_from_replica(cmd: &Cmd) -> bool {
    let Some(name) = simple_args(cmd).next().and_then(Name::of) else {
        return false;
    };
    !matches!(
        name.as_bytes(),
        b"EVAL_RO"
            | b"EVALSHA_RO"
            | b"FCALL_RO"
            | b"SCRIPT"
            | b"PUBSUB"
            | b"PING"
            | b"ECHO"
            | b"TIME"
            | b"LASTSAVE"
            | b"COMMAND"
    ) && is_read_command(&name, cmd)
}

/// The key of a command that names exactly one, at a place this list knows: what a Cluster
/// pipeline groups by slot. `None` for the rest — no key, several, or a command not listed (the
/// redis crate keeps its own routing table private) — which then runs on its own, routed by the
/// redis crate: always right, only a round trip more.
pub fn single_key(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = simple_args(cmd);
    let name = Name::of(args.next()?)?;
    let key = match name.as_bytes() {
        // Scripts: the keys follow the script (or its SHA) and their count; on a Cluster they
        // share a slot, so the first one routes.
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            args.next()?;
            if args.next()? == b"0" {
                return None;
            }
            return args.next();
        }
        // May name several keys: grouped only when they name one.
        b"DEL" | b"UNLINK" | b"EXISTS" | b"TOUCH" | b"MGET" | b"PFCOUNT" => {
            let key = args.next()?;
            return args.next().is_none().then_some(key);
        }
        // Strings, bits, expiry
        b"GET" | b"SET" | b"SETNX" | b"SETEX" | b"PSETEX" | b"GETSET" | b"GETDEL" | b"GETEX"
        | b"INCR" | b"INCRBY" | b"INCRBYFLOAT" | b"DECR" | b"DECRBY" | b"APPEND" | b"STRLEN"
        | b"GETRANGE" | b"SETRANGE" | b"SETBIT" | b"GETBIT" | b"BITCOUNT" | b"BITPOS"
        | b"BITFIELD" | b"BITFIELD_RO" | b"EXPIRE" | b"PEXPIRE" | b"EXPIREAT" | b"PEXPIREAT"
        | b"TTL" | b"PTTL" | b"PERSIST" | b"EXPIRETIME" | b"PEXPIRETIME" | b"TYPE" | b"DUMP"
        | b"RESTORE"
        // Hashes
        | b"HSET" | b"HSETNX" | b"HMSET" | b"HGET" | b"HMGET" | b"HDEL" | b"HLEN" | b"HEXISTS"
        | b"HGETALL" | b"HKEYS" | b"HVALS" | b"HINCRBY" | b"HINCRBYFLOAT" | b"HSTRLEN"
        | b"HRANDFIELD" | b"HSCAN"
        // Lists
        | b"LPUSH" | b"RPUSH" | b"LPUSHX" | b"RPUSHX" | b"LPOP" | b"RPOP" | b"LLEN" | b"LRANGE"
        | b"LINDEX" | b"LSET" | b"LREM" | b"LTRIM" | b"LINSERT" | b"LPOS"
        // Sets
        | b"SADD" | b"SREM" | b"SISMEMBER" | b"SMISMEMBER" | b"SMEMBERS" | b"SCARD" | b"SPOP"
        | b"SRANDMEMBER" | b"SSCAN"
        // Sorted sets
        | b"ZADD" | b"ZREM" | b"ZINCRBY" | b"ZSCORE" | b"ZMSCORE" | b"ZCARD" | b"ZCOUNT"
        | b"ZLEXCOUNT" | b"ZRANGE" | b"ZRANGEBYSCORE" | b"ZRANGEBYLEX" | b"ZREVRANGE"
        | b"ZREVRANGEBYSCORE" | b"ZREVRANGEBYLEX" | b"ZRANK" | b"ZREVRANK" | b"ZREMRANGEBYRANK"
        | b"ZREMRANGEBYSCORE" | b"ZREMRANGEBYLEX" | b"ZPOPMIN" | b"ZPOPMAX" | b"ZRANDMEMBER"
        | b"ZSCAN"
        // Streams, HyperLogLog, geo
        | b"XADD" | b"XLEN" | b"XRANGE" | b"XREVRANGE" | b"XTRIM" | b"XDEL" | b"PFADD"
        | b"GEOADD" | b"GEOPOS" | b"GEODIST" | b"GEOHASH" => args.next()?,
        _ => return None,
    };
    Some(key)
}

/// Whether `cmd` (named `name`) only reads: the read-only token's allow-list.
pub(crate) fn is_read_command(name: &Name, cmd: &Cmd) -> bool {
    match name.as_bytes() {
        // Strings and bits
        b"GET" | b"MGET" | b"GETRANGE" | b"SUBSTR" | b"STRLEN" | b"LCS" | b"GETBIT"
        | b"BITCOUNT" | b"BITPOS" | b"BITFIELD_RO"
        // Keys (KEYS and SCAN deliberately absent, as on Upstash)
        | b"EXISTS" | b"TYPE" | b"TTL" | b"PTTL" | b"EXPIRETIME" | b"PEXPIRETIME" | b"DUMP"
        | b"TOUCH" | b"RANDOMKEY" | b"DBSIZE"
        // Hashes
        | b"HGET" | b"HMGET" | b"HGETALL" | b"HKEYS" | b"HVALS" | b"HLEN" | b"HEXISTS"
        | b"HSTRLEN" | b"HRANDFIELD" | b"HSCAN" | b"HTTL" | b"HPTTL" | b"HEXPIRETIME"
        | b"HPEXPIRETIME"
        // Lists
        | b"LRANGE" | b"LLEN" | b"LINDEX" | b"LPOS"
        // Sets
        | b"SMEMBERS" | b"SISMEMBER" | b"SMISMEMBER" | b"SCARD" | b"SRANDMEMBER" | b"SINTER"
        | b"SINTERCARD" | b"SUNION" | b"SDIFF" | b"SSCAN"
        // Sorted sets
        | b"ZRANGE" | b"ZRANGEBYSCORE" | b"ZRANGEBYLEX" | b"ZREVRANGE" | b"ZREVRANGEBYSCORE"
        | b"ZREVRANGEBYLEX" | b"ZSCORE" | b"ZMSCORE" | b"ZCARD" | b"ZCOUNT" | b"ZLEXCOUNT"
        | b"ZRANK" | b"ZREVRANK" | b"ZRANDMEMBER" | b"ZSCAN" | b"ZINTER" | b"ZUNION"
        | b"ZDIFF" | b"ZINTERCARD"
        // Streams
        | b"XRANGE" | b"XREVRANGE" | b"XLEN" | b"XREAD" | b"XINFO" | b"XPENDING"
        // HyperLogLog, geo
        | b"PFCOUNT" | b"GEOPOS" | b"GEODIST" | b"GEOHASH" | b"GEOSEARCH" | b"GEORADIUS_RO"
        | b"GEORADIUSBYMEMBER_RO"
        // Scripts that promise not to write
        | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL_RO"
        // Connection and server info
        | b"PING" | b"ECHO" | b"TIME" | b"LASTSAVE" | b"COMMAND" => true,
        b"JSON.GET" | b"JSON.MGET" | b"JSON.TYPE" | b"JSON.STRLEN" | b"JSON.OBJKEYS"
        | b"JSON.OBJLEN" | b"JSON.ARRLEN" | b"JSON.ARRINDEX" | b"JSON.RESP" => true,
        // Read-only subcommands.
        b"SCRIPT" | b"OBJECT" | b"MEMORY" | b"PUBSUB" => {
            let sub = simple_args(cmd).nth(1).unwrap_or_default();
            [
                &b"EXISTS"[..],
                b"ENCODING",
                b"FREQ",
                b"IDLETIME",
                b"REFCOUNT",
                b"USAGE",
                b"CHANNELS",
                b"NUMSUB",
                b"NUMPAT",
                b"SHARDCHANNELS",
                b"SHARDNUMSUB",
            ]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(sub))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Cmd {
        let mut c = Cmd::new();
        for a in args {
            c.arg(*a);
        }
        c
    }

    #[test]
    fn a_cluster_pipeline_groups_only_commands_with_one_known_key() {
        let key = |args: &[&str]| single_key(&cmd(args)).map(|k| k.to_vec());
        assert_eq!(key(&["incr", "a"]), Some(b"a".to_vec()));
        assert_eq!(key(&["EXPIREAT", "{c}:x", "5"]), Some(b"{c}:x".to_vec()));
        assert_eq!(
            key(&["EVALSHA", "abc", "2", "k1", "k2", "v"]),
            Some(b"k1".to_vec())
        );
        assert_eq!(key(&["DEL", "one"]), Some(b"one".to_vec()));
        for alone in [
            &["EVALSHA", "abc", "0", "v"][..],
            &["EVAL", "return 1"],
            &["DEL", "a", "b"],
            &["MGET", "a", "b"],
            &["SCRIPT", "LOAD", "return 1"],
            &["PUBLISH", "ch", "m"],
            &["OBJECT", "ENCODING", "k"],
            &["PING"],
            &["GET"],
            &["NOSUCHCOMMAND", "k"],
        ] {
            assert_eq!(key(alone), None, "{alone:?}");
        }
    }

    #[test]
    fn replicas_answer_plain_reads_only() {
        for args in [
            &["GET", "k"][..],
            &["get", "k"],
            &["HGETALL", "h"],
            &["MGET", "a", "b"],
            &["PFCOUNT", "u"],
            &["ZRANGE", "z", "0", "-1"],
            &["OBJECT", "ENCODING", "k"],
        ] {
            assert!(reads_from_replica(&cmd(args)), "{args:?}");
        }
        for args in [
            &["SET", "k", "v"][..],
            &["INCR", "k"],
            &["EVALSHA_RO", "abc", "0"],
            &["EVAL", "return 1", "0"],
            &["PUBSUB", "NUMSUB", "c"],
            &["SCRIPT", "EXISTS", "abc"],
            &["PING"],
            &["TIME"],
            &["NOSUCHCOMMAND"],
            &["OBJECT", "HELP"],
        ] {
            assert!(!reads_from_replica(&cmd(args)), "{args:?}");
        }
    }
}
