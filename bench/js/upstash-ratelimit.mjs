// Benchmark comparison worker: rate limiting with `@upstash/ratelimit` (2.2.0) over
// `@upstash/redis/cloudflare`, the usual JavaScript way. Only for scripts/bench.sh.
//
//   POST /limit/{id}  →  200 {"allowed":true,…} | 429 {"allowed":false,…}
//
// Bindings: UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN, RATELIMIT_LIMIT (default 1000000);
// the window is "1 h" (Ratelimit.slidingWindow, its two-window weighted counter: the same family
// as our `sliding` policy).
//
// Every decision goes to Redis: `ephemeralCache: false` (no in-isolate cache of blocked ids),
// `analytics: false`, `enableProtection: false` (no deny-list lookups), `dynamicLimits: false` (no
// extra GET). `cacheScripts` stays at its default (EVALSHA, EVAL on NOSCRIPT). The client and the
// limiter are created per request (see upstash-redis-hit.mjs: workerd does not share I/O between
// requests; with the cache off nothing is lost by that).
//
// Redis 7.0 (the benchmark's redis-server) rejects the shebang @upstash/ratelimit >= 2.1 puts on
// its scripts ("ERR Unexpected flag in script shebang: allow-key-locking": a flag only Upstash's
// own server knows, telling it to lock just the declared keys; see
// hiett/serverless-redis-http#40). Our proxy passes scripts through unchanged, so the client
// drops that first line itself (`withoutUpstashOnlyFlags`): without it the script runs under
// Redis's usual global script lock, as scripts did before 2.1. The SHA the library asks for is
// mapped to the SHA of the script Redis actually cached, so EVALSHA still hits and a decision
// stays one round trip after the first EVAL.
import { Redis } from "@upstash/redis/cloudflare";
import { Ratelimit } from "@upstash/ratelimit";

const UPSTASH_ONLY_SHEBANG = /^#!lua flags=allow-key-locking\n/;
const shaOfStripped = new Map(); // SHA1 of the library's script → SHA1 of what Redis cached

async function sha1(text) {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function withoutUpstashOnlyFlags(redis) {
  return new Proxy(redis, {
    get(target, prop) {
      if (prop === "eval") {
        return async (script, keys, args) => {
          const stripped = script.replace(UPSTASH_ONLY_SHEBANG, "");
          if (stripped !== script) shaOfStripped.set(await sha1(script), await sha1(stripped));
          return target.eval(stripped, keys, args);
        };
      }
      if (prop === "evalsha") {
        return (sha, keys, args) => target.evalsha(shaOfStripped.get(sha) ?? sha, keys, args);
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function json(status, body) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const match = /^\/limit\/([^/]+)$/.exec(url.pathname);
    if (!match) return json(404, { error: "not found" });
    if (request.method !== "POST") return json(405, { error: "method not allowed" });
    const ratelimit = new Ratelimit({
      redis: withoutUpstashOnlyFlags(Redis.fromEnv(env)),
      limiter: Ratelimit.slidingWindow(Number(env.RATELIMIT_LIMIT ?? 1000000), "1 h"),
      ephemeralCache: false,
      analytics: false,
      enableProtection: false,
      dynamicLimits: false,
    });
    try {
      const { success, limit, remaining, reset, pending, reason } = await ratelimit.limit(
        decodeURIComponent(match[1]),
      );
      ctx.waitUntil(pending);
      // A timeout answers success with reason "timeout" without a Redis answer: count it as an error.
      if (reason === "timeout") return json(504, { error: "ratelimit timeout" });
      return json(success ? 200 : 429, { allowed: success, limit, remaining, reset_ms: reset });
    } catch (e) {
      return json(502, { error: String(e) });
    }
  },
};
