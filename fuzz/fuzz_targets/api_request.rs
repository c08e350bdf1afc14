//! The API's front door, through the same driver the worker runs: method, path, query, headers
//! and body as a client could send them, up to the first step (a REST exchange is not made:
//! its task is cancelled). Never a panic, never a 500 (that would be our bug, not the client's),
//! every JSON answer parses, and every step is one the entry module knows.
#![no_main]

#[path = "../support.rs"]
mod support;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];
const FIRST: &[&str] = &[
    "hit", "get", "stats", "stream", "badge", "shields", "limit", "lease", "batch", "healthz",
    "create", "set", "update", "reset", "delete", "info", "ns", "export", "import", "deny", "",
];
const HEADERS: &[&str] = &[
    "authorization",
    "origin",
    "referer",
    "idempotency-key",
    "content-type",
    "cf-connecting-ip",
    "user-agent",
    "cookie",
    "x-api-key",
    "if-none-match",
];

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    first: u8,
    rest: Vec<String>,
    query: Option<String>,
    headers: Vec<(u8, String)>,
    admin: bool,
    body: Option<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let method = METHODS[usize::from(input.method) % METHODS.len()];
    let mut url = format!(
        "http://edge.test/{}",
        FIRST[usize::from(input.first) % FIRST.len()]
    );
    for segment in input.rest.iter().take(6) {
        url.push('/');
        url.push_str(segment);
    }
    if let Some(query) = &input.query {
        url.push('?');
        url.push_str(query);
    }
    let mut head = String::new();
    if input.admin {
        head.push_str(&format!("authorization:Bearer {}\n", support::ADMIN_TOKEN));
    }
    for (name, value) in input.headers.iter().take(8) {
        let name = HEADERS[usize::from(*name) % HEADERS.len()];
        head.push_str(&format!("{name}:{}\n", value.replace(['\n', '\r'], " ")));
    }
    support::check_step(method, &url, &head, input.body);
});
