// Load driver for the `cost` section of scripts/bench.sh: runs exactly N operations against one
// worker and checks every answer, so the Redis commands counted meanwhile can be divided by N.
// (wrk runs for a duration and does not count the requests in flight when it stops; this does not
// stop before every operation it started has its answer.)
//
//   node scripts/bench/cost_load.mjs '<spec as JSON>'   → one JSON line on stdout, exit 0
//                                                         (exit 1, with a reason on stderr, on any
//                                                         unexpected answer or when over time)
//
// spec: {
//   base: "http://127.0.0.1:PORT",
//   n: operations, concurrency: operations in flight at once (default 8),
//   offset: first value of {i} (default 0), deadline_s: give up after this long (default 120),
//   until_status: a status that ends the run at the first operation that gets it (sequential:
//                 use concurrency 1); n is then an upper bound,
//   steps: [ one or more requests per operation, in order:
//     { method, path, headers: {name: value}, status: [allowed statuses] (default [200]),
//       body: a regular expression the answer must match, capture: {name: regex with one group}
//       (later steps of the operation use it as {name}), sse: true (read up to the first `data:`
//       event, then close the stream, as a dashboard leaving the page does) } ] }
// Templates in path and header values: {i} (offset + operation index), {ip} (a distinct IPv6
// address from 2001:db8::/32, the documentation range, for each {i}: only ever a header value,
// no traffic goes there) and captured names.

const spec = JSON.parse(process.argv[2]);
const n = spec.n;
const concurrency = Math.max(1, Math.min(spec.concurrency ?? 8, n));
const offset = spec.offset ?? 0;
const deadline = Date.now() + (spec.deadline_s ?? 120) * 1000;
const statuses = {};
let next = 0;
let done = 0;
let requests = 0;
let stopAt = null;
let failure = null;

const ipOf = (i) => `2001:db8::${((i >>> 16) & 0xffff).toString(16)}:${(i & 0xffff).toString(16)}`;

function fill(template, vars) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

async function readUntilEvent(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (!/(^|\n)data:/.test(text)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      text += decoder.decode(value, { stream: true });
      if (text.length > 65536) break;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return text;
}

async function step(s, vars) {
  const headers = {};
  for (const [k, v] of Object.entries(s.headers ?? {})) headers[k] = fill(v, vars);
  const url = spec.base + fill(s.path, vars);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 15000);
  try {
    const res = await fetch(url, { method: s.method ?? "GET", headers, signal: controller.signal });
    const body = s.sse ? await readUntilEvent(res) : await res.text();
    requests++;
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    const allowed = s.status ?? [200];
    if (!allowed.includes(res.status)) {
      throw new Error(`${s.method ?? "GET"} ${url}: status ${res.status} (expected ${allowed}): ${body.slice(0, 300)}`);
    }
    if (s.body && !new RegExp(s.body).test(body)) {
      throw new Error(`${s.method ?? "GET"} ${url}: answer does not match /${s.body}/: ${body.slice(0, 300)}`);
    }
    for (const [name, re] of Object.entries(s.capture ?? {})) {
      const m = new RegExp(re).exec(body);
      if (!m) throw new Error(`${url}: nothing to capture as ${name} with /${re}/ in ${body.slice(0, 300)}`);
      vars[name] = m[1];
    }
    return res.status;
  } finally {
    clearTimeout(timer);
  }
}

async function worker() {
  while (failure === null && stopAt === null && next < n) {
    if (Date.now() > deadline) {
      failure = `over the deadline of ${spec.deadline_s ?? 120} s after ${done} of ${n} operations`;
      return;
    }
    const index = next++;
    const i = offset + index;
    const vars = { i, ip: ipOf(i) };
    try {
      for (const s of spec.steps) {
        const status = await step(s, vars);
        if (spec.until_status !== undefined && status === spec.until_status) stopAt = index;
      }
      done++;
    } catch (e) {
      failure ??= String(e.message ?? e);
    }
  }
}

const started = performance.now();
await Promise.all(Array.from({ length: concurrency }, worker));
const seconds = (performance.now() - started) / 1000;
if (failure !== null) {
  process.stderr.write(`cost_load: ${failure}\n`);
  process.exit(1);
}
if (spec.until_status !== undefined && stopAt === null) {
  process.stderr.write(`cost_load: no answer had status ${spec.until_status} in ${n} operations\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ ops: done, requests, statuses, seconds: Number(seconds.toFixed(3)), stop_at: stopAt })}\n`);
