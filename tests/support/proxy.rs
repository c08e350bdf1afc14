//! The real `edgecount` binary as a process: `edgecount proxy` in front of a test redis-server, or
//! `edgecount serve` in front of a proxy. `--listen 127.0.0.1:0`, its own process group, the URL
//! read from its startup line, killed (group) on drop. Its output (the tracing log included) is
//! captured so tests can check what it logs.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::RedisServer;

pub struct ProxyProcess {
    child: Option<Child>,
    url: String,
    token: String,
    log: Arc<Mutex<Vec<u8>>>,
    /// How it was started (subcommand, arguments, environment), for [`ProxyProcess::restart`].
    launch: Launch,
}

#[derive(Clone)]
struct Launch {
    subcommand: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The child's descriptor limit (RLIMIT_NOFILE), lowered to this when given.
    open_files: Option<u64>,
}

/// Start the proxy for `redis` with `token` and default settings.
pub fn spawn_proxy(redis: &RedisServer, token: &str) -> ProxyProcess {
    spawn_proxy_with(&[redis.url()], token, &[], &[])
}

/// Start the proxy with extra flags (e.g. `["--read-only-token", "ro"]`) and environment.
pub fn spawn_proxy_with(
    redis_urls: &[String],
    token: &str,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> ProxyProcess {
    let mut args = vec!["--token", token];
    for url in redis_urls {
        args.extend(["--redis-url", url.as_str()]);
    }
    args.extend(extra_args);
    let mut proxy = spawn("proxy", &args, env, None);
    proxy.token = token.to_string();
    proxy
}

/// Like [`spawn_proxy_with`], the child's descriptor limit (RLIMIT_NOFILE, soft and hard)
/// lowered to `open_files` (never raised).
pub fn spawn_proxy_with_open_files(
    redis_urls: &[String],
    token: &str,
    extra_args: &[&str],
    open_files: u64,
) -> ProxyProcess {
    let mut args = vec!["--token", token];
    for url in redis_urls {
        args.extend(["--redis-url", url.as_str()]);
    }
    args.extend(extra_args);
    let mut proxy = spawn("proxy", &args, &[], Some(open_files));
    proxy.token = token.to_string();
    proxy
}

/// Start `edgecount proxy` with exactly these arguments and environment (no `--token`, no
/// `--redis-url`: the databases come from `--databases` or `SRH_*`).
pub fn spawn_proxy_bare(args: &[&str], env: &[(&str, &str)]) -> ProxyProcess {
    spawn("proxy", args, env, None)
}

/// Start `edgecount serve` (the binary: its CLI and environment as users run them) in front of
/// the REST endpoint `rest_url` with `token`, with more environment (`EDGECOUNT_*`).
pub fn spawn_serve(rest_url: &str, token: &str, env: &[(&str, &str)]) -> ProxyProcess {
    let mut serve = spawn(
        "serve",
        &["--rest-url", rest_url, "--rest-token", token],
        env,
        None,
    );
    serve.token = token.to_string();
    serve
}

/// Start `edgecount serve` with exactly these arguments and environment: nothing is passed for
/// it, so the REST endpoint and token may come from `UPSTASH_REDIS_REST_URL`/`…_TOKEN` alone.
pub fn spawn_serve_with(args: &[&str], env: &[(&str, &str)]) -> ProxyProcess {
    spawn("serve", args, env, None)
}

/// Like [`spawn_serve_with`] (no environment), the child's descriptor limit lowered to
/// `open_files` as in [`spawn_proxy_with_open_files`].
pub fn spawn_serve_with_open_files(args: &[&str], open_files: u64) -> ProxyProcess {
    spawn("serve", args, &[], Some(open_files))
}

/// Variables of ours that must not leak from the test's own environment into a child.
const OWN_VARIABLES: &[&str] = &[
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
    "EDGECOUNT_READ_ONLY_TOKEN",
    "EDGECOUNT_REDIS_URL",
    "EDGECOUNT_REPLICA_URLS",
    "EDGECOUNT_DURABLE_WRITES",
    "EDGECOUNT_LISTEN",
    "EDGECOUNT_MAX_BODY",
    "EDGECOUNT_ALLOW_ADMIN_COMMANDS",
    "EDGECOUNT_ADMIN_TOKEN",
    "EDGECOUNT_RATE_LIMITS",
    "EDGECOUNT_TIERS",
    "EDGECOUNT_FAIL_MODE",
    "EDGECOUNT_GATEWAY_ROUTES",
    "EDGECOUNT_GATEWAY_POLICIES",
    "EDGECOUNT_GATEWAY_KEY",
    "EDGECOUNT_ORIGIN",
    "EDGECOUNT_TRUST_FORWARDED",
    "EDGECOUNT_METRICS_LISTEN",
    "EDGECOUNT_HEADER_READ_TIMEOUT_MS",
    "EDGECOUNT_IDLE_TIMEOUT_MS",
    "EDGECOUNT_MAX_CONNECTIONS",
    "EDGECOUNT_DATABASES",
    "SRH_MODE",
    "SRH_TOKEN",
    "SRH_CONNECTION_STRING",
    "SRH_MAX_CONNECTIONS",
    "SRH_PORT",
    "SRH_IPV6",
    "SRH_CONFIG",
];

/// `edgecount <subcommand> --listen 127.0.0.1:0 <args>` in its own process group, its URL read
/// from its startup line (`edgecount <subcommand> listening on URL`), its output captured.
fn spawn(
    subcommand: &str,
    args: &[&str],
    env: &[(&str, &str)],
    open_files: Option<u64>,
) -> ProxyProcess {
    let launch = Launch {
        subcommand: subcommand.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        open_files,
    };
    match start(&launch, "127.0.0.1:0", Arc::default()) {
        Ok(process) => process,
        Err(log) => panic!(
            "edgecount {subcommand} did not print its listening line within 20 s; log:\n{log}"
        ),
    }
}

/// Start `launch` listening on `listen`, its output appended to `log`; on failure, the log.
fn start(launch: &Launch, listen: &str, log: Arc<Mutex<Vec<u8>>>) -> Result<ProxyProcess, String> {
    let Launch {
        subcommand,
        args,
        env,
        open_files,
    } = launch;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgecount"));
    cmd.arg(subcommand)
        .args(["--listen", listen])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for name in OWN_VARIABLES {
        cmd.env_remove(name);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(open_files) = *open_files {
        // SAFETY: only setrlimit/getrlimit (async-signal-safe) run between fork and exec.
        unsafe {
            cmd.pre_exec(move || lower_open_files_limit(open_files));
        }
    }
    let mut child = cmd.spawn().expect("spawn the edgecount binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut stderr = stderr;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let banner = format!("edgecount {subcommand} listening on ");
    {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut sent = false;
            while let Some(Ok(line)) = lines.next() {
                if !sent {
                    if let Some(url) = line.strip_prefix(banner.as_str()) {
                        let _ = tx.send(url.trim().to_string());
                        sent = true;
                    }
                }
                let mut log = log.lock().unwrap();
                log.extend_from_slice(line.as_bytes());
                log.push(b'\n');
            }
        });
    }
    let mut process = ProxyProcess {
        child: Some(child),
        url: String::new(),
        token: String::new(),
        log,
        launch: launch.clone(),
    };
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(url) => {
            process.url = url;
            Ok(process)
        }
        Err(_) => {
            let log = process.log();
            drop(process);
            Err(log)
        }
    }
}

/// Lower this process's RLIMIT_NOFILE, soft and hard, to `open_files` (a limit already lower
/// stays as it is).
fn lower_open_files_limit(open_files: u64) -> std::io::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit.rlim_max = limit.rlim_max.min(open_files as libc::rlim_t);
        limit.rlim_cur = limit.rlim_cur.min(limit.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl ProxyProcess {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Everything the process wrote so far (stdout and stderr).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Send a signal to the proxy process itself (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: signalling the child we spawned.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    /// Wait up to `timeout` for the process to exit; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL the process (if still running) and start it again with the same arguments and
    /// environment on the same address, so its clients need no new URL. Retries for up to 5 s
    /// while the port is not yet free again; the log continues the old one.
    pub fn restart(&mut self) {
        self.kill();
        let listen = self
            .url
            .strip_prefix("http://")
            .expect("an http:// URL")
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match start(&self.launch, &listen, self.log.clone()) {
                Ok(mut process) => {
                    assert_eq!(process.url, self.url, "restarted on another address");
                    self.child = process.child.take();
                    return;
                }
                Err(log) if Instant::now() >= deadline => {
                    panic!(
                        "edgecount {} did not restart on {listen}; log:\n{log}",
                        self.launch.subcommand
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling the process group we created for this child.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
