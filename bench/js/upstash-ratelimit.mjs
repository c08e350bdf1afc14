// Benchmark comparison worker: rate limiting with `@upstash/ratelimit` (2.2.0) over
// `@upstash/redis/cloudflare`, the usual JavaScript way. Only for scripts/bench.sh.
//
//   POST /limit/{id}  →  200 {"allowed":true,…} | 429 {"allowed":false,…}
//
// Bindings: UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN, RATELIMIT_LIMIT (default 1000000),
// RATELIMIT_CACHE (`off`, the default, or `on`); the window is "1 h" (Ratelimit.slidingWindow, its
// two-window weighted counter: the same family as our `sliding` policy).
//
// With RATELIMIT_CACHE=off every decision goes to Redis: `ephemeralCache: false` (no in-isolate
// cache of blocked ids). With RATELIMIT_CACHE=on the limiter gets `ephemeralCache: BLOCKED`, a Map
// kept at module scope, so it outlives the request and the limiter built for it, as the library
// means it to be used: an identifier it has seen refused is answered "cacheBlock" from the isolate
// until its window resets, without a Redis call. Either way `analytics: false`,
// `enableProtection: false` (no deny-list lookups), `dynamicLimits: false` (no extra GET).
// `cacheScripts` stays at its default (EVALSHA, EVAL on NOSCRIPT). The client and the limiter are
// created per request (see upstash-redis-hit.mjs: workerd does not share I/O between requests;
// the cache is plain data, so sharing it across requests is fine).
//
// @upstash/ratelimit >= 2.1 puts `#!lua flags=allow-key-locking` on its scripts, a flag Redis 7.0
// rejects; edgecount proxy drops that flag and maps the SHAs (src/proxy/scripts.rs), so the client
// runs here unmodified, one EVALSHA per decision after the first EVAL.
import { Redis } from "@upstash/redis/cloudflare";
import { Ratelimit } from "@upstash/ratelimit";

// identifier → until when (ms) it is blocked; only used with RATELIMIT_CACHE=on.
const BLOCKED = new Map();

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
      redis: Redis.fromEnv(env),
      limiter: Ratelimit.slidingWindow(Number(env.RATELIMIT_LIMIT ?? 1000000), "1 h"),
      ephemeralCache: env.RATELIMIT_CACHE === "on" ? BLOCKED : false,
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
