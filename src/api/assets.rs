//! The static files browsers load — the dashboard, the embed script, the OpenAPI document — and
//! the headers they are served with. Their bytes live in `web/` and never enter the wasm: on
//! Cloudflare the runtime serves them (`[assets]` in wrangler.toml, headers from `web/_headers`,
//! which a test keeps equal to this table; Content-Type there comes from the file's extension), in a bare workerd the worker's entry module fetches
//! them from a disk directory service bound as `ASSETS`, and `edgecount serve` embeds them.

/// `Content-Security-Policy` of the dashboard: scripts, styles, images and requests from our own
/// origin only, no inline code, no framing, no plugins.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How long browsers may keep the embed script without asking again. Snippets carry a version
/// query (`embed.js?v=1`), so a change that needs a new copy gets a new URL.
pub const EMBED_CACHE: &str = "public, max-age=604800";

/// One static file: the path it answers and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// The request path (`/`, `/embed.js`).
    pub path: &'static str,
    /// The file under `web/`.
    pub file: &'static str,
    pub content_type: &'static str,
    pub cache_control: &'static str,
    /// A page (HTML): served with [`DASHBOARD_CSP`] and no referrer.
    pub page: bool,
    /// Readable by scripts of any origin (`Access-Control-Allow-Origin: *`).
    pub public: bool,
}

/// Every static file, by path.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        file: "index.html",
        content_type: "text/html; charset=utf-8",
        cache_control: "no-cache",
        page: true,
        public: false,
    },
    Asset {
        path: "/dashboard.js",
        file: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        cache_control: "no-cache",
        page: false,
        public: false,
    },
    Asset {
        path: "/dashboard.css",
        file: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        cache_control: "no-cache",
        page: false,
        public: false,
    },
    Asset {
        path: "/favicon.svg",
        file: "favicon.svg",
        content_type: "image/svg+xml",
        cache_control: "public, max-age=86400",
        page: false,
        public: false,
    },
    Asset {
        path: "/embed.js",
        file: "embed.js",
        content_type: "text/javascript; charset=utf-8",
        cache_control: EMBED_CACHE,
        page: false,
        public: true,
    },
    Asset {
        path: "/openapi.json",
        file: "openapi.json",
        content_type: "application/json",
        cache_control: "no-cache",
        page: false,
        public: true,
    },
];

impl Asset {
    /// The static file served at `path`, if any.
    pub fn at(path: &str) -> Option<&'static Asset> {
        ASSETS.iter().find(|asset| asset.path == path)
    }

    /// The headers of its answer, in a fixed order.
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        let mut headers = vec![
            ("content-type", self.content_type),
            ("cache-control", self.cache_control),
            ("x-content-type-options", "nosniff"),
        ];
        if self.page {
            headers.push(("content-security-policy", DASHBOARD_CSP));
            headers.push(("referrer-policy", "no-referrer"));
        }
        if self.public {
            headers.push(("access-control-allow-origin", "*"));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_found() {
        for asset in ASSETS {
            assert_eq!(Asset::at(asset.path), Some(asset));
            assert_eq!(ASSETS.iter().filter(|a| a.file == asset.file).count(), 1);
        }
        assert_eq!(Asset::at("/nope.js"), None);
        assert_eq!(Asset::at("/index.html"), None);
    }

    #[test]
    fn only_pages_get_the_csp_and_only_public_files_cors() {
        let page = Asset::at("/").unwrap().headers();
        assert!(page.contains(&("content-security-policy", DASHBOARD_CSP)));
        assert!(!page
            .iter()
            .any(|(n, _)| *n == "access-control-allow-origin"));
        let embed = Asset::at("/embed.js").unwrap().headers();
        assert!(embed.contains(&("access-control-allow-origin", "*")));
        assert!(!embed.iter().any(|(n, _)| *n == "content-security-policy"));
    }

    /// `web/_headers` is what Cloudflare serves these files with: it must say the same.
    #[test]
    fn cloudflare_headers_file_matches_the_table() {
        let text = include_str!("../../web/_headers");
        let mut rules: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            if line.starts_with(' ') {
                let (name, value) = line.trim().split_once(':').expect("name: value");
                let (_, headers) = rules.last_mut().expect("a path before its headers");
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            } else {
                rules.push((line.trim().to_owned(), Vec::new()));
            }
        }
        for asset in ASSETS {
            let (_, headers) = rules
                .iter()
                .find(|(path, _)| path == asset.path)
                .unwrap_or_else(|| panic!("{} missing from web/_headers", asset.path));
            // Cloudflare sets Content-Type from the file's extension itself.
            let mut want: Vec<(String, String)> = asset
                .headers()
                .into_iter()
                .filter(|(n, _)| *n != "content-type")
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            let mut got = headers.clone();
            want.sort();
            got.sort();
            assert_eq!(got, want, "web/_headers for {}", asset.path);
        }
        assert_eq!(rules.len(), ASSETS.len(), "web/_headers has extra paths");
    }
}
