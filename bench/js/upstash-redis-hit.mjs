// Benchmark comparison worker: a counter hit written the way a JavaScript developer would, with
// the official SDK (`@upstash/redis/cloudflare`) in a module worker. Only for scripts/bench.sh.
//
//   POST|GET /hit/{ns}/{key}  →  {"value","today","uniques_today","counted"}
//
// Bindings: UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN, HIT_MODE = "script" | "incr".
//
// What a hit does here, and why (the fairness choice):
//
// - HIT_MODE=script (default, the apples-to-apples row): the SAME Redis work as our wasm worker.
//   Our worker embeds `counter_lib.lua` + `counter_hit.lua` concatenated with nothing in between
//   (`counter_script!` in src/core/counter/mod.rs: `concat!(include_str!(lib), include_str!(hit))`).
//   Since build.rs it embeds *minified* copies (comments, indentation and blank lines removed; the
//   statements are the same), so we cannot load the byte-identical text. We load the readable
//   sources concatenated the same way instead: same code, so Redis does exactly the same work per
//   hit (only the SHA1 differs, and EVAL parses a few more bytes once per script-cache miss). Like
//   our worker (src/service/counters.rs `hit`), it is ONE EVALSHA whose keys include the
//   service-wide figures (ec:global:counters:{shard}, ec:global:hits:{day}:{shard}) and the
//   namespace's registry (ec:{ns}:counters), with the same keys and arguments (no uniques: no
//   client IP in workerd without CF-Connecting-IP; no idempotency key; abuse limit off), and
//   falls back to EVAL on NOSCRIPT exactly like `Script.exec` of `redis.createScript` (evalsha,
//   then eval).
// - HIT_MODE=incr: the minimal JS counter, one `redis.incr(key)` and nothing else (no buckets,
//   uniques, meta, publish). Less Redis work than ours: a lower bound for the JS side's cost.
//
// What it does NOT do that ours does: parse the path/query through a router, check the name
// grammar, look at User-Agent/Purpose headers for bots and prefetch, add CORS headers. Those cost
// our worker CPU that the JS worker does not spend, so any ratio is, if anything, tilted towards JS.
//
// The client is created per request (`Redis.fromEnv(env)`, as Upstash's Cloudflare examples do):
// workerd does not let a request use I/O objects of another one, and the SDK's auto-pipelining
// (on by default in 1.39) would otherwise batch commands of different requests into one fetch.
// The script's SHA1 and the shard of a name are computed once per isolate.
import { Redis } from "@upstash/redis/cloudflare";
import counterLib from "../../src/core/scripts/counter_lib.lua";
import counterHit from "../../src/core/scripts/counter_hit.lua";

const HIT_SCRIPT = counterLib + counterHit;
// src/core/counter/keys.rs and ops.rs
const HOURLY_TTL_SECS = 3 * 86400;
const DAILY_TTL_SECS = 400 * 86400;
const IDEMPOTENCY_TTL_SECS = 86400;
const DEFAULT_LOWER_BOUND = -1;
const DEFAULT_UPPER_BOUND = 1;
const GLOBAL_SHARDS = 16;

let scriptSha; // Promise<string>, once per isolate
const shards = new Map(); // "ns/key" → shard

async function hex(algorithm, text) {
  const digest = await crypto.subtle.digest(algorithm, new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function shardOf(path) {
  let shard = shards.get(path);
  if (shard === undefined) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(path)));
    shard = (((digest[0] << 24) | (digest[1] << 16) | (digest[2] << 8) | digest[3]) >>> 0) % GLOBAL_SHARDS;
    shards.set(path, shard);
  }
  return shard;
}

function dayLabel(now) {
  return new Date(now).toISOString().slice(0, 10).replaceAll("-", "");
}

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function hourLabel(now) {
  return new Date(now).toISOString().slice(0, 13).replaceAll("-", "").replace("T", "");
}

async function hitScript(redis, ns, key) {
  scriptSha ??= hex("SHA-1", HIT_SCRIPT);
  const sha = await scriptSha;
  const path = `${ns}/${key}`;
  const shard = await shardOf(path);
  const prefix = `ec:{${ns}:${key}}`;
  const nowMs = Date.now();
  const now = Math.floor(nowMs / 1000);
  const day = dayLabel(nowMs);
  // src/core/counter/hit.rs hit_call with Figures::InScript: every key declared, the
  // service-wide figures and the namespace's registry written by the script itself.
  const keys = [`${prefix}:v`, `${prefix}:m`, `${prefix}:d:${day}`, `${prefix}:h:${hourLabel(nowMs)}`,
    `${prefix}:u:${day}`, `ec:global:counters:${shard}`, `ec:global:hits:${day}:${shard}`,
    `ec:{${ns}}:counters`];
  const args = ["1", "", HOURLY_TTL_SECS, DAILY_TTL_SECS, IDEMPOTENCY_TTL_SECS,
    DEFAULT_LOWER_BOUND, DEFAULT_UPPER_BOUND, now, "", "", "", "6",
    now - (now % 86400) + DAILY_TTL_SECS];
  let reply;
  try {
    reply = await redis.evalsha(sha, keys, args);
  } catch (e) {
    if (!String(e).toLowerCase().includes("noscript")) throw e;
    reply = await redis.eval(HIT_SCRIPT, keys, args);
  }
  if (!Array.isArray(reply) || reply[0] !== "ok") {
    throw new Error(`unexpected hit reply ${JSON.stringify(reply)}`);
  }
  return {
    value: Number(reply[1]),
    today: Number(reply[2]),
    uniques_today: Number(reply[3]),
    counted: Number(reply[4]) === 1,
  };
}

async function hitIncr(redis, ns, key) {
  const value = await redis.incr(`ec:{${ns}:${key}}:v`);
  return { value, today: 0, uniques_today: 0, counted: true };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const match = /^\/hit\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (!match) return json(404, { error: "not found" });
    if (request.method !== "POST" && request.method !== "GET") {
      return json(405, { error: "method not allowed" });
    }
    const redis = Redis.fromEnv(env);
    try {
      const hit = (env.HIT_MODE ?? "script") === "incr" ? hitIncr : hitScript;
      return json(200, await hit(redis, match[1], match[2]));
    } catch (e) {
      return json(502, { error: String(e) });
    }
  },
};
