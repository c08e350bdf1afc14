//! The proxy's request parsing: JSON commands, pipelines, the path form (with its query and raw
//! body) and the `?_token=` query. Never a panic; what parses is a command with a name.
#![no_main]

use edgecount::proxy::request::{parse_command, parse_path, parse_pipeline, query_token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(cmd) = parse_command(rest) {
                assert!(cmd.args_iter().count() >= 1);
            }
        }
        1 => {
            if let Ok(cmds) = parse_pipeline(rest) {
                assert!(cmds.iter().all(|cmd| cmd.args_iter().count() >= 1));
            }
        }
        2 => {
            // path \0 query \0 body
            let mut parts = rest.splitn(3, |b| *b == 0);
            let path = String::from_utf8_lossy(parts.next().unwrap_or_default());
            let query = parts.next().map(String::from_utf8_lossy);
            let body = parts.next();
            if let Ok(cmd) = parse_path(&format!("/{path}"), query.as_deref(), body) {
                assert!(cmd.args_iter().count() >= 1);
            }
        }
        _ => {
            let _ = query_token(Some(&String::from_utf8_lossy(rest)));
        }
    }
});
