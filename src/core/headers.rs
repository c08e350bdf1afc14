//! Request headers as the rules read them: (lower-case name, value) pairs in arrival order.
//!
//! Why not `http::HeaderMap` for requests: every way of building one from a runtime's header
//! names parses each name against the `http` crate's table of standard headers, ~12 KB of the
//! worker's wasm and a lookup per header per request, for a map the API only ever scans for a
//! handful of names. Answers still use `http` types (their names are constants).

/// The headers of one request. Names are lower-cased on the way in; a repeated name stays
/// repeated (`Cookie` may come several times).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHeaders(Vec<(String, String)>);

impl RequestHeaders {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one header (the name is lower-cased).
    pub fn append(&mut self, name: &str, value: &str) {
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (any case), in arrival order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every (name, value) pair, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The values of the `name=value` cookies called `cookie`, across every `Cookie` header.
    pub fn cookies<'a>(&'a self, cookie: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all("cookie")
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(move |(k, _)| *k == cookie)
            .map(|(_, v)| v)
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for RequestHeaders {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut headers = RequestHeaders::new();
        for (name, value) in pairs {
            headers.append(name.as_ref(), value.as_ref());
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_any_case_and_repeats_are_kept() {
        let headers: RequestHeaders = [
            ("User-Agent", "x"),
            ("cookie", "a=1; b=2"),
            ("Cookie", "b=3"),
        ]
        .into_iter()
        .collect();
        assert_eq!(headers.get("user-agent"), Some("x"));
        assert_eq!(headers.get("USER-AGENT"), Some("x"));
        assert_eq!(headers.get("origin"), None);
        assert_eq!(headers.get_all("cookie").count(), 2);
        assert_eq!(headers.cookies("b").collect::<Vec<_>>(), ["2", "3"]);
        assert_eq!(headers.iter().next(), Some(("user-agent", "x")));
    }
}
