//! The `edgecount` command line: a thin dispatcher. Each subcommand's flags and `run` live in its
//! own module (`edgecount::proxy`, `edgecount::serve`, `edgecount::migrate`).

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: fewer instructions per request and less memory held after
/// bursts (BENCHMARKS.md, "Where the proxy's time goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "edgecount",
    version,
    about = "Count things and limit things at the edge, on Redis, over HTTP (Upstash REST) or RESP."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upstash-compatible REST server in front of a real Redis (or Redis Cluster).
    Proxy(edgecount::proxy::ProxyArgs),
    /// The counter and rate-limit API natively: over Upstash REST (--rest-url) or RESP straight
    /// to Redis or a Redis Cluster (--redis-url).
    Serve(edgecount::serve::ServeArgs),
    /// Copy counters from a CountAPI- or Abacus-compatible service into edgecount.
    Migrate(edgecount::migrate::MigrateArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .event_format(edgecount::request_id::LogFormat)
        .init();
    let cli = Cli::parse();
    // A databases configuration the proxy cannot serve is a usage error, like a bad flag.
    if let Command::Proxy(args) = &cli.command {
        if let Err(e) = edgecount::proxy::tenants::resolve(args) {
            eprintln!("edgecount: {e}");
            return std::process::ExitCode::from(2);
        }
    }
    let threads = match &cli.command {
        Command::Proxy(args) => Some(args.worker_threads()),
        Command::Serve(args) => Some(args.worker_threads()),
        Command::Migrate(_) => None,
    };
    let runtime = match runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgecount: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = runtime.block_on(async {
        match cli.command {
            Command::Proxy(args) => edgecount::proxy::run(args).await.map_err(|e| e.to_string()),
            Command::Serve(args) => edgecount::serve::run(args).await.map_err(|e| e.to_string()),
            Command::Migrate(args) => edgecount::migrate::run(args)
                .await
                .map_err(|e| e.to_string()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgecount: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A multi-threaded runtime with `threads` workers (tokio's default when `None`).
fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    builder.enable_all().build()
}
