//! Lua shebang flags the backend lacks (pure, plus one small shared map).
//!
//! `@upstash/ratelimit` 2.x sends scripts starting with `#!lua flags=allow-key-locking`, a locking
//! hint Upstash and newer Redis accept; Redis 7.0 refuses the script with
//! `ERR Unexpected flag in script shebang`. For `EVAL`, `EVAL_RO` and `SCRIPT LOAD` the proxy
//! drops that one flag from the shebang line (other flags, and every other byte of the script,
//! stay as they are; `#!lua` alone remains when no flag is left — Redis 7.0 accepts it, and
//! `#!lua flags=` too). Dropping it only loses the hint.
//!
//! Clients then call `EVALSHA <sha1 of the script they sent>`, which Redis never saw, so the proxy
//! remembers original sha → rewritten sha ([`ScriptMap`]) and translates `EVALSHA`,
//! `EVALSHA_RO` and `SCRIPT EXISTS`; `SCRIPT LOAD` of a rewritten script answers the original sha
//! (the one the client computed). The map lives in memory only, bounded by [`MAX_ENTRIES`]
//! (cleared when full): after a restart or a clear, `EVALSHA` of an original sha gets Redis's
//! `NOSCRIPT`, the client falls back to `EVAL`, and the entry comes back.

use std::collections::HashMap;
use std::sync::RwLock;

use redis::{Arg, Cmd, Value};

/// The flag Redis 7.0 does not know.
pub const DROPPED_FLAG: &[u8] = b"allow-key-locking";

/// Entries in the sha map before it is cleared (scripts are few; this only bounds abuse).
pub const MAX_ENTRIES: usize = 10_000;

/// Whitespace as Redis's `sdssplitargs` (C `isspace`) sees it in a shebang line.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// `script` without [`DROPPED_FLAG`] in its `#!lua` shebang line, or `None` when there is nothing
/// to drop (no shebang, another engine, no such flag, a shebang line without a newline — Redis
/// refuses that anyway — or a quoted token, which we leave to Redis).
pub fn rewrite_shebang(script: &[u8]) -> Option<Vec<u8>> {
    let rest = script.strip_prefix(b"#!lua")?;
    let line_len = script.iter().position(|&b| b == b'\n')?;
    if !rest.first().is_some_and(|&b| is_space(b)) {
        return None;
    }
    let line = &script[..line_len];
    if line.iter().any(|&b| b == b'"' || b == b'\'') {
        return None;
    }
    // Token spans of the shebang line.
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if is_space(line[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < line.len() && !is_space(line[i]) {
            i += 1;
        }
        tokens.push((start, i));
    }
    // Edits: (range to replace, replacement), in order.
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for (n, &(start, end)) in tokens.iter().enumerate().skip(1) {
        let Some(list) = line[start..end].strip_prefix(b"flags=") else {
            continue;
        };
        if !list.split(|&b| b == b',').any(|f| f == DROPPED_FLAG) {
            continue;
        }
        let kept: Vec<&[u8]> = list
            .split(|&b| b == b',')
            .filter(|f| *f != DROPPED_FLAG)
            .collect();
        if kept.is_empty() {
            // Drop the token with the whitespace before it (the previous token always exists).
            edits.push((tokens[n - 1].1, end, Vec::new()));
        } else {
            let mut token = b"flags=".to_vec();
            token.extend_from_slice(&kept.join(&b","[..]));
            edits.push((start, end, token));
        }
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(script.len());
    let mut at = 0;
    for (start, end, replacement) in edits {
        out.extend_from_slice(&script[at..start]);
        out.extend_from_slice(&replacement);
        at = end;
    }
    out.extend_from_slice(&script[at..]);
    Some(out)
}

fn sha1(bytes: &[u8]) -> [u8; 20] {
    sha1_smol::Sha1::from(bytes).digest().bytes()
}

/// A 40-digit hex sha (either case, as Redis accepts) as bytes.
fn parse_sha(hex_sha: &[u8]) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    hex::decode_to_slice(hex_sha, &mut out).ok()?;
    Some(out)
}

/// What to do with the reply of a prepared command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplyFix {
    /// `SCRIPT LOAD` of a rewritten script: answer this sha (the original's) instead of Redis's.
    sha: Option<String>,
}

impl ReplyFix {
    pub fn apply(self, value: Value) -> Value {
        match (self.sha, value) {
            (Some(sha), Value::BulkString(_) | Value::SimpleString(_)) => {
                Value::BulkString(sha.into_bytes())
            }
            (_, value) => value,
        }
    }
}

/// The script commands this module looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Eval,
    EvalSha,
    Script,
}

/// A cheap name check (no allocation, no lock).
fn kind(name: &[u8]) -> Option<Kind> {
    if !matches!(name.len(), 4 | 6 | 7 | 10) || !matches!(name[0], b'e' | b'E' | b's' | b'S') {
        return None;
    }
    if name.eq_ignore_ascii_case(b"EVAL") || name.eq_ignore_ascii_case(b"EVAL_RO") {
        Some(Kind::Eval)
    } else if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVALSHA_RO") {
        Some(Kind::EvalSha)
    } else if name.eq_ignore_ascii_case(b"SCRIPT") {
        Some(Kind::Script)
    } else {
        None
    }
}

/// Original sha → sha of the rewritten script, shared by all requests.
#[derive(Debug)]
pub struct ScriptMap {
    map: RwLock<HashMap<[u8; 20], [u8; 20]>>,
    cap: usize,
}

impl Default for ScriptMap {
    fn default() -> Self {
        ScriptMap::with_cap(MAX_ENTRIES)
    }
}

impl ScriptMap {
    pub fn with_cap(cap: usize) -> ScriptMap {
        ScriptMap {
            map: RwLock::new(HashMap::new()),
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remember(&self, original: [u8; 20], rewritten: [u8; 20]) {
        if self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&original)
            == Some(&rewritten)
        {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.cap && !map.contains_key(&original) {
            map.clear();
        }
        map.insert(original, rewritten);
    }

    /// The rewritten sha (lowercase hex) for an original one, if known.
    fn translate(&self, hex_sha: &[u8]) -> Option<Vec<u8>> {
        let sha = parse_sha(hex_sha)?;
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(&sha).map(|r| hex::encode(r).into_bytes())
    }

    /// Rewrite a script command for the backend (and remember the shas), translate the shas of
    /// `EVALSHA`/`EVALSHA_RO`/`SCRIPT EXISTS`. Every other command comes back untouched after a
    /// name check.
    pub fn prepare(&self, cmd: Cmd) -> (Cmd, ReplyFix) {
        let kind = match cmd.args_iter().next() {
            Some(Arg::Simple(name)) => kind(name),
            _ => None,
        };
        let Some(kind) = kind else {
            return (cmd, ReplyFix::default());
        };
        let (replace, fix) = self.plan(&cmd, kind);
        if replace.is_empty() {
            return (cmd, ReplyFix::default());
        }
        match with_args_replaced(&cmd, replace) {
            Some(out) => (out, fix),
            None => (cmd, ReplyFix::default()),
        }
    }

    /// Which arguments to replace, and the reply fix.
    fn plan(&self, cmd: &Cmd, kind: Kind) -> (Vec<(usize, Vec<u8>)>, ReplyFix) {
        let mut fix = ReplyFix::default();
        let mut replace: Vec<(usize, Vec<u8>)> = Vec::new();
        let arg = |i: usize| match cmd.args_iter().nth(i) {
            Some(Arg::Simple(b)) => Some(b),
            _ => None,
        };
        match kind {
            Kind::Eval => {
                if let Some(script) = arg(1) {
                    if let Some(rewritten) = rewrite_shebang(script) {
                        self.remember(sha1(script), sha1(&rewritten));
                        replace.push((1, rewritten));
                    }
                }
            }
            Kind::EvalSha => {
                if let Some(sha) = arg(1).and_then(|s| self.translate(s)) {
                    replace.push((1, sha));
                }
            }
            Kind::Script => {
                let sub = arg(1).unwrap_or_default();
                if sub.eq_ignore_ascii_case(b"LOAD") {
                    if let Some(script) = arg(2) {
                        if let Some(rewritten) = rewrite_shebang(script) {
                            let original = sha1(script);
                            self.remember(original, sha1(&rewritten));
                            fix.sha = Some(hex::encode(original));
                            replace.push((2, rewritten));
                        }
                    }
                } else if sub.eq_ignore_ascii_case(b"EXISTS") && !self.is_empty() {
                    for (i, a) in cmd.args_iter().enumerate().skip(2) {
                        if let Arg::Simple(sha) = a {
                            if let Some(t) = self.translate(sha) {
                                replace.push((i, t));
                            }
                        }
                    }
                }
            }
        }
        (replace, fix)
    }
}

/// `cmd` with some arguments replaced (`replace` in argument order); `None` if it holds anything
/// but plain arguments (parsed requests never do).
fn with_args_replaced(cmd: &Cmd, replace: Vec<(usize, Vec<u8>)>) -> Option<Cmd> {
    let mut out = Cmd::with_capacity(cmd.args_iter().count(), 0);
    let mut replace = replace.into_iter().peekable();
    for (i, a) in cmd.args_iter().enumerate() {
        match (a, replace.next_if(|(at, _)| *at == i)) {
            (_, Some((_, bytes))) => out.arg(bytes),
            (Arg::Simple(b), None) => out.arg(b),
            (_, None) => return None,
        };
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(s: &str) -> Option<String> {
        rewrite_shebang(s.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn only_the_dropped_flag() {
        assert_eq!(
            rw("#!lua flags=allow-key-locking\n  local k = KEYS[1]\n").as_deref(),
            Some("#!lua\n  local k = KEYS[1]\n")
        );
    }

    #[test]
    fn mixed_flags_keep_the_others_in_order() {
        assert_eq!(
            rw("#!lua flags=no-writes,allow-key-locking\nreturn 1").as_deref(),
            Some("#!lua flags=no-writes\nreturn 1")
        );
        assert_eq!(
            rw("#!lua flags=allow-key-locking,no-writes,allow-oom\nreturn 1").as_deref(),
            Some("#!lua flags=no-writes,allow-oom\nreturn 1")
        );
        assert_eq!(
            rw("#!lua  flags=allow-stale,allow-key-locking  \nreturn 1").as_deref(),
            Some("#!lua  flags=allow-stale  \nreturn 1")
        );
    }

    #[test]
    fn scripts_without_the_flag_are_untouched() {
        for s in [
            "return 1",
            "",
            "-- #!lua flags=allow-key-locking\nreturn 1",
            "#!lua\nreturn 1",
            "#!lua flags=no-writes\nreturn 1",
            "#!lua flags=no-writes,allow-oom,allow-stale,no-cluster,allow-cross-slot-keys\nx",
            "#!lua flags=allow-key-locking-not\nreturn 1",
            "#!luajit flags=allow-key-locking\nreturn 1",
            "#!lua flags=allow-key-locking", // no newline: Redis refuses the shebang anyway
            "#!lua flags=\"allow-key-locking\"\nreturn 1",
            " #!lua flags=allow-key-locking\nreturn 1",
        ] {
            assert_eq!(rw(s), None, "{s:?}");
        }
    }

    #[test]
    fn the_flag_on_later_lines_is_not_touched() {
        let s = "#!lua flags=allow-key-locking\n-- flags=allow-key-locking\nreturn 1\n";
        assert_eq!(
            rw(s).as_deref(),
            Some("#!lua\n-- flags=allow-key-locking\nreturn 1\n")
        );
    }

    #[test]
    fn crlf_after_the_shebang_line() {
        assert_eq!(
            rw("#!lua flags=allow-key-locking\r\nreturn 1\r\n").as_deref(),
            Some("#!lua\r\nreturn 1\r\n")
        );
        assert_eq!(
            rw("#!lua\tflags=allow-key-locking,no-writes\r\nreturn 1").as_deref(),
            Some("#!lua\tflags=no-writes\r\nreturn 1")
        );
    }

    fn cmd(args: &[&[u8]]) -> Cmd {
        let mut c = Cmd::new();
        for a in args {
            c.arg(*a);
        }
        c
    }

    fn args(c: &Cmd) -> Vec<Vec<u8>> {
        c.args_iter()
            .map(|a| match a {
                Arg::Simple(b) => b.to_vec(),
                _ => panic!("cursor"),
            })
            .collect()
    }

    const SCRIPT: &[u8] = b"#!lua flags=allow-key-locking\nreturn 1";
    const REWRITTEN: &[u8] = b"#!lua\nreturn 1";

    fn hex_sha(b: &[u8]) -> Vec<u8> {
        hex::encode(sha1(b)).into_bytes()
    }

    #[test]
    fn other_commands_pass_untouched() {
        let map = ScriptMap::default();
        for a in [
            &[&b"GET"[..], b"k"][..],
            &[b"SET", b"k", SCRIPT],
            &[b"EVAL", b"return 1", b"0"],
            &[
                b"EVALSHA",
                b"0123456789012345678901234567890123456789",
                b"0",
            ],
            &[b"SCRIPT", b"FLUSH"],
            &[b"SCRIPT"],
            &[b"EVAL"],
        ] {
            let (c, fix) = map.prepare(cmd(a));
            assert_eq!(args(&c), a.iter().map(|x| x.to_vec()).collect::<Vec<_>>());
            assert_eq!(fix, ReplyFix::default());
        }
        assert!(map.is_empty());
    }

    #[test]
    fn eval_rewrites_and_evalsha_translates() {
        let map = ScriptMap::default();
        let (c, fix) = map.prepare(cmd(&[b"eval", SCRIPT, b"1", b"k", b"a"]));
        assert_eq!(
            args(&c),
            [&b"eval"[..], REWRITTEN, b"1", b"k", b"a"].map(|x| x.to_vec())
        );
        assert_eq!(fix, ReplyFix::default());
        for name in [&b"EVALSHA"[..], b"evalsha_ro"] {
            let original = hex_sha(SCRIPT);
            let (c, _) = map.prepare(cmd(&[name, &original, b"0"]));
            assert_eq!(args(&c)[1], hex_sha(REWRITTEN));
            // Redis takes the sha in either case; so do we.
            let upper = original.to_ascii_uppercase();
            let (c, _) = map.prepare(cmd(&[name, &upper, b"0"]));
            assert_eq!(args(&c)[1], hex_sha(REWRITTEN));
        }
        let (c, _) = map.prepare(cmd(&[b"EVAL_RO", SCRIPT, b"0"]));
        assert_eq!(args(&c)[1], REWRITTEN);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn script_load_answers_the_original_sha_and_exists_translates() {
        let map = ScriptMap::default();
        let (c, fix) = map.prepare(cmd(&[b"SCRIPT", b"load", SCRIPT]));
        assert_eq!(
            args(&c),
            [&b"SCRIPT"[..], b"load", REWRITTEN].map(|x| x.to_vec())
        );
        let original = hex_sha(SCRIPT);
        assert_eq!(
            fix.clone().apply(Value::BulkString(hex_sha(REWRITTEN))),
            Value::BulkString(original.clone())
        );
        // Errors stay errors.
        let err = redis::parse_redis_value(b"-ERR x\r\n").unwrap();
        assert_eq!(fix.apply(err.clone()), err);

        let other = b"ffffffffffffffffffffffffffffffffffffffff";
        let (c, _) = map.prepare(cmd(&[b"script", b"EXISTS", other, &original]));
        assert_eq!(
            args(&c),
            [&b"script"[..], b"EXISTS", other, &hex_sha(REWRITTEN)].map(|x| x.to_vec())
        );
    }

    #[test]
    fn the_map_is_bounded() {
        let map = ScriptMap::with_cap(3);
        for i in 0..3 {
            let s = format!("#!lua flags=allow-key-locking\nreturn {i}");
            map.prepare(cmd(&[b"EVAL", s.as_bytes(), b"0"]));
        }
        assert_eq!(map.len(), 3);
        // The same script again does not grow it.
        map.prepare(cmd(&[
            b"EVAL",
            b"#!lua flags=allow-key-locking\nreturn 0",
            b"0",
        ]));
        assert_eq!(map.len(), 3);
        let fourth = b"#!lua flags=allow-key-locking\nreturn 3";
        map.prepare(cmd(&[b"EVAL", fourth, b"0"]));
        assert_eq!(map.len(), 1);
        let (c, _) = map.prepare(cmd(&[b"EVALSHA", &hex_sha(fourth), b"0"]));
        assert_eq!(args(&c)[1], hex_sha(b"#!lua\nreturn 3"));
        // Cleared: the others are forwarded as sent (Redis answers NOSCRIPT, the client EVALs).
        let (c, _) = map.prepare(cmd(&[b"EVALSHA", &hex_sha(SCRIPT), b"0"]));
        assert_eq!(args(&c)[1], hex_sha(SCRIPT));
    }
}
