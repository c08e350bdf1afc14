// The dashboard page (web/, embedded in `edgecount serve`) in a real browser against the real stack:
// it loads cleanly, the counter view shows its numbers and charts and follows hits live, the
// controls work from the keyboard, nothing shifts, it fits 360 px, and screenshots in light and
// dark go to target/screenshots/. Run: node --test tests/browser/ (scripts/test.sh does).
import assert from "node:assert/strict";
import path from "node:path";
import { describe, test } from "node:test";
import {
  assertNoProblems, call, hit, openPage, screenshot, seedHistory, SCREENSHOT_DIR, useBrowser,
  useStack,
} from "./harness.mjs";

const T = { timeout: 30_000 };

describe("dashboard", () => {
  const stack = useStack({ env: { EDGECOUNT_RATE_LIMITS: "demo=fixed:5/1h" } });
  const browser = useBrowser();

  test("loads with no console error and no failed request, favicon included", T, async () => {
    const { context, page, problems } = await openPage(browser.it, `${stack.url}/`);
    const favicon = await page.evaluate(async () => (await fetch("/favicon.svg")).status);
    assert.equal(favicon, 200);
    assert.equal(await page.getAttribute('link[rel="icon"]', "href"), "/favicon.svg");
    // The playground has asked for the policies by now (or fallen back to a text input).
    await page.waitForFunction(() => !/Loading/.test(document.getElementById("pg-note").textContent));
    await page.waitForLoadState("networkidle");
    assert.equal(await page.title(), "edgecount dashboard");
    assert.equal(await page.isHidden("#counter-view"), true, "no view without a hash");
    assertNoProblems(problems);

    // A counter view straight from a bookmark loads cleanly too.
    await hit(stack, "loadtest", "home");
    const second = await openPage(browser.it, `${stack.url}/#ns=loadtest&key=home`);
    await second.page.waitForSelector("#cv-live[data-state=on]");
    await second.page.waitForSelector("#bb-img[src]");
    await second.page.waitForFunction(() => document.getElementById("bb-img").complete);
    assertNoProblems(second.problems);
    await second.context.close();
    await context.close();
  });

  test("counter view: total, today, uniques and charts; a hit from a second browser context shows live", T, async () => {
    await hit(stack, "site", "home", 3);
    const { context, page, problems } = await openPage(browser.it, `${stack.url}/`);
    // Open the view the way a user does: the lookup form.
    await page.fill("#f-ns", "site");
    await page.fill("#f-key", "home");
    await page.click("#f-go");
    await page.waitForFunction(() => location.hash === "#ns=site&key=home");
    await page.waitForSelector("#cv-live[data-state=on]");
    assert.equal(await page.textContent("#cv-name"), "site/home");
    assert.equal(await page.textContent("#cv-total"), "3");
    assert.equal(await page.textContent("#cv-today"), "3");
    assert.equal(await page.textContent("#cv-uniques"), "1");

    // Charts: 30 daily bars (today last, with its count in the tooltip), 48 hourly bars, text alternatives.
    assert.equal(await page.locator("#daily-chart svg .bar").count(), 30);
    assert.equal(await page.locator("#hourly-chart svg .bar").count(), 48);
    assert.match(await page.locator("#daily-chart svg .bar title").last().textContent(), /: 3 hits, 1 uniques$/);
    assert.match(await page.locator("#hourly-chart svg .bar title").last().textContent(), /: 3 hits$/);
    assert.match(await page.getAttribute("#daily-chart svg", "aria-label"), /Daily hits over the last 30 days: 3 in all/);
    assert.equal(await page.locator("#daily-table tbody tr").count(), 30);
    assert.equal(await page.locator("#hourly-table tbody tr").count(), 48);
    assert.ok(await page.locator("#daily-chart svg text.tick").count() >= 4, "axis labels");

    // The range switch: 90 days.
    await page.click('.seg button[data-days="90"]');
    await page.waitForFunction(() => document.querySelectorAll("#daily-chart svg .bar").length === 90);
    assert.equal(await page.getAttribute('.seg button[data-days="90"]', "aria-pressed"), "true");
    assert.equal(await page.getAttribute('.seg button[data-days="30"]', "aria-pressed"), "false");

    // A hit from another browser context (another visitor) arrives over /stream without a reload.
    await page.evaluate(() => { window.notReloaded = true; });
    const other = await browser.it.newContext();
    const visitor = await other.newPage();
    await visitor.goto(`${stack.url}/`);
    const answer = await visitor.evaluate(async () => (await fetch("/hit/site/home", { method: "POST" })).json());
    assert.equal(answer.value, 4);
    await page.waitForFunction(() => document.getElementById("cv-total").textContent === "4", null, { timeout: 5000 });
    assert.equal(await page.textContent("#cv-today"), "4");
    assert.match(await page.locator("#daily-chart svg .bar title").last().textContent(), /: 4 hits/);
    assert.match(await page.locator("#hourly-chart svg .bar title").last().textContent(), /: 4 hits$/);
    assert.equal(await page.evaluate(() => window.notReloaded), true, "the page was not reloaded");
    assert.equal(await page.getAttribute("#cv-total", "aria-live"), "polite");
    await other.close();
    assertNoProblems(problems);
    await context.close();
  });

  test("a missing counter and an invalid name give clear messages", T, async () => {
    const { context, page, problems } = await openPage(browser.it, `${stack.url}/#ns=site&key=nothing-here`);
    await page.waitForFunction(() => document.getElementById("cv-error").textContent !== "");
    assert.match(await page.textContent("#cv-error"), /Counter site\/nothing-here not found/);
    assert.equal(await page.textContent("#cv-total"), "—");
    await page.fill("#f-key", "x");
    await page.press("#f-key", "Enter");
    await page.waitForFunction(() => document.getElementById("lookup-error").textContent !== "");
    assert.match(await page.textContent("#lookup-error"), /“x” is not a valid name/);
    // The only failed request is the 404 of the missing counter's statistics.
    assertNoProblems(problems, (p) => /\/stats\/site\/nothing-here/.test(p.url));
    await context.close();
  });

  test("keyboard: main controls are reachable with Tab and work with Enter and Space", T, async () => {
    await hit(stack, "keys", "home", 2);
    const { context, page, problems } = await openPage(browser.it, `${stack.url}/`);
    await page.waitForFunction(() => !/Loading/.test(document.getElementById("pg-note").textContent));
    const tab = async () => {
      await page.keyboard.press("Tab");
      return page.evaluate(() => {
        const el = document.activeElement;
        return { id: el.id, text: el.textContent.trim(), outline: getComputedStyle(el).outlineStyle };
      });
    };
    const tabTo = async (id, max = 60) => {
      for (let i = 0; i < max; i++) {
        const f = await tab();
        if (f.id === id) return f;
      }
      throw new Error(`#${id} is not reachable with Tab`);
    };

    // Type a lookup with the keyboard only and submit it with Enter.
    const ns = await tabTo("f-ns");
    assert.notEqual(ns.outline, "none", "visible focus");
    await page.keyboard.type("keys");
    await page.keyboard.press("Tab");
    await page.keyboard.type("home");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#cv-live[data-state=on]");
    assert.equal(await page.textContent("#cv-total"), "2");

    // The range switch: Enter on "90 days", Space on "400 days".
    await page.focus("#f-go");
    const seg = await tabTo("days-90", 10);
    assert.notEqual(seg.outline, "none", "visible focus on the switch");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll("#daily-chart svg .bar").length === 90);
    await page.keyboard.press("Tab");
    await page.keyboard.press("Space");
    // As many bars as the server gives for ?days=400 (it may cap the range; the page says so).
    const most = (await call(stack, "GET", "/stats/keys/home?days=400")).body.days.length;
    await page.waitForFunction((n) => document.querySelectorAll("#daily-chart svg .bar").length === n, most);
    if (most < 400) assert.equal(await page.textContent("#daily-range"), `${most} days: this server’s maximum`);
    assert.equal(await page.getAttribute("#days-400", "aria-pressed"), "true");

    // Badge builder: a select and a checkbox, then a copy button with Enter.
    await tabTo("bb-style", 10);
    await page.keyboard.press("ArrowDown"); // flat-square
    await page.waitForFunction(() => document.getElementById("sn-md").value.includes("style=flat-square"));
    await tabTo("bb-abbr", 10);
    await page.keyboard.press("Space");
    assert.equal(await page.isChecked("#bb-abbr"), true);
    await page.waitForFunction(() => document.getElementById("sn-md").value.includes("abbreviate=1"));
    await tabTo("copy-md", 20);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelector("#copy-md + .copied").textContent !== "");

    // Playground: the policy list (its first policy is selected), then Space on "Send request".
    await tabTo("pg-policy", 40);
    assert.equal((await tab()).id, "pg-id");
    const send = await tab();
    assert.equal(send.id, "pg-send");
    await page.keyboard.press("Space");
    await page.waitForSelector("#pg-log li");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll("#pg-log li").length === 2);
    // Clear log is next.
    assert.equal((await tab()).id, "pg-clear");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll("#pg-log li").length === 0);
    // After a reload, the first Tab reaches the skip link; Enter moves focus to the content and keeps
    // the view's address.
    await page.reload();
    await page.waitForSelector("#cv-live[data-state=on]");
    const skip = await tab();
    assert.equal(skip.text, "Skip to content");
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement.id), "main");
    assert.equal(await page.evaluate(() => location.hash), "#ns=keys&key=home");
    // Copying may be refused without clipboard permission: that shows a message, never an error. The
    // reload cancelled the open /stream request: expected.
    assertNoProblems(problems, (p) => (p.kind === "requestfailed" && /\/stream\/keys\/home$/.test(p.url)));
    await context.close();
  });

  test("no layout shift while data arrives, fits 360 px, light and dark screenshots", { timeout: 60_000 }, async (t) => {
    // A month of history reads better in a screenshot than one bar (written straight to Redis).
    await hit(stack, "demo-blog", "home", 5);
    const days = Array.from({ length: 60 }, (_, i) => Math.round(40 + 25 * Math.sin(i / 3) + (i % 7 < 5 ? 30 : 0) + i));
    const hours = Array.from({ length: 47 }, (_, i) => Math.round(6 + 5 * Math.sin((i - 8) / 3.8) + (i % 5)));
    await seedHistory(stack, "demo-blog", "home", { days, hours });
    const url = `${stack.url}/#ns=demo-blog&key=home`;

    const shots = [];
    for (const [colorScheme, width] of [["light", 1100], ["dark", 1100], ["light", 360], ["dark", 360]]) {
      const { context, page, problems } = await openPage(browser.it, undefined, {
        viewport: { width, height: 900 }, colorScheme,
      });
      await page.addInitScript(() => {
        window.shifts = [];
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) if (!e.hadRecentInput) window.shifts.push(e.value);
        }).observe({ type: "layout-shift", buffered: true });
      });
      await page.goto(url);
      await page.waitForSelector("#cv-live[data-state=on]");
      await page.waitForFunction(() => document.getElementById("bb-img").complete && document.getElementById("bb-img").naturalWidth > 0);
      await page.waitForLoadState("networkidle");
      await page.waitForTimeout(200);
      const cls = await page.evaluate(() => window.shifts.reduce((a, b) => a + b, 0));
      assert.ok(cls < 0.01, `cumulative layout shift ${cls} at ${width} px ${colorScheme}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `page is ${overflow} px wider than the ${width} px viewport`);
      // The colour scheme is really applied.
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bg, colorScheme === "dark" ? "rgb(13, 17, 23)" : "rgb(243, 245, 248)");
      // Send requests until the playground shows a 429, for the picture.
      if (width === 1100) {
        await page.selectOption("#pg-policy", "demo");
        await page.fill("#pg-id", `shot-${colorScheme}`);
        for (let i = 0; i < 6; i++) await page.click("#pg-send");
        await page.waitForFunction(() => document.querySelectorAll("#pg-log li").length === 6);
      }
      shots.push(await screenshot(page, `dashboard-${colorScheme}-${width}`));
      if (colorScheme === "light" && width === 1100) {
        // The README's picture (docs/dashboard.png, copied by hand): header to badge builder.
        const bottom = await page.evaluate(() => document.getElementById("badge-view").getBoundingClientRect().bottom + window.scrollY);
        const file = path.join(SCREENSHOT_DIR, "dashboard-docs.png");
        await page.screenshot({ path: file, fullPage: true, clip: { x: 0, y: 0, width, height: Math.ceil(bottom + 16) } });
        shots.push(file);
      }
      assertNoProblems(problems, (p) => (p.status === 429 && /\/limit\/demo\//.test(p.url)) ||
        (p.kind === "console" && /status of 429/.test(p.text)));
      await context.close();
    }
    t.diagnostic(`screenshots: ${shots.map((s) => path.relative(process.cwd(), s)).join(", ")}`);
    const served = await call(stack, "GET", "/get/demo-blog/home");
    assert.equal(served.status, 200);
  });
});
