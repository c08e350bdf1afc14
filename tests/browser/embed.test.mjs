// The embed script (web/embed.js, served by the stack at /embed.js) in a real browser, on pages of a
// third-party site: a second origin (in-process static server) that the stack's CORS allow-list
// names, and a third one it does not. Checks what a site owner sees (the numbers filled in) and
// what the server counted (read from Node): one hit per page view, one per SPA route change that
// changes the path, none with data-respect-dnt under DNT or GPC, and the script's size and caching.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import {
  assertNoProblems, call, openPage, readWebFile, startStack, startStaticServer, useBrowser, waitFor,
} from "./harness.mjs";

const T = { timeout: 30_000 };
const NS = "embed-site";

describe("embed script", { timeout: 150_000 }, () => {
  // The site (allowed by CORS) and another one (not), then the stack whose allow-list names the
  // site: the origins must be known before the stack starts. Pages are added to `routes` later,
  // once the stack's URL is known (the static server looks routes up per request).
  const site = { routes: {} };
  const other = { routes: {} };
  const stack = {};
  before(async () => {
    Object.assign(site, await startStaticServer(site.routes));
    Object.assign(other, await startStaticServer(other.routes));
    Object.assign(stack, await startStack({ env: { EDGECOUNT_ALLOWED_ORIGINS: site.url } }));
  });
  after(async () => {
    await stack.stop?.();
    await site.stop?.();
    await other.stop?.();
  });
  const browser = useBrowser();

  /** An HTML page with the embed tag (attributes as given), then `body`. */
  const page = ({ attrs = `data-namespace="${NS}"`, body = "", head = "" } = {}) =>
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A post</title>` +
    // No favicon request: a 404 there would be a failed request of the test page, not of edgecount.
    `<link rel="icon" href="data:,">${head}</head><body>` +
    `<script src="${stack.url}/embed.js?v=1" ${attrs} async></script>${body}</body></html>`;

  /** A counter's value as the API reads it (null when it does not exist). */
  const value = async (ns, key) => {
    const answer = await call(stack, "GET", `/get/${ns}/${key}`);
    if (answer.status === 404) return null;
    assert.equal(answer.status, 200, answer.text);
    return answer.body.value;
  };

  /** The hit/get requests a page sends to the API, as "METHOD /route?query". */
  const apiRequests = (p) => {
    const seen = [];
    p.on("request", (r) => {
      const url = new URL(r.url());
      if (url.origin === stack.url && /^\/(hit|get)\//.test(url.pathname)) {
        seen.push(`${r.method()} ${url.pathname}${url.search}`);
      }
    });
    return seen;
  };

  /** Wait until no new API request arrived for `quietMs`. */
  const settle = async (p, quietMs = 400) => {
    await p.waitForLoadState("networkidle");
    await p.waitForTimeout(quietMs);
  };

  const span = (p, which = "value") => p.textContent(`[data-edgecount="${which}"]`);

  test("counts the view and fills value, today and uniques; a reload counts again; no errors", T, async () => {
    site.routes["/posts/hello/"] = page({
      body: `<p>Views: <span data-edgecount="value"></span>, today <span data-edgecount="today"></span>,
        visitors today <span data-edgecount="uniques"></span>. Again: <b data-edgecount="value"></b></p>`,
    });
    const { context, page: p, problems } = await openPage(browser.it, undefined);
    const requests = apiRequests(p);
    const answer = p.waitForResponse((r) => r.url().startsWith(`${stack.url}/hit/`));
    await p.goto(`${site.url}/posts/hello/`);
    // The page's path names the key (`/posts/hello/` → posts.hello), as the answer says.
    assert.equal((await answer).headers()["x-path"], `${NS}/posts.hello`);
    await p.waitForFunction(() => document.querySelector('[data-edgecount="value"]').textContent !== "");
    assert.equal(await span(p), "1");
    assert.equal(await span(p, "today"), "1");
    assert.equal(await span(p, "uniques"), "1");
    assert.equal(await p.textContent('b[data-edgecount="value"]'), "1", "every matching element is filled");
    assert.equal(await value(NS, "posts.hello"), 1);
    assert.deepEqual(requests, [
      `POST /hit/${NS}/%3APATH%3A?page=${encodeURIComponent(`${site.url}/posts/hello/`)}`,
    ]);

    await p.reload();
    await p.waitForFunction(() => document.querySelector('[data-edgecount="value"]').textContent === "2");
    assert.equal(await span(p, "today"), "2");
    assert.equal(await span(p, "uniques"), "1", "same browser, same visitor");
    assert.equal(await value(NS, "posts.hello"), 2);
    await settle(p);
    assert.equal(requests.length, 2);
    assertNoProblems(problems);
    await context.close();
  });

  test("one view is one hit; the defaults name the counter :HOST:/:PATH: (root → index)", T, async () => {
    // Only the tag: no data-namespace, no data-key, nothing to fill.
    site.routes["/"] = page({ attrs: "" });
    const { context, page: p, problems } = await openPage(browser.it, undefined);
    const requests = apiRequests(p);
    const answer = p.waitForResponse((r) => r.url().startsWith(`${stack.url}/hit/`));
    await p.goto(`${site.url}/`);
    assert.equal((await answer).headers()["x-path"], "127.0.0.1/index");
    await settle(p, 800);
    assert.equal(await value("127.0.0.1", "index"), 1, "counted exactly once");
    assert.equal(requests.length, 1, requests.join("\n"));
    assertNoProblems(problems);
    await context.close();
  });

  test("SPA: counts a route change that changes the path, not one that only changes the query", T, async () => {
    // After the embed script ran (async scripts run before `load`): pushState to a new path
    // (counts /spa/next), replaceState to the same path with a query (no count: same pathname),
    // then back (popstate; location is /spa/first again, which differs from the last counted
    // path /spa/next, so it counts: a return to a page is a new view of it).
    site.routes["/spa/first"] = page({
      body: `<span data-edgecount="value"></span><script>
        addEventListener("load", () => {
          history.pushState({}, "", "/spa/next");
          history.replaceState({}, "", "/spa/next?tab=2");
          addEventListener("popstate", () => { document.title = "back"; }, { once: true });
          history.back();
        });
      </script>`,
    });
    const { context, page: p, problems } = await openPage(browser.it, undefined);
    const requests = apiRequests(p);
    await p.goto(`${site.url}/spa/first`);
    await p.waitForFunction(() => document.title === "back" && location.pathname === "/spa/first");
    await waitFor(async () => (await value(NS, "spa.first")) === 2, { what: "spa.first at 2" });
    await settle(p);
    assert.equal(await value(NS, "spa.first"), 2, "the first view and the return to it");
    assert.equal(await value(NS, "spa.next"), 1, "pushState counted, replaceState to the same path did not");
    const at = (path) => `POST /hit/${NS}/%3APATH%3A?page=${encodeURIComponent(`${site.url}${path}`)}`;
    // The query (?tab=2) is never sent: the page is its origin and path.
    assert.deepEqual(requests, [at("/spa/first"), at("/spa/next"), at("/spa/first")]);
    // Which number the span ends with depends on the order the three answers arrive in (see the
    // next test); here it is one of them.
    assert.match(await span(p), /^[12]$/);
    assertNoProblems(problems);
    await context.close();
  });

  // The display after a quick route change, made deterministic: the answer of the first view is
  // held back until after the answer of the second. The numbers shown must be the current page's,
  // not whichever answer happened to arrive last.
  test("SPA: a late answer of an earlier route does not overwrite the current page's numbers", T, async () => {
    site.routes["/race/first"] = page({
      body: `<span data-edgecount="value"></span><script>
        addEventListener("load", () => history.pushState({}, "", "/race/second"));
      </script>`,
    });
    // Give /race/second a count of 5 first, so the two pages' numbers differ (1 and 6).
    for (let i = 0; i < 5; i++) assert.equal((await call(stack, "POST", `/hit/${NS}/race.second`)).status, 200);
    const { context, page: p, problems } = await openPage(browser.it, undefined);
    let held = 0;
    const released = [];
    await p.route(`${stack.url}/hit/**`, async (route) => {
      const response = await route.fetch();
      // The first view's answer waits for the second's to be delivered (at most 3 s).
      if (held++ === 0) await new Promise((resolve) => { released.push(resolve); setTimeout(resolve, 3000); });
      await route.fulfill({ response });
      released.shift()?.();
    });
    await p.goto(`${site.url}/race/first`);
    await p.waitForFunction(() => location.pathname === "/race/second");
    await waitFor(async () => (await value(NS, "race.second")) === 6 && (await value(NS, "race.first")) === 1, { what: "both hits" });
    await settle(p);
    assert.equal(held, 2, "two hits sent");
    assert.equal(await span(p), "6", "the span shows /race/second's count, the page now shown");
    assertNoProblems(problems);
    await context.close();
  });

  test("data-respect-dnt: DNT or GPC reads without counting; without the attribute it counts", T, async () => {
    const shown = `<span data-edgecount="value"></span>`;
    site.routes["/private/dnt"] = page({ attrs: `data-namespace="${NS}" data-respect-dnt`, body: shown });
    site.routes["/private/gpc"] = page({ attrs: `data-namespace="${NS}" data-respect-dnt`, body: shown });
    site.routes["/private/ignored"] = page({ body: shown });
    // A count to read: the opted-out visitor still sees the number.
    for (const key of ["private.dnt", "private.gpc"]) {
      for (let i = 0; i < 5; i++) assert.equal((await call(stack, "POST", `/hit/${NS}/${key}`)).status, 200);
    }
    const signals = {
      // Do-Not-Track: the header the browser would send, and what navigator says.
      dnt: {
        options: { extraHTTPHeaders: { DNT: "1" } },
        init: () => Object.defineProperty(Navigator.prototype, "doNotTrack", { get: () => "1", configurable: true }),
      },
      gpc: {
        options: { extraHTTPHeaders: { "Sec-GPC": "1" } },
        init: () => Object.defineProperty(Navigator.prototype, "globalPrivacyControl", { get: () => true, configurable: true }),
      },
    };
    for (const [name, signal] of Object.entries(signals)) {
      const { context, page: p, problems } = await openPage(browser.it, undefined, signal.options);
      await p.addInitScript(signal.init);
      const requests = apiRequests(p);
      await p.goto(`${site.url}/private/${name}`);
      assert.equal(await p.evaluate((n) => (n === "dnt" ? navigator.doNotTrack : navigator.globalPrivacyControl), name),
        name === "dnt" ? "1" : true);
      await p.waitForFunction(() => document.querySelector('[data-edgecount="value"]').textContent !== "");
      assert.equal(await span(p), "5", `${name}: the value is shown`);
      await settle(p);
      assert.equal(await value(NS, `private.${name}`), 5, `${name}: nothing counted`);
      assert.deepEqual(requests, [`GET /get/${NS}/%3APATH%3A?page=${encodeURIComponent(`${site.url}/private/${name}`)}`]);
      assertNoProblems(problems);

      // The same browser on a page without data-respect-dnt: counted (the site owner's choice).
      const before = await value(NS, "private.ignored");
      await p.goto(`${site.url}/private/ignored`);
      await p.waitForFunction((n) => document.querySelector('[data-edgecount="value"]').textContent === String(n), (before ?? 0) + 1);
      assert.equal(await value(NS, "private.ignored"), (before ?? 0) + 1, `${name} without data-respect-dnt counts`);
      assertNoProblems(problems);
      await context.close();
    }
  });

  test("an origin the allow-list does not name: counted, answer hidden by CORS, no page error", T, async () => {
    other.routes["/elsewhere/"] = page({ body: `<span data-edgecount="value">–</span>` });
    const { context, page: p, problems } = await openPage(browser.it, undefined);
    const requests = apiRequests(p);
    const failed = p.waitForEvent("requestfailed", (r) => r.url().startsWith(`${stack.url}/hit/`));
    await p.goto(`${other.url}/elsewhere/`);
    // The POST is a CORS "simple" request (no preflight): it reaches the server and counts. The
    // answer carries no Access-Control-Allow-Origin for this origin, so the browser fails the
    // request for the page (no "response" event) and the script cannot read it.
    assert.equal((await failed).failure()?.errorText, "net::ERR_FAILED");
    await settle(p);
    assert.equal(await value(NS, "elsewhere"), 1);
    const read = await call(stack, "GET", `/get/${NS}/elsewhere`, { headers: { Origin: other.url } });
    assert.equal(read.headers.get("access-control-allow-origin"), null, "no CORS grant for this origin");
    const allowed = await call(stack, "GET", `/get/${NS}/elsewhere`, { headers: { Origin: site.url } });
    assert.equal(allowed.headers.get("access-control-allow-origin"), site.url);
    assert.equal(requests.length, 1);
    assert.equal(await span(p), "–", "the element is left as the page wrote it");
    // What the browser reports: the blocked read (Chromium's own console messages about CORS and
    // the failed load, and the request failing as net::ERR_FAILED), never an uncaught error
    // from the script: embed.js swallows the failure.
    assert.deepEqual(problems.filter((x) => x.kind === "pageerror"), []);
    const hitUrl = (x) => x.url.startsWith(`${stack.url}/hit/`) || x.text.includes(`${stack.url}/hit/`);
    const blocked = (x) => hitUrl(x) && ((x.kind === "console" && /blocked by CORS policy|net::ERR_FAILED/.test(x.text)) ||
      (x.kind === "requestfailed" && x.text === "net::ERR_FAILED"));
    assert.deepEqual(problems.map((x) => x.kind).sort(), ["console", "console", "requestfailed"], JSON.stringify(problems, null, 1));
    assertNoProblems(problems, blocked);
    await context.close();
  });

  test("served small (≤ 2 KB gzip), cached a week, readable from any origin; the repository's file", T, async () => {
    const res = await fetch(`${stack.url}/embed.js?v=1`, { headers: { Origin: other.url } });
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    const gzipped = gzipSync(body, { level: 9 }).length;
    assert.ok(gzipped <= 2048, `embed.js is ${gzipped} bytes gzipped`);
    assert.equal(res.headers.get("cache-control"), "public, max-age=604800");
    // Public even though this stack's API answers name one origin only.
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.match(res.headers.get("content-type"), /^text\/javascript/);
    assert.equal(body.toString("utf8"), readWebFile("embed.js"), "the binary serves web/embed.js as it is now (rebuild?)");
  });
});
