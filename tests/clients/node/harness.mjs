// Real components for the official-client suites: a private redis-server (free loopback port, temp
// dir, no persistence; never the machine's Redis on 6379) and the real `edgecount proxy` binary in
// front of it. Each child runs in its own process group and is stopped by group id; the group ids
// are also appended to $EDGECOUNT_PGID_FILE so scripts/test.sh can stop leftovers if this process is
// killed hard.
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const PROXY_BIN = process.env.EDGECOUNT_BIN || path.join(ROOT, "target/debug/edgecount");

const groups = new Set();

function killGroup(pid, signal = "SIGKILL") {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

// Last resort: whatever way this process ends, take the children with it.
process.on("exit", () => {
  for (const pid of groups) killGroup(pid);
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    for (const pid of groups) killGroup(pid);
    process.exit(128 + (sig === "SIGINT" ? 2 : 15));
  });
}

function startGroup(cmd, args, opts = {}) {
  const child = spawn(cmd, args, {
    detached: true, // own process group (setsid): stopped with kill(-pgid)
    stdio: ["ignore", "pipe", "pipe"],
    ...opts,
  });
  groups.add(child.pid);
  if (process.env.EDGECOUNT_PGID_FILE) {
    appendFileSync(process.env.EDGECOUNT_PGID_FILE, `${child.pid}\n`);
  }
  return child;
}

function stopGroup(child) {
  if (!child || child.pid === undefined) return Promise.resolve();
  groups.delete(child.pid);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 3000); // bounded: never hang a suite on teardown
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    killGroup(child.pid);
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pingRedis(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    let buf = "";
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.on("error", () => done(false));
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG"));
    });
  });
}

/** Send one raw command to redis (RESP inline), for assertions beside the client. */
export function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    let buf = Buffer.alloc(0);
    sock.setTimeout(3000, () => {
      sock.destroy();
      reject(new Error("redis command timed out"));
    });
    sock.on("error", reject);
    sock.on("connect", () => {
      const parts = [`*${args.length}\r\n`];
      for (const a of args) {
        const b = Buffer.from(String(a));
        parts.push(`$${b.length}\r\n`, b, "\r\n");
      }
      sock.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
    });
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      // Enough for the simple replies the tests ask for (+, -, :, $ with a single bulk).
      const text = buf.toString("latin1");
      const nl = text.indexOf("\r\n");
      if (nl < 0) return;
      const type = text[0];
      const head = text.slice(1, nl);
      if (type === "$") {
        const len = Number(head);
        if (len < 0) {
          sock.destroy();
          return resolve(null);
        }
        if (buf.length < nl + 2 + len + 2) return;
        sock.destroy();
        return resolve(buf.subarray(nl + 2, nl + 2 + len).toString());
      }
      sock.destroy();
      if (type === "-") return reject(new Error(head));
      if (type === ":") return resolve(Number(head));
      return resolve(head);
    });
  });
}

export async function startRedis() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "edgecount-node-redis-"));
  // Another process can take the probed port before redis binds it: retry a few times.
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await freePort();
    const child = startGroup("redis-server", [
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--protected-mode", "no", "--dir", dir,
    ]);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && child.exitCode === null) {
      if (await pingRedis(port)) {
        return {
          port,
          url: `redis://127.0.0.1:${port}`,
          stop: async () => {
            await stopGroup(child);
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      await sleep(25);
    }
    await stopGroup(child);
  }
  throw new Error("redis-server did not start after 10 attempts (apt-get install redis-server)");
}

/**
 * Start `edgecount proxy` on 127.0.0.1:0 and read the address from its listening line
 * (`edgecount proxy listening on http://ADDR`).
 */
export async function startProxy({ redisUrl, token, extraArgs = [], env = {} }) {
  if (!existsSync(PROXY_BIN)) {
    throw new Error(`proxy binary not found at ${PROXY_BIN} (cargo build, or set EDGECOUNT_BIN)`);
  }
  const args = ["proxy", "--redis-url", redisUrl, "--listen", "127.0.0.1:0"];
  if (token !== undefined) args.push("--token", token);
  const child = startGroup(PROXY_BIN, [...args, ...extraArgs], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn", ...env },
  });
  let output = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`proxy did not print its listening line within 20 s:\n${output}`)),
      20_000,
    );
    const onData = (d) => {
      output += d.toString();
      const m = output.match(/edgecount proxy listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ""));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`proxy exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
  // Keep draining its output so a chatty proxy never blocks on a full pipe.
  child.stdout.resume();
  child.stderr.resume();
  return {
    url,
    child,
    output: () => output,
    stop: () => stopGroup(child),
  };
}

/** Wait until `predicate()` is truthy, bounded in time. */
export async function waitFor(predicate, { timeoutMs = 5000, stepMs = 20, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await sleep(stepMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// The two ways @upstash/redis sends commands, both of which users hit: auto-pipelining (its
// default: the commands of one tick go to /pipeline together) and one `POST /` per command. Each
// suite runs once per mode, each against its own redis-server and proxy.
export const CLIENT_MODES = [
  ["auto-pipelining (client default)", {}],
  ["one request per command (enableAutoPipelining: false)", { enableAutoPipelining: false }],
];

// Call inside a describe block: a private redis-server and the real proxy in front of it, started
// before the block's tests and stopped after them. The returned object's `redisServer` and `proxy`
// are set once the block's `before` hooks have run (a test may replace `proxy`: the new one is
// the one stopped).
export function useStack(token) {
  const stack = {};
  before(async () => {
    stack.redisServer = await startRedis();
    stack.proxy = await startProxy({ redisUrl: stack.redisServer.url, token });
  });
  after(async () => {
    await stack.proxy?.stop();
    await stack.redisServer?.stop();
  });
  return stack;
}
