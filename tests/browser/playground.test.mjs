// The dashboard's rate-limit playground in a real browser: pressing "Send request" until the
// configured limit answers 429, with the status, body and rate-limit headers of every answer in
// the log, newest first.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assertNoProblems, openPage, useBrowser, useStack } from "./harness.mjs";

const LIMIT = 3;

describe("rate-limit playground", () => {
  // An hour-long fixed window: a test of a few seconds cannot straddle it.
  const stack = useStack({ env: { EDGECOUNT_RATE_LIMITS: `tiny=fixed:${LIMIT}/1h; other=sliding:100/60s` } });
  const browser = useBrowser();

  test(`shows a 429 after ${LIMIT} presses`, { timeout: 30_000 }, async () => {
    const { context, page, problems } = await openPage(browser.it, `${stack.url}/`);
    await page.waitForFunction(() => !/Loading/.test(document.getElementById("pg-note").textContent));
    // GET /limit lists the configured policies.
    const options = await page.$$eval("#pg-policy option", (os) => os.map((o) => [o.value, o.textContent]));
    assert.deepEqual(options, [["tiny", `tiny: fixed window, ${LIMIT} per 1 h`], ["other", "other: sliding window, 100 per 1 min"]]);
    assert.equal(await page.textContent("#pg-note"), "2 policies configured (EDGECOUNT_RATE_LIMITS).");
    await page.selectOption("#pg-policy", "tiny");
    const id = await page.inputValue("#pg-id");
    assert.match(id, /^playground-[a-z0-9]{4}$/);

    for (let i = 1; i <= LIMIT + 1; i++) {
      await page.click("#pg-send");
      await page.waitForFunction((n) => document.querySelectorAll("#pg-log li").length === n, i);
    }
    const entries = await page.$$eval("#pg-log li", (lis) => lis.map((li) => ({
      status: li.querySelector(".status").textContent,
      summary: li.querySelector(".sum").textContent,
      headers: Object.fromEntries([...li.querySelectorAll(".hdrs div")].map((d) => [d.querySelector("dt").textContent, d.querySelector("dd").textContent])),
      body: li.querySelector("pre").textContent,
      open: li.querySelector("details").open,
    })));
    // Newest first: the 429, then the allowed ones with 0, 1, 2 left.
    assert.equal(entries[0].status, "429 Too Many Requests");
    assert.match(entries[0].summary, /refused, retry after \d+ s/);
    assert.ok(Number(entries[0].headers["Retry-After"]) > 0, JSON.stringify(entries[0].headers));
    assert.equal(entries[0].headers["X-RateLimit-Remaining"], "0");
    assert.equal(entries[0].headers["RateLimit-Policy"], `"tiny";q=${LIMIT};w=3600`);
    assert.match(entries[0].headers.RateLimit, /^"tiny";r=0;t=\d+$/);
    assert.equal(JSON.parse(entries[0].body).allowed, false);
    assert.equal(entries[0].open, true, "the newest body is shown");
    for (let i = 1; i <= LIMIT; i++) {
      assert.equal(entries[i].status, "200 OK");
      assert.equal(entries[i].summary, `allowed, ${i - 1} of ${LIMIT} left`);
      assert.equal(entries[i].headers["X-RateLimit-Remaining"], String(i - 1));
      assert.equal(entries[i].headers["Retry-After"], undefined);
      assert.equal(entries[i].open, false);
    }
    assert.match(await page.textContent("#pg-announce"), /^Request 4: 429 Too Many Requests, refused/);

    // A fresh identifier starts over.
    await page.fill("#pg-id", `${id}-b`);
    await page.click("#pg-send");
    await page.waitForFunction(() => document.querySelector("#pg-log li .status").textContent === "200 OK");

    assertNoProblems(problems, (p) => (p.kind === "status" && p.status === 429) ||
      (p.kind === "console" && /status of 429/.test(p.text)));
    await context.close();
  });

  test("a server without the policy list: the name is typed, and an unknown one is explained", { timeout: 30_000 }, async () => {
    const { context, page, problems } = await openPage(browser.it);
    // An older server answers GET /limit with 404: the page falls back to a text input.
    await page.route(/\/limit$/, (route) => route.fulfill({ status: 404, contentType: "application/json", body: '{"error":"no such route"}' }));
    await page.goto(`${stack.url}/`);
    await page.waitForFunction(() => !/Loading/.test(document.getElementById("pg-note").textContent));
    assert.equal(await page.isVisible("#pg-policy"), false);
    assert.match(await page.textContent("#pg-note"), /does not list its policies: type a policy name/);
    await page.fill("#pg-policy-text", "nosuch");
    await page.click("#pg-send");
    await page.waitForSelector("#pg-log li");
    assert.match(await page.textContent("#pg-log li .sum"), /unknown rate-limit policy "nosuch" \(HTTP 404\)/);
    await page.fill("#pg-policy-text", "tiny+other");
    await page.click("#pg-send");
    await page.waitForFunction(() => document.querySelectorAll("#pg-log li").length === 2);
    assert.equal(await page.textContent("#pg-log li .status"), "200 OK");
    assertNoProblems(problems, (p) => /\/limit(\/nosuch\/[^/]+)?$/.test(new URL(p.url).pathname));
    await context.close();
  });
});

describe("rate-limit playground without policies", () => {
  const stack = useStack();
  const browser = useBrowser();

  test("says that EDGECOUNT_RATE_LIMITS is empty", { timeout: 30_000 }, async () => {
    const { context, page, problems } = await openPage(browser.it, `${stack.url}/`);
    await page.waitForFunction(() => !/Loading/.test(document.getElementById("pg-note").textContent));
    assert.match(await page.textContent("#pg-note"), /No rate-limit policies are configured.*EDGECOUNT_RATE_LIMITS/);
    assert.equal(await page.isDisabled("#pg-send"), true);
    assertNoProblems(problems);
    await context.close();
  });
});
