//! Which Redis database a token reaches: the proxy's own `--databases` file
//! (`EDGECOUNT_DATABASES`) and serverless-redis-http's configuration ([`super::srh`]) both become
//! one list of [`Database`]s, validated as a whole before the proxy starts.
//!
//! With one database the proxy is exactly what `--token`/`--redis-url` make it (see [`resolve`]).

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::{redact_url, ProxyArgs};

/// `--databases`: several tokens, each its own Redis database.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct DatabaseArgs {
    /// JSON file of databases, one per token:
    /// `{"<token>": {"name": "a", "redis_url": "redis://…", "connections": 2,
    /// "read_only_token": "…"}}` (`connections`, `read_only_token` optional). Replaces
    /// `--token`/`--redis-url`. serverless-redis-http's `SRH_MODE=env` (`SRH_TOKEN`,
    /// `SRH_CONNECTION_STRING`, `SRH_MAX_CONNECTIONS`, `SRH_PORT`, `SRH_IPV6`) and `SRH_MODE=file`
    /// (its `tokens.json`, at `SRH_CONFIG` or `/app/srh-config/tokens.json`) are read too.
    #[arg(long = "databases", env = "EDGECOUNT_DATABASES")]
    pub databases: Option<PathBuf>,
}

/// One token's Redis database.
#[derive(Clone, PartialEq, Eq)]
pub struct Database {
    /// Its name in logs (and its `/metrics` label); never the token.
    pub name: String,
    pub token: String,
    pub read_only_token: Option<String>,
    pub redis_url: String,
    /// Multiplexed connections (`--redis-connections` when `None`).
    pub connections: Option<usize>,
}

/// Tokens and URL passwords never reach a log line.
impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field(
                "read_only_token",
                &self.read_only_token.as_ref().map(|_| "<redacted>"),
            )
            .field("redis_url", &redact_url(&self.redis_url))
            .field("connections", &self.connections)
            .finish()
    }
}

/// A configuration the proxy refuses to start with (the CLI exits with status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn err<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(message.into()))
}

/// A JSON object's members in file order, duplicates kept (a map would keep the last silently).
pub(crate) struct Members<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Members<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Members<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of token → database")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members<V>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    redis_url: String,
    #[serde(default)]
    connections: Option<usize>,
    #[serde(default)]
    read_only_token: Option<String>,
}

/// Our `--databases` file. Serde's messages name the line and column, never a value.
pub fn parse_databases(json: &str) -> Result<Vec<Database>, ConfigError> {
    let members: Members<Entry> = serde_json::from_str(json)
        .map_err(|e| ConfigError(format!("--databases: not a valid databases file: {e}")))?;
    Ok(members
        .0
        .into_iter()
        .map(|(token, e)| Database {
            name: e.name,
            token,
            read_only_token: e.read_only_token,
            redis_url: e.redis_url,
            connections: e.connections,
        })
        .collect())
}

/// The whole list, before anything starts: names, tokens, URLs, connection counts.
pub fn validate(databases: &[Database]) -> Result<(), ConfigError> {
    if databases.is_empty() {
        return err("the databases configuration lists no database");
    }
    let mut names = std::collections::HashSet::new();
    let mut tokens: Vec<(&str, &str)> = Vec::new();
    for db in databases {
        let name = &db.name;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return err(format!(
                "database name {name:?}: use letters, digits, '_', '-' or '.' (it is a metrics label)"
            ));
        }
        if !names.insert(name.as_str()) {
            return err(format!("database name {name:?} is given twice"));
        }
        if db.token.is_empty() {
            return err(format!("database {name:?}: its token is empty"));
        }
        if db.read_only_token.as_deref() == Some("") {
            return err(format!("database {name:?}: its read-only token is empty"));
        }
        for (kind, token) in std::iter::once(("token", db.token.as_str())).chain(
            db.read_only_token
                .as_deref()
                .map(|t| ("read-only token", t)),
        ) {
            if let Some((other, _)) = tokens.iter().find(|(_, t)| *t == token) {
                return err(format!(
                    "database {name:?}: its {kind} is also a token of database {other:?} \
                     (each token reaches one database)"
                ));
            }
            tokens.push((name.as_str(), token));
        }
        if let Err(e) = redis::IntoConnectionInfo::into_connection_info(db.redis_url.as_str()) {
            return err(format!(
                "database {name:?}: unusable Redis URL {}: {e}",
                redact_url(&db.redis_url)
            ));
        }
        if db.connections == Some(0) {
            return err(format!(
                "database {name:?}: connections (max_connections) must be at least 1"
            ));
        }
    }
    Ok(())
}

/// What the proxy serves, from its flags and environment.
#[derive(Debug)]
pub enum Resolved {
    /// One database: these arguments, as if given with `--token`/`--redis-url`.
    One(Box<ProxyArgs>),
    /// Several: each database's name and arguments (its token, URL, connections).
    Several(Vec<(String, ProxyArgs)>),
}

/// `args` with `--databases` or serverless-redis-http's variables applied.
pub fn resolve(args: &ProxyArgs) -> Result<Resolved, ConfigError> {
    resolve_with(args, &|name| std::env::var(name).ok())
}

pub(crate) fn resolve_with(
    args: &ProxyArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, ConfigError> {
    let srh = super::srh::from_env(
        env,
        args.databases.databases.is_none() && args.token.is_empty(),
    )?;
    let (databases, listen) = match (&args.databases.databases, srh) {
        (Some(_), Some(_)) => return err("give either --databases or SRH_MODE, not both"),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("--databases: cannot read {}: {e}", path.display()))
            })?;
            (parse_databases(&text)?, None)
        }
        (None, Some(srh)) => (srh.databases, Some(srh.listen)),
        (None, None) => {
            if args.token.is_empty() {
                return err(
                    "no token: give --token (UPSTASH_REDIS_REST_TOKEN), --databases \
                     (EDGECOUNT_DATABASES) or SRH_MODE",
                );
            }
            return Ok(Resolved::One(Box::new(args.clone())));
        }
    };
    if !args.token.is_empty() || args.read_only_token.is_some() {
        return err(
            "--token/--read-only-token cannot be combined with --databases or SRH_MODE: each \
             database has its own",
        );
    }
    if args.cluster || !args.replica_url.is_empty() {
        return err("--cluster and --replica-url cannot be combined with --databases or SRH_MODE");
    }
    validate(&databases)?;
    let mut each: Vec<(String, ProxyArgs)> = databases
        .into_iter()
        .map(|db| {
            let mut a = args.clone();
            a.redis_url = vec![db.redis_url];
            a.token = db.token;
            a.read_only_token = db.read_only_token;
            a.redis_connections = db.connections.or(args.redis_connections);
            if let Some(listen) = listen {
                a.listen = listen;
            }
            (db.name, a)
        })
        .collect();
    if each.len() == 1 {
        return Ok(Resolved::One(Box::new(each.remove(0).1)));
    }
    Ok(Resolved::Several(each))
}

/// Several databases behind one listener: the token picks the database's own state (backend,
/// pub/sub hub, script map, sync tokens, metrics) before anything else happens.
pub struct Tenants {
    states: Vec<std::sync::Arc<super::ProxyState>>,
}

impl Tenants {
    /// The state whose token (or read-only token) is presented; every one compared, in
    /// constant time each. No known token: the first database's, which answers 401 (or the
    /// public `/openapi.json`) exactly as a single database would.
    fn pick(&self, request: &axum::extract::Request) -> &std::sync::Arc<super::ProxyState> {
        let mut found = None;
        for state in &self.states {
            if state
                .authorize(request.headers(), request.uri().query())
                .is_ok()
            {
                found = found.or(Some(state));
            }
        }
        found.unwrap_or(&self.states[0])
    }

    /// Every database's figures in one OpenMetrics text (`--metrics-listen`).
    pub fn render(&self) -> String {
        merge_openmetrics(self.states.iter().map(|s| s.metrics.render()))
    }
}

async fn handle_tenants(
    axum::extract::State(tenants): axum::extract::State<std::sync::Arc<Tenants>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let state = tenants.pick(&request).clone();
    super::handle(axum::extract::State(state), request).await
}

/// Several texts of the same families (differing by their `database` label) as one: each
/// family's header once, its samples from every text in turn, one `# EOF`.
pub fn merge_openmetrics(texts: impl Iterator<Item = String>) -> String {
    // Family name → (the text its header comes from, header lines, samples).
    let mut order: Vec<String> = Vec::new();
    let mut families: std::collections::HashMap<String, (usize, String, String)> =
        Default::default();
    for (i, text) in texts.enumerate() {
        let mut current = String::new();
        for line in text.lines() {
            if line == "# EOF" {
                continue;
            }
            let header = line.strip_prefix("# ");
            if let Some(rest) = header {
                current = rest.split(' ').nth(1).unwrap_or("").to_string();
            }
            let entry = families.entry(current.clone()).or_insert_with(|| {
                order.push(current.clone());
                (i, String::new(), String::new())
            });
            let part = match header {
                Some(_) if entry.0 == i => &mut entry.1,
                Some(_) => continue,
                None => &mut entry.2,
            };
            part.push_str(line);
            part.push('\n');
        }
    }
    let mut out = String::new();
    for name in order {
        let (_, head, samples) = &families[&name];
        out.push_str(head);
        out.push_str(samples);
    }
    out.push_str("# EOF\n");
    out
}

/// `run` for several databases: one backend and state each, one listener.
pub async fn run_several(
    each: Vec<(String, ProxyArgs)>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use std::sync::Arc;
    let first = &each[0].1;
    let mut states = Vec::with_capacity(each.len());
    for (name, args) in &each {
        let mut state = super::ProxyState::new(args)?;
        state.metrics = super::metrics::Metrics::for_database(name);
        states.push(Arc::new(state));
    }
    let tenants = Arc::new(Tenants {
        states: states.clone(),
    });
    let render = {
        let tenants = tenants.clone();
        move || tenants.render()
    };
    let app = axum::Router::new()
        .fallback(handle_tenants)
        .with_state(tenants);
    super::serve_until_stopped(first, app, states, render, |addr| {
        for (name, args) in &each {
            tracing::info!(
                database = %name,
                redis = ?args.redis_url.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
                read_only_token = args.read_only_token.is_some(),
                "database"
            );
        }
        tracing::info!(
            %addr,
            databases = each.len(),
            max_body = first.max_body,
            allow_admin_commands = first.allow_admin_commands,
            "edgecount proxy started"
        );
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str, token: &str) -> Database {
        Database {
            name: name.into(),
            token: token.into(),
            read_only_token: None,
            redis_url: "redis://127.0.0.1:6390".into(),
            connections: None,
        }
    }

    #[test]
    fn our_file_parses_in_order() {
        let dbs = parse_databases(
            r#"{"tok-a": {"name": "a", "redis_url": "redis://h:1", "connections": 2,
                "read_only_token": "ro-a"}, "tok-b": {"name": "b", "redis_url": "redis://h:2"}}"#,
        )
        .unwrap();
        assert_eq!(dbs.len(), 2);
        assert_eq!(
            (dbs[0].name.as_str(), dbs[0].token.as_str()),
            ("a", "tok-a")
        );
        assert_eq!(dbs[0].connections, Some(2));
        assert_eq!(dbs[0].read_only_token.as_deref(), Some("ro-a"));
        assert_eq!((dbs[1].name.as_str(), dbs[1].connections), ("b", None));
        assert!(validate(&dbs).is_ok());
    }

    #[test]
    fn unknown_fields_and_bad_json_are_refused() {
        let e = parse_databases(r#"{"t": {"name": "a", "redis_url": "redis://h", "pool": 1}}"#)
            .unwrap_err();
        assert!(e.0.contains("pool"), "{e}");
        assert!(parse_databases("[1]").is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let dup = parse_databases(
            r#"{"t": {"name": "a", "redis_url": "redis://h"}, "t": {"name": "b", "redis_url": "redis://h"}}"#,
        )
        .unwrap();
        let e = validate(&dup).unwrap_err().0;
        assert!(e.contains("\"b\"") && e.contains("\"a\""), "{e}");
        assert!(validate(&[]).is_err());
        assert!(validate(&[db("a", "")]).unwrap_err().0.contains("empty"));
        let mut ro = db("b", "t2");
        ro.read_only_token = Some("t1".into());
        let e = validate(&[db("a", "t1"), ro]).unwrap_err().0;
        assert!(e.contains("read-only token") && !e.contains("t1\""), "{e}");
        let mut bad = db("a", "t");
        bad.redis_url = "http://user:pw@h/".into();
        let e = validate(&[bad]).unwrap_err().0;
        assert!(e.contains("Redis URL") && !e.contains("pw@"), "{e}");
        let mut zero = db("a", "t");
        zero.connections = Some(0);
        assert!(validate(&[zero]).unwrap_err().0.contains("at least 1"));
        assert!(validate(&[db("a", "t"), db("a", "u")])
            .unwrap_err()
            .0
            .contains("twice"));
        assert!(validate(&[db("a b", "t")]).is_err());
    }

    #[test]
    fn debug_hides_tokens_and_passwords() {
        let mut d = db("a", "tok-123");
        d.read_only_token = Some("ro-456".into());
        d.redis_url = "redis://u:pw-789@h:1".into();
        let s = format!("{d:?}");
        assert!(!s.contains("tok-123") && !s.contains("ro-456") && !s.contains("pw-789"));
    }

    #[test]
    fn metrics_of_several_databases_merge_by_family() {
        let a = crate::proxy::metrics::Metrics::for_database("a");
        let b = crate::proxy::metrics::Metrics::for_database("b");
        a.commands(2);
        b.commands(5);
        let text = merge_openmetrics([a.render(), b.render()].into_iter());
        assert!(
            text.contains(r#"edgecount_proxy_commands_total{database="a"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"edgecount_proxy_commands_total{database="b"} 5"#),
            "{text}"
        );
        assert_eq!(
            text.matches("# TYPE edgecount_proxy_commands counter")
                .count(),
            1
        );
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn without_a_config_the_flags_stand() {
        let args = ProxyArgs::new("redis://h:1", "t");
        let Resolved::One(one) = resolve_with(&args, &|_| None).unwrap() else {
            panic!("one database")
        };
        assert_eq!((one.token.as_str(), one.listen), ("t", args.listen));
        let e = resolve_with(&ProxyArgs::new("redis://h:1", ""), &|_| None).unwrap_err();
        assert!(e.0.contains("no token"), "{e}");
    }
}
