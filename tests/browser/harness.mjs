// Real components for the real-browser tests: per suite, a private redis-server (free loopback port,
// temp dir, no persistence; never the machine's Redis on 6379), the real `edgecount proxy` in front
// of it and the real `edgecount serve` (the binary embeds web/, so this is the page users get), each
// in its own process group, stopped by group id and recorded in $EDGECOUNT_PGID_FILE so
// scripts/test.sh can stop leftovers. The browser is Debian's chromium driven by playwright-core
// (no downloaded browsers).
//
// For new test files (the embed script, badge themes…):
//
//   const stack = useStack({ env: { EDGECOUNT_ALLOWED_ORIGINS: "http://127.0.0.1:9999" } });
//   const browser = useBrowser();
//   const site = useStaticServer({ "/": "<!doctype html>…" });   // a second origin, in-process
//   test("…", async () => {
//     const { page, problems } = await openPage(browser.it, `${stack.url}/`);
//     …
//     assertNoProblems(problems);
//   });
//
// `stack.url` is the serve origin (http://127.0.0.1:PORT), `stack.redis.port` the private Redis,
// `stack.adminToken` the admin token; `startStack()` / `startStaticServer()` work outside hooks too.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { PROXY_BIN, redisCommand, startProxy, startRedis, waitFor } from "../clients/node/harness.mjs";

export { redisCommand, waitFor };

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const EDGECOUNT_BIN = PROXY_BIN; // EDGECOUNT_BIN or target/debug/edgecount
export const CHROMIUM = process.env.EDGECOUNT_CHROMIUM || "/usr/bin/chromium";
export const SCREENSHOT_DIR = path.join(ROOT, "target/screenshots");
export const ADMIN_TOKEN = "browser-test-admin-token";
const REST_TOKEN = "browser-test-rest-token";

// ---------- processes ----------

const groups = new Set();

function killGroup(pid, signal = "SIGKILL") {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

// Whatever way this process ends, take our children with it (the node client harness, imported
// above, does the same for the redis-server and proxy it starts).
process.on("exit", () => {
  for (const pid of groups) killGroup(pid);
});

function startGroup(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], ...opts });
  groups.add(child.pid);
  if (process.env.EDGECOUNT_PGID_FILE) appendFileSync(process.env.EDGECOUNT_PGID_FILE, `${child.pid}\n`);
  return child;
}

function stopGroup(child) {
  if (!child || child.pid === undefined) return Promise.resolve();
  groups.delete(child.pid);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 3000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    killGroup(child.pid, "SIGTERM");
    setTimeout(() => killGroup(child.pid), 1000).unref();
  });
}

/** The environment of a child: ours without any EDGECOUNT_* / UPSTASH_* a developer's shell set. */
function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("EDGECOUNT_") && !k.startsWith("UPSTASH_")) env[k] = v;
  }
  return { ...env, RUST_LOG: process.env.RUST_LOG || "warn", ...extra };
}

/** Start `edgecount serve` on 127.0.0.1:0 and read its address from its listening line. */
export async function startServe({ restUrl, restToken, env = {} }) {
  if (!existsSync(EDGECOUNT_BIN)) {
    throw new Error(`edgecount binary not found at ${EDGECOUNT_BIN} (cargo build --bin edgecount, or set EDGECOUNT_BIN)`);
  }
  const child = startGroup(EDGECOUNT_BIN, ["serve", "--listen", "127.0.0.1:0"], {
    env: cleanEnv({ UPSTASH_REDIS_REST_URL: restUrl, UPSTASH_REDIS_REST_TOKEN: restToken, ...env }),
  });
  let output = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start within 20 s:\n${output}`)), 20_000);
    const onData = (d) => {
      output += d.toString();
      const m = output.match(/edgecount serve listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ""));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
  child.stdout.resume();
  child.stderr.resume();
  return { url, child, output: () => output, stop: () => stopGroup(child) };
}

/**
 * A private redis-server, the proxy and `edgecount serve`. `env` is added to serve's environment
 * (EDGECOUNT_RATE_LIMITS, EDGECOUNT_ALLOWED_ORIGINS…); the admin token and a uniques secret are set
 * unless `env` says otherwise.
 */
export async function startStack({ env = {} } = {}) {
  const stack = {};
  try {
    stack.redis = await startRedis();
    stack.proxy = await startProxy({ redisUrl: stack.redis.url, token: REST_TOKEN });
    stack.serve = await startServe({
      restUrl: stack.proxy.url,
      restToken: REST_TOKEN,
      env: { EDGECOUNT_ADMIN_TOKEN: ADMIN_TOKEN, EDGECOUNT_UNIQUES_SECRET: "browser-test-secret", ...env },
    });
  } catch (e) {
    await stopStack(stack);
    throw e;
  }
  stack.url = stack.serve.url;
  stack.adminToken = env.EDGECOUNT_ADMIN_TOKEN ?? ADMIN_TOKEN;
  stack.stop = () => stopStack(stack);
  return stack;
}

async function stopStack(stack) {
  await stack.serve?.stop();
  await stack.proxy?.stop();
  await stack.redis?.stop();
}

/** Call inside a describe block (or at top level): a stack started before and stopped after its tests. */
export function useStack(options) {
  const holder = {};
  before(async () => {
    Object.assign(holder, await startStack(options));
  });
  after(async () => {
    await holder.stop?.();
  });
  return holder;
}

// ---------- a second origin for pages that embed edgecount ----------

/**
 * An in-process static HTTP server on a free loopback port (a "third-party site"). `routes` maps a
 * path to a string body, or to {body, type, headers, status}. Answers 404 elsewhere. `requests`
 * lists the paths asked for.
 */
export async function startStaticServer(routes = {}) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    requests.push(url.pathname + url.search);
    let route = routes[url.pathname];
    if (route === undefined) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    if (typeof route === "string" || Buffer.isBuffer(route)) route = { body: route };
    const type = route.type || (url.pathname.endsWith(".js") ? "text/javascript" : url.pathname.endsWith(".svg") ? "image/svg+xml" : "text/html; charset=utf-8");
    res.writeHead(route.status || 200, { "content-type": type, "cache-control": "no-store", ...route.headers });
    res.end(req.method === "HEAD" ? undefined : route.body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    routes,
    requests,
    stop: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}

export function useStaticServer(routes) {
  const holder = {};
  before(async () => {
    Object.assign(holder, await startStaticServer(routes));
  });
  after(async () => {
    await holder.stop?.();
  });
  return holder;
}

// ---------- the browser ----------

/**
 * Debian's chromium. Launched as a server so that its pid is known: playwright starts the browser in
 * a process group of its own, which is recorded (and killed on exit) like our other children, so a
 * hard-killed test run leaves no browser behind. `close()` closes the connection and the browser.
 */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no browser at ${CHROMIUM}: apt-get install chromium (scripts/setup.sh does), or set EDGECOUNT_CHROMIUM`);
  }
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    timeout: 30_000,
  });
  const pid = server.process()?.pid;
  if (pid) {
    groups.add(pid);
    if (process.env.EDGECOUNT_PGID_FILE) appendFileSync(process.env.EDGECOUNT_PGID_FILE, `${pid}\n`);
  }
  const browser = await chromium.connect(server.wsEndpoint(), { timeout: 30_000 });
  // Headless Chromium says "HeadlessChrome" in its user agent, and edgecount rightly does not count
  // hits from headless browsers (bots): every context gets the UA of the same Chrome, non-headless.
  const major = browser.version().split(".")[0];
  const userAgent = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${major}.0.0.0 Safari/537.36`;
  const newContext = browser.newContext.bind(browser);
  browser.newContext = (options = {}) => newContext({ userAgent, ...options });
  const closeConnection = browser.close.bind(browser);
  browser.close = async () => {
    await closeConnection().catch(() => {});
    await server.close().catch(() => {});
    if (pid) {
      groups.delete(pid);
      killGroup(pid);
    }
  };
  return browser;
}

/** One browser for the block's tests: `holder.it` once `before` ran. */
export function useBrowser() {
  const holder = {};
  before(async () => {
    holder.it = await launchBrowser();
  });
  after(async () => {
    await holder.it?.close().catch(() => {});
  });
  return holder;
}

/**
 * Record everything that went wrong on a page: console errors, uncaught exceptions, failed requests
 * (favicon included) and answers with status >= 400. Returns the live list.
 */
export function watchPage(page) {
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push({ kind: "console", text: m.text(), url: m.location()?.url || "" });
  });
  page.on("pageerror", (e) => problems.push({ kind: "pageerror", text: e.message, url: "" }));
  page.on("requestfailed", (r) => problems.push({ kind: "requestfailed", text: r.failure()?.errorText || "", url: r.url() }));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push({ kind: "status", text: String(r.status()), url: r.url(), status: r.status() });
  });
  return problems;
}

/** A new context + page (options: viewport, colorScheme, permissions…), watched from the start. */
export async function openPage(browser, url, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, ...options });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const problems = watchPage(page);
  if (url) await page.goto(url, { waitUntil: "load" });
  return { context, page, problems };
}

export function assertNoProblems(problems, allow = () => false) {
  const left = problems.filter((p) => !allow(p));
  assert.deepEqual(left, [], `the page had problems:\n${left.map((p) => `  ${p.kind}: ${p.text} ${p.url}`).join("\n")}`);
}

/** A full-page screenshot in target/screenshots/<name>.png; returns its path. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, animations: "disabled" });
  return file;
}

// ---------- talking to the stack from node ----------

/** fetch() against the stack with a parsed JSON body: {status, headers, body}. */
export async function call(stack, method, route, { headers = {}, body } = {}) {
  const res = await fetch(`${stack.url}${route}`, { method, headers, body });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body: json, text };
}

/** `n` hits on a counter (as one client: one unique); returns the last answer. */
export async function hit(stack, ns, key, n = 1) {
  let last;
  for (let i = 0; i < n; i++) {
    last = await call(stack, "POST", `/hit/${ns}/${key}`);
    assert.equal(last.status, 200, `hit ${ns}/${key}: ${last.text}`);
  }
  return last.body;
}

/**
 * Past history for a counter, written straight into Redis (hits cannot be back-dated through the
 * API): `days` daily totals ending yesterday, `hours` hourly totals ending an hour ago, each with a
 * few uniques. The counter must exist (hit it first). Uses the counter scripts' key layout (`ec:{ns:key}:d:YYYYMMDD`, `:h:YYYYMMDDHH`,
 * `:u:YYYYMMDD`, value `:v`); for screenshots, where a month of data reads better than one bar.
 */
export async function seedHistory(stack, ns, key, { days = [], hours = [] }) {
  const prefix = `ec:{${ns}:${key}}`;
  const port = stack.redis.port;
  const now = Date.now();
  const label = (t, withHour) => {
    const iso = new Date(t).toISOString();
    return iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + (withHour ? iso.slice(11, 13) : "");
  };
  let added = 0;
  for (let i = 0; i < days.length; i++) {
    const t = now - (days.length - i) * 86400e3;
    if (!days[i]) continue;
    await redisCommand(port, "SET", `${prefix}:d:${label(t)}`, days[i], "EX", 400 * 86400);
    const uniques = Math.max(1, Math.round(days[i] * 0.45));
    const members = Array.from({ length: uniques }, (_, j) => `seed-${i}-${j}`);
    await redisCommand(port, "PFADD", `${prefix}:u:${label(t)}`, ...members);
    await redisCommand(port, "EXPIRE", `${prefix}:u:${label(t)}`, 400 * 86400);
    added += days[i];
  }
  const today = label(now);
  for (let i = 0; i < hours.length; i++) {
    const t = now - (hours.length - i) * 3600e3;
    if (!hours[i]) continue;
    await redisCommand(port, "SET", `${prefix}:h:${label(t, true)}`, hours[i], "EX", 3 * 86400);
    // Earlier hours of today belong to today's total too.
    if (label(t) === today) {
      await redisCommand(port, "INCRBY", `${prefix}:d:${today}`, hours[i]);
      added += hours[i];
    }
  }
  if (added) await redisCommand(port, "INCRBY", `${prefix}:v`, added);
}

export function readWebFile(name) {
  return readFileSync(path.join(ROOT, "web", name), "utf8");
}
