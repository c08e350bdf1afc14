// The dashboard's namespace view in a real browser: top pages from GET /ns/{ns} with the admin
// token (kept in sessionStorage, never in the URL), refusals shown, rows updated live from the
// namespace's SSE stream (read with fetch(): EventSource cannot send the Authorization header).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  assertNoProblems, hit, openPage, screenshot, useBrowser, useStack,
} from "./harness.mjs";

const T = { timeout: 30_000 };

describe("namespace view", () => {
  const stack = useStack();
  const browser = useBrowser();

  const rows = (page) => page.$$eval("#nv-table tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));

  test("lists the counters with the admin token, and a hit elsewhere updates its row live", T, async () => {
    await hit(stack, "shop", "home", 3);
    await hit(stack, "shop", "contact", 2);
    await hit(stack, "shop", "about", 1);

    const { context, page, problems } = await openPage(browser.it, `${stack.url}/`);
    await page.fill("#f-ns", "shop");
    await page.fill("#f-token", stack.adminToken);
    await page.click("#f-go");
    await page.waitForFunction(() => document.querySelectorAll("#nv-table tbody tr").length === 3);
    // The token is in this tab's session storage only: not in the address.
    assert.equal(await page.evaluate(() => location.hash), "#ns=shop");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("edgecount.token")), stack.adminToken);
    assert.deepEqual(await rows(page), [["home", "3", "3"], ["contact", "2", "2"], ["about", "1", "1"]]);
    await page.waitForSelector("#nv-live[data-state=on]");

    // Hits from elsewhere: "about" overtakes everyone, without a reload.
    await page.evaluate(() => { window.notReloaded = true; });
    await hit(stack, "shop", "about", 3);
    await page.waitForFunction(() => document.querySelector("#nv-table tbody tr th")?.textContent === "about", null, { timeout: 5000 });
    await page.waitForFunction(() => document.querySelector("#nv-table tbody tr td").textContent === "4");
    assert.deepEqual(await rows(page), [["about", "4", "4"], ["home", "3", "3"], ["contact", "2", "2"]]);
    assert.equal(await page.evaluate(() => window.notReloaded), true);
    await screenshot(page, "namespace-light-1100");

    // A row opens that counter's view.
    await page.click("#nv-table tbody tr:nth-child(2) td");
    await page.waitForFunction(() => location.hash === "#ns=shop&key=home");
    await page.waitForSelector("#cv-live[data-state=on]");
    assert.equal(await page.textContent("#cv-total"), "3");
    // Leaving the namespace view aborts its stream: that one cancelled request is expected.
    assertNoProblems(problems, (p) => (p.kind === "requestfailed" && /\/ns\/shop\/stream$/.test(p.url)));
    await context.close();
  });

  test("without a token, or with a wrong one, the page says what is wrong", T, async () => {
    await hit(stack, "private", "home");
    const { context, page, problems } = await openPage(browser.it, `${stack.url}/#ns=private`);
    await page.waitForFunction(() => document.getElementById("nv-error").textContent !== "");
    assert.match(await page.textContent("#nv-error"), /needs its namespace token or the admin token/);

    await page.fill("#f-token", "not-the-token");
    await page.click("#f-go");
    await page.waitForFunction(() => /Could not list/.test(document.getElementById("nv-error").textContent));
    const message = await page.textContent("#nv-error");
    assert.match(message, /\(HTTP 40[13]\)/, message);
    assert.equal(await page.locator("#nv-table tbody tr").count(), 0);
    assertNoProblems(problems, (p) => (p.kind === "status" && [401, 403].includes(p.status)) ||
      (p.kind === "console" && /status of 40[13]/.test(p.text)));
    await context.close();
  });
});
