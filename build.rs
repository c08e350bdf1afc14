//! Build script: minified copies of the Lua scripts for `include_str!`.
//!
//! The scripts in `src/` stay commented and indented for people; what the binaries (and above all
//! the wasm worker, where every byte is download and start-up time) embed is the same code without
//! comments, indentation or blank lines, written to `$OUT_DIR/lua/<same relative path>`.
//!
//! It also assembles the scripts as they are sent to Redis, `$OUT_DIR/scripts/<name>.lua` (each
//! `counter_*` script is `counter_lib.lua` followed by its own file; the other scripts, the rate
//! limiter's included, stand alone), each
//! with its SHA1 (`EVALSHA`) in `<name>.sha1`, computed here from exactly those bytes: the worker
//! then carries no SHA1 code, and the digest cannot drift from the source.
//!
//! The minifier is deliberately small and conservative: string literals (`'…'`, `"…"`, long
//! brackets `[[…]]`) are copied verbatim, comments (`--…`, `--[[…]]`) are dropped, every line is
//! trimmed, blank lines go, and a run of blanks inside a line becomes one space, or nothing where
//! one side is a punctuator that can never merge with its neighbour into another token. Line
//! breaks are kept, so statements never run together.

use std::fs;
use std::path::{Path, PathBuf};

const SCRIPT_DIRS: &[&str] = &["src/core/scripts", "src/core/ratelimit/scripts"];

/// The prelude every counter script starts with.
const COUNTER_LIB: &str = "core/scripts/counter_lib.lua";

fn main() {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let out = out_dir.join("lua");
    for dir in SCRIPT_DIRS {
        println!("cargo:rerun-if-changed={dir}");
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "lua"))
            .collect();
        entries.sort();
        for path in entries {
            println!("cargo:rerun-if-changed={}", path.display());
            let source = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let minified =
                minify(&source).unwrap_or_else(|e| panic!("minifying {}: {e}", path.display()));
            let target = out.join(path.strip_prefix("src").unwrap_or(&path));
            write_if_changed(&target, &minified);
        }
    }
    assemble_scripts(&out, &out_dir.join("scripts"));
}

/// The scripts as sent to Redis, and their SHA1s (see the top of this file).
fn assemble_scripts(minified: &Path, scripts: &Path) {
    let read = |relative: &str| {
        fs::read_to_string(minified.join(relative))
            .unwrap_or_else(|e| panic!("reading minified {relative}: {e}"))
    };
    let lib = read(COUNTER_LIB);
    let mut assembled = Vec::new();
    for dir in SCRIPT_DIRS {
        let dir = dir.strip_prefix("src/").unwrap_or(dir);
        let mut files: Vec<String> = fs::read_dir(minified.join(dir))
            .expect("minified scripts")
            .map(|entry| {
                entry
                    .expect("directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".lua") && !COUNTER_LIB.ends_with(name.as_str()))
            .collect();
        files.sort();
        for file in files {
            let body = read(&format!("{dir}/{file}"));
            // Scripts about one counter (`counter_*`) share the prelude; the others stand alone.
            let source = if file.starts_with("counter_") {
                format!("{lib}{body}")
            } else {
                body
            };
            assembled.push((file.trim_end_matches(".lua").to_owned(), source));
        }
    }
    for (name, source) in assembled {
        write_if_changed(&scripts.join(format!("{name}.lua")), &source);
        let sha1 = sha1_smol::Sha1::from(&source).digest().to_string();
        write_if_changed(&scripts.join(format!("{name}.sha1")), &sha1);
    }
}

fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return;
    }
    fs::create_dir_all(path.parent().expect("parent")).expect("creating the output directory");
    fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// `[`, `=`…, `[` at `at`: the level (number of `=`) of a long bracket opening there.
fn long_bracket_level(s: &[u8], at: usize) -> Option<usize> {
    if s.get(at) != Some(&b'[') {
        return None;
    }
    let mut i = at + 1;
    while s.get(i) == Some(&b'=') {
        i += 1;
    }
    (s.get(i) == Some(&b'[')).then_some(i - at - 1)
}

/// The index just past the long bracket closing `]`, `=`×level, `]` at or after `from`.
fn long_bracket_end(s: &[u8], from: usize, level: usize) -> Result<usize, String> {
    let mut close = Vec::with_capacity(level + 2);
    close.push(b']');
    close.extend(std::iter::repeat_n(b'=', level));
    close.push(b']');
    s[from..]
        .windows(close.len())
        .position(|w| w == close.as_slice())
        .map(|p| from + p + close.len())
        .ok_or_else(|| "unterminated long bracket".to_string())
}

/// A punctuator that never forms a longer token with whatever stands next to it.
fn isolated(c: u8) -> bool {
    matches!(c, b'(' | b')' | b'{' | b'}' | b',' | b';')
}

/// Whether a blank between `prev` and `next` can go: next to an isolated punctuator, or between
/// a name/number character and an operator character (`a = b + 1` → `a=b+1`). Two operator
/// characters keep their blank (`a - -b`, `x = -1`), and so does `.` (`1 .. x`).
fn blank_droppable(prev: u8, next: u8) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let op = |c: u8| b"=+-*/%^<>~#".contains(&c);
    isolated(prev) || isolated(next) || (word(prev) && op(next)) || (op(prev) && word(next))
}

fn minify(source: &str) -> Result<String, String> {
    let s = source.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    // A blank run seen in code and not yet written: None, a space, or a line break.
    let mut pending: Option<u8> = None;
    let mut i = 0;

    // Write the pending blank (if it is still needed) before the code byte `next`.
    fn flush(out: &mut Vec<u8>, pending: &mut Option<u8>, next: u8) {
        if let Some(blank) = pending.take() {
            let Some(&prev) = out.last() else { return };
            if prev == b'\n' {
                return;
            }
            if blank == b'\n' {
                out.push(b'\n');
            } else if !blank_droppable(prev, next) {
                out.push(b' ');
            }
        }
    }

    while i < s.len() {
        let c = s[i];
        match c {
            b'-' if s.get(i + 1) == Some(&b'-') => {
                // A comment: long (`--[[ … ]]`) or to the end of the line (the break stays).
                if let Some(level) = long_bracket_level(s, i + 2) {
                    i = long_bracket_end(s, i + 2 + level + 2, level)?;
                    pending.get_or_insert(b' ');
                } else {
                    while i < s.len() && s[i] != b'\n' {
                        i += 1;
                    }
                }
            }
            b' ' | b'\t' | b'\r' => {
                pending.get_or_insert(b' ');
                i += 1;
            }
            b'\n' => {
                pending = Some(b'\n');
                i += 1;
            }
            b'\'' | b'"' => {
                flush(&mut out, &mut pending, c);
                let start = i;
                i += 1;
                loop {
                    match s.get(i) {
                        None | Some(b'\n') => return Err("unterminated string".into()),
                        Some(b'\\') => i += 2,
                        Some(&q) if q == c => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                out.extend_from_slice(&s[start..i]);
            }
            b'[' if long_bracket_level(s, i).is_some() => {
                let level = long_bracket_level(s, i).unwrap_or(0);
                flush(&mut out, &mut pending, c);
                let end = long_bracket_end(s, i + level + 2, level)?;
                out.extend_from_slice(&s[i..end]);
                i = end;
            }
            _ => {
                flush(&mut out, &mut pending, c);
                out.push(c);
                i += 1;
            }
        }
    }
    if out.last().is_some_and(|&c| c != b'\n') {
        out.push(b'\n');
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}
