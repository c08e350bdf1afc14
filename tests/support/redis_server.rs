//! A private redis-server for one test: a free loopback port, its own temp dir, `--save ""`,
//! in its own process group, killed on drop. Never the machine's Redis on 6379.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
}

/// Run a prepared redis-cli command: its stdout (trailing whitespace trimmed) when it exits 0,
/// else its exit status and stderr.
pub fn cli_output(command: &mut Command) -> Result<String, String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli (apt-get install redis-tools)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(format!(
            "{}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end(),
            String::from_utf8_lossy(&out.stdout).trim_end()
        ))
    }
}

/// A port that was free a moment ago (the OS picks it; we release it for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

impl RedisServer {
    pub fn start() -> Self {
        Self::with_args(&[])
    }

    /// Start with extra `redis-server` arguments (e.g. `["--appendonly", "yes"]`).
    pub fn with_args(extra: &[&str]) -> Self {
        Self::with_args_on(extra, free_port)
    }

    /// Start with extra arguments on a port `pick` chooses (e.g. one whose cluster bus port,
    /// port + 10000, is valid and free too). Another process can take the port between the
    /// probe and redis binding it (or its bus port): each failed start picks again.
    pub fn with_args_on(extra: &[&str], mut pick: impl FnMut() -> u16) -> Self {
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir: tempfile::tempdir().expect("temp dir for redis"),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        for _ in 0..10 {
            server.port = pick();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start after 10 attempts (is it installed?)");
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            // DEBUG DIGEST-VALUE for `snapshot` (local clients only, as every test client is).
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let _ = status; // exited: most likely the port was taken
                self.child = None;
                return false;
            }
            if self.ping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// True when the server answers PING.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Run one command with redis-cli and return its raw output (for assertions beside the API).
    /// Panics, with redis-cli's stderr, when redis-cli fails (it could not connect, say): an
    /// empty output must mean an empty answer, never "nothing was asked". An error *reply*
    /// (`ERR …`) is output like any other.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|failure| panic!("redis-cli {args:?} on port {}: {failure}", self.port))
    }

    /// [`RedisServer::cli`] for a caller that expects redis-cli may fail (the server is down):
    /// `Err` with the exit status and stderr.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        cli_output(
            Command::new("redis-cli")
                .args(["-p", &self.port.to_string()])
                .args(args),
        )
    }

    /// Every key matching `pattern` with its `PTTL` (ms; -1 none, -2 expired since `KEYS`), for
    /// the "every key the scripts write expires" checks.
    pub fn key_pttls(&self, pattern: &str) -> Vec<(String, i64)> {
        self.cli(&["KEYS", pattern])
            .lines()
            .filter(|key| !key.is_empty())
            .map(|key| {
                let pttl = self.cli(&["PTTL", key]);
                let pttl = pttl
                    .parse()
                    .unwrap_or_else(|_| panic!("PTTL {key}: {pttl}"));
                (key.to_owned(), pttl)
            })
            .collect()
    }

    /// The whole keyspace: every key with its type, the digest Redis computes of its value
    /// (`DEBUG DIGEST-VALUE`: every byte of a string, every member of a set, field of a hash…,
    /// independent of the order a hash table happens to iterate in, which even a read may change
    /// while the table rehashes) and its absolute expiry (`PEXPIRETIME`, -1 when none). Two
    /// snapshots are equal exactly when nothing was written in between (a refreshed TTL is a
    /// write too).
    pub fn snapshot(&self) -> Snapshot {
        let client = redis::Client::open(self.url()).expect("redis url");
        let mut conn = client.get_connection().expect("connect to test redis");
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut conn).expect("KEYS");
        let mut snapshot = Snapshot::default();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).expect("TYPE");
            let digest: Vec<String> = redis::cmd("DEBUG")
                .arg("DIGEST-VALUE")
                .arg(&key)
                .query(&mut conn)
                .expect("DEBUG DIGEST-VALUE (the test server enables DEBUG for local clients)");
            let expiry: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query(&mut conn)
                .expect("PEXPIRETIME");
            if kind != "none" {
                let value = format!("{kind} {}", digest.concat()).into_bytes();
                snapshot.0.insert(key, (value, expiry));
            }
        }
        snapshot
    }

    /// If Redis's clock is less than `margin_s` seconds before the next whole minute, wait
    /// until just after it: for tests whose steps must fall in one per-minute window.
    pub fn wait_clear_of_minute_boundary(&self, margin_s: u64) {
        let time = self.cli(&["TIME"]);
        let seconds: u64 = time
            .lines()
            .next()
            .and_then(|s| s.trim().parse().ok())
            .expect("TIME");
        let left = 60 - seconds % 60;
        if left < margin_s {
            std::thread::sleep(std::time::Duration::from_secs(left + 1));
        }
    }

    /// Stop the server (simulating an outage); `restart` brings it back on the same port.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling the process group we created for this child.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server did not restart on port {}",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The keyspace as [`RedisServer::snapshot`] read it: key → (type and value digest, PEXPIRETIME).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot(pub std::collections::BTreeMap<Vec<u8>, (Vec<u8>, i64)>);

impl Snapshot {
    /// The keys that differ from `earlier` (added, removed or changed), readable, for messages.
    pub fn changes_since(&self, earlier: &Snapshot) -> Vec<String> {
        let name = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        let mut changes = Vec::new();
        for (key, now) in &self.0 {
            match earlier.0.get(key) {
                None => changes.push(format!("+ {}", name(key))),
                Some(before) if before != now => changes.push(format!("~ {}", name(key))),
                Some(_) => {}
            }
        }
        for key in earlier.0.keys().filter(|k| !self.0.contains_key(*k)) {
            changes.push(format!("- {}", name(key)));
        }
        changes
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}
