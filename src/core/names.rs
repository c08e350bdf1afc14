//! What a counter may be called: the one place that says what a name is.
//!
//! A namespace and a key each match `^[A-Za-z0-9_.-]{3,64}$` (the rule CountAPI and Abacus share).
//! A route with one segment uses the namespace [`DEFAULT_NAMESPACE`].
//!
//! # Placeholders
//! `:HOST:`, `:PATH:` and `:PATHNAME:` inside a name are replaced from the request
//! ([`RequestContext`]): the host comes from `?page=` when it is a URL, else `Origin`, else
//! `Referer`, else the `Host` header; the path from `?page=` (a URL or an absolute path: what the
//! embed script sends, since browsers give cross-origin requests an origin-only Referer), else
//! `Referer` (an `Origin` carries no path), else `/`. Substituted text is made valid
//! deterministically (see [`sanitize_component`]):
//! - the host loses its port and is lower-cased (`Example.com:8080` → `example.com`);
//! - the path is percent-decoded and loses its query and fragment, leading and trailing `/` are
//!   trimmed, inner `/` become
//!   `.`, and every run of other characters outside the rule becomes one `_`
//!   (`/blog/post-1/` → `blog.post-1`, `/a b/ç` → `a_b._`); the root `/` becomes `index`.
//!
//! After substitution a name longer than 64 is shortened, not refused, because the page decides its
//! length, not the site owner: the first 47 characters, `-`, then 16 hex digits of the SHA-256 of
//! the whole substituted name (64 in all, stable for the same page). A name still shorter than 3 is
//! refused like any malformed name. A name without placeholders is never rewritten: it is valid or
//! refused.

use std::fmt;

use sha2::{Digest, Sha256};

/// The namespace of a route that names only a key.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Shortest valid namespace or key.
pub const MIN_NAME_LEN: usize = 3;
/// Longest valid namespace or key.
pub const MAX_NAME_LEN: usize = 64;
/// The rule, for error messages and documentation.
pub const NAME_RULE: &str = "^[A-Za-z0-9_.-]{3,64}$";

/// Which half of a name was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamePart {
    Namespace,
    Key,
}

/// A name that does not match [`NAME_RULE`]. The message is CountAPI's, which clients match on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Malformed Namespace/Key")]
pub struct NameError {
    pub part: NamePart,
}

/// True for the bytes a name may contain.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// True when `s` matches [`NAME_RULE`].
pub fn is_valid_name(s: &str) -> bool {
    (MIN_NAME_LEN..=MAX_NAME_LEN).contains(&s.len()) && s.bytes().all(is_name_byte)
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $part:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// Accept `s` if it matches [`NAME_RULE`].
            pub fn parse(s: &str) -> Result<Self, NameError> {
                if is_valid_name(s) {
                    Ok($ty(s.to_owned()))
                } else {
                    Err(NameError { part: $part })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }
    };
}

name_type!(
    /// A validated namespace.
    Namespace,
    NamePart::Namespace
);
name_type!(
    /// A validated counter key (the name of a counter inside its namespace).
    CounterKey,
    NamePart::Key
);

impl Namespace {
    pub fn default_namespace() -> Self {
        Namespace(DEFAULT_NAMESPACE.to_owned())
    }
}

/// A counter's full name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    pub ns: Namespace,
    pub key: CounterKey,
}

impl Name {
    /// Validate both halves (no placeholder substitution).
    pub fn parse(ns: &str, key: &str) -> Result<Self, NameError> {
        Ok(Name {
            ns: Namespace::parse(ns)?,
            key: CounterKey::parse(key)?,
        })
    }

    /// From a route's name segments: `[key]` (namespace `default`) or `[ns, key]`, with
    /// placeholders resolved from `request`.
    pub fn from_segments(
        segments: &[&str],
        request: &RequestContext<'_>,
    ) -> Result<Self, NameError> {
        match segments {
            [key] => Self::resolve(DEFAULT_NAMESPACE, key, request),
            [ns, key] => Self::resolve(ns, key, request),
            _ => Err(NameError {
                part: NamePart::Key,
            }),
        }
    }

    /// Resolve placeholders in both halves, then validate (see the module documentation).
    pub fn resolve(ns: &str, key: &str, request: &RequestContext<'_>) -> Result<Self, NameError> {
        Ok(Name {
            ns: Namespace::parse(&resolve_placeholders(ns, request))?,
            key: CounterKey::parse(&resolve_placeholders(key, request))?,
        })
    }

    /// `ns/key`, the value of the `X-Path` header.
    pub fn path(&self) -> String {
        format!("{}/{}", self.ns, self.key)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ns, self.key)
    }
}

/// What placeholders are resolved from: the request's headers (raw values, as received) and the
/// page it says it is about.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestContext<'a> {
    pub origin: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub host: Option<&'a str>,
    /// `?page=`: the page's URL (or absolute path), as the embed script sends it. Browsers send
    /// a cross-origin request's Referer as the origin alone (`strict-origin-when-cross-origin`),
    /// so without it every page of a site would count as its root. It wins over the headers.
    pub page: Option<&'a str>,
}

impl RequestContext<'_> {
    /// The page's host name, without port, lower-case, or `None` when no header names one.
    pub fn page_host(&self) -> Option<String> {
        let from_url = |raw: Option<&str>| {
            raw.filter(|v| !v.eq_ignore_ascii_case("null"))
                .and_then(absolute_uri)
                .and_then(|u| u.host().map(str::to_owned))
        };
        from_url(self.page)
            .or_else(|| from_url(self.origin))
            .or_else(|| from_url(self.referer))
            .or_else(|| {
                // The Host header is `host[:port]`; parse it as an authority to drop the port.
                self.host
                    .and_then(|h| h.trim().parse::<http::uri::Authority>().ok())
                    .map(|a| a.host().to_owned())
            })
            .map(|h| {
                h.trim_matches(|c| c == '[' || c == ']')
                    .to_ascii_lowercase()
            })
    }

    /// The page's path, percent-decoded, without query or fragment: from `page` (a URL or an
    /// absolute path), else the Referer, else `/`. Decoded so a page counts once whether or not
    /// the browser encoded its path.
    pub fn page_path(&self) -> String {
        let from_page = self.page.and_then(|page| {
            if page.starts_with('/') {
                let path = page.split(['?', '#']).next().unwrap_or("/");
                Some(path.to_owned())
            } else {
                absolute_uri(page).map(|u| u.path().to_owned())
            }
        });
        from_page
            .or_else(|| {
                self.referer
                    .and_then(absolute_uri)
                    .map(|u| u.path().to_owned())
            })
            .map(|path| {
                percent_encoding::percent_decode_str(&path)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_else(|| "/".to_owned())
    }
}

/// An absolute http(s) URL from a header (`Origin`, `Referer`), fragment dropped. The `http`
/// crate's parser is enough here and keeps the worker small (no IDNA tables).
fn absolute_uri(raw: &str) -> Option<http::Uri> {
    // Characters a strict URI parser refuses but a sloppy client may send (spaces, non-ASCII)
    // are percent-encoded first, as a browser would have done.
    const LOOSE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'<')
        .add(b'>')
        .add(b'`')
        .add(b'{')
        .add(b'}')
        .add(b'|')
        .add(b'\\')
        .add(b'^');
    let without_fragment = raw.trim().split('#').next().unwrap_or_default();
    let encoded = percent_encoding::utf8_percent_encode(without_fragment, LOOSE).to_string();
    let uri: http::Uri = encoded.parse().ok()?;
    matches!(uri.scheme_str(), Some("http" | "https")).then_some(uri)
}

const PLACEHOLDERS: [&str; 3] = [":HOST:", ":PATHNAME:", ":PATH:"];

/// Replace `:HOST:`, `:PATH:`, `:PATHNAME:` in `raw` and make the result a valid name where the
/// substitution alone would not be (see the module documentation). Text without placeholders is
/// returned unchanged, to be validated (and refused) as typed.
pub fn resolve_placeholders(raw: &str, request: &RequestContext<'_>) -> String {
    if !PLACEHOLDERS.iter().any(|p| raw.contains(p)) {
        return raw.to_owned();
    }
    let host = sanitize_component(&request.page_host().unwrap_or_default());
    let path = {
        let p = sanitize_component(&request.page_path());
        if p.is_empty() {
            "index".to_owned()
        } else {
            p
        }
    };
    // :PATHNAME: before :PATH: so the longer placeholder is not eaten by the shorter.
    let substituted = raw
        .replace(":HOST:", &host)
        .replace(":PATHNAME:", &path)
        .replace(":PATH:", &path);
    shorten(&sanitize_component(&substituted))
}

/// Map arbitrary text onto name characters: trim `/` at both ends, inner `/` → `.`, every run of
/// other invalid characters → one `_`. Deterministic; distinct inputs may collide
/// (`/a b` and `/a_b` both give `a_b`), which only merges counters of pages whose paths
/// differ in punctuation.
pub fn sanitize_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_invalid_run = false;
    for c in text.trim_matches('/').chars() {
        if c.is_ascii() && is_name_byte(c as u8) {
            out.push(c);
            in_invalid_run = false;
        } else if c == '/' {
            out.push('.');
            in_invalid_run = false;
        } else if !in_invalid_run {
            out.push('_');
            in_invalid_run = true;
        }
    }
    out
}

/// Fit a substituted name into [`MAX_NAME_LEN`]: 47 characters, `-`, 16 hex digits of its SHA-256.
fn shorten(name: &str) -> String {
    if name.len() <= MAX_NAME_LEN {
        return name.to_owned();
    }
    let digest = hex::encode(&Sha256::digest(name.as_bytes())[..8]);
    // `name` is ASCII after sanitizing, so byte slicing is on character boundaries.
    format!("{}-{}", &name[..MAX_NAME_LEN - 17], digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(
        origin: Option<&'a str>,
        referer: Option<&'a str>,
        host: Option<&'a str>,
    ) -> RequestContext<'a> {
        RequestContext {
            origin,
            referer,
            host,
            page: None,
        }
    }

    #[test]
    fn the_page_parameter_wins_over_the_headers() {
        let cross_origin = RequestContext {
            origin: Some("https://blog.example"),
            referer: Some("https://blog.example/"),
            host: Some("count.example"),
            page: Some("/posts/hello%20world/?utm=x#top"),
        };
        assert_eq!(cross_origin.page_path(), "/posts/hello world/");
        assert_eq!(cross_origin.page_host().as_deref(), Some("blog.example"));
        let name = Name::resolve(":HOST:", ":PATH:", &cross_origin).unwrap();
        assert_eq!(name.path(), "blog.example/posts.hello_world");
        let absolute = RequestContext {
            page: Some("https://Other.Example:8443/a/b"),
            ..cross_origin
        };
        assert_eq!(absolute.page_host().as_deref(), Some("other.example"));
        assert_eq!(absolute.page_path(), "/a/b");
        // Neither a URL nor a path: the headers decide.
        let junk = RequestContext {
            page: Some("not a page"),
            ..cross_origin
        };
        assert_eq!(junk.page_path(), "/");
        assert_eq!(junk.page_host().as_deref(), Some("blog.example"));
    }

    #[test]
    fn the_rule() {
        for ok in ["abc", "a.b", "A_b-9", &"x".repeat(64)] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            "",
            "a/b",
            "a b",
            "ünï",
            "a:b",
            &"x".repeat(65),
            "{ab}",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert_eq!(
            Name::parse("ab", "home").unwrap_err().to_string(),
            "Malformed Namespace/Key"
        );
        assert_eq!(Name::parse("blog", "x y").unwrap_err().part, NamePart::Key);
    }

    #[test]
    fn one_segment_uses_the_default_namespace() {
        let name = Name::from_segments(&["home"], &RequestContext::default()).unwrap();
        assert_eq!(name.path(), "default/home");
        let name = Name::from_segments(&["blog", "home"], &RequestContext::default()).unwrap();
        assert_eq!(name.path(), "blog/home");
        assert!(Name::from_segments(&[], &RequestContext::default()).is_err());
        assert!(Name::from_segments(&["a", "b", "c"], &RequestContext::default()).is_err());
    }

    #[test]
    fn placeholders_come_from_origin_and_referer() {
        let c = ctx(
            Some("https://Example.com:8443"),
            Some("https://example.com/blog/post-1/?utm=x#top"),
            Some("api.edgecount.dev"),
        );
        let name = Name::resolve(":HOST:", ":PATH:", &c).unwrap();
        assert_eq!(name.path(), "example.com/blog.post-1");
        assert_eq!(
            Name::resolve("site", "page-:PATHNAME:", &c)
                .unwrap()
                .key
                .as_str(),
            "page-blog.post-1"
        );
    }

    #[test]
    fn placeholders_fall_back_to_host_and_root() {
        let c = ctx(None, None, Some("localhost:8787"));
        let name = Name::resolve(":HOST:", ":PATH:", &c).unwrap();
        assert_eq!(name.path(), "localhost/index");
        // `Origin: null` (sandboxed iframes, file://) names no host.
        let c = ctx(Some("null"), Some("https://a.example/x"), None);
        assert_eq!(c.page_host().as_deref(), Some("a.example"));
        // Nothing at all: the host is empty and the name too short.
        assert!(Name::resolve(":HOST:", "k-:PATH:", &RequestContext::default()).is_err());
    }

    #[test]
    fn invalid_characters_map_deterministically() {
        assert_eq!(sanitize_component("/blog/post-1/"), "blog.post-1");
        assert_eq!(sanitize_component("/a b/%C3%A7/ü"), "a_b._C3_A7._");
        assert_eq!(sanitize_component("/"), "");
        let c = ctx(None, Some("https://x.dev/caf%C3%A9 menu/"), None);
        assert_eq!(resolve_placeholders(":PATH:", &c), "caf_menu");
    }

    #[test]
    fn long_substitutions_are_hash_shortened_stably() {
        let long_path = format!("https://x.dev/{}", "segment/".repeat(20));
        let c = ctx(None, Some(&long_path), None);
        let a = resolve_placeholders(":PATH:", &c);
        assert_eq!(a.len(), MAX_NAME_LEN);
        assert!(is_valid_name(&a), "{a}");
        assert_eq!(a, resolve_placeholders(":PATH:", &c));
        let other = format!("https://x.dev/{}x", "segment/".repeat(20));
        let b = resolve_placeholders(":PATH:", &ctx(None, Some(&other), None));
        assert_eq!(a[..47], b[..47]);
        assert_ne!(a, b);
        // Typed names are never rewritten: too long is refused.
        assert!(Name::parse("blog", &"k".repeat(65)).is_err());
    }
}
