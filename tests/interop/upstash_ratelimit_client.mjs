// One side of the shared-limit test (tests/ratelimit_interop.rs): the official @upstash/ratelimit
// (the npm package, unmodified) over @upstash/redis, limiting one identifier through the same
// REST endpoint and Redis as edgecount. Prints {"allowed":N,"refused":M} on stdout.
//
//   node upstash_ratelimit_client.mjs <rest url> <token> <algorithm> <limit> <id> <attempts> <clients>
//
// algorithm: sliding | fixed | token, with an hour-long window (token: `limit` tokens, refilled
// by `limit` once an hour). The library's defaults otherwise: prefix "@upstash/ratelimit".
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";

const [url, token, algorithm, limitText, id, attemptsText, clientsText] = process.argv.slice(2);
const limit = Number(limitText);
const attempts = Number(attemptsText);
const clients = Number(clientsText);
const limiter = {
  sliding: () => Ratelimit.slidingWindow(limit, "1 h"),
  fixed: () => Ratelimit.fixedWindow(limit, "1 h"),
  token: () => Ratelimit.tokenBucket(limit, "1 h", limit),
}[algorithm];
if (!limiter || !(attempts > 0) || !(clients > 0)) {
  console.error("usage: <url> <token> sliding|fixed|token <limit> <id> <attempts> <clients>");
  process.exit(2);
}

const ratelimit = new Ratelimit({
  redis: new Redis({ url, token, retry: false }),
  limiter: limiter(),
  analytics: false,
  // Every attempt asks Redis: no local cache of blocked identifiers.
  ephemeralCache: false,
});

let allowed = 0;
let refused = 0;
let next = 0;
async function client() {
  while (next < attempts) {
    next += 1;
    const result = await ratelimit.limit(id);
    await result.pending;
    if (result.success) allowed += 1;
    else refused += 1;
  }
}
await Promise.all(Array.from({ length: clients }, client));
console.log(JSON.stringify({ allowed, refused }));
