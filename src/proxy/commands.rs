//! Which commands may pass (pure tables, no I/O).
//!
//! Connection-state and blocking commands would poison a shared multiplexed connection (one bare
//! `MULTI` makes every later request answer `QUEUED`), so they are refused before reaching Redis.
//! Administrative commands (`SHUTDOWN`, `CONFIG`, `REPLICAOF`, …; the list and its reasons are at
//! `administrative`) are refused unless the proxy runs with `--allow-admin-commands`: a REST token
//! is for the data, not for running the Redis server.
//! The read-only token gets an allow-list of read commands (deny by default, so new write commands
//! in later Redis versions stay blocked); like Upstash, KEYS and SCAN are not in it.

use redis::Cmd;

use super::error::ProxyError;
use crate::backend::commands::{as_redis_compares, is_read_command, simple_args, Name};

/// What to do with a command that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send it to Redis.
    Forward,
    /// `SELECT 0`: answer `OK` without touching the shared connection.
    ReplyOk,
}

/// What the presented token may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The read-only token: the read allow-list only, whatever the flags (`NOPERM` otherwise).
    ReadOnly,
    /// The token: every command the proxy can forward safely, administrative ones excepted.
    Full,
    /// The token on a proxy started with `--allow-admin-commands`: administrative commands too.
    Admin,
}

/// Check one command for the given access.
pub fn check(cmd: &Cmd, access: Access) -> Result<Action, ProxyError> {
    let read_only = access == Access::ReadOnly;
    let mut args = simple_args(cmd);
    let Some(first) = args.next() else {
        return Err(ProxyError::bad_request("ERR empty command"));
    };
    let Some(name) = Name::of(first) else {
        // Not a command Redis knows: let Redis say so (and the read-only token may not try).
        if read_only {
            return Err(noperm(&String::from_utf8_lossy(first)));
        }
        return Ok(Action::Forward);
    };
    let action = match name.as_bytes() {
        b"SELECT" => {
            let db = args.next();
            if db == Some(b"0") && args.next().is_none() {
                Action::ReplyOk
            } else if db.is_none() {
                // Wrong arity: the same text Redis gives.
                return Err(ProxyError::Redis(
                    "ERR wrong number of arguments for 'select' command".into(),
                ));
            } else {
                return Err(ProxyError::bad_request(
                    "ERR SELECT is not supported over REST: only database 0 is available",
                ));
            }
        }
        b"SUBSCRIBE" | b"PSUBSCRIBE" | b"SSUBSCRIBE" | b"UNSUBSCRIBE" | b"PUNSUBSCRIBE"
        | b"SUNSUBSCRIBE" | b"MONITOR" => {
            return Err(ProxyError::bad_request(format!(
                "ERR {} is not supported in a request body: use the /subscribe, /psubscribe or /monitor endpoints (SSE)",
                name.as_str()
            )))
        }
        b"MULTI" | b"EXEC" | b"DISCARD" | b"WATCH" | b"UNWATCH" => {
            return Err(ProxyError::bad_request(format!(
                "ERR {} is not supported over REST: use the /multi-exec endpoint for transactions",
                name.as_str()
            )))
        }
        b"AUTH" | b"HELLO" | b"RESET" | b"QUIT" | b"CLIENT" | b"READONLY" | b"READWRITE"
        | b"ASKING" | b"SYNC" | b"PSYNC" | b"REPLCONF" => {
            return Err(ProxyError::bad_request(format!(
                "ERR {} is not supported over REST (connection-state command)",
                name.as_str()
            )))
        }
        b"BLPOP" | b"BRPOP" | b"BLMOVE" | b"BRPOPLPUSH" | b"BLMPOP" | b"BZPOPMIN"
        | b"BZPOPMAX" | b"BZMPOP" | b"WAIT" | b"WAITAOF" => return Err(blocking(&name)),
        b"XREAD" | b"XREADGROUP" => {
            // BLOCK is an option before STREAMS; after STREAMS come key names and ids.
            let blocks = args
                .map(as_redis_compares)
                .take_while(|a| !a.eq_ignore_ascii_case(b"STREAMS"))
                .any(|a| a.eq_ignore_ascii_case(b"BLOCK"));
            if blocks {
                return Err(blocking(&name));
            }
            Action::Forward
        }
        _ => Action::Forward,
    };
    // Only the full token hears about the flag: the read-only token gets NOPERM below either way.
    if access == Access::Full {
        if let Some(command) = administrative(&name, cmd) {
            return Err(ProxyError::bad_request(format!(
                "ERR {command} is an administrative command, disabled on this proxy (start it with --allow-admin-commands to allow it)"
            )));
        }
    }
    if read_only && !is_read_command(&name, cmd) {
        return Err(noperm(&name.as_str().to_ascii_lowercase()));
    }
    Ok(action)
}

/// `Some("SHUTDOWN")`, `Some("CLUSTER RESET")`: the command as named in the refusal, when it
/// administers the Redis server rather than the data in it.
///
/// Refused: what changes the server's configuration (`CONFIG`, all of it: `CONFIG GET
/// requirepass` or `masterauth` reveals secrets), its persistence (`SAVE`, `BGSAVE`,
/// `BGREWRITEAOF`), replication (`REPLICAOF`, `SLAVEOF`, `FAILOVER`), cluster topology (every
/// `CLUSTER` subcommand but the informational ones in [`CLUSTER_INFORMATIONAL`], deny by default so
/// later topology subcommands stay refused), users (`ACL`, all of it: `ACL LIST` shows password
/// hashes, `ACL SETUSER` makes superusers), loaded code (`MODULE`), or what stops, stalls or
/// crashes it (`SHUTDOWN`, `DEBUG` — `SEGFAULT`, `SLEEP`, `RELOAD` —, `PFSELFTEST`, `PFDEBUG`),
/// what ships keys to another host (`MIGRATE`) or swaps the clients' database 0 for another
/// (`SWAPDB`), and
/// the operators' diagnostics, which Redis also files under `@admin` (`SLOWLOG`, `LATENCY`: a
/// `RESET` erases them, `SLOWLOG GET` shows other clients' commands). `SENTINEL` and `FT.CONFIG`
/// (Redis 8's query engine) configure a Sentinel or a module, should the proxy ever point there.
///
/// Kept: data commands Upstash offers, however destructive to data (`FLUSHDB`, `FLUSHALL`,
/// `SCRIPT FLUSH`/`KILL`, `FUNCTION …`, `RESTORE`, `DUMP`, `MOVE`, `COPY … DB`), and read-only
/// information clients ask for (`INFO`, `ROLE`, `LASTSAVE`, `MEMORY …`, `COMMAND …`, the
/// informational `CLUSTER` subcommands). `MONITOR` has its own endpoint. `CLIENT`, `SYNC`, `PSYNC`
/// and `REPLCONF` never get here: they are refused above as connection-state commands, flag or no
/// flag.
///
/// Lua reaches some of these anyway (`EVAL "return redis.call('SWAPDB',0,1)" 0`): the proxy does
/// not parse scripts; the README gives the Redis ACL that closes that path.
fn administrative(name: &Name, cmd: &Cmd) -> Option<String> {
    match name.as_bytes() {
        b"SHUTDOWN" | b"CONFIG" | b"SAVE" | b"BGSAVE" | b"BGREWRITEAOF" | b"REPLICAOF"
        | b"SLAVEOF" | b"FAILOVER" | b"ACL" | b"MODULE" | b"DEBUG" | b"PFSELFTEST" | b"PFDEBUG"
        | b"MIGRATE" | b"SWAPDB" | b"SLOWLOG" | b"LATENCY" | b"SENTINEL" | b"FT.CONFIG" => {
            Some(name.as_str().to_owned())
        }
        b"CLUSTER" => {
            // Without a subcommand Redis answers its own arity error.
            let sub = simple_args(cmd).nth(1)?;
            if CLUSTER_INFORMATIONAL
                .iter()
                .any(|s| s.eq_ignore_ascii_case(sub))
            {
                None
            } else {
                Some(format!(
                    "CLUSTER {}",
                    String::from_utf8_lossy(sub).to_ascii_uppercase()
                ))
            }
        }
        _ => None,
    }
}

/// `CLUSTER` subcommands that only report (cluster-aware clients ask for `SLOTS`, `SHARDS`,
/// `NODES`); every other subcommand is refused as administrative.
const CLUSTER_INFORMATIONAL: &[&[u8]] = &[
    b"INFO",
    b"NODES",
    b"SLOTS",
    b"SHARDS",
    b"KEYSLOT",
    b"MYID",
    b"MYSHARDID",
    b"COUNTKEYSINSLOT",
    b"GETKEYSINSLOT",
    b"LINKS",
    b"REPLICAS",
    b"SLAVES",
    b"HELP",
];

fn blocking(name: &Name) -> ProxyError {
    ProxyError::bad_request(format!(
        "ERR {} is not supported over REST (blocking command)",
        name.as_str()
    ))
}

fn noperm(name: &str) -> ProxyError {
    ProxyError::NoPerm(format!(
        "NOPERM this token is read-only and has no permissions to run the '{name}' command"
    ))
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
    fn ordinary_commands_pass() {
        for args in [
            &["GET", "k"][..],
            &["set", "k", "v"],
            &["XREAD", "COUNT", "2", "STREAMS", "block", "0"],
            &["PING"],
            &["NOSUCHCOMMAND", "x"],
        ] {
            assert_eq!(
                check(&cmd(args), Access::Full),
                Ok(Action::Forward),
                "{args:?}"
            );
        }
    }

    #[test]
    fn state_and_blocking_commands_are_refused() {
        for args in [
            &["MULTI"][..],
            &["exec"],
            &["WATCH", "k"],
            &["select", "1"],
            &["AUTH", "x"],
            &["HELLO", "3"],
            &["CLIENT", "SETNAME", "x"],
            &["subscribe", "ch"],
            &["MONITOR"],
            &["BLPOP", "l", "0"],
            &["BZPOPMIN", "z", "0"],
            &["WAIT", "1", "0"],
            &["XREAD", "block", "0", "STREAMS", "s", "$"],
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "10",
                "STREAMS",
                "s",
                ">",
            ],
            &["QUIT"],
            &["RESET"],
        ] {
            let e = check(&cmd(args), Access::Full).unwrap_err();
            assert!(matches!(e, ProxyError::BadRequest(_)), "{args:?}: {e:?}");
        }
    }

    #[test]
    fn names_and_options_end_at_a_nul_byte_as_in_redis() {
        for (args, named) in [
            (&["SHUTDOWN\0", "NOSAVE"][..], "SHUTDOWN"),
            (&["config\0n123", "SET", "maxmemory", "1mb"], "CONFIG"),
            // Longer than any command name, but not before the NUL.
            (
                &["SWAPDB\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "0", "1"],
                "SWAPDB",
            ),
        ] {
            let e = check(&cmd(args), Access::Full).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("ERR {named} is an administrative")),
                "{args:?}: {e}"
            );
        }
        for args in [
            &["MULTI\0x"][..],
            &["BLPOP\0", "l", "0"],
            &["XREAD", "BLOCK\0x", "0", "STREAMS", "s", "$"],
        ] {
            let e = check(&cmd(args), Access::Admin).unwrap_err();
            assert!(matches!(e, ProxyError::BadRequest(_)), "{args:?}: {e:?}");
        }
        // After STREAMS come keys: a key named BLOCK is no option.
        assert_eq!(
            check(&cmd(&["XREAD", "STREAMS\0", "BLOCK", "0"]), Access::Full),
            Ok(Action::Forward)
        );
    }

    #[test]
    fn select_zero_is_answered_locally() {
        assert_eq!(
            check(&cmd(&["SELECT", "0"]), Access::Full),
            Ok(Action::ReplyOk)
        );
        assert!(check(&cmd(&["SELECT"]), Access::Full).is_err());
    }

    #[test]
    fn read_only_token_reads_but_does_not_write() {
        for args in [
            &["GET", "k"][..],
            &["mget", "a", "b"],
            &["ZRANGE", "z", "0", "-1"],
            &["EVALSHA_RO", "abc", "0"],
            &["SCRIPT", "EXISTS", "abc"],
            &["PING"],
        ] {
            assert_eq!(
                check(&cmd(args), Access::ReadOnly),
                Ok(Action::Forward),
                "{args:?}"
            );
        }
        for args in [
            &["SET", "k", "v"][..],
            &["INCR", "k"],
            &["KEYS", "*"],
            &["SCAN", "0"],
            &["EVAL", "return 1", "0"],
            &["SCRIPT", "FLUSH"],
            &["FLUSHALL"],
            &["PUBLISH", "c", "m"],
            &["averyveryverylongcommandnamethatisunknown"],
        ] {
            let e = check(&cmd(args), Access::ReadOnly).unwrap_err();
            assert!(matches!(e, ProxyError::NoPerm(_)), "{args:?}: {e:?}");
            assert!(e.to_string().starts_with("NOPERM"));
        }
    }

    /// Commands that would administer the server, with arguments that would do damage.
    const ADMINISTRATIVE: &[(&[&str], &str)] = &[
        (&["SHUTDOWN", "NOSAVE"], "SHUTDOWN"),
        (&["shutdown"], "SHUTDOWN"),
        (&["REPLICAOF", "127.0.0.1", "6380"], "REPLICAOF"),
        (&["slaveof", "127.0.0.1", "6380"], "SLAVEOF"),
        (&["FAILOVER"], "FAILOVER"),
        (&["CONFIG", "SET", "maxmemory", "1mb"], "CONFIG"),
        (&["Config", "get", "requirepass"], "CONFIG"),
        (&["CONFIG", "REWRITE"], "CONFIG"),
        (
            &["ACL", "SETUSER", "evil", "on", ">pw", "~*", "+@all"],
            "ACL",
        ),
        (&["acl", "whoami"], "ACL"),
        (&["MODULE", "LOAD", "/nonexistent.so"], "MODULE"),
        (
            &["MIGRATE", "127.0.0.1", "6380", "k", "0", "5000"],
            "MIGRATE",
        ),
        (&["SWAPDB", "0", "1"], "SWAPDB"),
        (&["SAVE"], "SAVE"),
        (&["bgsave"], "BGSAVE"),
        (&["BGREWRITEAOF"], "BGREWRITEAOF"),
        (&["DEBUG", "SEGFAULT"], "DEBUG"),
        (&["debug", "sleep", "5"], "DEBUG"),
        (&["PFSELFTEST"], "PFSELFTEST"),
        (&["PFDEBUG", "TODENSE", "hll"], "PFDEBUG"),
        (&["SLOWLOG", "RESET"], "SLOWLOG"),
        (&["LATENCY", "RESET"], "LATENCY"),
        (&["SENTINEL", "SET", "m", "quorum", "1"], "SENTINEL"),
        (&["FT.CONFIG", "SET", "TIMEOUT", "1"], "FT.CONFIG"),
        (&["CLUSTER", "RESET", "HARD"], "CLUSTER RESET"),
        (&["cluster", "meet", "127.0.0.1", "6380"], "CLUSTER MEET"),
        (&["CLUSTER", "Forget", "abc"], "CLUSTER FORGET"),
        (&["CLUSTER", "FAILOVER", "TAKEOVER"], "CLUSTER FAILOVER"),
        (
            &["CLUSTER", "SETSLOT", "1", "NODE", "abc"],
            "CLUSTER SETSLOT",
        ),
        (&["CLUSTER", "ADDSLOTS", "1"], "CLUSTER ADDSLOTS"),
        (
            &["CLUSTER", "ADDSLOTSRANGE", "1", "2"],
            "CLUSTER ADDSLOTSRANGE",
        ),
        (&["CLUSTER", "DELSLOTS", "1"], "CLUSTER DELSLOTS"),
        (
            &["CLUSTER", "DELSLOTSRANGE", "1", "2"],
            "CLUSTER DELSLOTSRANGE",
        ),
        (&["CLUSTER", "REPLICATE", "abc"], "CLUSTER REPLICATE"),
        (&["CLUSTER", "FLUSHSLOTS"], "CLUSTER FLUSHSLOTS"),
        (&["CLUSTER", "BUMPEPOCH"], "CLUSTER BUMPEPOCH"),
        (
            &["CLUSTER", "SET-CONFIG-EPOCH", "1"],
            "CLUSTER SET-CONFIG-EPOCH",
        ),
        (&["CLUSTER", "SAVECONFIG"], "CLUSTER SAVECONFIG"),
        (
            &["CLUSTER", "COUNT-FAILURE-REPORTS", "abc"],
            "CLUSTER COUNT-FAILURE-REPORTS",
        ),
        // Deny by default: a subcommand this table does not know is refused too.
        (
            &["CLUSTER", "SOMEFUTURETOPOLOGYCHANGE"],
            "CLUSTER SOMEFUTURETOPOLOGYCHANGE",
        ),
    ];

    #[test]
    fn administrative_commands_are_refused_naming_the_command() {
        for (args, named) in ADMINISTRATIVE {
            let e = check(&cmd(args), Access::Full).unwrap_err();
            assert!(matches!(e, ProxyError::BadRequest(_)), "{args:?}: {e:?}");
            assert_eq!(
                e.to_string(),
                format!("ERR {named} is an administrative command, disabled on this proxy (start it with --allow-admin-commands to allow it)"),
                "{args:?}"
            );
        }
    }

    #[test]
    fn allow_admin_commands_lets_them_through() {
        for (args, _) in ADMINISTRATIVE {
            assert_eq!(
                check(&cmd(args), Access::Admin),
                Ok(Action::Forward),
                "{args:?}"
            );
        }
        // The flag does not reopen what would poison the shared connection.
        for args in [
            &["CLIENT", "KILL", "ID", "1"][..],
            &["MULTI"],
            &["PSYNC", "?", "-1"],
        ] {
            assert!(check(&cmd(args), Access::Admin).is_err(), "{args:?}");
        }
    }

    #[test]
    fn the_read_only_token_gets_noperm_for_administrative_commands() {
        for (args, _) in ADMINISTRATIVE {
            let e = check(&cmd(args), Access::ReadOnly).unwrap_err();
            assert!(matches!(e, ProxyError::NoPerm(_)), "{args:?}: {e:?}");
        }
    }

    #[test]
    fn data_and_informational_commands_are_not_administrative() {
        for args in [
            &["FLUSHDB"][..],
            &["FLUSHALL", "ASYNC"],
            &["SCRIPT", "FLUSH"],
            &["SCRIPT", "KILL"],
            &["FUNCTION", "FLUSH"],
            &["FUNCTION", "LOAD", "#!lua name=x\n"],
            &["FUNCTION", "RESTORE", "payload"],
            &["DUMP", "k"],
            &["RESTORE", "k", "0", "payload"],
            &["MOVE", "k", "1"],
            &["INFO", "replication"],
            &["ROLE"],
            &["LASTSAVE"],
            &["MEMORY", "USAGE", "k"],
            &["COMMAND", "COUNT"],
            &["cluster", "info"],
            &["CLUSTER", "NODES"],
            &["CLUSTER", "slots"],
            &["CLUSTER", "SHARDS"],
            &["CLUSTER", "KEYSLOT", "k"],
            &["CLUSTER", "MYID"],
            &["CLUSTER", "COUNTKEYSINSLOT", "1"],
            &["CLUSTER", "GETKEYSINSLOT", "1", "10"],
            &["CLUSTER", "REPLICAS", "abc"],
            &["CLUSTER"],
            // Names that merely start like an administrative one.
            &["CONFIGURE"],
            &["SAVEX"],
        ] {
            assert_eq!(
                check(&cmd(args), Access::Full),
                Ok(Action::Forward),
                "{args:?}"
            );
        }
    }
}
