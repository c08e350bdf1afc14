//! Which requests count as a visit: bots, `HEAD`, prefetches and the site owner do not.

use http::Method;

use super::headers::RequestHeaders;

/// The cookie a site owner sets in their own browser (`edgecount_exclude=1`) so their visits
/// are answered but not counted.
pub const OWNER_COOKIE: &str = "edgecount_exclude";

/// Lower-case fragments of user agents that are not people: crawlers, link previews, monitors,
/// headless browsers and HTTP libraries used by scripts.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "facebookexternalhit",
    "preview",
    "headless",
    "lighthouse",
    "pingdom",
    "uptime",
    "monitor",
    "python-requests",
    "wget",
    "scrapy",
    "httpclient",
];

pub fn is_bot(user_agent: &str) -> bool {
    user_agent.trim().is_empty() || contains_any_ignore_case(user_agent, BOT_MARKERS)
}

/// Whether any of `needles` (lower-case ASCII, non-empty) occurs in `haystack`, ASCII case
/// ignored. One pass over the haystack: only at a byte that starts some needle are the needles
/// compared. This runs on every hit, against a ~100-byte user agent and 15 markers; a search
/// per marker (`str::contains` sets up a two-way searcher each time, after lower-casing a copy)
/// cost several times as much.
fn contains_any_ignore_case(haystack: &str, needles: &[&str]) -> bool {
    // The set of bytes that start a needle, as a 256-bit set.
    let mut starts = [0u64; 4];
    for needle in needles {
        if let Some(&b) = needle.as_bytes().first() {
            starts[usize::from(b >> 6)] |= 1 << (b & 63);
        }
    }
    let haystack = haystack.as_bytes();
    (0..haystack.len()).any(|at| {
        let first = haystack[at].to_ascii_lowercase();
        starts[usize::from(first >> 6)] & (1 << (first & 63)) != 0
            && needles.iter().any(|needle| {
                let needle = needle.as_bytes();
                needle.first() == Some(&first)
                    && haystack
                        .get(at..at + needle.len())
                        .is_some_and(|window| window.eq_ignore_ascii_case(needle))
            })
    })
}

/// Browsers mark speculative loads: `Sec-Purpose: prefetch`, `Purpose: prefetch`,
/// `X-Moz: prefetch`, `X-Purpose: preview`.
pub fn is_prefetch(headers: &RequestHeaders) -> bool {
    headers.iter().any(|(name, value)| {
        matches!(name, "sec-purpose" | "purpose" | "x-moz" | "x-purpose")
            && contains_any_ignore_case(value, &["prefetch", "preview", "prerender"])
    })
}

/// The owner-exclusion cookie is set to `1`.
pub fn is_owner(headers: &RequestHeaders) -> bool {
    headers.cookies(OWNER_COOKIE).any(|v| v == "1")
}

/// Should this request add to the count?
pub fn counts(method: &Method, headers: &RequestHeaders) -> bool {
    let user_agent = headers.get("user-agent").unwrap_or_default();
    method != Method::HEAD && !is_bot(user_agent) && !is_prefetch(headers) && !is_owner(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> RequestHeaders {
        pairs.iter().copied().collect()
    }

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

    #[test]
    fn marker_search_ignores_case_and_fits_the_haystack() {
        let markers = &["bot", "crawl"];
        assert!(contains_any_ignore_case("Mozilla Googlebot/2.1", markers));
        assert!(contains_any_ignore_case("BOT", markers));
        assert!(contains_any_ignore_case("x CRAWLER", markers));
        assert!(!contains_any_ignore_case("bo", markers));
        assert!(!contains_any_ignore_case("crawbot", &["crawl"]));
        assert!(!contains_any_ignore_case("Mozilla/5.0 Firefox", markers));
        assert!(!contains_any_ignore_case("", markers));
    }

    #[test]
    fn people_count() {
        assert!(counts(&Method::GET, &headers(&[("user-agent", FIREFOX)])));
        assert!(counts(
            &Method::POST,
            &headers(&[("user-agent", "curl/8.5.0")])
        ));
    }

    #[test]
    fn bots_head_prefetch_and_owner_do_not() {
        let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        assert!(!counts(
            &Method::GET,
            &headers(&[("user-agent", googlebot)])
        ));
        assert!(!counts(&Method::GET, &headers(&[])));
        assert!(!counts(&Method::HEAD, &headers(&[("user-agent", FIREFOX)])));
        assert!(!counts(
            &Method::GET,
            &headers(&[
                ("user-agent", FIREFOX),
                ("sec-purpose", "prefetch;prerender")
            ])
        ));
        assert!(!counts(
            &Method::GET,
            &headers(&[
                ("user-agent", FIREFOX),
                ("cookie", "a=b; edgecount_exclude=1")
            ])
        ));
        assert!(counts(
            &Method::GET,
            &headers(&[("user-agent", FIREFOX), ("cookie", "edgecount_exclude=0")])
        ));
    }
}
