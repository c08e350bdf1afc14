//! The edge worker in a real workerd (the npm `workerd` binary, run directly: no Node, no
//! wrangler, ~0.1 s to start). Each spawn gets its own temp dir holding a copy of the modules and a
//! generated capnp config, a free loopback port, its own process group (killed on drop), and an
//! outbound network that may reach loopback (the proxy on 127.0.0.1).
//!
//! - [`spawn_worker`]: the built Rust worker (`scripts/build-worker.sh`, run once per test process;
//!   set `EDGECOUNT_WORKER_PREBUILT=1` to use `build/` as it is without running the script).
//! - [`spawn_js_worker`]: a JavaScript module worker instead (bundled with esbuild first, so it
//!   may import npm packages such as `@upstash/redis/cloudflare`), for side-by-side benchmarks.
//! - [`WorkerConfig`]: the same with compatibility flags, extra modules or another date.
//!
//! Several instances may run at once (each spawn is independent).

use std::fmt::Write as _;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::redis_server::free_port;

/// Newest date the pinned workerd (1.20260730.x) supports, and what wrangler.toml uses.
pub const COMPATIBILITY_DATE: &str = "2026-07-30";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workerd executable itself (not a Node launcher): `WORKERD_BIN`, else the platform
/// package npm installed, else `node_modules/workerd/bin/workerd`.
pub fn workerd_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WORKERD_BIN") {
        return PathBuf::from(bin);
    }
    let root = repo_root();
    let candidates = [
        root.join("node_modules/@cloudflare/workerd-linux-64/bin/workerd"),
        root.join("node_modules/workerd/bin/workerd"),
    ];
    for path in &candidates {
        let mut magic = [0u8; 4];
        let is_elf = std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && magic == *b"\x7fELF";
        if is_elf {
            return path.clone();
        }
    }
    panic!(
        "workerd binary not found under node_modules (looked at {candidates:?}); \
         run ./scripts/setup.sh (npm ci) or set WORKERD_BIN"
    );
}

/// The directory holding the worker's modules (`worker/shim.mjs`, `worker/index.wasm`, …), built once per test
/// process by `scripts/build-worker.sh` (which is itself a no-op when nothing changed and
/// serialises concurrent runs with a lock).
pub fn built_worker_dir() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let root = repo_root();
        let dir = root.join("build");
        if std::env::var_os("EDGECOUNT_WORKER_PREBUILT").is_none() {
            let out = Command::new(root.join("scripts/build-worker.sh"))
                .current_dir(&root)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("could not run scripts/build-worker.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "scripts/build-worker.sh failed ({}):\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        for file in WASM_MODULES.iter().map(|m| m.0) {
            if !dir.join(file).is_file() {
                return Err(format!(
                    "{} is missing: run ./scripts/build-worker.sh (after ./scripts/setup.sh)",
                    dir.join(file).display()
                ));
            }
        }
        Ok(dir)
    });
    match result {
        Ok(dir) => dir,
        Err(message) => panic!("the worker is not built: {message}"),
    }
}

#[derive(Clone, Copy, Debug)]
pub enum ModuleKind {
    EsModule,
    Wasm,
    Text,
    Data,
}

impl ModuleKind {
    fn capnp_field(self) -> &'static str {
        match self {
            ModuleKind::EsModule => "esModule",
            ModuleKind::Wasm => "wasm",
            ModuleKind::Text => "text",
            ModuleKind::Data => "data",
        }
    }
}

/// What scripts/build-worker.sh produces, by module name (the first is the main module; it imports
/// `./index.wasm`, and `./management.mjs` — which imports `./management.wasm` — on the first
/// management request).
const WASM_MODULES: [(&str, ModuleKind); 4] = [
    ("worker/shim.mjs", ModuleKind::EsModule),
    ("worker/index.wasm", ModuleKind::Wasm),
    ("worker/management.mjs", ModuleKind::EsModule),
    ("worker/management.wasm", ModuleKind::Wasm),
];

/// One workerd worker service to run: its modules (the first is the entry point), text
/// bindings, compatibility date and flags.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// (module name, kind, file to copy).
    modules: Vec<(String, ModuleKind, PathBuf)>,
    env: Vec<(String, String)>,
    compatibility_date: String,
    compatibility_flags: Vec<String>,
    /// A directory served read-only by a disk service bound as `ASSETS` (the static files).
    assets: Option<PathBuf>,
}

impl WorkerConfig {
    /// The Rust worker, built by `scripts/build-worker.sh`, with `web/` as its static files.
    pub fn wasm() -> Self {
        let dir = built_worker_dir();
        let mut config = Self::with_modules(
            WASM_MODULES
                .iter()
                .map(|(name, kind)| (name.to_string(), *kind, dir.join(name)))
                .collect(),
        );
        config.assets = Some(repo_root().join("web"));
        config
    }

    /// A JavaScript module worker, bundled with esbuild into one ES module first.
    pub fn js(script: &Path) -> Self {
        let bundle = bundle_js(script);
        Self::with_modules(vec![("worker.mjs".into(), ModuleKind::EsModule, bundle)])
    }

    pub fn with_modules(modules: Vec<(String, ModuleKind, PathBuf)>) -> Self {
        WorkerConfig {
            modules,
            env: Vec::new(),
            compatibility_date: COMPATIBILITY_DATE.to_string(),
            compatibility_flags: Vec::new(),
            assets: None,
        }
    }

    /// A text binding (`[vars]` / secrets in wrangler.toml), visible as `env.NAME`.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn envs(mut self, pairs: &[(&str, &str)]) -> Self {
        for (name, value) in pairs {
            self = self.env(name, value);
        }
        self
    }

    pub fn compatibility_flag(mut self, flag: &str) -> Self {
        self.compatibility_flags.push(flag.to_string());
        self
    }

    pub fn compatibility_date(mut self, date: &str) -> Self {
        self.compatibility_date = date.to_string();
        self
    }

    /// The capnp config serving this worker on `127.0.0.1:port`; module paths are relative to
    /// the config file (where [`WorkerConfig::spawn`] copies them).
    pub fn capnp(&self, port: u16) -> String {
        let mut modules = String::new();
        for (name, kind, _) in &self.modules {
            let _ = writeln!(
                modules,
                "    (name = {}, {} = embed {}),",
                capnp_str(name),
                kind.capnp_field(),
                capnp_str(name)
            );
        }
        let mut bindings = String::new();
        for (name, value) in &self.env {
            let _ = writeln!(
                bindings,
                "    (name = {}, text = {}),",
                capnp_str(name),
                capnp_str(value)
            );
        }
        let mut asset_service = String::new();
        if let Some(dir) = &self.assets {
            let _ = writeln!(bindings, "    (name = \"ASSETS\", service = \"assets\"),");
            asset_service = format!(
                "    (name = \"assets\", disk = (path = {}, writable = false)),\n",
                capnp_str(&dir.display().to_string())
            );
        }
        let flags = self
            .compatibility_flags
            .iter()
            .map(|f| capnp_str(f))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            r#"# Generated by tests/support/workerd.rs.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .mainWorker),
    # Outbound fetch(): the default "internet" service only reaches public addresses; the proxy
    # under test listens on 127.0.0.1.
    (name = "internet", network = (allow = ["public", "private"])),
{asset_service}  ],
  sockets = [ (name = "http", address = "127.0.0.1:{port}", http = (), service = "main") ],
);

const mainWorker :Workerd.Worker = (
  modules = [
{modules}  ],
  compatibilityDate = {date},
  compatibilityFlags = [{flags}],
  bindings = [
{bindings}  ],
  globalOutbound = "internet",
);
"#,
            date = capnp_str(&self.compatibility_date),
        )
    }

    /// Copy the modules into a fresh temp dir, write the config and start workerd on a free port.
    pub fn spawn(&self) -> WorkerProcess {
        let dir = tempfile::tempdir().expect("temp dir for workerd");
        for (name, _, source) in &self.modules {
            let dest = dir.path().join(name);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).expect("module dir");
            }
            std::fs::copy(source, &dest)
                .unwrap_or_else(|e| panic!("copy {} for workerd: {e}", source.display()));
        }
        let mut last_log = String::new();
        // Another process can take the port between our probe and workerd binding it: retry.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.capnp");
            std::fs::write(&config, self.capnp(port)).expect("write workerd config");
            match start(&config, port) {
                Ok((child, log)) => {
                    return WorkerProcess {
                        child: Some(child),
                        port,
                        log,
                        _dir: dir,
                    }
                }
                Err(log) => last_log = log,
            }
        }
        panic!("workerd did not start after 5 attempts; last log:\n{last_log}");
    }
}

/// A capnp text literal.
fn capnp_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

type Log = Arc<Mutex<Vec<u8>>>;

fn capture(mut from: impl Read + Send + 'static, log: Log) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            log.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
}

fn log_text(log: &Log) -> String {
    String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

fn kill_group(mut child: Child) {
    // SAFETY: signalling the process group we created for this child.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Start workerd and wait until it accepts connections; on failure, its log.
fn start(config: &Path, port: u16) -> Result<(Child, Log), String> {
    let mut child = Command::new(workerd_bin())
        .arg("serve")
        .arg(config)
        .arg("--verbose")
        .current_dir(config.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn workerd");
    let log: Log = Arc::default();
    capture(child.stdout.take().unwrap(), log.clone());
    capture(child.stderr.take().unwrap(), log.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(50)); // let the log threads drain
            return Err(format!("workerd exited ({status}):\n{}", log_text(&log)));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((child, log));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    kill_group(child);
    Err(format!(
        "workerd did not listen within 20 s:\n{}",
        log_text(&log)
    ))
}

/// A running workerd; killed (its whole process group) on drop.
pub struct WorkerProcess {
    child: Option<Child>,
    port: u16,
    log: Log,
    _dir: tempfile::TempDir,
}

impl WorkerProcess {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything workerd wrote so far (console output, uncaught errors).
    pub fn log(&self) -> String {
        log_text(&self.log)
    }

    pub fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            kill_group(child);
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Rust worker with these text bindings (e.g. `UPSTASH_REDIS_REST_URL`).
pub fn spawn_worker(env: &[(&str, &str)]) -> WorkerProcess {
    WorkerConfig::wasm().envs(env).spawn()
}

/// A JavaScript module worker (`export default { fetch }`), bundled with esbuild, with these
/// text bindings.
pub fn spawn_js_worker(script: &Path, env: &[(&str, &str)]) -> WorkerProcess {
    WorkerConfig::js(script).envs(env).spawn()
}

/// Bundle `entry` and its npm imports into one ES module for workerd (`cloudflare:*` and
/// `node:*` stay external; the `workerd`/`worker` export conditions pick the edge builds).
/// Written under `target/workerd-js/`; returns its path.
pub fn bundle_js(entry: &Path) -> PathBuf {
    let root = repo_root();
    let esbuild = [
        root.join("node_modules/@esbuild/linux-x64/bin/esbuild"),
        root.join("node_modules/.bin/esbuild"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("esbuild not found in node_modules: run ./scripts/setup.sh (npm ci)");
    let out_dir = root.join("target/workerd-js");
    std::fs::create_dir_all(&out_dir).expect("target/workerd-js");
    let stem = entry
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "worker".into());
    // One file per entry and process, so parallel tests never write the same file.
    let out = out_dir.join(format!("{stem}-{}.mjs", std::process::id()));
    let output = Command::new(esbuild)
        .arg(entry)
        .args([
            "--bundle",
            "--format=esm",
            "--platform=neutral",
            "--conditions=workerd,worker,browser",
            "--main-fields=module,main",
            "--external:cloudflare:*",
            "--external:node:*",
            "--log-level=warning",
        ])
        .arg(format!("--outfile={}", out.display()))
        // Resolve npm packages from the repo's node_modules even for entries outside the repo.
        .env("NODE_PATH", root.join("node_modules"))
        .current_dir(&root)
        .output()
        .expect("run esbuild");
    assert!(
        output.status.success(),
        "esbuild failed to bundle {}:\n{}",
        entry.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}
