//! `edgecount migrate`: copy counters from any CountAPI- or Abacus-compatible service (through
//! its public `GET /get/{ns}/{key}` and, where it has one, `GET /info/{ns}/{key}`) into an
//! edgecount deployment (its `POST /import`, with the admin token) or into an NDJSON file that
//! `POST /import` takes later. Those services cannot list a namespace, so the keys are given.
//!
//! Importing is idempotent: a counter that already exists at the destination is skipped, so a
//! migration that stopped half-way is finished by running it again.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use serde_json::Value;

use crate::core::counter::transfer::{self, ExportedCounter};
use crate::core::names::{CounterKey, Name, Namespace};

/// Requests to the old service in flight at once: polite to a service one is leaving.
const CONCURRENCY: usize = 4;
/// Counters per `POST /import` (bodies stay small; the destination checks each whole).
const IMPORT_BATCH: usize = 500;

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// The service to copy from, e.g. `https://api.countapi.xyz` or `https://abacus.jasoncameron.dev`.
    #[arg(long)]
    pub from: String,
    /// The namespace there.
    #[arg(long)]
    pub namespace: String,
    /// The keys to copy, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "keys_file",
        required_unless_present = "keys_file"
    )]
    pub keys: Vec<String>,
    /// A file with the keys to copy, one a line (blank lines and `#` comments are skipped).
    #[arg(long)]
    pub keys_file: Option<PathBuf>,
    /// The edgecount deployment to copy into (its `POST /import`).
    #[arg(long, required_unless_present = "out", conflicts_with = "out")]
    pub to: Option<String>,
    /// The destination's admin token.
    #[arg(long, env = "EDGECOUNT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Write the NDJSON an import takes to this file instead of sending it (`-` for stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The namespace at the destination [default: the same].
    #[arg(long)]
    pub to_namespace: Option<String>,
}

/// The admin token never reaches a log line, not even through `{:?}`.
impl std::fmt::Debug for MigrateArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateArgs")
            .field("from", &self.from)
            .field("namespace", &self.namespace)
            .field("keys", &self.keys)
            .field("keys_file", &self.keys_file)
            .field("to", &self.to)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("out", &self.out)
            .field("to_namespace", &self.to_namespace)
            .finish()
    }
}

/// Everything that can stop a migration before or while it runs.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Usage(String),
    #[error("the destination refused the import ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("{0}")]
    Http(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What a run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Lines written to `--out`.
    pub written: usize,
    pub imported: usize,
    pub skipped: usize,
    /// Keys the source could not give (missing there, or an answer we cannot read), with why.
    pub failed: Vec<(String, String)>,
}

/// Check every key and name before asking anything of anyone.
fn plan(args: &MigrateArgs) -> Result<(Namespace, Namespace, Vec<CounterKey>), MigrateError> {
    let usage = |m: String| MigrateError::Usage(m);
    let from_ns = Namespace::parse(&args.namespace).map_err(|_| {
        usage(format!(
            "--namespace {:?}: not a valid namespace",
            args.namespace
        ))
    })?;
    let to_ns = match &args.to_namespace {
        Some(ns) => Namespace::parse(ns)
            .map_err(|_| usage(format!("--to-namespace {ns:?}: not a valid namespace")))?,
        None => from_ns.clone(),
    };
    let raw: Vec<String> = match &args.keys_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| usage(format!("--keys-file {}: {e}", path.display())))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        None => args.keys.iter().map(|k| k.trim().to_owned()).collect(),
    };
    let mut keys = Vec::with_capacity(raw.len());
    for key in raw {
        let key =
            CounterKey::parse(&key).map_err(|_| usage(format!("key {key:?}: not a valid key")))?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(usage("no keys to migrate".to_owned()));
    }
    if args.to.is_some() && args.admin_token.as_deref().unwrap_or_default().is_empty() {
        return Err(usage(
            "--to needs the destination's admin token (--admin-token or EDGECOUNT_ADMIN_TOKEN)"
                .to_owned(),
        ));
    }
    Ok((from_ns, to_ns, keys))
}

/// A JSON answer of the source, or why not (`None` for a 404: the route or the counter is not
/// there).
async fn fetch_json(http: &reqwest::Client, url: &str) -> Result<Option<Value>, String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| e.without_url().to_string())?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| format!("not JSON: {e}"))
}

/// One counter from the source: `/get` (required), `/info` (its settings, if the service has it).
async fn read_counter(
    http: &reqwest::Client,
    from: &str,
    from_ns: &Namespace,
    key: &CounterKey,
    to: &Name,
) -> Result<ExportedCounter, String> {
    let get = fetch_json(http, &format!("{from}/get/{from_ns}/{key}"))
        .await?
        .ok_or("not found at the source")?;
    // A service without /info (or one refusing it) still gives the value.
    let info = fetch_json(http, &format!("{from}/info/{from_ns}/{key}"))
        .await
        .ok()
        .flatten();
    transfer::from_service(to, &get, info.as_ref())
}

/// Run a migration; `report` hears about each counter as it is read.
pub async fn migrate(args: &MigrateArgs, report: impl Fn(&str)) -> Result<Outcome, MigrateError> {
    let (from_ns, to_ns, keys) = plan(args)?;
    let from = args.from.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("edgecount-migrate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| MigrateError::Http(e.to_string()))?;
    let read: Vec<(CounterKey, Result<ExportedCounter, String>)> = stream::iter(keys)
        .map(|key| {
            let (http, from_ns, to_ns) = (&http, &from_ns, &to_ns);
            async move {
                let to = Name {
                    ns: to_ns.clone(),
                    key: key.clone(),
                };
                let counter = read_counter(http, from, from_ns, &key, &to).await;
                (key, counter)
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut outcome = Outcome::default();
    let mut lines = Vec::new();
    for (key, counter) in read {
        match counter {
            Ok(counter) => {
                report(&format!("{from_ns}/{key}: {}", counter.value));
                lines.push(serde_json::to_string(&counter).expect("a counter serialises"));
            }
            Err(why) => {
                report(&format!("{from_ns}/{key}: {why}"));
                outcome.failed.push((key.to_string(), why));
            }
        }
    }
    match (&args.out, &args.to) {
        (Some(path), _) => {
            let mut text = lines.join("\n");
            text.push('\n');
            if path.as_os_str() == "-" {
                print!("{text}");
            } else {
                std::fs::write(path, text)?;
            }
            outcome.written = lines.len();
        }
        (None, Some(to)) => {
            let url = format!("{}/import", to.trim_end_matches('/'));
            let token = args.admin_token.as_deref().unwrap_or_default();
            for batch in lines.chunks(IMPORT_BATCH) {
                let response = http
                    .post(&url)
                    .bearer_auth(token)
                    .header("content-type", "application/x-ndjson")
                    .body(batch.join("\n"))
                    .send()
                    .await
                    .map_err(|e| MigrateError::Http(format!("{url}: {}", e.without_url())))?;
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                if status != 200 {
                    return Err(MigrateError::Refused { status, body });
                }
                let answer: Value =
                    serde_json::from_str(&body).map_err(|_| MigrateError::Refused {
                        status,
                        body: body.clone(),
                    })?;
                let count = |field: &str| answer[field].as_u64().unwrap_or(0) as usize;
                outcome.imported += count("imported");
                outcome.skipped += count("skipped");
            }
        }
        (None, None) => unreachable!("clap requires --to or --out"),
    }
    Ok(outcome)
}

/// `edgecount migrate …`: prints each counter, then a summary; fails when any counter could not
/// be read (after importing the others).
pub async fn run(args: MigrateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let to_stdout = args.out.as_deref().is_some_and(|p| p.as_os_str() == "-");
    // With the NDJSON on stdout, progress goes to stderr.
    let outcome = migrate(&args, |line| {
        if to_stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    })
    .await?;
    let summary = match &args.out {
        Some(path) => format!(
            "wrote {} counters to {} (failed {})",
            outcome.written,
            path.display(),
            outcome.failed.len()
        ),
        None => format!(
            "migrated {} counters: imported {}, skipped {} (already there), failed {}",
            outcome.imported + outcome.skipped,
            outcome.imported,
            outcome.skipped,
            outcome.failed.len()
        ),
    };
    if to_stdout {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    if outcome.failed.is_empty() {
        Ok(())
    } else {
        let keys: Vec<&str> = outcome.failed.iter().map(|(k, _)| k.as_str()).collect();
        Err(format!("could not read {} of them: {}", keys.len(), keys.join(", ")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_admin_token() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: MigrateArgs,
        }
        let cli = Cli::parse_from([
            "x",
            "--from",
            "https://api.countapi.xyz",
            "--namespace",
            "site",
            "--keys",
            "home",
            "--to",
            "http://127.0.0.1:8787",
            "--admin-token",
            "admin-Zq81",
        ]);
        let shown = format!("{:?}", cli.args);
        assert!(!shown.contains("admin-Zq81"), "{shown}");
        assert!(
            shown.contains("countapi") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
