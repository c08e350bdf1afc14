//! Real components for integration tests: a private redis-server per test, the real binaries.
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod backend;
pub mod cluster;
pub mod direct;
pub mod eventually;
pub mod redis_server;

#[allow(unused_imports)] // each test binary uses its own subset
pub use eventually::{eventually, eventually_async, PATIENCE};
pub use redis_server::RedisServer;
pub mod edge;
pub mod proxy;
pub mod workerd;

/// Run `command` to completion in its own process group, output captured; the group is killed
/// (and the test fails) when it outlives `limit`.
pub fn run_with_timeout(
    mut command: std::process::Command,
    limit: std::time::Duration,
) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let group = child.id() as i32;
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(limit) {
        Ok(output) => output.expect("wait for the child"),
        Err(_) => {
            // SAFETY: signalling a process group we created.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            panic!("{command:?} still running after {limit:?}");
        }
    }
}
