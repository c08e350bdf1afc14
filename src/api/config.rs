//! Service configuration, read once from the same variable names everywhere: `[vars]` and
//! secrets in the worker, environment variables (or clap flags) natively.

use std::time::Duration;

pub use crate::core::ratelimit::FailMode;
use crate::core::ratelimit::{Algorithm, PolicySet, Tiers};

/// Which origins may read our answers from a browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    pub fn allow(&self, origin: Option<&str>) -> Option<String> {
        match self {
            AllowedOrigins::Any => Some("*".to_owned()),
            AllowedOrigins::List(list) => {
                let origin = origin?;
                list.iter()
                    .any(|o| o.eq_ignore_ascii_case(origin))
                    .then(|| origin.to_owned())
            }
        }
    }
}

/// How gateway mode tells clients apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientKey {
    Ip,
    Header(String),
    Cookie(String),
}

impl ClientKey {
    fn parse(spec: &str) -> Option<ClientKey> {
        let spec = spec.trim();
        if spec.eq_ignore_ascii_case("ip") {
            return Some(ClientKey::Ip);
        }
        let (kind, name) = spec.split_once(':')?;
        let name = name.trim();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        match kind.trim() {
            "header" if valid => Some(ClientKey::Header(name.to_ascii_lowercase())),
            "cookie" if valid => Some(ClientKey::Cookie(name.to_owned())),
            _ => None,
        }
    }
}

/// Which policies gateway mode checks for which paths: `EDGECOUNT_GATEWAY_ROUTES`
/// (`/login*=login; /api/*=api+daily; /static/*=-; *=site`), the first route whose pattern
/// matches the path deciding. A pattern is a path, matched exactly, or a prefix ending in `*`
/// (`*` alone matches every path); `-` limits nothing. A path no route matches is forwarded
/// without a limit. `EDGECOUNT_GATEWAY_POLICIES=a+b` is the one route `*=a+b`; with neither
/// variable, `*` = every configured policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayRoutes {
    routes: Vec<GatewayRoute>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct GatewayRoute {
    /// The path, or the prefix before a final `*`.
    pattern: String,
    prefix: bool,
    /// `a+b`, or empty for `-`.
    policies: String,
}

impl GatewayRoutes {
    /// Parse `spec` (see [`GatewayRoutes`]), checking every policy list against `policies`; the
    /// error names the bad entry.
    pub fn parse(spec: &str, policies: &PolicySet) -> Result<GatewayRoutes, String> {
        let mut routes = Vec::new();
        for entry in spec.split([';', '\n']).map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("route \"{entry}\": {why}");
            let (pattern, list) = entry
                .rsplit_once('=')
                .ok_or_else(|| bad("expected <path pattern>=<policies>, e.g. /api/*=api+daily"))?;
            let (pattern, list) = (pattern.trim(), list.trim());
            let (pattern, prefix) = match pattern.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (pattern, false),
            };
            if pattern.contains('*') {
                return Err(bad("`*` may only end a pattern"));
            }
            if !(pattern.starts_with('/') || pattern.is_empty() && prefix) {
                return Err(bad(
                    "a pattern is a path starting with / (or * for every path)",
                ));
            }
            let policies_of_route = if list == "-" {
                String::new()
            } else {
                rate_limits_only(policies, list).map_err(|e| bad(&e))?;
                list.to_owned()
            };
            routes.push(GatewayRoute {
                pattern: pattern.to_owned(),
                prefix,
                policies: policies_of_route,
            });
        }
        if routes.is_empty() {
            return Err("no routes (expected e.g. /login*=login; *=site)".into());
        }
        Ok(GatewayRoutes { routes })
    }

    /// Every path checks `list` (`a+b`; empty: nothing).
    fn everything(list: String) -> GatewayRoutes {
        GatewayRoutes {
            routes: vec![GatewayRoute {
                pattern: String::new(),
                prefix: true,
                policies: list,
            }],
        }
    }

    /// The policy list (`a+b`) gateway mode checks for `path`; `None` to forward it unlimited.
    pub fn policies_for(&self, path: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|r| {
                if r.prefix {
                    path.starts_with(&r.pattern)
                } else {
                    path == r.pattern
                }
            })
            .map(|r| r.policies.as_str())
            .filter(|list| !list.is_empty())
    }
}

/// Check a gateway policy list: configured rate limits (a concurrency limit needs a lease,
/// which a forwarded request does not take).
fn rate_limits_only(policies: &PolicySet, list: &str) -> Result<(), String> {
    let selected = policies.select(list).map_err(|e| e.to_string())?;
    match selected
        .iter()
        .find(|p| p.algorithm() == Algorithm::Concurrency)
    {
        Some(p) => Err(format!(
            "policy \"{}\" is a concurrency limit: gateway routes take rate limits",
            p.name()
        )),
        None => Ok(()),
    }
}

/// How long one read of a counter's value answers further reads, unless configured.
pub const DEFAULT_READ_CACHE: Duration = Duration::from_millis(250);

/// Refusals the block cache keeps at most (`core::ratelimit::blocks`): about 300 bytes each.
pub const BLOCK_CACHE_ENTRIES: usize = 512;

/// Everything the API needs besides the store. Built with [`Config::from_lookup`].
#[derive(Clone)]
pub struct Config {
    /// `EDGECOUNT_ADMIN_TOKEN`: admin over every counter and limit.
    pub admin_token: Option<String>,
    /// `EDGECOUNT_UNIQUES_SECRET`: HMAC key for visitor hashing (uniques are off without it).
    pub uniques_secret: Option<String>,
    /// `EDGECOUNT_ALLOWED_ORIGINS`: comma-separated origins, or `*` (default).
    pub allowed_origins: AllowedOrigins,
    /// `EDGECOUNT_RATE_LIMITS`: named policies (`api=sliding:100/60s; daily=fixed:10000/1d`).
    pub rate_limits: PolicySet,
    /// `EDGECOUNT_TIERS`: other limits for the identities put on a tier
    /// (`pro: api=sliding:5000/60s; free: api=sliding:100/60s`).
    pub tiers: Tiers,
    /// `EDGECOUNT_FAIL_MODE`: `open` (default) or `closed`.
    pub fail_mode: FailMode,
    /// `EDGECOUNT_ORIGIN`: gateway mode, forward non-API requests here after the limit.
    pub origin: Option<String>,
    /// `EDGECOUNT_GATEWAY_ROUTES` (or `EDGECOUNT_GATEWAY_POLICIES`): the policies gateway mode
    /// checks, per path; default: every configured policy on every path.
    pub gateway_routes: GatewayRoutes,
    /// `EDGECOUNT_GATEWAY_KEY`: whom gateway mode limits: `ip` (default), `header:<name>` or
    /// `cookie:<name>` (falling back to the IP when absent).
    pub gateway_key: ClientKey,
    /// `EDGECOUNT_ABUSE_LIMIT`: per-IP hits allowed on counter routes per window
    /// (`0` turns it off); default 120 per 60 s.
    pub abuse_limit: u64,
    pub abuse_window: Duration,
    /// `EDGECOUNT_DEV_CLIENT_IP`, for local development only: the client address to assume when
    /// the runtime gives none (a bare workerd has no `CF-Connecting-IP`), so uniques and the abuse
    /// limit work in `./scripts/dev.sh`. Never set it in production: every visitor would be one.
    pub dev_client_ip: Option<String>,
    /// `EDGECOUNT_READ_CACHE_MS`: how long one read of a counter's value answers further reads
    /// of it (default 250 ms, `0` = off, at most 60 s); hits and writes are never cached.
    pub read_cache: Duration,
    /// `EDGECOUNT_BLOCK_CACHE`: `1` (default) answers an identity's later consumes from memory
    /// once Redis refused it, until the refusal could end (`core::ratelimit::blocks`); `0` asks
    /// Redis every time. Per policy: `cache=off`.
    pub block_cache: bool,
}

/// The admin token and the uniques secret never reach a log line, not even through `{:?}`.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("admin_token", &redacted(&self.admin_token))
            .field("uniques_secret", &redacted(&self.uniques_secret))
            .field("allowed_origins", &self.allowed_origins)
            .field("rate_limits", &self.rate_limits)
            .field("tiers", &self.tiers)
            .field("fail_mode", &self.fail_mode)
            .field("origin", &self.origin)
            .field("gateway_routes", &self.gateway_routes)
            .field("gateway_key", &self.gateway_key)
            .field("abuse_limit", &self.abuse_limit)
            .field("abuse_window", &self.abuse_window)
            .field("dev_client_ip", &self.dev_client_ip)
            .field("read_cache", &self.read_cache)
            .field("block_cache", &self.block_cache)
            .finish()
    }
}

/// A configuration value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    pub name: &'static str,
    pub message: String,
}

impl Config {
    /// Read every setting through `lookup(name)`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let allowed_origins = match get("EDGECOUNT_ALLOWED_ORIGINS") {
            None => AllowedOrigins::Any,
            Some(v) if v.trim() == "*" => AllowedOrigins::Any,
            Some(v) => AllowedOrigins::List(
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
        };
        let fail_mode = match get("EDGECOUNT_FAIL_MODE").as_deref().map(str::trim) {
            None | Some("open") => FailMode::Open,
            Some("closed") => FailMode::Closed,
            Some(other) => {
                return Err(ConfigError {
                    name: "EDGECOUNT_FAIL_MODE",
                    message: format!("expected `open` or `closed`, got \"{other}\""),
                })
            }
        };
        let abuse_limit = match get("EDGECOUNT_ABUSE_LIMIT") {
            None => 120,
            Some(v) => v.trim().parse().map_err(|_| ConfigError {
                name: "EDGECOUNT_ABUSE_LIMIT",
                message: format!("expected a whole number, got \"{v}\""),
            })?,
        };
        let read_cache = match get("EDGECOUNT_READ_CACHE_MS") {
            None => DEFAULT_READ_CACHE,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(ms) if ms <= 60_000 => Duration::from_millis(ms),
                _ => {
                    return Err(ConfigError {
                        name: "EDGECOUNT_READ_CACHE_MS",
                        message: format!(
                            "expected milliseconds from 0 (off) to 60000, got \"{v}\""
                        ),
                    })
                }
            },
        };
        let block_cache = match get("EDGECOUNT_BLOCK_CACHE").as_deref().map(str::trim) {
            None | Some("1") => true,
            Some("0") => false,
            Some(other) => {
                return Err(ConfigError {
                    name: "EDGECOUNT_BLOCK_CACHE",
                    message: format!("expected 1 (on) or 0 (off), got \"{other}\""),
                })
            }
        };
        if let Some(origin) = get("EDGECOUNT_ORIGIN") {
            let ok = origin
                .parse::<http::Uri>()
                .map(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
                .unwrap_or(false);
            if !ok {
                return Err(ConfigError {
                    name: "EDGECOUNT_ORIGIN",
                    message: format!("expected an http(s) URL, got \"{origin}\""),
                });
            }
        }
        let rate_limits = PolicySet::parse(&get("EDGECOUNT_RATE_LIMITS").unwrap_or_default())
            .map_err(|e| ConfigError {
                name: "EDGECOUNT_RATE_LIMITS",
                message: e.to_string(),
            })?;
        let tiers = Tiers::parse(&get("EDGECOUNT_TIERS").unwrap_or_default(), &rate_limits)
            .map_err(|e| ConfigError {
                name: "EDGECOUNT_TIERS",
                message: e.to_string(),
            })?;
        let gateway_routes = match (
            get("EDGECOUNT_GATEWAY_ROUTES"),
            get("EDGECOUNT_GATEWAY_POLICIES"),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError {
                    name: "EDGECOUNT_GATEWAY_ROUTES",
                    message: "set it or EDGECOUNT_GATEWAY_POLICIES, not both \
                              (EDGECOUNT_GATEWAY_POLICIES=a+b is the route *=a+b)"
                        .into(),
                })
            }
            (Some(spec), None) => {
                GatewayRoutes::parse(&spec, &rate_limits).map_err(|message| ConfigError {
                    name: "EDGECOUNT_GATEWAY_ROUTES",
                    message,
                })?
            }
            (None, Some(list)) => {
                let list = list.trim().to_owned();
                rate_limits_only(&rate_limits, &list).map_err(|message| ConfigError {
                    name: "EDGECOUNT_GATEWAY_POLICIES",
                    message,
                })?;
                GatewayRoutes::everything(list)
            }
            (None, None) => GatewayRoutes::everything(
                rate_limits
                    .iter()
                    .filter(|p| p.algorithm() != Algorithm::Concurrency)
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join("+"),
            ),
        };
        let gateway_key = match get("EDGECOUNT_GATEWAY_KEY") {
            None => ClientKey::Ip,
            Some(spec) => ClientKey::parse(&spec).ok_or_else(|| ConfigError {
                name: "EDGECOUNT_GATEWAY_KEY",
                message: format!(
                    "expected `ip`, `header:<name>` or `cookie:<name>`, got \"{spec}\""
                ),
            })?,
        };
        Ok(Config {
            admin_token: get("EDGECOUNT_ADMIN_TOKEN"),
            uniques_secret: get("EDGECOUNT_UNIQUES_SECRET"),
            allowed_origins,
            rate_limits,
            tiers,
            fail_mode,
            origin: get("EDGECOUNT_ORIGIN").map(|o| o.trim_end_matches('/').to_owned()),
            gateway_routes,
            gateway_key,
            abuse_limit,
            abuse_window: Duration::from_secs(60),
            dev_client_ip: get("EDGECOUNT_DEV_CLIENT_IP").map(|ip| ip.trim().to_owned()),
            read_cache,
            block_cache,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_open_and_permissive() {
        let c = config(&[]).unwrap();
        assert_eq!(c.fail_mode, FailMode::Open);
        assert_eq!(c.allowed_origins, AllowedOrigins::Any);
        assert_eq!(c.abuse_limit, 120);
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn debug_output_never_shows_the_secrets() {
        let c = config(&[
            ("EDGECOUNT_ADMIN_TOKEN", "admin-Zq81"),
            ("EDGECOUNT_UNIQUES_SECRET", "uniq-Kx42"),
            ("EDGECOUNT_RATE_LIMITS", "api=sliding:5/1s"),
        ])
        .unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(
            !shown.contains("admin-Zq81") && !shown.contains("uniq-Kx42"),
            "{shown}"
        );
        assert!(
            shown.contains("<redacted>") && shown.contains("api"),
            "{shown}"
        );
    }

    #[test]
    fn origins_list_echoes_only_listed_origins() {
        let c = config(&[(
            "EDGECOUNT_ALLOWED_ORIGINS",
            "https://a.example, https://b.example/",
        )])
        .unwrap();
        assert_eq!(
            c.allowed_origins.allow(Some("https://b.example")),
            Some("https://b.example".into())
        );
        assert_eq!(c.allowed_origins.allow(Some("https://evil.example")), None);
        assert_eq!(c.allowed_origins.allow(None), None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = config(&[("EDGECOUNT_FAIL_MODE", "maybe")]).unwrap_err();
        assert_eq!(e.name, "EDGECOUNT_FAIL_MODE");
        assert!(config(&[("EDGECOUNT_ORIGIN", "ftp://x")]).is_err());
        assert!(config(&[("EDGECOUNT_ABUSE_LIMIT", "-1")]).is_err());
        assert!(config(&[("EDGECOUNT_RATE_LIMITS", "api=sliding:0/60s")]).is_err());
        let e = config(&[
            ("EDGECOUNT_RATE_LIMITS", "api=sliding:100/60s"),
            ("EDGECOUNT_GATEWAY_POLICIES", "api+nope"),
        ])
        .unwrap_err();
        assert_eq!(e.name, "EDGECOUNT_GATEWAY_POLICIES");
        assert!(config(&[("EDGECOUNT_GATEWAY_KEY", "header:")]).is_err());
        for bad in ["-1", "fast", "60001"] {
            let e = config(&[("EDGECOUNT_READ_CACHE_MS", bad)]).unwrap_err();
            assert_eq!(e.name, "EDGECOUNT_READ_CACHE_MS", "{bad}");
        }
    }

    #[test]
    fn the_block_cache_is_on_unless_0_says_off() {
        assert!(config(&[]).unwrap().block_cache);
        assert!(
            config(&[("EDGECOUNT_BLOCK_CACHE", "1")])
                .unwrap()
                .block_cache
        );
        assert!(
            !config(&[("EDGECOUNT_BLOCK_CACHE", "0")])
                .unwrap()
                .block_cache
        );
        let e = config(&[("EDGECOUNT_BLOCK_CACHE", "yes")]).unwrap_err();
        assert_eq!(e.name, "EDGECOUNT_BLOCK_CACHE");
    }

    #[test]
    fn the_read_cache_window_defaults_to_250_ms_and_0_turns_it_off() {
        assert_eq!(config(&[]).unwrap().read_cache, Duration::from_millis(250));
        let off = config(&[("EDGECOUNT_READ_CACHE_MS", "0")]).unwrap();
        assert_eq!(off.read_cache, Duration::ZERO);
    }

    #[test]
    fn gateway_routes_pick_the_first_match() {
        let c = config(&[
            (
                "EDGECOUNT_RATE_LIMITS",
                "login=fixed:5/1m; api=sliding:100/1m; daily=fixed:10000/1d; site=gcra:50/1s",
            ),
            (
                "EDGECOUNT_GATEWAY_ROUTES",
                "/login*=login; /api/*=api+daily\n/static/*=-; /exact=api; *=site",
            ),
        ])
        .unwrap();
        let routes = &c.gateway_routes;
        assert_eq!(routes.policies_for("/login"), Some("login"));
        assert_eq!(routes.policies_for("/login/reset"), Some("login"));
        assert_eq!(routes.policies_for("/api/v1/users"), Some("api+daily"));
        assert_eq!(routes.policies_for("/api"), Some("site"));
        assert_eq!(routes.policies_for("/static/app.js"), None);
        assert_eq!(routes.policies_for("/exact"), Some("api"));
        assert_eq!(routes.policies_for("/exact/more"), Some("site"));
        assert_eq!(routes.policies_for("/"), Some("site"));
    }

    #[test]
    fn gateway_defaults_and_the_older_variable() {
        let limits = (
            "EDGECOUNT_RATE_LIMITS",
            "a=fixed:1/1s; b=fixed:2/1s; c=concurrency:2/10s",
        );
        let c = config(&[limits]).unwrap();
        assert_eq!(c.gateway_routes.policies_for("/x"), Some("a+b"));
        let c = config(&[limits, ("EDGECOUNT_GATEWAY_POLICIES", "b")]).unwrap();
        assert_eq!(c.gateway_routes.policies_for("/x"), Some("b"));
        // Without policies, gateway mode limits nothing.
        assert_eq!(config(&[]).unwrap().gateway_routes.policies_for("/x"), None);
    }

    #[test]
    fn bad_gateway_routes_name_the_entry() {
        let limits = (
            "EDGECOUNT_RATE_LIMITS",
            "api=sliding:100/1m; conc=concurrency:3/10s",
        );
        for (spec, needle) in [
            (
                "/api/*=nope",
                "route \"/api/*=nope\": unknown rate-limit policy \"nope\"",
            ),
            ("/api/*", "expected <path pattern>=<policies>"),
            ("/a*b=api", "may only end"),
            ("api=api", "starting with /"),
            ("/api/*=api+api", "named twice"),
            (" ; ", "no routes"),
            ("/jobs/*=conc", "concurrency limit"),
        ] {
            let e = config(&[limits, ("EDGECOUNT_GATEWAY_ROUTES", spec)]).unwrap_err();
            assert_eq!(e.name, "EDGECOUNT_GATEWAY_ROUTES");
            assert!(e.message.contains(needle), "{spec}: {}", e.message);
        }
        let e = config(&[
            limits,
            ("EDGECOUNT_GATEWAY_ROUTES", "*=api"),
            ("EDGECOUNT_GATEWAY_POLICIES", "api"),
        ])
        .unwrap_err();
        assert!(e.message.contains("not both"));
    }

    #[test]
    fn gateway_key_forms() {
        let key = |v: &str| config(&[("EDGECOUNT_GATEWAY_KEY", v)]).unwrap().gateway_key;
        assert_eq!(key("ip"), ClientKey::Ip);
        assert_eq!(
            key("header:X-Api-Key"),
            ClientKey::Header("x-api-key".into())
        );
        assert_eq!(key("cookie:session"), ClientKey::Cookie("session".into()));
    }
}
