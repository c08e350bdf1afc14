// The dashboard's badge and embed builder in a real browser: the preview image loads (and never
// counts), the options build the badge URL, and the copy buttons put the expected Markdown, HTML,
// embed script and shields.io URL on the clipboard (or select the text when there is no clipboard).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { assertNoProblems, call, hit, openPage, useBrowser, useStack } from "./harness.mjs";

const T = { timeout: 30_000 };

describe("badge and embed builder", () => {
  const stack = useStack();
  const browser = useBrowser();

  async function openCounter(ns, key, options) {
    const opened = await openPage(browser.it, undefined, options);
    await opened.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: stack.url });
    await opened.page.goto(`${stack.url}/#ns=${ns}&key=${key}`);
    await opened.page.waitForSelector("#cv-live[data-state=on]");
    return opened;
  }

  test("preview loads and copy buttons give the expected Markdown, HTML, script and shields URL", T, async () => {
    await hit(stack, "docs", "intro", 7);
    const { context, page, problems } = await openCounter("docs", "intro");
    const origin = stack.url;
    await page.waitForFunction(() => document.getElementById("bb-img").complete && document.getElementById("bb-img").naturalWidth > 0);
    assert.equal(await page.getAttribute("#bb-img", "src"), `${origin}/badge/docs/intro.svg?label=views`);

    await page.fill("#bb-label", "hits");
    await page.fill("#bb-color", "#4c1");
    await page.selectOption("#bb-style", "flat-square");
    await page.selectOption("#bb-theme", "auto");
    await page.check("#bb-abbr");
    await page.check("#bb-graph");
    await page.check("#bb-count");
    const badge = `${origin}/badge/docs/intro.svg?label=hits&color=4c1&style=flat-square&theme=auto&abbreviate=1&graph=30d`;
    // The preview follows the options but never counts a hit.
    await page.waitForFunction((src) => document.getElementById("bb-img").getAttribute("src") === src, badge);
    await page.waitForFunction(() => document.getElementById("bb-img").complete && document.getElementById("bb-img").naturalWidth > 0);

    const copied = async (id) => {
      await page.click(`#copy-${id}`);
      await page.waitForFunction((i) => document.querySelector(`#copy-${i} + .copied`).textContent === "Copied", id);
      return page.evaluate(() => navigator.clipboard.readText());
    };
    assert.equal(await copied("md"), `![hits](${badge}&count=1)`);
    assert.equal(await copied("html"), `<img src="${badge}&count=1" alt="hits">`);
    assert.equal(await copied("embed"),
      `<script src="${origin}/embed.js?v=1" data-namespace="docs" async></script>\n<span data-edgecount="value"></span>`);
    assert.equal(await copied("shields"),
      `https://img.shields.io/endpoint?url=${encodeURIComponent(`${origin}/shields/docs/intro.json?count=1`)}&style=flat-square`);
    assert.equal(await page.getAttribute("#copy-md + .copied", "role"), "status");

    // The embed snippet can count on this counter's own key.
    await page.check("#bb-datakey");
    assert.equal(await copied("embed"),
      `<script src="${origin}/embed.js?v=1" data-namespace="docs" data-key="intro" async></script>\n<span data-edgecount="value"></span>`);

    // A bad colour is explained and never requested.
    await page.fill("#bb-color", "not-a-colour");
    await page.waitForFunction(() => document.getElementById("bb-color-err").textContent !== "");
    assert.equal(await page.getAttribute("#bb-color", "aria-invalid"), "true");
    assert.equal(await page.getAttribute("#bb-img", "src"), badge);

    // Nothing above counted: the preview has no count=1.
    assert.equal((await call(stack, "GET", "/get/docs/intro")).body.value, 7);
    assertNoProblems(problems);
    await context.close();
  });

  test("without clipboard access the snippet is selected for Ctrl+C", T, async () => {
    await hit(stack, "docs", "fallback");
    const { context, page, problems } = await openCounter("docs", "fallback");
    await page.evaluate(() => {
      Object.defineProperty(navigator, "clipboard", { value: { writeText: () => Promise.reject(new Error("denied")) } });
      document.execCommand = () => false;
    });
    await page.click("#copy-html");
    await page.waitForFunction(() => document.querySelector("#copy-html + .copied").textContent !== "");
    assert.match(await page.textContent("#copy-html + .copied"), /Selected: press Ctrl\+C/);
    const selection = await page.evaluate(() => {
      const area = document.activeElement;
      return { id: area.id, all: area.selectionStart === 0 && area.selectionEnd === area.value.length };
    });
    assert.deepEqual(selection, { id: "sn-html", all: true });
    assertNoProblems(problems);
    await context.close();
  });
});
