// The official @upstash/redis client, unmodified, against the real `edgecount proxy` binary and a
// private redis-server. Run: node --test tests/clients/node/ (scripts/test.sh does).
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { Redis } from "@upstash/redis";
import { CLIENT_MODES, redisCommand, useStack, waitFor } from "./harness.mjs";

const TOKEN = "node-client-test-token";

for (const [mode, clientOptions] of CLIENT_MODES) {
  describe(mode, () => {
    const stack = useStack(TOKEN);
    /** @type {Redis} */
    let redis;

    before(() => {
      // retry: false — a broken proxy must fail the test, not be papered over by client retries.
      redis = new Redis({ url: stack.proxy.url, token: TOKEN, retry: false, ...clientOptions });
    });

    describe("strings", () => {
      test("set / get / del / exists", async () => {
        assert.equal(await redis.set("s:greeting", "hello"), "OK");
        assert.equal(await redis.get("s:greeting"), "hello");
        assert.equal(await redis.exists("s:greeting", "s:missing"), 1);
        assert.equal(await redis.del("s:greeting"), 1);
        assert.equal(await redis.get("s:greeting"), null);
      });

      test("set with EX and NX options, ttl", async () => {
        assert.equal(await redis.set("s:ttl", "v", { ex: 100 }), "OK");
        const ttl = await redis.ttl("s:ttl");
        assert.ok(ttl > 90 && ttl <= 100, `ttl ${ttl}`);
        assert.equal(await redis.set("s:ttl", "other", { nx: true }), null);
        assert.equal(await redis.get("s:ttl"), "v");
        assert.equal(await redis.ttl("s:never-set"), -2);
      });

      test("append / strlen / getrange / getdel", async () => {
        assert.equal(await redis.append("s:app", "abc"), 3);
        assert.equal(await redis.append("s:app", "def"), 6);
        assert.equal(await redis.strlen("s:app"), 6);
        assert.equal(await redis.getrange("s:app", 1, 3), "bcd");
        assert.equal(await redis.getdel("s:app"), "abcdef");
        assert.equal(await redis.exists("s:app"), 0);
      });

      test("ping and echo", async () => {
        assert.equal(await redis.ping(), "PONG");
        assert.equal(await redis.echo("hello, world"), "hello, world");
      });

      test("mset / mget with nulls for missing keys", async () => {
        assert.equal(await redis.mset({ "m:a": "one", "m:b": "two" }), "OK");
        assert.deepEqual(await redis.mget("m:a", "m:missing", "m:b"), ["one", null, "two"]);
        assert.deepEqual(await redis.mget(["m:missing", "m:missing2"]), [null, null]);
      });

      test("binary-ish and unicode values round-trip exactly", async () => {
        const values = [
          "héllo wörld ✓ 🚀 日本語",
          "line1\nline2\r\n\ttab",
          'quotes " and \\ backslash, commas, and : colons',
          "\u0000\u0001\u0002 nul and control bytes \u007f",
          "OK", // the one value both SDKs never base64-decode
          "PONG",
          " leading and trailing spaces ",
          "x".repeat(100_000),
        ];
        for (const [i, v] of values.entries()) {
          assert.equal(await redis.set(`bin:${i}`, v), "OK");
          assert.equal(await redis.get(`bin:${i}`), v, `value ${i}`);
        }
        // What reached Redis is the UTF-8 bytes of the string, not an escaped form.
        assert.equal(await redisCommand(stack.redisServer.port, "STRLEN", "bin:0"), Buffer.byteLength(values[0]));
      });

      test("empty string is not null", async () => {
        assert.equal(await redis.set("s:empty", ""), "OK");
        assert.equal(await redis.get("s:empty"), "");
      });
    });

    describe("integers and floats", () => {
      test("incr / incrby / decr / decrby", async () => {
        assert.equal(await redis.incr("n:a"), 1);
        assert.equal(await redis.incr("n:a"), 2);
        assert.equal(await redis.incrby("n:a", 40), 42);
        assert.equal(await redis.decr("n:a"), 41);
        assert.equal(await redis.decrby("n:a", 50), -9);
        assert.equal(await redis.get("n:a"), -9); // the client deserializes numeric strings
      });

      test("incrbyfloat returns the exact float", async () => {
        assert.equal(await redis.incrbyfloat("n:f", 1.5), 1.5);
        assert.equal(await redis.incrbyfloat("n:f", 0.25), 1.75);
        assert.equal(await redisCommand(stack.redisServer.port, "GET", "n:f"), "1.75");
      });

      test("64-bit integers keep every digit", async () => {
        assert.equal(await redis.set("n:big", "9223372036854775800"), "OK");
        assert.equal(await redis.incrby("n:big", 7), 9223372036854775807);
        // Beyond 2^53 the client keeps the string: the digits must be exact.
        assert.equal(await redis.get("n:big"), "9223372036854775807");
        await assert.rejects(redis.incr("n:big"), /overflow/);
      });
    });

    describe("JSON values", () => {
      test("objects and arrays are serialized and come back as objects", async () => {
        const obj = { name: "edgecount", tags: ["a", "b"], n: 3, nested: { ok: true, nil: null } };
        assert.equal(await redis.set("j:obj", obj), "OK");
        assert.deepEqual(await redis.get("j:obj"), obj);
        assert.equal(
          await redisCommand(stack.redisServer.port, "GET", "j:obj"),
          JSON.stringify(obj),
        );
        assert.equal(await redis.set("j:arr", [1, "two", 3.5]), "OK");
        assert.deepEqual(await redis.get("j:arr"), [1, "two", 3.5]);
      });

      test("mget deserializes each element", async () => {
        await redis.set("j:m1", { a: 1 });
        await redis.set("j:m2", 7);
        assert.deepEqual(await redis.mget("j:m1", "j:none", "j:m2"), [{ a: 1 }, null, 7]);
      });
    });

    describe("hashes", () => {
      test("hset / hget / hgetall / hincrby / hdel", async () => {
        assert.equal(await redis.hset("h:user", { name: "ada", visits: 1, meta: { x: 1 } }), 3);
        assert.equal(await redis.hget("h:user", "name"), "ada");
        assert.equal(await redis.hget("h:user", "missing"), null);
        assert.equal(await redis.hincrby("h:user", "visits", 41), 42);
        assert.deepEqual(await redis.hgetall("h:user"), { name: "ada", visits: 42, meta: { x: 1 } });
        assert.equal(await redis.hexists("h:user", "name"), 1);
        assert.equal(await redis.hlen("h:user"), 3);
        assert.deepEqual((await redis.hkeys("h:user")).sort(), ["meta", "name", "visits"]);
        assert.deepEqual(await redis.hmget("h:user", "name", "nope"), { name: "ada", nope: null });
        assert.equal(await redis.hdel("h:user", "meta", "nope"), 1);
        assert.equal(await redis.hgetall("h:missing"), null);
      });
    });

    describe("lists", () => {
      test("push / range / pop / len / index", async () => {
        assert.equal(await redis.rpush("l:q", "b", "c"), 2);
        assert.equal(await redis.lpush("l:q", "a"), 3);
        assert.deepEqual(await redis.lrange("l:q", 0, -1), ["a", "b", "c"]);
        assert.equal(await redis.llen("l:q"), 3);
        assert.equal(await redis.lindex("l:q", 1), "b");
        assert.equal(await redis.lpop("l:q"), "a");
        assert.equal(await redis.rpop("l:q"), "c");
        assert.deepEqual(await redis.lrange("l:q", 0, -1), ["b"]);
        assert.equal(await redis.lpop("l:empty"), null);
      });
    });

    describe("sets", () => {
      test("sadd / smembers / sismember / scard / srem", async () => {
        assert.equal(await redis.sadd("set:s", "x", "y", "z", "x"), 3);
        assert.deepEqual((await redis.smembers("set:s")).sort(), ["x", "y", "z"]);
        assert.equal(await redis.sismember("set:s", "y"), 1);
        assert.equal(await redis.sismember("set:s", "w"), 0);
        assert.equal(await redis.scard("set:s"), 3);
        assert.equal(await redis.srem("set:s", "x", "w"), 1);
        assert.deepEqual(await redis.smembers("set:none"), []);
      });
    });

    describe("sorted sets", () => {
      test("zadd / zrange with scores / zscore / zincrby / zrank", async () => {
        assert.equal(
          await redis.zadd("z:board", { score: 1, member: "a" }, { score: 2.5, member: "b" }, { score: -3, member: "c" }),
          3,
        );
        assert.deepEqual(await redis.zrange("z:board", 0, -1), ["c", "a", "b"]);
        assert.deepEqual(await redis.zrange("z:board", 0, -1, { withScores: true }), ["c", -3, "a", 1, "b", 2.5]);
        assert.equal(await redis.zscore("z:board", "b"), 2.5);
        assert.equal(await redis.zincrby("z:board", 0.25, "a"), 1.25);
        assert.equal(await redis.zrank("z:board", "b"), 2);
        assert.equal(await redis.zcard("z:board"), 3);
        assert.deepEqual(
          await redis.zrange("z:board", 1, 3, { byScore: true, withScores: true }),
          ["a", 1.25, "b", 2.5],
        );
        assert.equal(await redis.zscore("z:board", "nobody"), null);
      });
    });

    describe("pipeline and transactions", () => {
      test("pipeline runs every command in order", async () => {
        const p = redis.pipeline();
        p.set("p:k", "v");
        p.incr("p:n");
        p.incr("p:n");
        p.get("p:k");
        p.hset("p:h", { f: "x" });
        p.get("p:missing");
        assert.deepEqual(await p.exec(), ["OK", 1, 2, "v", 1, null]);
      });

      test("pipeline error: the command fails, the others still ran", async () => {
        await redis.set("p:str", "text");
        const p = redis.pipeline();
        p.incr("p:cnt");
        p.lpush("p:str", "x"); // WRONGTYPE
        p.incr("p:cnt");
        const res = await p.exec({ keepErrors: true });
        assert.equal(res.length, 3);
        assert.deepEqual(res[0], { error: undefined, result: 1 });
        assert.match(res[1].error, /^WRONGTYPE/);
        assert.deepEqual(res[2], { error: undefined, result: 2 });
        // Without keepErrors the client throws, naming the failed command.
        const p2 = redis.pipeline();
        p2.lpush("p:str", "x");
        await assert.rejects(p2.exec(), /WRONGTYPE/);
      });

      test("multi-exec applies atomically and returns each result", async () => {
        const tx = redis.multi();
        tx.set("t:k", "1");
        tx.incr("t:k");
        tx.incrby("t:k", 10);
        tx.get("t:k");
        assert.deepEqual(await tx.exec(), ["OK", 2, 12, 12]);
      });

      test("multi-exec with an exec-time error keeps the other writes", async () => {
        await redis.set("t:str", "text");
        const tx = redis.multi();
        tx.incr("t:other");
        tx.incr("t:str"); // ERR value is not an integer — fails inside EXEC only
        tx.incr("t:other");
        const res = await tx.exec({ keepErrors: true });
        assert.deepEqual(res[0], { error: undefined, result: 1 });
        assert.match(res[1].error, /not an integer/);
        assert.deepEqual(res[2], { error: undefined, result: 2 });
        assert.equal(await redis.get("t:other"), 2);
      });

      test("multi-exec discarded as a whole (EXECABORT) writes nothing", async () => {
        const tx = redis.multi();
        tx.set("t:never", "x");
        // MGET with no keys fails arity when queued, so EXEC aborts the whole transaction.
        tx.mget([]);
        await assert.rejects(tx.exec(), /EXECABORT/);
        assert.equal(await redis.exists("t:never"), 0);
      });
    });

    describe("scripts", () => {
      test("eval returns strings, integers and tables", async () => {
        assert.equal(await redis.eval("return ARGV[1]", [], ["hi there"]), "hi there");
        assert.equal(await redis.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", ["e:n"], ["5"]), 5);
        assert.deepEqual(await redis.eval("return {1, 'two', {3, 'four'}}", [], []), [1, "two", [3, "four"]]);
        assert.equal(await redis.eval("return nil", [], []), null);
      });

      test("eval error surfaces as a thrown error", async () => {
        await assert.rejects(redis.eval("return redis.error_reply('MYERR custom')", [], []), /MYERR custom/);
      });

      test("scriptLoad + evalsha; unknown sha is NOSCRIPT", async () => {
        const sha = await redis.scriptLoad("return KEYS[1] .. ':' .. ARGV[1]");
        assert.match(sha, /^[0-9a-f]{40}$/);
        assert.equal(await redis.evalsha(sha, ["k"], ["v"]), "k:v");
        assert.deepEqual(await redis.scriptExists(sha, "0".repeat(40)), [1, 0]);
        await assert.rejects(redis.evalsha("0".repeat(40), [], []), /NOSCRIPT/);
      });

      test("createScript falls back from EVALSHA to EVAL, then EVALSHA works", async () => {
        const body = "return redis.call('INCRBY', KEYS[1], ARGV[1]) -- createScript " + Date.now();
        const script = redis.createScript(body);
        assert.equal(await script.exec(["e:cs"], ["2"]), 2); // NOSCRIPT → EVAL
        await script.init(body);
        assert.deepEqual(await redis.scriptExists(script.sha1), [1]);
        assert.equal(await script.evalsha(["e:cs"], ["3"]), 5);
        assert.equal(await script.exec(["e:cs"], ["1"]), 6);
      });
    });

    describe("scan", () => {
      test("scan with match and count visits every matching key once", async () => {
        const want = [];
        for (let i = 0; i < 40; i++) want.push(`scan:${i}`);
        await redis.mset(Object.fromEntries(want.map((k) => [k, "1"])));
        await redis.set("other:1", "1");
        const seen = new Set();
        let cursor = "0";
        let rounds = 0;
        do {
          const [next, keys] = await redis.scan(cursor, { match: "scan:*", count: 10 });
          for (const k of keys) seen.add(k);
          cursor = String(next);
          rounds++;
        } while (cursor !== "0" && rounds < 1000);
        assert.ok(rounds > 1, "count: 10 should need several rounds");
        assert.deepEqual([...seen].sort(), want.sort());
      });

      test("keys and type", async () => {
        await redis.set("kt:str", "1");
        await redis.rpush("kt:list", "1");
        assert.deepEqual((await redis.keys("kt:*")).sort(), ["kt:list", "kt:str"]);
        assert.equal(await redis.type("kt:str"), "string");
        assert.equal(await redis.type("kt:list"), "list");
        assert.equal(await redis.type("kt:none"), "none");
      });
    });

    describe("pub/sub", () => {
      test("publish with no subscribers counts 0", async () => {
        assert.equal(await redis.publish("ps:nobody", "hello"), 0);
      });

      test("subscribe receives messages over SSE; unsubscribe releases it", async () => {
        const sub = redis.subscribe(["ps:news"]);
        const messages = [];
        const errors = [];
        let subscribed = null;
        sub.on("subscribe", (count) => (subscribed = count));
        sub.on("message", (m) => messages.push(m));
        sub.on("error", (e) => errors.push(e));
        try {
          await waitFor(() => subscribed !== null, { timeoutMs: 5000, what: "subscribe confirmation" });
          assert.equal(subscribed, 1);
          assert.equal(await redis.publish("ps:news", "plain text, with commas"), 1);
          assert.equal(await redis.publish("ps:news", { kind: "json", n: 1 }), 1);
          await waitFor(() => messages.length >= 2, { timeoutMs: 5000, what: "two messages" });
          assert.deepEqual(messages, [
            { channel: "ps:news", message: "plain text, with commas" },
            { channel: "ps:news", message: { kind: "json", n: 1 } },
          ]);
          assert.deepEqual(errors, []);
        } finally {
          await sub.unsubscribe();
        }
        // The proxy notices the aborted stream and drops the Redis subscription.
        await waitFor(async () => (await redis.publish("ps:news", "gone")) === 0, {
          timeoutMs: 10_000,
          stepMs: 100,
          what: "subscriber released after unsubscribe",
        });
      });

      test("psubscribe receives pattern messages", async () => {
        const sub = redis.psubscribe(["ps:room:*"]);
        const messages = [];
        const errors = [];
        let subscribed = null;
        sub.on("psubscribe", (count) => (subscribed = count));
        sub.on("pmessage", (m) => messages.push(m));
        sub.on("error", (e) => errors.push(e));
        try {
          await waitFor(() => subscribed !== null, { timeoutMs: 5000, what: "psubscribe confirmation" });
          assert.equal(subscribed, 1);
          // The client JSON-parses pattern messages without a fallback, so publish JSON here.
          assert.equal(await redis.publish("ps:room:1", { hello: "room, 1" }), 1);
          await waitFor(() => messages.length >= 1, { timeoutMs: 5000, what: "pattern message" });
          assert.deepEqual(messages, [{ pattern: "ps:room:*", channel: "ps:room:1", message: { hello: "room, 1" } }]);
          assert.deepEqual(errors, []);
        } finally {
          await sub.unsubscribe();
        }
      });
    });

    describe("errors", () => {
      test("WRONGTYPE becomes a thrown UpstashError", async () => {
        await redis.set("err:str", "x");
        await assert.rejects(redis.lpush("err:str", "y"), (err) => {
          assert.equal(err.name, "UpstashError");
          // Auto-pipelined: "Command failed: <error>"; single request: "<error>, command was: […]".
          assert.match(err.message, /WRONGTYPE Operation against a key holding the wrong kind of value/);
          return true;
        });
      });

      test("arity errors and unknown commands are thrown with Redis's text", async () => {
        await assert.rejects(redis.exec(["GET"]), /wrong number of arguments/i);
        await assert.rejects(redis.exec(["NOSUCHCOMMAND"]), /unknown command/i);
      });

      test("a wrong token is rejected with WRONGPASS", async () => {
        const bad = new Redis({ url: stack.proxy.url, token: "not-the-token", retry: false, ...clientOptions });
        await assert.rejects(bad.get("anything"), /WRONGPASS/);
      });

      test("the proxy still serves requests after errors", async () => {
        assert.equal(await redis.incr("err:after"), 1);
      });
    });

    describe("read-your-writes", () => {
      test("the sync token is set by the proxy and changes after writes", async () => {
        const client = new Redis({ url: stack.proxy.url, token: TOKEN, retry: false, ...clientOptions });
        assert.equal(client.readYourWritesSyncToken, ""); // nothing sent yet
        await client.set("ryw:k", "1");
        const first = client.readYourWritesSyncToken;
        assert.equal(typeof first, "string");
        assert.ok(first.length > 0, "proxy must return a non-empty Upstash-Sync-Token");
        await client.incr("ryw:k");
        const second = client.readYourWritesSyncToken;
        assert.ok(second.length > 0);
        assert.notEqual(second, first, "token must change after a write");
        assert.equal(await client.get("ryw:k"), 2); // the read sees the write, carrying the token
        // An arbitrary token from elsewhere is accepted.
        client.readYourWritesSyncToken = "my-new-sync-token";
        assert.equal(await client.get("ryw:k"), 2);
      });

      test("readYourWrites: false works too (no sync header)", async () => {
        const client = new Redis({ url: stack.proxy.url, token: TOKEN, retry: false, readYourWrites: false, ...clientOptions });
        assert.equal(await client.incr("ryw:off"), 1);
        assert.equal(await client.get("ryw:off"), 1);
      });

      test("plain JSON responses (responseEncoding: false) decode the same", async () => {
        const client = new Redis({ url: stack.proxy.url, token: TOKEN, retry: false, responseEncoding: false, ...clientOptions });
        await client.set("enc:k", "héllo ✓");
        assert.equal(await client.get("enc:k"), "héllo ✓");
        assert.deepEqual(await client.mget("enc:k", "enc:none"), ["héllo ✓", null]);
      });
    });
  });
}
