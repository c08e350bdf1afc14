// The worker's entry module: worker-build's template for CUSTOM_SHIM (scripts/build-worker.sh
// points it here; $SNIPPET_… are filled in by worker-build, esbuild then bundles this with the
// wasm-bindgen glue into build/worker/shim.mjs).
//
// The Rust side (src/driver.rs, exported by src/worker.rs) decides everything; this module only
// moves bytes between the runtime and it. A request goes in as plain strings; each call into
// wasm returns one "step" string saying what to do next: make a REST call and hand back the
// answer, answer the client, stream an event stream, or forward to the origin (the step table
// is in src/driver.rs). Doing the HTTP here with the runtime's own fetch() — rather than through
// web-sys bindings from Rust — is what lets the wasm worker match a plain JavaScript one on CPU
// per request (BENCHMARKS.md).
//
// A wasm trap (a Rust panic, with panic=abort) leaves the instance unusable, so the next
// request gets a fresh instance instead of a broken one.
//
// Two wasm modules answer requests: this one (every request starts here: hits, reads, badges,
// streams, limits) and the management module (creating and administering counters and
// namespaces, src/api/manage.rs), which this one hands a request to with a D step. The
// management module is imported on the first such request of an isolate, so the hot path never
// pays for it (BENCHMARKS.md has both sizes).
import * as imports from "./index_bg.js";
import wasmModule from "./index.wasm";
$SNIPPET_JS_IMPORTS

function instantiate() {
  const instance = new WebAssembly.Instance(wasmModule, {
    "./index_bg.js": imports,
    $SNIPPET_WASM_IMPORTS
  });
  imports.__wbg_set_wasm(instance.exports);
  instance.exports.__wbindgen_start?.();
}

instantiate();

// The management module's exports, once imported. The specifier is not a literal so that no
// bundler tries to inline the module: the runtime resolves it (build/worker/management.mjs).
let management = null;
async function managementModule() {
  const specifier = "./management.mjs";
  management ??= await import(specifier);
  return management;
}

// Must match src/driver.rs MAX_BODY: the body is read up to one byte more, so Rust can refuse
// a larger one (413) without it being read whole.
const MAX_BODY = 8 * 1024 * 1024;
// How long one REST round trip may take before the request fails as "redis unavailable"; a
// subscription stream is only bounded until its headers arrive.
const REST_TIMEOUT_MS = 10_000;

const encoder = new TextEncoder();

function errorText(e) {
  if (e?.name === "TimeoutError") {
    return `no answer from the REST endpoint within ${REST_TIMEOUT_MS / 1000}s`;
  }
  return String(e);
}

// "K{task}\n{target}\n{name}:{value}\n…\n{body}" → its parts. The headers become a plain object,
// which workerd converts faster than a list of [name, value] pairs (measured: ~12 µs, ~6% of the
// workerd CPU of a hit, for the REST call's headers and the answer's together). A repeated name
// (only ever Vary, from our side) is joined with ", ", which means the same for list-valued
// headers.
function parseStep(step) {
  let end = step.indexOf("\n");
  const task = Number(step.slice(1, end));
  let start = end + 1;
  end = step.indexOf("\n", start);
  const target = step.slice(start, end);
  const headers = {};
  for (start = end + 1; (end = step.indexOf("\n", start)) !== start; start = end + 1) {
    const colon = step.indexOf(":", start);
    const name = step.slice(start, colon);
    const value = step.slice(colon + 1, end);
    headers[name] = Object.hasOwn(headers, name) ? `${headers[name]}, ${value}` : value;
  }
  return { task, target, headers, body: step.slice(end + 1) };
}

// The request's body (it has one); at most MAX_BODY + 1 bytes.
async function readBody(request) {
  const length = Number(request.headers.get("content-length") ?? NaN);
  if (length <= MAX_BODY) return new Uint8Array(await request.arrayBuffer());
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  while (size <= MAX_BODY) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
  }
  if (size > MAX_BODY) reader.cancel().catch(() => {});
  const body = new Uint8Array(Math.min(size, MAX_BODY + 1));
  let at = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, body.length - at);
    body.set(part, at);
    at += part.length;
  }
  return body;
}

// The open REST event streams, by module and task (each module numbers its own tasks).
const streams = new Map();
const streamsOf = (wasm) => {
  let open = streams.get(wasm);
  if (!open) streams.set(wasm, (open = new Map()));
  return open;
};

// Performs the I/O steps (F, O, N) of a task of module `wasm` until one that is for the caller.
async function drive(wasm, step) {
  for (;;) {
    switch (step[0]) {
      case "F": {
        const { task, target, headers, body } = parseStep(step);
        let status = 0, token, text;
        try {
          const response = await fetch(target, {
            method: "POST",
            headers,
            body,
            signal: AbortSignal.timeout(REST_TIMEOUT_MS),
          });
          text = await response.text();
          status = response.status;
          token = response.headers.get("upstash-sync-token") ?? undefined;
        } catch (e) {
          text = errorText(e);
        }
        step = wasm.resume(task, status, token, text);
        break;
      }
      case "O": {
        const { task, target, headers } = parseStep(step);
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(new DOMException("", "TimeoutError")), REST_TIMEOUT_MS);
        let response, error;
        try {
          response = await fetch(target, { method: "POST", headers, signal: controller.signal });
        } catch (e) {
          error = errorText(e);
        } finally {
          clearTimeout(timer);
        }
        if (response?.body) streamsOf(wasm).set(task, response.body.getReader());
        step = wasm.opened(task, response?.status ?? 0, error);
        break;
      }
      case "N": {
        const task = Number(step.slice(1, step.indexOf("\n")));
        const reader = streamsOf(wasm).get(task);
        let chunk, error;
        try {
          const read = reader ? await reader.read() : { done: true };
          chunk = read.done ? undefined : read.value;
        } catch (e) {
          error = errorText(e);
        }
        step = wasm.feed(task, chunk, error);
        break;
      }
      default:
        return step;
    }
  }
}

function closeStream(wasm, task) {
  const open = streamsOf(wasm);
  const reader = open.get(task);
  open.delete(task);
  reader?.cancel().catch(() => {});
}

// An event stream whose chunks the task produces as the client reads. While the task waits (a
// quiet counter), a comment line goes out every HEARTBEAT_MS: workerd only notices a client that
// went away when it writes to it, and until then the task would keep its Redis subscription
// (a connection in the REST server) open. The unfinished step is kept for the next pull.
const HEARTBEAT_MS = 5_000;
const HEARTBEAT = encoder.encode(":\n\n");

function eventStream(wasm, task) {
  let next = null;
  return new ReadableStream({
    async pull(controller) {
      next ??= drive(wasm, wasm.pull(task));
      let timer;
      const beat = new Promise((resolve) => {
        timer = setTimeout(resolve, HEARTBEAT_MS, null);
      });
      const step = await Promise.race([next, beat]);
      clearTimeout(timer);
      if (step === null) {
        controller.enqueue(HEARTBEAT);
        return;
      }
      next = null;
      if (step[0] === "C") {
        controller.enqueue(encoder.encode(step.slice(1)));
      } else {
        // Z (the end), or an answer for a task that is gone (the client cancelled meanwhile).
        closeStream(wasm, task);
        try {
          controller.close();
        } catch {
          // already cancelled
        }
      }
    },
    cancel() {
      wasm.cancel(task);
      closeStream(wasm, task);
    },
  });
}

// Gateway mode: the incoming request on to the origin (every header but Host, same redirect
// mode and abort signal), with the rate-limit headers added to the origin's answer.
async function forward(request, body, url, extra) {
  const headers = new Headers(request.headers);
  headers.delete("host");
  let answer;
  try {
    answer = await fetch(url, {
      method: request.method,
      headers,
      body: body?.length ? body : undefined,
      redirect: request.redirect,
      signal: request.signal,
    });
  } catch (e) {
    console.warn(`origin unreachable: ${e}`);
    return Response.json({ error: "origin unreachable" }, { status: 502 });
  }
  const out = new Headers(answer.headers);
  for (const [name, value] of Object.entries(extra)) out.set(name, value);
  return new Response(answer.body, { status: answer.status, headers: out });
}

// A static file (dashboard, embed script, OpenAPI document) from the ASSETS binding: on
// Cloudflare the runtime serves these paths itself ([assets] in wrangler.toml) before the worker
// runs; in a bare workerd ASSETS is a disk directory service over web/. The headers are Rust's.
async function staticFile(env, method, file, headers) {
  const answer = env.ASSETS
    ? await env.ASSETS.fetch(`http://assets/${file}`, { method: method === "HEAD" ? "HEAD" : "GET" })
    : null;
  if (!answer?.ok) {
    answer?.body?.cancel();
    return Response.json({ error: `static file ${file} is not available (ASSETS binding)` }, { status: 404 });
  }
  return new Response(method === "HEAD" ? null : answer.body, { status: 200, headers });
}

async function handle(request, env) {
  let head = "";
  for (const [name, value] of request.headers) head += `${name}:${value}\n`;
  // Most requests have no body: they skip readBody and the promise hop it would add.
  const body = request.body === null ? undefined : await readBody(request);
  let wasm = imports;
  let step = await drive(wasm, wasm.begin(env, request.method, request.url, head, body));
  if (step[0] === "D") {
    wasm = await managementModule();
    step = await drive(wasm, wasm.begin(env, request.method, request.url, head, body));
  }
  const { task, target, headers, body: text } = parseStep(step);
  switch (step[0]) {
    case "R":
      return new Response(text === "" ? null : text, { status: Number(target), headers });
    case "E":
      return new Response(eventStream(wasm, task), { status: Number(target), headers });
    case "G":
      return forward(request, body, target, headers);
    case "A":
      return staticFile(env, request.method, target, headers);
    default:
      throw new Error(`edgecount: unexpected step ${step.slice(0, 40)}`);
  }
}

// Not an async function: returning handle's promise itself saves a promise hop per request
// (measured in workerd: ~4% of a rate-limit decision's CPU).
export default {
  fetch(request, env) {
    return handle(request, env).catch((e) => {
      if (e instanceof WebAssembly.RuntimeError) {
        console.error("edgecount: a wasm instance trapped; starting fresh ones", e);
        instantiate();
        management?.instantiate();
      }
      throw e;
    });
  },
};
