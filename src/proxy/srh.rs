//! serverless-redis-http's (SRH, hiett/serverless-redis-http) documented configuration, read
//! as SRH reads it, so its `docker run`, compose and GitHub Actions setups work unchanged:
//!
//! - `SRH_MODE=env`: `SRH_TOKEN`, `SRH_CONNECTION_STRING`, `SRH_MAX_CONNECTIONS` (one database).
//! - `SRH_MODE=file` (SRH's default): its `tokens.json`, `{"<token>": {"srh_id": "…",
//!   "connection_string": "redis://…", "max_connections": 3}}`, at `SRH_CONFIG` (ours) or
//!   `/app/srh-config/tokens.json`. Without `SRH_MODE`, that file is used when it exists and no
//!   `--token`/`--databases` is given.
//! - `SRH_PORT` (default 80) and `SRH_IPV6=true` (`::` instead of `0.0.0.0`): the listen address
//!   whenever SRH's configuration is used (`--listen` is then ignored).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Deserialize;

use super::tenants::{err, ConfigError, Database, Members};

/// Where SRH's image reads its tokens file.
pub const DEFAULT_TOKENS_FILE: &str = "/app/srh-config/tokens.json";

/// SRH's databases and listen address.
#[derive(Debug)]
pub struct Srh {
    pub databases: Vec<Database>,
    pub listen: SocketAddr,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    srh_id: Option<String>,
    connection_string: String,
    #[serde(default)]
    max_connections: Option<usize>,
}

/// SRH's `tokens.json`; a database is named by its `srh_id` (`db<N>`, in file order, without).
pub fn parse_tokens(json: &str) -> Result<Vec<Database>, ConfigError> {
    let members: Members<Entry> = serde_json::from_str(json)
        .map_err(|e| ConfigError(format!("SRH tokens file: not valid: {e}")))?;
    Ok(members
        .0
        .into_iter()
        .enumerate()
        .map(|(i, (token, e))| Database {
            name: e.srh_id.unwrap_or_else(|| format!("db{}", i + 1)),
            token,
            read_only_token: None,
            redis_url: e.connection_string,
            connections: e.max_connections,
        })
        .collect())
}

/// SRH's configuration from `env`, if any. `implicit_file`: no configuration of ours was given,
/// so SRH's default (file mode at its default path) applies when that file exists.
pub fn from_env(
    env: &dyn Fn(&str) -> Option<String>,
    implicit_file: bool,
) -> Result<Option<Srh>, ConfigError> {
    let mode = env("SRH_MODE");
    let file = env("SRH_CONFIG").unwrap_or_else(|| DEFAULT_TOKENS_FILE.to_string());
    let databases = match mode.as_deref().map(str::trim) {
        Some("env") => {
            let Some(token) = env("SRH_TOKEN") else {
                return err("SRH_MODE=env needs SRH_TOKEN");
            };
            let Some(url) = env("SRH_CONNECTION_STRING") else {
                return err("SRH_MODE=env needs SRH_CONNECTION_STRING");
            };
            let connections = match env("SRH_MAX_CONNECTIONS") {
                None => None,
                Some(n) => Some(n.trim().parse::<usize>().map_err(|_| {
                    ConfigError(format!("SRH_MAX_CONNECTIONS: not a number: {n:?}"))
                })?),
            };
            vec![Database {
                name: "default".into(),
                token,
                read_only_token: None,
                redis_url: url,
                connections,
            }]
        }
        Some("file") => read_tokens(&file)?,
        Some(other) => return err(format!("SRH_MODE: {other:?} is neither env nor file")),
        None if implicit_file && std::path::Path::new(&file).is_file() => read_tokens(&file)?,
        None => return Ok(None),
    };
    let port = match env("SRH_PORT") {
        None => 80,
        Some(p) => p
            .trim()
            .parse::<u16>()
            .map_err(|_| ConfigError(format!("SRH_PORT: not a port: {p:?}")))?,
    };
    let ipv6 = env("SRH_IPV6").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let listen = if ipv6 {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))
    } else {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
    };
    Ok(Some(Srh { databases, listen }))
}

fn read_tokens(path: &str) -> Result<Vec<Database>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("SRH_MODE=file: cannot read {path}: {e}")))?;
    parse_tokens(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn env_mode_is_one_database_on_port_80() {
        let srh = from_env(
            &env_of(&[
                ("SRH_MODE", "env"),
                ("SRH_TOKEN", "tok"),
                ("SRH_CONNECTION_STRING", "redis://redis:6379"),
            ]),
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(srh.databases.len(), 1);
        assert_eq!(srh.databases[0].token, "tok");
        assert_eq!(srh.databases[0].redis_url, "redis://redis:6379");
        assert_eq!(srh.listen, "0.0.0.0:80".parse().unwrap());
        let srh = from_env(
            &env_of(&[
                ("SRH_MODE", "env"),
                ("SRH_TOKEN", "tok"),
                ("SRH_CONNECTION_STRING", "redis://redis:6379"),
                ("SRH_MAX_CONNECTIONS", "7"),
                ("SRH_PORT", "8080"),
                ("SRH_IPV6", "true"),
            ]),
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(srh.databases[0].connections, Some(7));
        assert_eq!(srh.listen, "[::]:8080".parse().unwrap());
    }

    #[test]
    fn env_mode_names_what_is_missing() {
        let e = from_env(&env_of(&[("SRH_MODE", "env"), ("SRH_TOKEN", "t")]), true).unwrap_err();
        assert!(e.0.contains("SRH_CONNECTION_STRING"), "{e}");
        let e = from_env(&env_of(&[("SRH_MODE", "redis")]), true).unwrap_err();
        assert!(e.0.contains("SRH_MODE"), "{e}");
        assert!(from_env(&env_of(&[]), false).unwrap().is_none());
    }

    #[test]
    fn tokens_json_as_srh_documents_it() {
        let dbs = parse_tokens(
            r#"{"example_token": {"srh_id": "some_unique_identifier",
                "connection_string": "redis://localhost:6379", "max_connections": 3},
                "other": {"connection_string": "redis://localhost:6380"}}"#,
        )
        .unwrap();
        assert_eq!(dbs[0].name, "some_unique_identifier");
        assert_eq!(dbs[0].token, "example_token");
        assert_eq!(dbs[0].connections, Some(3));
        assert_eq!((dbs[1].name.as_str(), dbs[1].connections), ("db2", None));
    }
}
