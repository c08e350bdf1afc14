//! Which requests count as a visit: bots, `HEAD`, prefetches and the site owner do not.

use http::{HeaderMap, Method};

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
    let ua = user_agent.to_ascii_lowercase();
    ua.trim().is_empty() || BOT_MARKERS.iter().any(|m| ua.contains(m))
}

/// Browsers mark speculative loads: `Sec-Purpose: prefetch`, `Purpose: prefetch`,
/// `X-Moz: prefetch`, `X-Purpose: preview`.
pub fn is_prefetch(headers: &HeaderMap) -> bool {
    ["sec-purpose", "purpose", "x-moz", "x-purpose"]
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok())
        .any(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("prefetch") || v.contains("preview") || v.contains("prerender")
        })
}

/// The owner-exclusion cookie is set to `1`.
pub fn is_owner(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(k, v)| k == OWNER_COOKIE && v == "1")
}

/// Should this request add to the count?
pub fn counts(method: &Method, headers: &HeaderMap) -> bool {
    let user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    method != Method::HEAD && !is_bot(user_agent) && !is_prefetch(headers) && !is_owner(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

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
