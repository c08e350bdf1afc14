// The counter badges (GET /badge/{ns}/{key}.svg) as a README reader sees them: an <img> on a page of
// another origin, in a real browser, checked by the pixels of element screenshots (decoded below)
// in the light and the dark colour scheme. Themes colour the label half (light #eaeef2 on
// #1f2328 text, dark #30363d on #f0f6fc, auto follows prefers-color-scheme from a <style> inside
// the SVG), the value half has `color`; abbreviate=1 and graph=30d change what is drawn. A gallery
// in light and dark goes to target/screenshots/badges-light.png and badges-dark.png.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { inflateSync } from "node:zlib";
import {
  assertNoProblems, call, hit, openPage, SCREENSHOT_DIR, seedHistory, useBrowser, useStack, useStaticServer,
} from "./harness.mjs";

const T = { timeout: 30_000 };

// ---------- a tiny PNG decoder (8-bit RGB/RGBA, not interlaced: what Chromium's screenshots are) ----------

function decodePng(buf) {
  assert.equal(buf.toString("latin1", 1, 4), "PNG", "a PNG file");
  let pos = 8;
  let header;
  const data = [];
  while (pos < buf.length) {
    const length = buf.readUInt32BE(pos);
    const type = buf.toString("latin1", pos + 4, pos + 8);
    const chunk = buf.subarray(pos + 8, pos + 8 + length);
    pos += 12 + length;
    if (type === "IHDR") {
      header = { width: chunk.readUInt32BE(0), height: chunk.readUInt32BE(4), depth: chunk[8], type: chunk[9], interlace: chunk[12] };
    } else if (type === "IDAT") {
      data.push(chunk);
    } else if (type === "IEND") {
      break;
    }
  }
  const { width, height, depth, interlace } = header;
  const channels = { 2: 3, 6: 4 }[header.type];
  assert.ok(depth === 8 && channels && interlace === 0, `PNG ${JSON.stringify(header)} is not 8-bit RGB(A), non-interlaced`);
  const raw = inflateSync(Buffer.concat(data));
  const stride = width * channels;
  const pixels = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = pixels.subarray(y * stride, (y + 1) * stride);
    const above = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : Buffer.alloc(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? row[i - channels] : 0;
      const b = above[i];
      const c = i >= channels ? above[i - channels] : 0;
      let predictor;
      if (filter === 0) predictor = 0;
      else if (filter === 1) predictor = a;
      else if (filter === 2) predictor = b;
      else if (filter === 3) predictor = (a + b) >> 1;
      else if (filter === 4) {
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else throw new Error(`PNG filter ${filter}`);
      row[i] = (line[i] + predictor) & 0xff;
    }
  }
  return {
    width,
    height,
    /** [r, g, b] at (x, y); negative x counts from the right. */
    at(x, y) {
      const px = x < 0 ? width + x : x;
      const o = (y * width + px) * channels;
      return [pixels[o], pixels[o + 1], pixels[o + 2]];
    },
  };
}

const rgb = (hex) => {
  const h = hex.replace("#", "");
  const full = h.length === 3 ? [...h].map((c) => c + c).join("") : h;
  return [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16));
};
const distance = (a, b) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
const hex = (c) => `#${c.map((v) => v.toString(16).padStart(2, "0")).join("")}`;

function assertColor(actual, expected, tolerance, what) {
  assert.ok(distance(actual, rgb(expected)) <= tolerance,
    `${what}: ${hex(actual)}, expected ${expected} (± ${tolerance})`);
}

// The colours the badges promise.
const LIGHT = { bg: "#eaeef2", text: "#1f2328" };
const DARK = { bg: "#30363d", text: "#f0f6fc" };
const CLASSIC = { bg: "#555555", text: "#ffffff" };
const BLUE = "#007ec6";

describe("badges", { timeout: 120_000 }, () => {
  const stack = useStack();
  const browser = useBrowser();
  // A README-like page on another origin: the badges are <img> elements, as Markdown makes them.
  const site = useStaticServer({});

  const badge = (key, query = "") => `${stack.url}/badge/shots/${key}.svg${query ? `?${query}` : ""}`;

  /** Serve a page of <img> badges at `route`; each {id, src}. */
  function badgePage(route, images, { title = "Badges", intro = "" } = {}) {
    site.routes[route] = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>
      <meta name="color-scheme" content="light dark"><link rel="icon" href="data:,">
      <style>
        body { margin: 16px; font: 14px/1.5 system-ui, sans-serif; background: #fff; color: #1f2328; }
        @media (prefers-color-scheme: dark) { body { background: #0d1117; color: #f0f6fc; } }
        table { border-collapse: collapse; } td, th { padding: 6px 12px; text-align: left; vertical-align: middle; }
        th { font-weight: 600; } img { display: block; }
      </style></head><body>${intro}
      ${images.map(({ id, src, label }) => (label ? `<p>${label}</p>` : "") + `<img id="${id}" src="${src}" alt="${id}">`).join("\n")}
      </body></html>`;
  }

  /** Open `route` on the site with the colour scheme `scheme`; waits for every image. */
  async function open(route, scheme) {
    const opened = await openPage(browser.it, undefined, { colorScheme: scheme });
    await opened.page.goto(`${site.url}${route}`);
    await opened.page.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0));
    return opened;
  }

  /** The decoded pixels of one <img>, as the reader's screen shows it. */
  const shot = async (page, id) => decodePng(await page.locator(`#${id}`).screenshot({ animations: "disabled" }));

  /** Label background (left edge, mid-height: no text, no rounded corner) and value background (right edge). */
  const halves = (png) => ({ label: png.at(3, Math.floor(png.height / 2)), value: png.at(-3, Math.floor(png.height / 2)) });

  /** The pixel of the label half farthest from its background: a full-coverage pixel of the text. */
  const labelText = (png) => {
    const { label } = halves(png);
    let far = label;
    for (let y = 0; y < png.height; y++) {
      for (let x = 0; x < Math.floor(png.width / 2); x++) {
        const p = png.at(x, y);
        if (distance(p, label) > distance(far, label)) far = p;
      }
    }
    return far;
  };

  // Opening a badge URL itself (no HTML page) makes Chromium ask the API origin for /favicon.ico,
  // which it does not serve (it serves /favicon.svg, linked from its HTML pages).
  const faviconIco = (p) => p.url === `${stack.url}/favicon.ico` && (p.kind === "status" || p.kind === "console");

  test("theme=auto follows the reader's colour scheme in an <img>, live; the value half keeps its colour", T, async (t) => {
    await hit(stack, "shots", "auto", 42);
    badgePage("/auto", [
      { id: "square", src: badge("auto", "theme=auto&style=flat-square") },
      { id: "flat", src: badge("auto", "theme=auto") },
      { id: "green", src: badge("auto", "theme=auto&style=flat-square&color=4c1") },
    ]);
    for (const scheme of ["light", "dark"]) {
      const { context, page, problems } = await open("/auto", scheme);
      const want = scheme === "dark" ? DARK : LIGHT;
      const squarePng = await shot(page, "square");
      const square = halves(squarePng);
      t.diagnostic(`${scheme}: flat-square label ${hex(square.label)} text ${hex(labelText(squarePng))} value ${hex(square.value)}`);
      assertColor(square.label, want.bg, 3, `${scheme} flat-square label`);
      assertColor(labelText(squarePng), want.text, 12, `${scheme} flat-square label text`);
      assertColor(square.value, BLUE, 3, `${scheme} flat-square value`);
      // flat: the same colours under a faint top-to-bottom gradient (10 % at most).
      const flat = halves(await shot(page, "flat"));
      t.diagnostic(`${scheme}: flat label ${hex(flat.label)} value ${hex(flat.value)}`);
      assertColor(flat.label, want.bg, 20, `${scheme} flat label`);
      assertColor(flat.value, BLUE, 20, `${scheme} flat value`);
      assertColor(halves(await shot(page, "green")).value, "#44cc11", 3, `${scheme} color=4c1 value`);
      assertNoProblems(problems);

      // The reader switches their system's scheme while the page is open: no reload needed.
      const other = scheme === "dark" ? "light" : "dark";
      await page.emulateMedia({ colorScheme: other });
      await page.waitForTimeout(100);
      const switched = halves(await shot(page, "square"));
      assertColor(switched.label, (other === "dark" ? DARK : LIGHT).bg, 3, `${scheme} → ${other}, label without reload`);

      // The badge URL opened by itself follows the scheme too.
      await page.emulateMedia({ colorScheme: scheme });
      const src = await page.getAttribute("#square", "src");
      await page.goto(src);
      const size = await page.evaluate(() => [document.documentElement.width.baseVal.value, document.documentElement.height.baseVal.value]);
      const alone = decodePng(await page.screenshot({ clip: { x: 0, y: 0, width: size[0], height: size[1] } }));
      assertColor(halves(alone).label, want.bg, 3, `${scheme}: the SVG opened directly, label`);
      assertNoProblems(problems, faviconIco);
      await context.close();
    }
  });

  test("theme=light and theme=dark are fixed in both schemes; no theme is the classic #555 label", T, async (t) => {
    await hit(stack, "shots", "fixed", 7);
    const cases = [
      { id: "light", src: badge("fixed", "theme=light&style=flat-square"), want: LIGHT },
      { id: "dark", src: badge("fixed", "theme=dark&style=flat-square"), want: DARK },
      { id: "classic", src: badge("fixed", "style=flat-square"), want: CLASSIC },
      { id: "dark-big", src: badge("fixed", "theme=dark&style=for-the-badge"), want: DARK },
    ];
    badgePage("/fixed", cases);
    for (const scheme of ["light", "dark"]) {
      const { context, page, problems } = await open("/fixed", scheme);
      for (const { id, want } of cases) {
        const png = await shot(page, id);
        const { label, value } = halves(png);
        assertColor(label, want.bg, 3, `${scheme} scheme, ${id} label`);
        assertColor(value, BLUE, 3, `${scheme} scheme, ${id} value`);
        // The label's text colour, from its most strongly covered pixel.
        const text = labelText(png);
        t.diagnostic(`${scheme} ${id}: label ${hex(label)} text ${hex(text)} value ${hex(value)}`);
        assertColor(text, want.text, 12, `${scheme} scheme, ${id} label text`);
      }
      assertNoProblems(problems);
      await context.close();
    }
  });

  test("abbreviate=1 draws 1.2k for 1234; graph=30d adds a 30-point polyline and widens the badge", T, async () => {
    await hit(stack, "shots", "big");
    const set = await call(stack, "POST", "/set/shots/big?value=1234", { headers: { Authorization: `Bearer ${stack.adminToken}` } });
    assert.equal(set.status, 200, set.text);
    badgePage("/numbers", [
      { id: "full", src: badge("big") },
      { id: "short", src: badge("big", "abbreviate=1") },
      { id: "graph", src: badge("big", "abbreviate=1&graph=30d") },
    ]);
    const { context, page, problems } = await open("/numbers", "light");
    const widths = await page.evaluate(() => Object.fromEntries([...document.images].map((i) => [i.id, i.naturalWidth])));
    assert.ok(widths.short < widths.full, `1.2k is narrower than 1234: ${JSON.stringify(widths)}`);
    assert.ok(widths.graph > widths.short + 50, `the graph widens the badge: ${JSON.stringify(widths)}`);
    assertNoProblems(problems);

    // The SVG documents themselves, parsed by the browser (the reader who opens the badge URL).
    const svg = async (src) => {
      const response = await page.goto(src);
      assert.equal(response.headers()["content-type"], "image/svg+xml");
      return page.evaluate(() => ({
        texts: [...document.querySelectorAll("text")].map((e) => e.textContent),
        label: document.documentElement.getAttribute("aria-label"),
        width: Number(document.documentElement.getAttribute("width")),
        points: [...document.querySelectorAll("polyline")].map((p) => p.points.length),
      }));
    };
    const full = await svg(badge("big"));
    assert.ok(full.texts.includes("1234") || full.texts.includes("1,234"), JSON.stringify(full));
    const short = await svg(badge("big", "abbreviate=1"));
    assert.ok(short.texts.includes("1.2k"), JSON.stringify(short));
    assert.ok(!short.texts.some((x) => /1234|1,234/.test(x)), JSON.stringify(short));
    assert.equal(short.label, "views: 1.2k");
    assert.deepEqual(short.points, []);
    const graph = await svg(badge("big", "abbreviate=1&graph=30d"));
    assert.ok(graph.texts.includes("1.2k"));
    assert.deepEqual(graph.points, [30], "one polyline, a point a day");
    assert.ok(graph.width > short.width, `${graph.width} > ${short.width}`);
    assert.equal(graph.width, widths.graph);
    // None of this counted.
    assert.equal((await call(stack, "GET", "/get/shots/big")).body.value, 1234);
    assertNoProblems(problems, faviconIco);
    await context.close();
  });

  test("gallery screenshots in light and dark", { timeout: 45_000 }, async (t) => {
    await hit(stack, "shots", "blog", 3);
    const days = Array.from({ length: 30 }, (_, i) => Math.round(60 + 30 * Math.sin(i / 2.5) + i * 2));
    await seedHistory(stack, "shots", "blog", { days });
    const rows = [];
    for (const theme of ["", "light", "dark", "auto"]) {
      const cells = [];
      for (const style of ["flat", "flat-square", "for-the-badge"]) {
        const q = (extra) => [theme && `theme=${theme}`, style !== "flat" && `style=${style}`, extra].filter(Boolean).join("&");
        cells.push(`<td><img src="${badge("blog", q(""))}" alt=""></td>`);
        cells.push(`<td><img src="${badge("blog", q("abbreviate=1&graph=30d&color=4c1&label=hits"))}" alt=""></td>`);
      }
      rows.push(`<tr><th>${theme ? `theme=${theme}` : "no theme"}</th>${cells.join("")}</tr>`);
    }
    site.routes["/gallery"] = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Badge gallery</title>
      <meta name="color-scheme" content="light dark"><link rel="icon" href="data:,">
      <style>
        body { margin: 16px; font: 14px/1.5 system-ui, sans-serif; background: #fff; color: #1f2328; }
        @media (prefers-color-scheme: dark) { body { background: #0d1117; color: #f0f6fc; } }
        table { border-collapse: collapse; } td, th { padding: 6px 10px; text-align: left; vertical-align: middle; }
        th { font-weight: 600; white-space: nowrap; } img { display: block; }
      </style></head><body>
      <h1 style="font-size:18px;margin:0 0 8px">edgecount badges</h1>
      <table><thead><tr><th></th><th colspan=2>flat</th><th colspan=2>flat-square</th><th colspan=2>for-the-badge</th></tr></thead>
      <tbody>${rows.join("\n")}</tbody></table></body></html>`;
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    for (const scheme of ["light", "dark"]) {
      const { context, page, problems } = await openPage(browser.it, undefined, { colorScheme: scheme, viewport: { width: 1280, height: 400 } });
      await page.goto(`${site.url}/gallery`);
      await page.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0));
      const file = path.join(SCREENSHOT_DIR, `badges-${scheme}.png`);
      const box = await page.locator("table").boundingBox();
      await page.screenshot({ path: file, clip: { x: 0, y: 0, width: Math.ceil(box.x + box.width + 16), height: Math.ceil(box.y + box.height + 16) } });
      t.diagnostic(path.relative(process.cwd(), file));
      assertNoProblems(problems);
      await context.close();
    }
    // The gallery's images did not count.
    assert.equal((await call(stack, "GET", "/get/shots/blog")).body.value, 3 + days.reduce((a, b) => a + b, 0));
  });
});
