//! Secrets in logs: URLs without their passwords or tokens (used by the proxy and serve).

/// A Redis or REST URL for logs: without its password, and without the value of a `_token`
/// query parameter (the REST API's other way to pass the token).
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "<unparsable url>".to_string();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("redacted"));
    }
    if u.query_pairs().any(|(name, _)| name == "_token") {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(name, value)| {
                let value = if name == "_token" {
                    "redacted".into()
                } else {
                    value
                };
                (name.into_owned(), value.into_owned())
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_in_logs() {
        let r = redact_url("redis://user:s3cret@localhost:6379/0");
        assert!(!r.contains("s3cret"), "{r}");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        let r = redact_url("https://eu1.example.upstash.io/?a=1&_token=AX9kq");
        assert!(!r.contains("AX9kq") && r.contains("a=1"), "{r}");
        assert_eq!(redact_url("not a url"), "<unparsable url>");
    }
}
