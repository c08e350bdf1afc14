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
    user_agent.trim().is_empty()
        || BOT_MARKERS
            .iter()
            .any(|m| contains_ignore_case(user_agent, m))
}

/// `needle` (lower-case ASCII) occurs in `haystack`, ASCII case ignored. A plain scan: every
/// haystack is one header value, where `str::contains` would set up a two-way searcher per
/// marker (and lower-casing first would allocate); this runs on every hit.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    let Some(&first) = needle.first() else {
        return true;
    };
    haystack.len() >= needle.len()
        && (0..=haystack.len() - needle.len()).any(|i| {
            haystack[i].to_ascii_lowercase() == first
                && haystack[i..i + needle.len()].eq_ignore_ascii_case(needle)
        })
}

/// Browsers mark speculative loads: `Sec-Purpose: prefetch`, `Purpose: prefetch`,
/// `X-Moz: prefetch`, `X-Purpose: preview`.
pub fn is_prefetch(headers: &RequestHeaders) -> bool {
    headers.iter().any(|(name, value)| {
        matches!(name, "sec-purpose" | "purpose" | "x-moz" | "x-purpose")
            && ["prefetch", "preview", "prerender"]
                .iter()
                .any(|m| contains_ignore_case(value, m))
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
        assert!(contains_ignore_case("Mozilla Googlebot/2.1", "bot"));
        assert!(contains_ignore_case("BOT", "bot"));
        assert!(!contains_ignore_case("bo", "bot"));
        assert!(!contains_ignore_case("Mozilla/5.0 Firefox", "bot"));
        assert!(contains_ignore_case("x", ""));
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
