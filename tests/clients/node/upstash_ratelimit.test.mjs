// The official @upstash/ratelimit (2.2.0), unmodified, over @upstash/redis pointed at the real
// `edgecount proxy` binary in front of a private redis-server. Its Lua scripts start with
// `#!lua flags=allow-key-locking`, which Redis 7.0 refuses; the proxy drops that flag and maps the
// client's EVALSHA sha to the rewritten script. Run: node --test tests/clients/node/
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";
import { CLIENT_MODES, redisCommand, startProxy, useStack } from "./harness.mjs";

const TOKEN = "node-ratelimit-test-token";

const limiters = {
  slidingWindow: () => Ratelimit.slidingWindow(3, "60 s"),
  fixedWindow: () => Ratelimit.fixedWindow(3, "60 s"),
  tokenBucket: () => Ratelimit.tokenBucket(1, "60 s", 3), // 3 tokens, refill 1 per minute
};

// Auto-pipelining (the client default: scripts go through /pipeline) and one `POST /` per command.
for (const [mode, clientOptions] of CLIENT_MODES) {
  describe(`@upstash/ratelimit, ${mode}`, () => {
    const stack = useStack(TOKEN);
    /** @type {Redis} */
    let redis;

    before(() => {
      redis = new Redis({ url: stack.proxy.url, token: TOKEN, retry: false, ...clientOptions });
    });

    test("the backend itself refuses the client's shebang flag", async () => {
      await assert.rejects(
        redisCommand(stack.redisServer.port, "EVAL", "#!lua flags=allow-key-locking\nreturn 1", "0"),
        /Unexpected flag/,
      );
    });

    for (const [name, limiter] of Object.entries(limiters)) {
      test(`${name}(3 per minute): 3 allowed, the 4th refused`, async () => {
        const ratelimit = new Ratelimit({
          redis,
          limiter: limiter(),
          prefix: `rl:${name}`,
          analytics: false,
          ephemeralCache: false, // every decision goes to the proxy
        });
        const id = "user-1";
        for (let i = 1; i <= 3; i++) {
          const r = await ratelimit.limit(id);
          assert.equal(r.success, true, `request ${i}: ${JSON.stringify(r)}`);
          assert.equal(r.limit, 3);
          assert.equal(r.remaining, 3 - i, `request ${i}: ${JSON.stringify(r)}`);
          await r.pending;
        }
        const fourth = await ratelimit.limit(id);
        assert.equal(fourth.success, false, JSON.stringify(fourth));
        assert.equal(fourth.remaining, 0);
        assert.ok(fourth.reset > Date.now(), `reset ${fourth.reset}`);
        await fourth.pending;
        // Another identifier is counted on its own; getRemaining runs the other scripts.
        assert.equal((await ratelimit.limit("user-2")).success, true);
        assert.equal((await ratelimit.getRemaining(id)).remaining, 0);
        assert.equal((await ratelimit.getRemaining("user-2")).remaining, 2);
      });
    }

    test("a restarted proxy: NOSCRIPT, the client's EVAL fallback, and on", async () => {
      const ratelimit = new Ratelimit({
        redis,
        limiter: Ratelimit.slidingWindow(3, "60 s"),
        prefix: "rl:restart",
        analytics: false,
        ephemeralCache: false,
      });
      assert.equal((await ratelimit.limit("u")).success, true);
      await stack.proxy.stop();
      stack.proxy = await startProxy({ redisUrl: stack.redisServer.url, token: TOKEN });
      const fresh = new Ratelimit({
        redis: new Redis({ url: stack.proxy.url, token: TOKEN, retry: false, ...clientOptions }),
        limiter: Ratelimit.slidingWindow(3, "60 s"),
        prefix: "rl:restart",
        analytics: false,
        ephemeralCache: false,
      });
      assert.deepEqual(
        await Promise.all([fresh.limit("u"), fresh.limit("u"), fresh.limit("u")]).then((rs) =>
          rs.map((r) => r.success).sort(),
        ),
        [false, true, true],
      );
    });
  });
}
