// edgecount dashboard: plain ES2022, no dependencies, no build step. Served with a strict CSP
// (script-src/style-src/img-src/connect-src 'self'): no inline code or styles, everything is built
// with DOM APIs, every request goes to this page's own origin.

const $ = (id) => document.getElementById(id);
const SVG_NS = 'http://www.w3.org/2000/svg';
const NAME_RE = /^[A-Za-z0-9_.-]{3,64}$/;
const TOKEN_KEY = 'edgecount.token';
const ORIGIN = location.origin;
const nf = new Intl.NumberFormat();
const fmt = (n) => (typeof n === 'number' && Number.isFinite(n) ? nf.format(n) : '—');
const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});
const path = (...parts) => '/' + parts.map(encodeURIComponent).join('/');

// ---------- small DOM helpers ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...children);
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  el.append(...children);
  return el;
}

function setText(id, text) {
  const el = typeof id === 'string' ? $(id) : id;
  if (el.textContent !== text) el.textContent = text;
}

function showError(id, message) {
  setText(id, message ? message : '');
}

// ---------- talking to the API ----------

/** fetch() that never throws: {ok, status, data, headers, error}; `error` is the server's message. */
async function api(url, init = {}) {
  let res;
  try {
    res = await fetch(url, { cache: 'no-store', ...init });
  } catch (e) {
    if (init.signal?.aborted) return { ok: false, status: 0, aborted: true, error: 'aborted' };
    return { ok: false, status: 0, error: `Could not reach the server (${e.message || 'network error'}).` };
  }
  let data = null;
  const text = await res.text().catch(() => '');
  if (/json/.test(res.headers.get('content-type') || '')) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  const error = res.ok ? null : errorMessage(res, data, text);
  return { ok: res.ok, status: res.status, data, text, headers: res.headers, error };
}

function errorMessage(res, data, text) {
  const msg = data && (data.error || data.detail || data.title);
  if (msg) return `${msg} (HTTP ${res.status})`;
  return `HTTP ${res.status} ${res.statusText || ''}`.trim() + (text && text.length < 200 ? `: ${text}` : '');
}

const isMissingRoute = (r) => r.status === 404 && r.data?.error === 'no such route';

// ---------- live indicator ----------

function setLive(id, state, text) {
  const el = $(id);
  el.dataset.state = state; // on | wait | off
  setText(el.querySelector('.live-text'), text);
}

// ---------- router: #ns=blog&key=home ----------

const view = { ns: '', key: '', stop: null };

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { ns: (p.get('ns') || '').trim(), key: (p.get('key') || '').trim() };
}

function hashFor(ns, key) {
  const p = new URLSearchParams();
  if (ns) p.set('ns', ns);
  if (key) p.set('key', key);
  const q = p.toString();
  return q ? `#${q}` : '';
}

function route() {
  // Plain in-page anchors (#main) are not views.
  if (location.hash && !location.hash.includes('=')) return;
  const { ns, key } = readHash();
  $('f-ns').value = ns;
  $('f-key').value = key;
  open(ns, key);
}

function open(ns, key) {
  view.stop?.();
  view.stop = null;
  view.ns = ns;
  view.key = key;
  showError('lookup-error', '');
  document.title = 'edgecount dashboard';
  $('counter-view').hidden = !(ns && key);
  $('badge-view').hidden = !(ns && key);
  $('ns-view').hidden = !(ns && !key);
  if (!ns) {
    if (key) showError('lookup-error', 'Enter the namespace of this key too.');
    return;
  }
  const bad = [ns, key].filter((n) => n && !NAME_RE.test(n));
  if (bad.length) {
    $('counter-view').hidden = $('badge-view').hidden = $('ns-view').hidden = true;
    showError('lookup-error', `“${bad[0]}” is not a valid name: use 3 to 64 letters, digits, “_”, “.” or “-”.`);
    return;
  }
  document.title = key ? `${ns}/${key} · edgecount` : `${ns} · edgecount`;
  view.stop = key ? openCounter(ns, key) : openNamespace(ns);
}

$('lookup').addEventListener('submit', (e) => {
  e.preventDefault();
  const ns = $('f-ns').value.trim();
  const key = $('f-key').value.trim();
  const token = $('f-token').value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  if (!ns) {
    showError('lookup-error', 'Enter a namespace (and a key to see one counter).');
    $('f-ns').focus();
    return;
  }
  const hash = hashFor(ns, key);
  if (location.hash === hash) open(ns, key);
  else location.hash = hash; // hashchange opens the view, and the view can be bookmarked
});
window.addEventListener('hashchange', route);
// The skip link moves focus without replacing the view's #ns=… address.
document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  $('main').focus();
});

// ---------- charts (hand-drawn SVG) ----------

/** An axis for values up to `v`: a step of 1, 2 or 5 × 10^k (whole numbers) and 3 to 5 ticks. */
function axis(v) {
  const raw = Math.max(1, v) / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * p).find((x) => x >= raw));
  const ticks = Math.max(1, Math.ceil(Math.max(1, v) / step));
  return { max: ticks * step, ticks };
}

/**
 * Draw a bar chart into `box` (whose CSS gives it a fixed height): items are
 * {label, title, v, u?}; `u` (uniques) is drawn as a narrower bar inside the hits bar.
 */
function drawBars(box, items, { summary }) {
  const W = Math.max(240, Math.floor(box.clientWidth));
  const H = Math.max(120, Math.floor(box.clientHeight));
  const m = { l: 44, r: 8, t: 10, b: 22 };
  const iw = W - m.l - m.r;
  const ih = H - m.t - m.b;
  const { max, ticks } = axis(Math.max(0, ...items.map((d) => d.v)));
  const y = (v) => m.t + ih - (v / max) * ih;
  const svg = s('svg', {
    width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': summary, class: 'chart-svg',
  });
  const grid = s('g', { class: 'grid' });
  for (let i = 0; i <= ticks; i++) {
    const v = (max / ticks) * i;
    const yy = Math.round(y(v)) + 0.5;
    grid.append(
      s('line', { x1: m.l, x2: W - m.r, y1: yy, y2: yy, class: i === 0 ? 'axis' : 'gl' }),
      s('text', { x: m.l - 6, y: yy + 4, 'text-anchor': 'end', class: 'tick' }, fmt(v)),
    );
  }
  svg.append(grid);
  const n = items.length || 1;
  const step = iw / n;
  const gap = step >= 5 ? Math.min(4, step * 0.22) : 0;
  const bw = Math.max(0.6, step - gap);
  const bars = s('g', { class: 'bars' });
  items.forEach((d, i) => {
    const x = m.l + i * step + gap / 2;
    const g = s('g', { class: 'bar' }, s('title', {}, d.title));
    g.append(s('rect', { class: 'hit', x: m.l + i * step, y: m.t, width: step, height: ih }));
    const top = y(d.v);
    if (d.v > 0) {
      g.append(s('rect', { class: 'v', x, y: top, width: bw, height: Math.max(1, m.t + ih - top) }));
    }
    if (d.u > 0) {
      const uTop = y(Math.min(d.u, d.v || d.u));
      const uw = bw > 3 ? bw * 0.5 : bw;
      g.append(s('rect', { class: 'u', x: x + (bw - uw) / 2, y: uTop, width: uw, height: Math.max(1, m.t + ih - uTop) }));
    }
    bars.append(g);
  });
  svg.append(bars);
  // x-axis labels: as many as fit (one per ~70 px), always the first and the last, none so close
  // to the last one that they would overlap it.
  const labels = s('g', { class: 'xlabels' });
  const minGap = 70;
  const every = Math.max(1, Math.ceil(minGap / step));
  items.forEach((d, i) => {
    const last = i === n - 1;
    if (!last && (i % every !== 0 || (n - 1 - i) * step < minGap)) return;
    const anchor = i === 0 ? 'start' : last ? 'end' : 'middle';
    const x = i === 0 ? m.l : last ? W - m.r : m.l + (i + 0.5) * step;
    labels.append(s('text', { x, y: H - 6, 'text-anchor': anchor, class: 'tick' }, d.label));
  });
  svg.append(labels);
  box.replaceChildren(svg);
}

function fillTable(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows.map((cells) => h('tr', {}, ...cells.map((c, i) => h(i ? 'td' : 'th', i ? {} : { scope: 'row' }, String(c))))));
}

// ---------- counter view ----------

const UTC_DAY = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
const UTC_DAY_LONG = new Intl.DateTimeFormat(undefined, { weekday: 'short', year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' });
const HOUR = new Intl.DateTimeFormat(undefined, { hour: 'numeric' });
const HOUR_LONG = new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
const dayDate = (d) => new Date(`${d}T00:00:00Z`);
const isoDay = (t) => new Date(t).toISOString().slice(0, 10);
const isoHour = (t) => `${new Date(t).toISOString().slice(0, 13)}:00:00Z`;

const cv = { ns: '', key: '', days: 30, stats: null, es: null, frame: 0, gen: 0 };

function openCounter(ns, key) {
  const gen = ++cv.gen;
  Object.assign(cv, { ns, key, stats: null });
  setText('cv-name', `${ns}/${key}`);
  showError('cv-error', '');
  for (const id of ['cv-total', 'cv-today', 'cv-uniques']) setText(id, '—');
  setLive('cv-live', 'off', 'Loading…');
  $('daily-chart').replaceChildren();
  $('hourly-chart').replaceChildren();
  badgeFor(ns, key);
  loadStats(gen, true);
  return () => {
    cv.gen++;
    cv.es?.close();
    cv.es = null;
  };
}

async function loadStats(gen, connect) {
  const { ns, key, days } = cv;
  const r = await api(`${path('stats', ns, key)}?days=${days}`);
  if (gen !== cv.gen) return;
  if (!r.ok || !r.data || !Array.isArray(r.data.days)) {
    if (r.status === 404 && r.data?.error === 'counter not found') {
      showError('cv-error', `Counter ${ns}/${key} not found: it is created by its first hit (POST /hit/${ns}/${key}).`);
    } else {
      showError('cv-error', `Could not load the statistics: ${r.error || 'unexpected answer'}`);
    }
    setLive('cv-live', 'off', 'Not connected');
    return;
  }
  showError('cv-error', '');
  cv.stats = { total: r.data.total, days: r.data.days, hours: Array.isArray(r.data.hours) ? r.data.hours : [] };
  cv.stats.span = cv.stats.days.length;
  // The server may answer fewer days than asked (it has a maximum): say so.
  setText('daily-range', cv.stats.span < days ? `${cv.stats.span} days: this server’s maximum` : '');
  render();
  if (connect) connectCounter(gen);
}

function connectCounter(gen) {
  const { ns, key } = cv;
  setLive('cv-live', 'wait', 'Connecting…');
  const es = new EventSource(path('stream', ns, key));
  cv.es = es;
  es.onopen = () => gen === cv.gen && setLive('cv-live', 'on', 'Live');
  es.onerror = () => {
    if (gen !== cv.gen) return;
    if (es.readyState === EventSource.CLOSED) setLive('cv-live', 'off', 'Live updates stopped (reload to retry)');
    else setLive('cv-live', 'wait', 'Reconnecting…');
  };
  es.onmessage = (e) => {
    if (gen !== cv.gen || !cv.stats) return;
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (msg.deleted) {
      showError('cv-error', `Counter ${ns}/${key} was deleted.`);
      cv.stats.total = 0;
      render();
      return;
    }
    if (typeof msg.value !== 'number') return;
    const diff = msg.value - cv.stats.total;
    cv.stats.total = msg.value;
    // A hit adds to today's bar and this hour's bar; a set/reset only changes the total.
    if (diff > 0) {
      rollForward();
      cv.stats.days.at(-1).hits += diff;
      if (cv.stats.hours.length) cv.stats.hours.at(-1).hits += diff;
    }
    scheduleRender();
  };
}

/** Add empty buckets when the UTC day or the hour turned since the statistics were loaded. */
function rollForward() {
  const now = Date.now();
  const { days, hours } = cv.stats;
  const today = isoDay(now);
  for (let i = 0; i < 500 && days.length && days.at(-1).date < today; i++) {
    days.push({ date: isoDay(dayDate(days.at(-1).date).getTime() + 86400e3), hits: 0, uniques: 0 });
    if (days.length > cv.stats.span) days.shift();
  }
  const hour = isoHour(now);
  for (let i = 0; i < 500 && hours.length && hours.at(-1).hour < hour; i++) {
    hours.push({ hour: isoHour(Date.parse(hours.at(-1).hour) + 3600e3), hits: 0 });
    if (hours.length > 48) hours.shift();
  }
}

function scheduleRender() {
  if (!cv.frame) cv.frame = requestAnimationFrame(render);
}

function render() {
  cv.frame = 0;
  const st = cv.stats;
  if (!st) return;
  const last = st.days.at(-1);
  const isToday = last && last.date === isoDay(Date.now());
  setText('cv-total', fmt(st.total));
  setText('cv-today', fmt(isToday ? last.hits : 0));
  setText('cv-uniques', fmt(isToday ? last.uniques : 0));

  const days = st.days;
  const sum = days.reduce((a, d) => a + d.hits, 0);
  const peak = days.reduce((a, d) => (d.hits > a.hits ? d : a), days[0] || { hits: 0 });
  drawBars($('daily-chart'), days.map((d) => ({
    label: UTC_DAY.format(dayDate(d.date)),
    title: `${UTC_DAY_LONG.format(dayDate(d.date))}: ${fmt(d.hits)} hits, ${fmt(d.uniques)} uniques`,
    v: d.hits,
    u: d.uniques,
  })), {
    summary: `Daily hits over the last ${days.length} days: ${fmt(sum)} in all` +
      (peak && peak.hits ? `, most on ${UTC_DAY_LONG.format(dayDate(peak.date))} (${fmt(peak.hits)})` : '') +
      `, ${fmt(last ? last.hits : 0)} today. The table below has every day.`,
  });
  fillTable($('daily-table'), days.slice().reverse().map((d) => [d.date, fmt(d.hits), fmt(d.uniques)]));

  const hours = st.hours;
  const hsum = hours.reduce((a, d) => a + d.hits, 0);
  drawBars($('hourly-chart'), hours.map((d) => ({
    label: HOUR.format(new Date(d.hour)),
    title: `${HOUR_LONG.format(new Date(d.hour))}: ${fmt(d.hits)} hits`,
    v: d.hits,
  })), {
    summary: `Hits per hour over the last ${hours.length} hours: ${fmt(hsum)} in all, ` +
      `${fmt(hours.length ? hours.at(-1).hits : 0)} this hour.`,
  });
  fillTable($('hourly-table'), hours.slice().reverse().map((d) => [HOUR_LONG.format(new Date(d.hour)), fmt(d.hits)]));
}

for (const b of document.querySelectorAll('.seg button')) {
  b.addEventListener('click', () => {
    const days = Number(b.dataset.days);
    for (const o of document.querySelectorAll('.seg button')) o.setAttribute('aria-pressed', String(o === b));
    if (days === cv.days) return;
    cv.days = days;
    if (cv.stats) loadStats(cv.gen, false);
  });
}

// Redraw at the new width (the height is fixed by CSS, so nothing moves).
let lastWidth = 0;
new ResizeObserver((entries) => {
  const w = Math.round(entries[0].contentRect.width);
  if (w !== lastWidth) {
    lastWidth = w;
    scheduleRender();
  }
}).observe($('daily-chart'));

// ---------- namespace view ----------

const nv = { ns: '', rows: new Map(), trs: new Map(), abort: null, reload: 0, announced: 0 };
const MAX_ROWS = 500;

function openNamespace(ns) {
  const ctl = new AbortController();
  Object.assign(nv, { ns, rows: new Map(), trs: new Map(), abort: ctl });
  setText('nv-name', ns);
  showError('nv-error', '');
  setText('nv-count', '');
  $('nv-table').tBodies[0].replaceChildren();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    setLive('nv-live', 'off', 'Not connected');
    showError('nv-error', 'Listing a namespace needs its namespace token or the admin token: enter it in “Token” above and press Show.');
    return () => ctl.abort();
  }
  setLive('nv-live', 'wait', 'Loading…');
  loadNamespace(ns, token, ctl.signal).then((ok) => ok && streamNamespace(ns, token, ctl.signal));
  return () => {
    ctl.abort();
    clearTimeout(nv.reload);
  };
}

async function loadNamespace(ns, token, signal) {
  const r = await api(path('ns', ns), { headers: { Authorization: `Bearer ${token}` }, signal });
  if (signal.aborted) return false;
  if (!r.ok || !Array.isArray(r.data?.counters)) {
    const why = isMissingRoute(r) ? 'this server does not list namespaces yet (GET /ns/{namespace} answered 404).' : r.error || 'unexpected answer';
    showError('nv-error', `Could not list the namespace: ${why}`);
    setLive('nv-live', 'off', 'Not connected');
    return false;
  }
  showError('nv-error', '');
  nv.rows = new Map(r.data.counters.map((c) => [c.key, { key: c.key, value: c.value, today: c.today }]));
  renderRows();
  return true;
}

function renderRows(changed) {
  const body = $('nv-table').tBodies[0];
  const sorted = [...nv.rows.values()].sort((a, b) => b.value - a.value || a.key.localeCompare(b.key));
  const shown = sorted.slice(0, MAX_ROWS);
  const focused = document.activeElement;
  const want = [];
  for (const c of shown) {
    let tr = nv.trs.get(c.key);
    if (!tr) {
      const a = h('a', { href: hashFor(nv.ns, c.key), text: c.key });
      tr = h('tr', { 'data-key': c.key }, h('th', { scope: 'row' }, a), h('td', { class: 'num v' }), h('td', { class: 'num t' }));
      nv.trs.set(c.key, tr);
    }
    setText(tr.cells[1], fmt(c.value));
    setText(tr.cells[2], fmt(c.today));
    if (c.key === changed) {
      tr.classList.remove('flash');
      void tr.offsetWidth; // restart the highlight
      tr.classList.add('flash');
    }
    want.push(tr);
  }
  // Move rows only when the order changed, and give focus back to the link that had it.
  const current = [...body.rows];
  if (current.length !== want.length || current.some((tr, i) => tr !== want[i])) {
    body.replaceChildren(...want);
    if (focused && document.activeElement !== focused && want.some((tr) => tr.contains(focused))) focused.focus();
  }
  for (const k of nv.trs.keys()) if (!nv.rows.has(k)) nv.trs.delete(k);
  setText('nv-count', nv.rows.size === 0
    ? 'No counters in this namespace yet.'
    : `${fmt(nv.rows.size)} counter${nv.rows.size === 1 ? '' : 's'}${nv.rows.size > MAX_ROWS ? `, the top ${MAX_ROWS} shown` : ''}. Select a key for its charts and badge.`);
}

$('nv-table').addEventListener('click', (e) => {
  const tr = e.target.closest('tr[data-key]');
  if (!tr || e.target.closest('a')) return;
  location.hash = hashFor(nv.ns, tr.dataset.key);
});

/** The namespace's SSE stream needs an Authorization header, so it is read with fetch(). */
async function streamNamespace(ns, token, signal) {
  let delay = 1000;
  let first = true;
  while (!signal.aborted) {
    if (!first) await loadNamespace(ns, token, signal); // catch up on what a gap missed
    first = false;
    setLive('nv-live', 'wait', 'Connecting…');
    let res;
    try {
      res = await fetch(`${path('ns', ns)}/stream`, {
        headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' }, cache: 'no-store', signal,
      });
    } catch {
      res = null;
    }
    if (signal.aborted) return;
    if (res && !res.ok) {
      const text = await res.text().catch(() => '');
      let data = null;
      try { data = JSON.parse(text); } catch { /* not JSON */ }
      const r = { status: res.status, data };
      const why = isMissingRoute(r) ? 'not served here yet' : errorMessage(res, data, text);
      setLive('nv-live', 'off', `No live updates: ${why}`);
      if (res.status < 500) return; // a refusal does not go away by retrying
    } else if (res) {
      setLive('nv-live', 'on', 'Live');
      delay = 1000;
      try {
        await readEvents(res.body, onNamespaceEvent);
      } catch {
        if (signal.aborted) return;
      }
    }
    if (signal.aborted) return;
    setLive('nv-live', 'wait', 'Reconnecting…');
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 30000);
  }
}

/** Parse a text/event-stream body: events end with a blank line, `:` lines are comments. */
async function readEvents(body, onData) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf = (buf + value).replace(/\r\n|\r(?!$)/g, '\n');
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = block.split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''));
      if (data.length) onData(data.join('\n'));
    }
  }
}

function onNamespaceEvent(data) {
  let msg;
  try { msg = JSON.parse(data); } catch { return; }
  if (!msg || typeof msg.key !== 'string') return;
  const row = nv.rows.get(msg.key);
  if (msg.deleted) {
    nv.rows.delete(msg.key);
    renderRows();
    return;
  }
  if (typeof msg.value !== 'number') return;
  if (!row) {
    // A counter we have not seen: its "today" is unknown here, so read the list again (once).
    clearTimeout(nv.reload);
    nv.reload = setTimeout(() => nv.abort && !nv.abort.signal.aborted &&
      loadNamespace(nv.ns, sessionStorage.getItem(TOKEN_KEY) || '', nv.abort.signal), 300);
    return;
  }
  const diff = msg.value - row.value;
  row.value = msg.value;
  if (diff > 0 && typeof row.today === 'number') row.today += diff;
  renderRows(msg.key);
  // Announce at most every few seconds: a busy namespace must not flood a screen reader.
  if (Date.now() - nv.announced > 4000) {
    nv.announced = Date.now();
    setText('nv-announce', `${msg.key}: ${fmt(msg.value)}`);
  }
}

// ---------- badge and embed builder ----------

const NAMED = new Set(['brightgreen', 'green', 'yellowgreen', 'yellow', 'orange', 'red', 'blue', 'lightgrey',
  'lightgray', 'grey', 'gray', 'blueviolet', 'success', 'important', 'critical', 'informational', 'inactive',
  'black', 'white']);
const bb = { ns: '', key: '', timer: 0, want: '', loading: false };

function badgeFor(ns, key) {
  bb.ns = ns;
  bb.key = key;
  for (const el of document.querySelectorAll('.bb-ns')) el.textContent = ns;
  for (const el of document.querySelectorAll('.bb-key')) el.textContent = key;
  updateBadge(true);
}

function badgeColor() {
  const c = $('bb-color').value.trim().replace(/^#/, '');
  if (!c) return { ok: true, value: '' };
  if (NAMED.has(c.toLowerCase()) || /^([0-9a-f]{3}|[0-9a-f]{6})$/i.test(c)) return { ok: true, value: c };
  return { ok: false };
}

function badgeParams(color, { preview }) {
  const p = new URLSearchParams();
  const label = $('bb-label').value;
  if (label.trim()) p.set('label', label.trim());
  if (color) p.set('color', color);
  const style = $('bb-style').value;
  if (style !== 'flat') p.set('style', style);
  const theme = $('bb-theme').value;
  if (theme) p.set('theme', theme);
  if ($('bb-abbr').checked) p.set('abbreviate', '1');
  if ($('bb-graph').checked) p.set('graph', '30d');
  if (!preview && $('bb-count').checked) p.set('count', '1');
  return p;
}

function withQuery(url, p) {
  const q = p.toString();
  return q ? `${url}?${q}` : url;
}

function updateBadge(now) {
  if (!bb.ns) return;
  const color = badgeColor();
  showError('bb-color-err', color.ok ? '' : 'Use a named color (blue, brightgreen, …) or a hex code like 4c1 or ff8800.');
  $('bb-color').setAttribute('aria-invalid', String(!color.ok));
  if (!color.ok) return;
  const base = `${ORIGIN}${path('badge', bb.ns, `${bb.key}.svg`)}`;
  const url = withQuery(base, badgeParams(color.value, { preview: false }));
  const label = $('bb-label').value.trim() || 'views';
  $('sn-md').value = `![${label.replace(/[[\]]/g, '')}](${url})`;
  // The query is already percent-encoded: no quote to escape, and a bare "&" is fine in an attribute.
  $('sn-html').value = `<img src="${url}" alt="${escapeAttr(label)}">`;
  const dataKey = $('bb-datakey').checked ? ` data-key="${escapeAttr(bb.key)}"` : '';
  $('sn-embed').value = `<script src="${ORIGIN}/embed.js?v=1" data-namespace="${escapeAttr(bb.ns)}"${dataKey} async></script>\n<span data-edgecount="value"></span>`;
  const shieldsJson = withQuery(`${ORIGIN}${path('shields', bb.ns, `${bb.key}.json`)}`,
    new URLSearchParams($('bb-count').checked ? { count: '1' } : {}));
  const style = $('bb-style').value;
  $('sn-shields').value = `https://img.shields.io/endpoint?url=${encodeURIComponent(shieldsJson)}${style === 'flat' ? '' : `&style=${style}`}`;
  // The preview never counts (no count=1) and waits for typing to pause.
  const src = withQuery(base, badgeParams(color.value, { preview: true }));
  clearTimeout(bb.timer);
  const apply = () => {
    bb.want = src;
    loadPreview();
  };
  if (now) apply();
  else bb.timer = setTimeout(apply, 250);
}

/** One preview request at a time: a newer choice waits for the current image instead of cancelling it. */
function loadPreview() {
  const img = $('bb-img');
  if (bb.loading || img.getAttribute('src') === bb.want) return;
  bb.loading = true;
  img.src = bb.want;
}

function previewDone(ok) {
  const img = $('bb-img');
  bb.loading = false;
  const current = img.getAttribute('src') === bb.want;
  setText('bb-prev-status', ok || !current ? '' : 'The badge did not load: check the label and color.');
  if (!current) loadPreview();
}

function escapeAttr(v) {
  return String(v).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

$('bb-img').addEventListener('load', () => previewDone(true));
$('bb-img').addEventListener('error', () => previewDone(false));
for (const id of ['bb-style', 'bb-theme', 'bb-abbr', 'bb-graph', 'bb-count', 'bb-datakey']) {
  $(id).addEventListener('change', () => updateBadge(true));
}
for (const id of ['bb-label', 'bb-color']) $(id).addEventListener('input', () => updateBadge(false));

for (const btn of document.querySelectorAll('button.copy')) {
  btn.addEventListener('click', () => copySnippet(btn));
}

async function copySnippet(btn) {
  const area = $(btn.dataset.for);
  const status = btn.parentElement.querySelector('.copied');
  let message;
  try {
    await navigator.clipboard.writeText(area.value);
    message = 'Copied';
  } catch {
    // No clipboard access (permissions, older browser): select the text for Ctrl+C / ⌘C.
    area.focus();
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    message = ok ? 'Copied' : 'Selected: press Ctrl+C (⌘C) to copy';
  }
  status.textContent = message;
  status.dataset.ok = String(message === 'Copied');
  clearTimeout(status.timer);
  status.timer = setTimeout(() => { status.textContent = ''; }, 4000);
}

// ---------- rate-limit playground ----------

const pg = { text: false, seq: 0 };
const LOG_MAX = 30;
const SHOWN_HEADERS = ['RateLimit-Policy', 'RateLimit', 'X-RateLimit-Remaining', 'Retry-After'];
const ALGORITHMS = { fixed: 'fixed window', sliding: 'sliding window', token: 'token bucket', gcra: 'GCRA' };

function randomId() {
  const a = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return `playground-${Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => a[b % 36]).join('')}`;
}

function fmtWindow(ms) {
  if (!(ms > 0)) return '?';
  for (const [unit, n] of [['d', 86400e3], ['h', 3600e3], ['min', 60e3], ['s', 1e3]]) {
    if (ms % n === 0) return `${ms / n} ${unit}`;
  }
  return `${ms} ms`;
}

function policyText(p) {
  return `${p.name}: ${ALGORITHMS[p.algorithm] || p.algorithm || ''}, ${fmt(p.limit)} per ${fmtWindow(p.window_ms)}`;
}

async function loadPolicies() {
  const r = await api('/limit');
  const sel = $('pg-policy');
  if (r.ok && Array.isArray(r.data?.policies)) {
    const list = r.data.policies.filter((p) => p && typeof p.name === 'string');
    if (!list.length) {
      sel.replaceChildren(h('option', { value: '', text: 'none configured' }));
      sel.disabled = true;
      $('pg-send').disabled = true;
      setText('pg-note', 'No rate-limit policies are configured on this server. Set EDGECOUNT_RATE_LIMITS, e.g. "demo=fixed:5/30s; api=sliding:100/60s", and restart it.');
      return;
    }
    sel.replaceChildren(...list.map((p) => h('option', { value: p.name, text: policyText(p) })));
    setText('pg-note', `${list.length} polic${list.length === 1 ? 'y' : 'ies'} configured (EDGECOUNT_RATE_LIMITS).`);
    return;
  }
  // No policy list from this server: type the name instead.
  pg.text = true;
  $('pg-policy-f').hidden = true;
  $('pg-policy-tf').hidden = false;
  setText('pg-note', isMissingRoute(r) || r.status === 404
    ? 'This server does not list its policies: type a policy name from its EDGECOUNT_RATE_LIMITS (a+b checks several at once).'
    : `Could not load the policies (${r.error}): type a policy name from EDGECOUNT_RATE_LIMITS.`);
}

$('pg-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  showError('pg-error', '');
  const policy = (pg.text ? $('pg-policy-text').value : $('pg-policy').value).trim();
  const id = $('pg-id').value.trim();
  if (!policy) return showError('pg-error', 'Choose a policy first.');
  if (!id) return showError('pg-error', 'Enter an identifier (any text: a user id, an IP…).');
  const url = `/limit/${policy.split('+').map(encodeURIComponent).join('+')}/${encodeURIComponent(id)}`;
  const n = ++pg.seq;
  const r = await api(url, { method: 'POST' });
  if (r.status === 0) return showError('pg-error', r.error);
  logAnswer(n, policy, id, r);
});

$('pg-clear').addEventListener('click', () => {
  $('pg-log').replaceChildren();
  showError('pg-error', '');
  setText('pg-announce', 'Log cleared');
});

/** One line per top-level field: readable, and a 429 problem body stays short. */
function compactJson(v) {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return JSON.stringify(v);
  const lines = Object.entries(v).map(([k, x]) => `  ${JSON.stringify(k)}: ${JSON.stringify(x)}`);
  return `{\n${lines.join(',\n')}\n}`;
}

function logAnswer(n, policy, id, r) {
  const d = r.data || {};
  const allowed = r.ok && d.allowed !== false;
  let summary;
  if (r.status === 429) {
    const retry = r.headers.get('Retry-After');
    summary = `refused${retry ? `, retry after ${retry} s` : ''}`;
  } else if (r.ok) {
    summary = typeof d.remaining === 'number' ? `allowed, ${fmt(d.remaining)} of ${fmt(d.limit)} left` : 'allowed';
  } else {
    summary = r.error;
  }
  const status = `${r.status} ${r.status === 429 ? 'Too Many Requests' : r.ok ? 'OK' : ''}`.trim();
  const dl = h('dl', { class: 'hdrs' });
  for (const name of SHOWN_HEADERS) {
    const v = r.headers.get(name);
    if (v !== null) dl.append(h('div', {}, h('dt', { text: name }), h('dd', { text: v })));
  }
  let body = r.text || '';
  try { body = compactJson(JSON.parse(body)); } catch { /* keep as text */ }
  const li = h('li', { class: `entry ${allowed ? 'ok' : 'no'}` },
    h('div', { class: 'entry-head' },
      h('span', { class: 'status', text: status }),
      h('span', { class: 'sum', text: summary }),
      h('span', { class: 'meta', text: `#${n} · ${policy} · ${id} · ${new Date().toLocaleTimeString()}` })),
    dl,
    h('details', { open: true }, h('summary', { text: 'JSON body' }), h('pre', { text: body })));
  const log = $('pg-log');
  // Only the newest answer's body stays open, so the log stays short.
  log.querySelector('details[open]')?.removeAttribute('open');
  log.prepend(li);
  while (log.children.length > LOG_MAX) log.lastElementChild.remove();
  setText('pg-announce', `Request ${n}: ${status}, ${summary}`);
}

// ---------- start ----------

$('pg-id').value = randomId();
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) $('f-token').value = saved;
route();
loadPolicies();
document.documentElement.classList.add('ready'); // see dashboard.css: shown once laid out
