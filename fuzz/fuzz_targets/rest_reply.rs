//! What the REST client reads back: an answer body (JSON, base64 strings at any depth, errors)
//! and an event stream cut into arbitrary chunks. Never a panic, and the stream's events do not
//! depend on where the chunks were cut.
#![no_main]

use edgecount::store::rest::{decode_body, SseLines};
use libfuzzer_sys::fuzz_target;

fn events(chunks: impl Iterator<Item = impl AsRef<[u8]>>) -> Vec<Vec<u8>> {
    let mut lines = SseLines::default();
    let mut out = Vec::new();
    for chunk in chunks {
        lines.feed(chunk.as_ref());
        while let Some(data) = lines.next_data() {
            out.push(data);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        let status = [200, 400, 401, 403, 500, 503][usize::from(selector / 2) % 6];
        let _ = decode_body(status, rest);
    } else {
        let size = usize::from(selector / 2).max(1);
        assert_eq!(events(rest.chunks(size)), events(std::iter::once(rest)));
    }
});
