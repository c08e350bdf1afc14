#!/usr/bin/env bash
# Soak: the whole chain under steady mixed traffic for a while, loopback only, bounded in time,
# everything in its own process group. Not part of ./scripts/test.sh (it takes minutes).
#
#   ./scripts/soak.sh                 10 minutes, results into BENCHMARKS.md
#   ./scripts/soak.sh --minutes 2 --no-write
#
# One private redis-server, the proxy and `edgecount serve` (release binaries) and the worker in
# workerd. Load, all at once: hits through serve, limit decisions through the worker, INCRs
# straight to the proxy (wrk, a few connections each, in 60 s rounds), and 20 live readers of one
# counter's /stream through serve and 20 through the worker, all dropped and opened again every
# round (a leaking subscription would pile up). 15, 30 and 45 s into each round: resident memory and open file
# descriptors of the proxy, serve and workerd, and Redis's connected clients.
#
# Between rounds, once the load and the readers are gone (a few seconds' pause): the same
# process's descriptors, Redis's connected clients and its channels with a subscriber.
#
# Verdict, after a warm-up (the first quarter of the run, at least one round):
# - memory: every later loaded sample of RSS stays within ±10% of the warm-up's last one;
# - descriptors and Redis clients, between rounds: no later idle sample rises more than 10% or 4
#   above the warm-up's last (clients: not one more). A leak — a socket, a subscription or a
#   connection still held when nothing uses it — adds up there, round after round; a count that
#   drops is a keep-alive pool letting idle connections go on its own timer (measured: 15–31
#   between rounds, up and down, with no trend), not a leak. Under load the count is mostly the
#   connections the load holds at that moment (wrk's, 40 readers', the pools' to the proxy), so it
#   is reported, not judged;
# - no Redis channel has a subscriber between rounds (every /stream let go of its subscription;
#   serve and the proxy share one per channel and drop it with the last reader).
# shellcheck disable=SC2016 # backticks inside printf formats are Markdown, not command substitution
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/workerd.sh
source "$ROOT/scripts/lib/workerd.sh"

MINUTES=10
WRITE_MD=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) MINUTES="${2:?}"; shift 2 ;;
    --no-write) WRITE_MD=0; shift ;;
    *) echo "usage: $0 [--minutes N] [--no-write]" >&2; exit 2 ;;
  esac
done
[[ "$MINUTES" =~ ^[0-9]+$ && "$MINUTES" -ge 1 && "$MINUTES" -le 120 ]] ||
  { echo "[soak] --minutes must be 1..120" >&2; exit 2; }

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/edgecount"
WORKERD_BIN="$ROOT/node_modules/@cloudflare/workerd-linux-64/bin/workerd"
WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/edgecount-soak.XXXXXX")"
TOKEN="soak-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
READERS=20
GROUPS_STARTED=()

log() { printf '[soak] %s\n' "$*" >&2; }
die() { printf '[soak] error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib/process-groups.sh
source "$ROOT/scripts/lib/process-groups.sh"

# wait_url NAME PATTERN → the first URL on the log line matching PATTERN (20 s at most).
wait_url() {
  local name="$1" pattern="$2" n
  for ((n = 0; n < 200; n++)); do
    if grep -q "$pattern" "$WORK_DIR/$name.log" 2>/dev/null; then
      grep "$pattern" "$WORK_DIR/$name.log" | grep -Eo 'http://[^ ]+' | head -n 1
      return
    fi
    sleep 0.1
  done
  die "$name did not start: $(tail -n 5 "$WORK_DIR/$name.log")"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
redis_clients() { redis-cli -p "$REDIS_PORT" info clients | awk -F: '/^connected_clients:/ {print $2+0}'; }
redis_channels() { redis-cli -p "$REDIS_PORT" pubsub channels | grep -c . || true; }

log "building (release binary, worker)"
cargo build --release --quiet --bin edgecount
./scripts/build-worker.sh >/dev/null
[[ -x "$WORKERD_BIN" ]] || die "workerd missing: run ./scripts/setup.sh"

REDIS_PORT="$(free_port)"
start_group redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$WORK_DIR" --daemonize no
for ((n = 0; n < 100; n++)); do
  [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null || true)" == PONG ]] && break
  sleep 0.1
done
UPSTASH_REDIS_REST_TOKEN="$TOKEN" RUST_LOG=warn start_group proxy "$BIN" proxy \
  --redis-url "redis://127.0.0.1:$REDIS_PORT" --listen 127.0.0.1:0
PROXY_PID="$LAST_PID"
PROXY_URL="$(wait_url proxy 'listening on')"
LIMITS="page=sliding:1000000/1h"
EDGECOUNT_RATE_LIMITS="$LIMITS" EDGECOUNT_ABUSE_LIMIT=0 RUST_LOG=warn start_group serve "$BIN" serve \
  --rest-url "$PROXY_URL" --rest-token "$TOKEN" --listen 127.0.0.1:0
SERVE_PID="$LAST_PID"
SERVE_URL="$(wait_url serve 'listening on')"
mkdir -p "$WORK_DIR/worker-config/worker"
cp "${WORKER_FILES[@]/#/$ROOT/build/worker/}" "$WORK_DIR/worker-config/worker/"
WORKER_PORT="$(free_port)"
bindings=""
for pair in "UPSTASH_REDIS_REST_URL=$PROXY_URL" "UPSTASH_REDIS_REST_TOKEN=$TOKEN" \
  "EDGECOUNT_RATE_LIMITS=$LIMITS" "EDGECOUNT_ABUSE_LIMIT=0"; do
  bindings+="$(workerd_binding "${pair%%=*}" "${pair#*=}")"$'\n'
done
workerd_config "$WORKER_PORT" 2026-07-30 "$WORKERD_WASM_MODULES" "$bindings" \
  >"$WORK_DIR/worker-config/config.capnp"
start_group workerd "$WORKERD_BIN" serve "$WORK_DIR/worker-config/config.capnp"
WORKERD_PID="$LAST_PID"
WORKER_URL="http://127.0.0.1:$WORKER_PORT"
for ((n = 0; n < 200; n++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$WORKER_PORT") 2>/dev/null && break
  sleep 0.1
done
log "redis :$REDIS_PORT, proxy $PROXY_URL, serve $SERVE_URL, worker $WORKER_URL; ${MINUTES} min"

cat >"$WORK_DIR/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
EOF
cat >"$WORK_DIR/incr.lua" <<EOF
wrk.method = "POST"
wrk.body = '["INCR","soak:proxy"]'
wrk.headers["Authorization"] = "Bearer $TOKEN"
EOF
curl -sf -X POST -A 'Mozilla/5.0 (X11; Linux x86_64)' "$SERVE_URL/hit/soak/live" >/dev/null ||
  die "serve does not count"
CLIENTS_BEFORE="$(redis_clients)"
IDLE="$WORK_DIR/idle.tsv"
printf 'second\tproxy_fd\tserve_fd\tworkerd_fd\tredis_clients\tchannels\n' >"$IDLE"
# Between rounds: wait (at most 10 s) for the streams' subscriptions to go, then a sample.
idle_sample() {
  local n
  for ((n = 0; n < 50; n++)); do
    [[ "$(redis_channels)" -eq 0 ]] && break
    sleep 0.2
  done
  sleep 2
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$((SECONDS - STARTED))" "$(fds "$PROXY_PID")" "$(fds "$SERVE_PID")" \
    "$(fds "$WORKERD_PID")" "$(redis_clients)" "$(redis_channels)" >>"$IDLE"
}

SAMPLES="$WORK_DIR/samples.tsv"
printf 'second\tproxy_rss\tproxy_fd\tserve_rss\tserve_fd\tworkerd_rss\tworkerd_fd\tredis_clients\n' >"$SAMPLES"
sample() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(rss_kib "$PROXY_PID")" "$(fds "$PROXY_PID")" \
    "$(rss_kib "$SERVE_PID")" "$(fds "$SERVE_PID")" "$(rss_kib "$WORKERD_PID")" \
    "$(fds "$WORKERD_PID")" "$(redis_clients)" >>"$SAMPLES"
}

STARTED=$SECONDS
TOTAL=$((MINUTES * 60))
ROUNDS=0
REQUESTS=0
while ((SECONDS - STARTED < TOTAL)); do
  round=$((TOTAL - (SECONDS - STARTED)))
  ((round <= 60)) || round=60
  # The live readers of this round (curl, each bounded in time; stopped when the round ends).
  reader_pids=()
  for ((r = 0; r < READERS; r++)); do
    setsid curl -sN --max-time $((round + 30)) "$SERVE_URL/stream/soak/live" >/dev/null 2>&1 &
    reader_pids+=($!)
    setsid curl -sN --max-time $((round + 30)) "$WORKER_URL/stream/soak/live" >/dev/null 2>&1 &
    reader_pids+=($!)
  done
  timeout $((round + 30)) wrk -t1 -c8 -d"${round}s" -s "$WORK_DIR/post.lua" "$SERVE_URL/hit/soak/live" \
    >"$WORK_DIR/wrk-hit.txt" 2>&1 &
  w1=$!
  timeout $((round + 30)) wrk -t1 -c8 -d"${round}s" -s "$WORK_DIR/post.lua" "$WORKER_URL/limit/page/soak" \
    >"$WORK_DIR/wrk-limit.txt" 2>&1 &
  w2=$!
  timeout $((round + 30)) wrk -t1 -c8 -d"${round}s" -s "$WORK_DIR/incr.lua" "$PROXY_URL/" \
    >"$WORK_DIR/wrk-incr.txt" 2>&1 &
  w3=$!
  # Samples inside the round (readers and load on), so every sample sees the same kind of moment.
  round_start=$SECONDS
  for offset in 15 30 45; do
    ((offset < round - 5)) || break
    sleep $((round_start + offset - SECONDS))
    sample $((SECONDS - STARTED))
  done
  wait "$w1" "$w2" "$w3" || die "wrk failed: $(cat "$WORK_DIR"/wrk-*.txt)"
  for pid in "${reader_pids[@]}"; do
    kill -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for f in hit limit incr; do
    n="$(awk '/requests in/ {print $1}' "$WORK_DIR/wrk-$f.txt")"
    REQUESTS=$((REQUESTS + ${n:-0}))
    ! grep -q 'Non-2xx' "$WORK_DIR/wrk-$f.txt" ||
      log "round $((ROUNDS + 1)): $f had non-2xx answers: $(grep 'Non-2xx' "$WORK_DIR/wrk-$f.txt")"
  done
  ROUNDS=$((ROUNDS + 1))
  idle_sample
  log "round $ROUNDS done ($((SECONDS - STARTED)) s, $REQUESTS requests so far)"
done

# flat FILE band|rise MIN COLUMNS... → "PASS|FAIL name base→[lo..hi] (±pct%); …": every sample
# after the warm-up's last one within 10% or MIN (whichever is larger) of it — either way
# (band), or above it only (rise).
flat() {
  local file="$1" mode="$2" min="$3"
  shift 3
  awk -F'\t' -v total="$TOTAL" -v mode="$mode" -v min="$min" -v cols="$*" '
    NR == 1 { for (c = 1; c <= NF; c++) col[$c] = c; next }
    { t[NR] = $1; for (c = 2; c <= NF; c++) v[NR, c] = $c; last = NR }
    END {
      warm = total / 4; if (warm < 60) warm = 60
      base = 0
      for (i = 2; i <= last; i++) if (t[i] <= warm) base = i
      if (base == 0 || base == last) { print "FAIL too few samples"; exit }
      n = split(cols, name, " "); ok = 1; out = ""
      for (k = 1; k <= n; k++) {
        c = col[name[k]]; b = v[base, c]; lo = b; hi = b
        for (i = base + 1; i <= last; i++) { if (v[i, c] < lo) lo = v[i, c]; if (v[i, c] > hi) hi = v[i, c] }
        dev = (hi - b > b - lo ? hi - b : b - lo)
        allow = b * 0.10; if (allow < min) allow = min
        if (mode == "rise") { if (hi - b > allow) ok = 0 } else if (dev > allow) ok = 0
        out = out sprintf("%s %s→[%s..%s] (±%.1f%%); ", name[k], b, lo, hi, b > 0 ? dev / b * 100 : 0)
      }
      print (ok ? "PASS " : "FAIL ") out
    }' "$file"
}
MEMORY="$(flat "$SAMPLES" band 0 proxy_rss serve_rss workerd_rss)"
LOADED_FDS="$(flat "$SAMPLES" band 0 proxy_fd serve_fd workerd_fd)"
IDLE_FDS="$(flat "$IDLE" rise 4 proxy_fd serve_fd workerd_fd)"
IDLE_CLIENTS="$(flat "$IDLE" rise 0 redis_clients)"
channels_left="$(awk -F'\t' 'NR > 1 && $6 > 0 {n++} END {print n + 0}' "$IDLE")"
channels_ok=PASS
((channels_left == 0)) || channels_ok=FAIL
log "RSS (KiB) under load after warm-up: $MEMORY"
log "descriptors under load (reported, not judged): ${LOADED_FDS#* }"
log "descriptors between rounds: $IDLE_FDS"
log "Redis clients between rounds: $IDLE_CLIENTS"
log "rounds that left a Redis channel subscribed: $channels_left: $channels_ok"

if [[ "$WRITE_MD" -eq 1 ]]; then
  section="$WORK_DIR/section.md"
  {
    printf '<!-- soak:start -->\n## Soak\n\n'
    printf 'Command: `./scripts/soak.sh --minutes %s`, run %s on %s cores; built from %s.\n\n' \
      "$MINUTES" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" "$(git rev-parse --short HEAD)"
    printf '%s rounds of 60 s: hits through serve, limit decisions through the worker, INCRs to the proxy ' "$ROUNDS"
    printf '(wrk, 8 connections each), %s live readers through serve and %s through the worker, reopened every round; ' "$READERS" "$READERS"
    printf '%s requests in all. Samples 15, 30 and 45 s into each round (KiB resident, open descriptors):\n\n' "$REQUESTS"
    printf '| second | proxy RSS | proxy fds | serve RSS | serve fds | workerd RSS | workerd fds | Redis clients |\n'
    printf '|---:|---:|---:|---:|---:|---:|---:|---:|\n'
    awk -F'\t' 'NR > 1 {printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8}' "$SAMPLES"
    printf '\nBetween rounds (load and readers gone, subscriptions let go, 2 s later):\n\n'
    printf '| second | proxy fds | serve fds | workerd fds | Redis clients | channels subscribed |\n'
    printf '|---:|---:|---:|---:|---:|---:|\n'
    awk -F'\t' 'NR > 1 {printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}' "$IDLE"
    printf '\nAfter warm-up (the last sample of the first quarter is the base; Redis had %s clients before the first reader):\n\n' "$CLIENTS_BEFORE"
    printf -- '- memory under load, ±10%%: **%s**\n' "$MEMORY"
    printf -- '- descriptors between rounds, never more than 10%% or 4 above the base (a leak adds up; a pool letting idle connections go lowers the count): **%s**\n' "$IDLE_FDS"
    printf -- '- Redis clients between rounds, never above the base: **%s**\n' "$IDLE_CLIENTS"
    printf -- '- rounds that left a channel subscribed: %s: **%s**\n' "$channels_left" "$channels_ok"
    printf -- '- descriptors under load (what the load holds at that moment; reported, not judged): %s\n' "${LOADED_FDS#* }"
    printf '<!-- soak:end -->\n'
  } >"$section"
  if grep -q '<!-- soak:start -->' BENCHMARKS.md; then
    awk -v file="$section" '
      /<!-- soak:start -->/ { while ((getline line < file) > 0) print line; skip = 1; next }
      /<!-- soak:end -->/ { skip = 0; next }
      !skip { print }' BENCHMARKS.md >"$WORK_DIR/BENCHMARKS.md"
    cp "$WORK_DIR/BENCHMARKS.md" BENCHMARKS.md
  else
    { printf '\n'; cat "$section"; } >>BENCHMARKS.md
  fi
  log "wrote the soak section to BENCHMARKS.md"
fi
[[ "$MEMORY" == PASS* && "$IDLE_FDS" == PASS* && "$IDLE_CLIENTS" == PASS* && "$channels_ok" == PASS ]]
