"""Real components for the official Python client suite: a private redis-server (free loopback
port, temp dir, no persistence; never the machine's Redis on 6379) and the real `edgecount proxy`
binary in front of it. Each child runs in its own session/process group and is stopped by group id;
the group ids are appended to $EDGECOUNT_PGID_FILE so scripts/test.sh can stop leftovers if pytest
is killed hard."""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROXY_BIN = os.environ.get("EDGECOUNT_BIN") or str(ROOT / "target" / "debug" / "edgecount")
TOKEN = "python-client-test-token"

_groups: set = set()


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _kill_all_groups() -> None:
    for pid in list(_groups):
        _kill_group(pid)


def _start_group(args, **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(
        args,
        start_new_session=True,  # own process group: stopped with killpg
        stdin=subprocess.DEVNULL,
        **kwargs,
    )
    _groups.add(proc.pid)
    pgid_file = os.environ.get("EDGECOUNT_PGID_FILE")
    if pgid_file:
        with open(pgid_file, "a", encoding="ascii") as f:
            f.write(f"{proc.pid}\n")
    return proc


def _stop_group(proc: subprocess.Popen) -> None:
    _groups.discard(proc.pid)
    _kill_group(proc.pid)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(7) == b"+PONG\r\n"
    except OSError:
        return False


class RedisServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="edgecount-py-redis-")
        self.proc = None
        self.port = 0
        # Another process can take the probed port before redis binds it: retry a few times.
        for _ in range(10):
            self.port = free_port()
            self.proc = _start_group(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--protected-mode", "no", "--dir", self.dir],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if redis_ping(self.port):
                    return
                time.sleep(0.025)
            _stop_group(self.proc)
        raise RuntimeError("redis-server did not start after 10 attempts (apt-get install redis-server)")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        """Run one command with redis-cli, for assertions beside the client."""
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10
        )
        return out.stdout.rstrip("\n")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Proxy:
    """`edgecount proxy --listen 127.0.0.1:0`; the address comes from its listening line."""

    LISTENING = re.compile(r"edgecount proxy listening on (http://\S+)")

    def __init__(self, redis_url: str, token: str):
        if not Path(PROXY_BIN).exists():
            raise RuntimeError(f"proxy binary not found at {PROXY_BIN} (cargo build, or set EDGECOUNT_BIN)")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = _start_group(
            [PROXY_BIN, "proxy", "--redis-url", redis_url, "--listen", "127.0.0.1:0", "--token", token],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.output: list = []
        found = threading.Event()
        self.url = None

        def drain():
            # Keep reading for the whole life of the proxy so it never blocks on a full pipe.
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace")
                self.output.append(line)
                m = self.LISTENING.search(line)
                if m and not found.is_set():
                    self.url = m.group(1).rstrip("/")
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(timeout=20) or self.url is None:
            self.stop()
            raise RuntimeError("proxy did not print its listening line within 20 s:\n" + "".join(self.output))

    def stop(self) -> None:
        _stop_group(self.proc)


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def proxy(redis_server):
    p = Proxy(redis_server.url, TOKEN)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def token():
    return TOKEN


@pytest.fixture()
def redis(proxy):
    from upstash_redis import Redis

    # rest_retries=0: a broken proxy must fail the test, not be retried after 3 s sleeps.
    client = Redis(proxy.url, TOKEN, rest_retries=0)
    yield client
    client.close()


@pytest.fixture()
def k(request):
    """A key prefix unique to the test, so tests never see each other's keys."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)
    return lambda suffix="": f"py:{name}:{suffix}"
