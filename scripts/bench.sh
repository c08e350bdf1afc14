#!/usr/bin/env bash
# Benchmarks, loopback only, bounded in time, everything in its own process group.
#
#   ./scripts/bench.sh                    every section: proxy, worker, ratelimit, serve, cost
#   ./scripts/bench.sh --only proxy       one section: proxy | worker | ratelimit | serve | cost
#   options: --duration SECONDS (10)  --connections N (50)  --threads N (2)  --pipeline N (100)
#            --requests N (redis-benchmark, 300000)  --no-write (do not update BENCHMARKS.md)
#
# proxy section, on ONE private redis-server, side by side in one run:
#   (a) wrk → edgecount proxy (release build): POST / ["INCR","bench:proxy"], Bearer auth
#   (b) the same in the path form, GET /INCR/bench:path
#   (c) wrk → webdis (GET /INCR/bench:webdis), the classic HTTP-to-Redis bridge, same Redis
#   (d) wrk → a bare hyper server answering a fixed 200 (examples/ceiling.rs): this box's HTTP ceiling
#   (e) redis-benchmark -t incr, direct RESP, not pipelined: the ceiling for one command per round trip
#   (f) wrk → edgecount proxy POST /pipeline with 100 INCRs per request (commands/s = req/s × 100)
#   then alternating rounds (EDGECOUNT_BENCH_ROUNDS, 7 × 5 s each side): proxy vs webdis for both
#   request forms and proxy vs the ceiling, each side first in every other round.
# serve section (scripts/bench/serve.sh): hits through `edgecount serve --redis-url` (RESP) vs
#   through the proxy (REST), and vs redis-benchmark running the hit's own EVALSHA (the Redis-side
#   limit), in rows and alternating rounds.
# cost section (scripts/bench/cost.sh): Redis commands per operation as Upstash bills them (hits,
#   reads, stats, a dashboard opening, rate-limit decisions allowed and refused, leases; the JS peers
#   beside them), counted with MONITOR on a private redis-server; $ per million operations.
# It prints req/s, p50, p99 and each server's CPU, the ratios proxy/webdis and proxy/redis-benchmark,
# and writes them with the exact command into BENCHMARKS.md (between this section's markers, so
# other sections are left alone), with an SVG bar chart of the section's rows (docs/bench/<section>.svg).
#
# Adding a section: write bench_<name>() that fills RESULT_ROWS (see add_row) and
# SECTION_NOTES, add <name> to SECTIONS; start servers with start_group (they are stopped on exit).
# Optional: section_intro_<name>, print_table_<name> (rows of its own layout), section_caveat_<name>,
# readme_block_<name> (written between README's <!-- bench:<name>-readme:start/end --> markers).
# shellcheck disable=SC2016 # backticks inside printf formats are Markdown, not command substitution
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SECTIONS=(proxy worker ratelimit serve cost)
ONLY=""
DURATION=10
CONNECTIONS=50
THREADS=2
PIPELINE=100
REDIS_BENCH_REQUESTS=300000
WRITE_MD=1
ORIGINAL_ARGS=("$@")

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/edgecount"
WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/edgecount-bench.XXXXXX")"
TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CLK_TCK="$(getconf CLK_TCK)"

GROUPS_STARTED=()

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --only) ONLY="${2:?--only needs proxy|worker|ratelimit|serve|cost}"; shift 2 ;;
      --only=*) ONLY="${1#*=}"; shift ;;
      --duration) DURATION="${2:?}"; shift 2 ;;
      --connections) CONNECTIONS="${2:?}"; shift 2 ;;
      --threads) THREADS="${2:?}"; shift 2 ;;
      --pipeline) PIPELINE="${2:?}"; shift 2 ;;
      --requests) REDIS_BENCH_REQUESTS="${2:?}"; shift 2 ;;
      --no-write) WRITE_MD=0; shift ;;
      -h | --help) usage 0 ;;
      *) printf 'unknown option: %s\n\n' "$1" >&2; usage 2 ;;
    esac
  done
  if [[ -n "$ONLY" ]]; then
    local s ok=0
    for s in "${SECTIONS[@]}"; do [[ "$s" == "$ONLY" ]] && ok=1; done
    [[ "$ok" -eq 1 ]] || die "--only must be one of: ${SECTIONS[*]}"
  fi
  [[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 1 && "$DURATION" -le 120 ]] ||
    die "--duration must be 1..120 seconds"
}

# --- process groups --------------------------------------------------------------------------------
# shellcheck source=scripts/lib/process-groups.sh
source "$ROOT/scripts/lib/process-groups.sh"

# CPU seconds used so far by a process (all its threads), from /proc: utime + stime.
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# CPU% over an interval = ticks used / (ticks per second × seconds) × 100; one core = 100%.
cpu_percent() {
  local before="$1" after="$2" seconds="$3"
  awk -v b="$before" -v a="$after" -v t="$CLK_TCK" -v s="$seconds" \
    'BEGIN { if (s <= 0) { print "-"; exit } printf "%.0f%%", (a - b) / t / s * 100 }'
}

# --- setup -----------------------------------------------------------------------------------------

ensure_tools() {
  local missing=() cmd pkg
  for pair in wrk:wrk webdis:webdis redis-benchmark:redis-tools redis-cli:redis-tools redis-server:redis-server; do
    cmd="${pair%%:*}"
    pkg="${pair##*:}"
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [[ "${#missing[@]}" -gt 0 ]]; then
    log "installing ${missing[*]} (apt)"
    # A policy-rc.d keeps the package from starting a system redis on 6379 (not ours to touch).
    local policy=/usr/sbin/policy-rc.d added=0
    if [[ ! -e "$policy" ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    [[ "$added" -eq 0 ]] || rm -f "$policy"
  fi
}

build_release() {
  log "cargo build --release --bin edgecount"
  cargo build --release --bin edgecount --quiet
  [[ -x "$BIN" ]] || die "no release binary at $BIN"
}

start_redis() {
  REDIS_PORT="$(free_port)"
  # No persistence: this measures the HTTP layers, not the disk.
  start_group redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK_DIR" --daemonize no
  REDIS_PID="$LAST_PID"
  local n
  for ((n = 0; n < 100; n++)); do
    [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null || true)" == "PONG" ]] && return
    sleep 0.1
  done
  die "redis-server did not start (log: $(cat "$WORK_DIR/redis.log"))"
}

start_proxy() {
  local port
  port="$(free_port)"
  UPSTASH_REDIS_REST_TOKEN="$TOKEN" RUST_LOG=warn start_group proxy \
    "$BIN" proxy --redis-url "redis://127.0.0.1:$REDIS_PORT" --listen "127.0.0.1:$port"
  PROXY_PID="$LAST_PID"
  local n
  for ((n = 0; n < 200; n++)); do
    if grep -q 'edgecount proxy listening on' "$WORK_DIR/proxy.log" 2>/dev/null; then
      PROXY_URL="$(grep -Eo 'http://[^ ]+' "$WORK_DIR/proxy.log" | head -n 1)"
      return
    fi
    kill -0 "$PROXY_PID" 2>/dev/null || die "proxy exited: $(cat "$WORK_DIR/proxy.log")"
    sleep 0.1
  done
  die "proxy did not print its listening line within 20 s"
}

start_webdis() {
  WEBDIS_PORT="$(free_port)"
  # webdis gets the same number of worker threads as the proxy's tokio runtime (one per core).
  cat >"$WORK_DIR/webdis.json" <<EOF
{
  "redis_host": "127.0.0.1",
  "redis_port": $REDIS_PORT,
  "redis_auth": null,
  "http_host": "127.0.0.1",
  "http_port": $WEBDIS_PORT,
  "threads": $(nproc),
  "pool_size": 20,
  "daemonize": false,
  "websockets": false,
  "database": 0,
  "acl": [{ "disabled": ["DEBUG", "FLUSHALL", "FLUSHDB", "CONFIG", "SHUTDOWN"] }],
  "verbosity": 0,
  "logfile": "$WORK_DIR/webdis-own.log"
}
EOF
  start_group webdis webdis "$WORK_DIR/webdis.json"
  WEBDIS_PID="$LAST_PID"
  local n
  for ((n = 0; n < 100; n++)); do
    if curl -s --max-time 1 "http://127.0.0.1:$WEBDIS_PORT/PING" 2>/dev/null | grep -q PONG; then
      return
    fi
    sleep 0.1
  done
  die "webdis did not answer within 10 s: $(cat "$WORK_DIR/webdis.log" 2>/dev/null)"
}

# --- measuring ------------------------------------------------------------------------------------

RESULT_ROWS=() # "name|rps|p50_ms|p99_ms|server_cpu|notes"
add_row() { RESULT_ROWS+=("$1|$2|$3|$4|$5|$6"); }

# wrk's latency values come with units (us, ms, s): normalise to milliseconds.
wrk_latency_ms() {
  local pct="$1" file="$2"
  awk -v p="$pct%" '
    $1 == p {
      v = $2
      if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 }
      else if (v ~ /ms$/) { sub(/ms$/, "", v); v = v + 0 }
      else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 }
      printf "%.2f", v; exit
    }' "$file"
}

wrk_rps() { awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$1"; }
wrk_requests() { awk '/requests in/ {print $1; exit}' "$1"; }
wrk_non2xx() { awk '/Non-2xx or 3xx responses:/ {print $NF}' "$1"; }
wrk_errors() { awk '/Socket errors:/ {print}' "$1"; }

# run_wrk NAME SERVER_PID WRK_ARGS... → measures, checks for errors, adds a row.
# Commands run bounded: wrk stops itself after --duration; timeout guards against a hang.
run_wrk() {
  local name="$1" server_pid="$2"
  shift 2
  local out="$WORK_DIR/wrk-${name//[^A-Za-z0-9]/_}.txt" before after redis_before redis_after
  log "$name: wrk $*"
  # A short warm-up so connection set-up and first allocations are not in the numbers.
  timeout 30 wrk -t "$THREADS" -c "$CONNECTIONS" -d 2s "$@" >/dev/null 2>&1 || true
  before="$(cpu_ticks "$server_pid")"
  redis_before="$(cpu_ticks "$REDIS_PID")"
  timeout $((DURATION + 30)) wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency "$@" >"$out" 2>&1 ||
    die "wrk failed for $name: $(cat "$out")"
  after="$(cpu_ticks "$server_pid")"
  redis_after="$(cpu_ticks "$REDIS_PID")"
  cat "$out" >&2
  local non2xx errors notes=""
  non2xx="$(wrk_non2xx "$out")"
  errors="$(wrk_errors "$out")"
  [[ -z "$non2xx" ]] || notes="NON-2XX: $non2xx; "
  [[ -z "$errors" ]] || notes="${notes}${errors}; "
  LAST_RPS="$(wrk_rps "$out")"
  LAST_REQUESTS="$(wrk_requests "$out")"
  notes="${notes}server CPU $(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$LAST_REQUESTS" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}') µs/req; redis-server CPU $(cpu_percent "$redis_before" "$redis_after" "$DURATION")"
  add_row "$name" "$LAST_RPS" "$(wrk_latency_ms 50 "$out")" "$(wrk_latency_ms 99 "$out")" \
    "$(cpu_percent "$before" "$after" "$DURATION")" "$notes"
}

# Every acknowledged INCR must be in Redis: the counter is at least the number of requests wrk saw
# complete (requests still in flight when wrk stopped may add a few more).
check_counter() {
  local key="$1" min="$2" value
  value="$(redis-cli -p "$REDIS_PORT" get "$key")"
  if [[ "$value" =~ ^[0-9]+$ && "$value" -ge "$min" ]]; then
    log "check $key = $value >= $min: ok"
  else
    die "check failed: $key = '$value', expected >= $min"
  fi
}

# --- sections -------------------------------------------------------------------------------------

build_ceiling() {
  log "cargo build --release --example ceiling"
  cargo build --release --example ceiling --quiet
  CEILING_BIN="$TARGET_DIR/release/examples/ceiling"
  [[ -x "$CEILING_BIN" ]] || die "no ceiling binary at $CEILING_BIN"
}

# The ceiling: a bare hyper server with the proxy's number of worker threads (its default: half
# the cores, at least one).
start_ceiling() {
  local threads=$(($(nproc) / 2)) n
  ((threads >= 1)) || threads=1
  start_group ceiling "$CEILING_BIN" 127.0.0.1:0 "$threads"
  CEILING_PID="$LAST_PID"
  for ((n = 0; n < 100; n++)); do
    if grep -q 'ceiling listening on' "$WORK_DIR/ceiling.log" 2>/dev/null; then
      CEILING_URL="$(grep -Eo 'http://[^ ]+' "$WORK_DIR/ceiling.log" | head -n 1)"
      return
    fi
    sleep 0.1
  done
  die "ceiling server did not start: $(cat "$WORK_DIR/ceiling.log")"
}

median_of() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# spread_of VALUES... → "lowest–highest".
spread_of() {
  local sorted
  sorted="$(printf '%s\n' "$@" | sort -g)"
  printf '%s–%s' "$(head -n 1 <<<"$sorted")" "$(tail -n 1 <<<"$sorted")"
}

# wrk_round OUT PID URL [LUA] → one warm 5 s wrk run; sets ROUND_RPS, ROUND_P99 (ms) and
# ROUND_CPU_US (the server's CPU µs per request).
wrk_round() {
  local out="$1" pid="$2" url="$3" lua="${4:-}" t0 t1 reqs
  local -a script=()
  [[ -z "$lua" ]] || script=(-s "$lua")
  t0="$(cpu_ticks "$pid")"
  timeout 40 wrk -t "$THREADS" -c "$CONNECTIONS" -d 5s --latency "${script[@]}" "$url" >"$out" 2>&1 ||
    die "wrk failed on $url: $(cat "$out")"
  t1="$(cpu_ticks "$pid")"
  reqs="$(wrk_requests "$out")"
  [[ "$reqs" =~ ^[0-9]+$ && "$reqs" -gt 0 ]] || die "wrk completed no requests on $url"
  [[ -z "$(wrk_non2xx "$out")" ]] || die "non-2xx answers from $url: $(cat "$out")"
  ROUND_RPS="$(wrk_rps "$out")"
  ROUND_P99="$(wrk_latency_ms 99 "$out")"
  ROUND_CPU_US="$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')"
}

# compare_rounds LABEL "A_NAME|PID|URL|LUA" "B_NAME|PID|URL|LUA" → ROUNDS (EDGECOUNT_BENCH_ROUNDS,
# default 7) alternating 5 s runs, A first in even rounds and B first in odd ones, so both see the
# same noise; adds a note with the median req/s ratio A/B and its spread, and both sides' median
# p99 and CPU µs per request. LAST_ROUNDS: the median ratio.
compare_rounds() {
  local label="$1" rounds="${EDGECOUNT_BENCH_ROUNDS:-7}" n side order
  local -A name pid url lua
  IFS='|' read -r "name[a]" "pid[a]" "url[a]" "lua[a]" <<<"$2"
  IFS='|' read -r "name[b]" "pid[b]" "url[b]" "lua[b]" <<<"$3"
  local -a ratios=() p99_a=() p99_b=() cpu_a=() cpu_b=()
  for ((n = 0; n < rounds; n++)); do
    local -A rps=()
    order="a b"
    ((n % 2 == 0)) || order="b a"
    for side in $order; do
      wrk_round "$WORK_DIR/round-${label//[^A-Za-z0-9]/_}-$n-$side.txt" "${pid[$side]}" "${url[$side]}" "${lua[$side]}"
      rps[$side]="$ROUND_RPS"
      if [[ "$side" == a ]]; then p99_a+=("$ROUND_P99") cpu_a+=("$ROUND_CPU_US"); else p99_b+=("$ROUND_P99") cpu_b+=("$ROUND_CPU_US"); fi
    done
    ratios+=("$(awk -v a="${rps[a]}" -v b="${rps[b]}" 'BEGIN {printf "%.3f", a / b}')")
    log "$label round $((n + 1))/$rounds ($order): ${name[a]} ${rps[a]} req/s, ${name[b]} ${rps[b]} req/s, ratio ${ratios[-1]}"
  done
  LAST_ROUNDS="$(median_of "${ratios[@]}")"
  SECTION_NOTES+=("$label, $rounds alternating rounds of 5 s: req/s ${name[a]} / ${name[b]} median **$LAST_ROUNDS** (spread $(spread_of "${ratios[@]}"); rounds ${ratios[*]}); p99 ms median ${name[a]} $(median_of "${p99_a[@]}") vs ${name[b]} $(median_of "${p99_b[@]}"); server CPU µs/request median ${name[a]} $(median_of "${cpu_a[@]}") vs ${name[b]} $(median_of "${cpu_b[@]}")")
}

bench_proxy() {
  build_release
  build_ceiling
  start_proxy
  start_webdis
  start_ceiling
  log "redis :$REDIS_PORT, proxy $PROXY_URL, webdis :$WEBDIS_PORT, ceiling $CEILING_URL; ${DURATION}s per run"

  # Sanity: each path answers the way the benchmark assumes.
  curl -sf "$PROXY_URL" -H "Authorization: Bearer $TOKEN" -d '["PING"]' | grep -q PONG ||
    die "proxy does not answer PING"

  export EDGECOUNT_BENCH_TOKEN="$TOKEN"
  # (a) proxy, one INCR per request, as the SDKs send it
  EDGECOUNT_BENCH_KEY="bench:proxy" run_wrk "proxy POST / INCR" "$PROXY_PID" \
    -s scripts/bench/proxy_incr.lua "$PROXY_URL"
  check_counter bench:proxy "$LAST_REQUESTS"

  # (b) proxy, the path form
  run_wrk "proxy GET /INCR/k" "$PROXY_PID" -s scripts/bench/proxy_path.lua "$PROXY_URL/INCR/bench:path"
  check_counter bench:path "$LAST_REQUESTS"

  # (c) webdis, one INCR per request
  run_wrk "webdis GET /INCR" "$WEBDIS_PID" "http://127.0.0.1:$WEBDIS_PORT/INCR/bench:webdis"
  check_counter bench:webdis "$LAST_REQUESTS"

  # (d) the ceiling: a bare hyper server, no Redis
  run_wrk "ceiling: bare hyper, fixed answer" "$CEILING_PID" "$CEILING_URL/"

  # (e) redis-benchmark, direct and not pipelined
  local rb_out="$WORK_DIR/redis-benchmark.csv" before after
  log "redis-benchmark -p $REDIS_PORT -c $CONNECTIONS -n $REDIS_BENCH_REQUESTS -t incr --csv"
  before="$(cpu_ticks "$REDIS_PID")"
  local started ended
  started="$(date +%s.%N)"
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONNECTIONS" \
    -n "$REDIS_BENCH_REQUESTS" -t incr --csv >"$rb_out" 2>&1 || die "redis-benchmark failed: $(cat "$rb_out")"
  ended="$(date +%s.%N)"
  after="$(cpu_ticks "$REDIS_PID")"
  cat "$rb_out" >&2
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  local rb_rps rb_p50 rb_p99 rb_secs
  rb_rps="$(awk -F'","' '/^"INCR/ {printf "%.0f", $2}' "$rb_out")"
  rb_p50="$(awk -F'","' '/^"INCR/ {printf "%.2f", $5}' "$rb_out")"
  rb_p99="$(awk -F'","' '/^"INCR/ {printf "%.2f", $7}' "$rb_out")"
  rb_secs="$(awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.2f", b - a}')"
  add_row "redis-benchmark INCR (direct)" "$rb_rps" "$rb_p50" "$rb_p99" \
    "$(cpu_percent "$before" "$after" "$rb_secs") (redis)" "$REDIS_BENCH_REQUESTS requests in ${rb_secs}s"

  # (f) proxy pipeline, PIPELINE INCRs per request
  EDGECOUNT_BENCH_KEY="bench:pipeline" EDGECOUNT_BENCH_PIPELINE="$PIPELINE" \
    run_wrk "proxy /pipeline x$PIPELINE" "$PROXY_PID" -s scripts/bench/proxy_pipeline.lua "$PROXY_URL"
  local pipe_rps="$LAST_RPS"
  check_counter bench:pipeline "$((LAST_REQUESTS * PIPELINE))"
  local last=$((${#RESULT_ROWS[@]} - 1))
  RESULT_ROWS[last]="${RESULT_ROWS[last]}; = $((pipe_rps * PIPELINE)) INCR/s"

  # The comparisons that count on a shared machine: alternating rounds.
  local webdis="webdis|$WEBDIS_PID|http://127.0.0.1:$WEBDIS_PORT/INCR/bench:webdis|"
  EDGECOUNT_BENCH_KEY="bench:proxy" compare_rounds "POST / vs webdis" \
    "proxy|$PROXY_PID|$PROXY_URL|scripts/bench/proxy_incr.lua" "$webdis"
  compare_rounds "GET /INCR/k vs webdis" \
    "proxy|$PROXY_PID|$PROXY_URL/INCR/bench:path|scripts/bench/proxy_path.lua" "$webdis"
  EDGECOUNT_BENCH_KEY="bench:proxy" compare_rounds "POST / vs the ceiling" \
    "proxy|$PROXY_PID|$PROXY_URL|scripts/bench/proxy_incr.lua" "ceiling|$CEILING_PID|$CEILING_URL/|"

  SECTION_NOTES+=(
    "proxy /pipeline x$PIPELINE: $((pipe_rps * PIPELINE)) INCR/s = $(ratio "$((pipe_rps * PIPELINE))" "$rb_rps") × redis-benchmark"
    "Server CPU µs per request is in each row's notes (the server's user+system time over the run / requests): it depends less on the machine's other load than req/s."
    "The proxy multiplexes all HTTP requests onto a few auto-pipelined Redis connections, so Redis sees batches (lower redis-server CPU per INCR than with redis-benchmark's 50 connections, each waiting for its own round trip)."
    "wrk and redis-benchmark run on the same 2 cores as the servers and take much of them: the single-command rows are bounded by the machine, not only by the server under test."
  )
}

# worker (workerd hits/s, ours vs a JS @upstash/redis worker) and ratelimit (decisions/s, ours vs
# @upstash/ratelimit): bench_worker, bench_ratelimit and their helpers.
# shellcheck source=scripts/lib/workerd.sh
source "$ROOT/scripts/lib/workerd.sh"
# shellcheck source=scripts/bench/worker.sh
source "$ROOT/scripts/bench/worker.sh"
# serve (hits/s through `edgecount serve --redis-url` vs through the proxy, and vs redis-benchmark
# running the hit's EVALSHA): bench_serve and its helpers.
# shellcheck source=scripts/bench/serve.sh
source "$ROOT/scripts/bench/serve.sh"
# cost (Redis commands per operation, counted with MONITOR; $ per million): bench_cost and its helpers.
# shellcheck source=scripts/bench/cost.sh
source "$ROOT/scripts/bench/cost.sh"

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) { print "-"; exit } printf "%.2f", a / b }'
}

# --- reporting ------------------------------------------------------------------------------------

machine_note() {
  local cpu
  cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  printf '%s cores (%s), %s RAM, %s; load before the run: %s' "$(nproc)" "${cpu:-unknown CPU}" \
    "$(free -h | awk '/^Mem:/ {print $2}')" "$(uname -sr)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

print_table() {
  printf '| run | req/s | p50 ms | p99 ms | server CPU | notes |\n'
  printf '|---|---:|---:|---:|---:|---|\n'
  local row
  for row in "${RESULT_ROWS[@]}"; do
    IFS='|' read -r name rps p50 p99 cpu notes <<<"$row"
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "$cpu" "$notes"
  done
}

# What a section's chart shows (its rows' second field).
chart_unit() {
  case "$1" in
    cost) printf 'Redis commands per operation' ;;
    *) printf 'req/s' ;;
  esac
}

# write_chart SECTION FILE: the section's rows as an SVG bar chart of req/s (cost: commands per
# operation, labelled as the table has them), one bar per row, coloured by whose they are — ours
# (edgecount), theirs (webdis, redis-benchmark, the JavaScript workers) or the box's reference (the
# bare hyper ceiling, the no-Redis baselines).
write_chart() {
  local section="$1" file="$2" row title="$1: requests per second, one run (rows of BENCHMARKS.md)" raw=0 names=330
  if [[ "$section" == cost ]]; then
    title="cost: Redis commands per operation, billed (rows of BENCHMARKS.md)"
    raw=1 names=450
  fi
  mkdir -p "$(dirname "$file")"
  for row in "${RESULT_ROWS[@]}"; do
    IFS='|' read -r name rps _ <<<"$row"
    printf '%s\t%s\n' "$name" "$rps"
  done | awk -F'\t' -v title="$title" -v raw="$raw" -v names="$names" '
    function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
    function kind(name) {
      if (name ~ /ceiling|baseline/) return "ref"
      if (name ~ /webdis|redis-benchmark|JS /) return "theirs"
      return "ours"
    }
    { name[NR] = $1; shown[NR] = $2; v[NR] = $2 + 0; if (v[NR] > max) max = v[NR] }
    END {
      label = names; width = 420; bar = 22; gap = 8; top = 34
      h = top + NR * (bar + gap) + 30
      color["ours"] = "#e8590c"; color["theirs"] = "#1c7ed6"; color["ref"] = "#adb5bd"
      printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", label + width + 80, h
      printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      printf "<text x=\"8\" y=\"20\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", esc(title)
      for (i = 1; i <= NR; i++) {
        y = top + (i - 1) * (bar + gap)
        w = max > 0 ? v[i] / max * width : 0
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", label - 6, y + bar * 0.7, esc(name[i])
        printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", label, y, w, bar, color[kind(name[i])]
        if (raw) printf "<text x=\"%.1f\" y=\"%d\">%s</text>\n", label + w + 4, y + bar * 0.7, esc(shown[i])
        else printf "<text x=\"%.1f\" y=\"%d\">%d</text>\n", label + w + 4, y + bar * 0.7, v[i]
      }
      y = h - 10; x = 8
      split("ours edgecount;theirs webdis, redis-benchmark, JavaScript;ref this box: ceiling, baselines", legend, ";")
      for (k = 1; k <= 3; k++) {
        split(legend[k], part, " "); key = part[1]; text = substr(legend[k], length(key) + 2)
        printf "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n", x, y - 9, color[key], x + 14, y, esc(text)
        x += 14 + length(text) * 6.5 + 16
      }
      print "</svg>"
    }' >"$file"
}

section_markdown() {
  local section="$1"
  printf '<!-- bench:%s:start -->\n' "$section"
  printf '## %s\n\n' "$section"
  printf 'Run %s on %s.\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$MACHINE_NOTE"
  printf 'Command: `%s`\n\n' "$COMMAND_LINE"
  case "$section" in
    proxy)
      printf 'wrk: `-t %s -c %s -d %ss --latency` (+2 s warm-up); redis-benchmark: `-c %s -n %s -t incr --csv`\n' \
        "$THREADS" "$CONNECTIONS" "$DURATION" "$CONNECTIONS" "$REDIS_BENCH_REQUESTS"
      printf '(not pipelined). One private redis-server (no persistence) serves every run; release\n'
      printf 'build of the proxy (default threads: half the cores) and of examples/ceiling.rs (as many\n'
      printf 'threads); webdis %s with %s threads. Server CPU is the server process' "$(dpkg-query -W -f='${Version}' webdis 2>/dev/null || echo '?')" "$(nproc)"
      printf "'s\nuser+system time over the run (100%% = one core).\n\n"
      ;;
    worker | ratelimit | serve | cost) "section_intro_$section" ;;
  esac
  if declare -F "print_table_$section" >/dev/null; then "print_table_$section"; else print_table; fi
  printf '\n![%s: %s of the rows above](docs/bench/%s.svg)\n\n' "$section" "$(chart_unit "$section")" "$section"
  local note
  for note in "${SECTION_NOTES[@]}"; do printf -- '- %s\n' "$note"; done
  if declare -F "section_caveat_$section" >/dev/null; then
    "section_caveat_$section"
  else
    printf '\nCaveat: the load generator, the HTTP server and redis-server share the same %s cores, so\n' "$(nproc)"
    printf 'absolute numbers are lower than on separate machines and vary run to run; compare the\n'
    printf 'rows of one run with each other, not with other machines.\n'
  fi
  printf '<!-- bench:%s:end -->\n' "$section"
}

# replace_block FILE NAME BLOCKFILE: replace the lines from <!-- bench:NAME:start --> to
# <!-- bench:NAME:end --> (BLOCKFILE holds both markers). Returns 1 when FILE has no such block.
replace_block() {
  local file="$1" name="$2" block="$3"
  grep -q "<!-- bench:$name:start -->" "$file" || return 1
  awk -v start="<!-- bench:$name:start -->" -v end="<!-- bench:$name:end -->" -v blockfile="$block" '
    $0 == start { while ((getline line < blockfile) > 0) print line; skipping = 1; next }
    $0 == end { skipping = 0; next }
    !skipping { print }
  ' "$file" >"$file.tmp" && mv "$file.tmp" "$file"
}

# Replace this section's block in BENCHMARKS.md (or append it), leaving other sections as they are.
write_markdown() {
  local section="$1" file="$ROOT/BENCHMARKS.md" block="$WORK_DIR/section.md"
  section_markdown "$section" >"$block"
  if [[ ! -f "$file" ]]; then
    printf '# Benchmarks\n\nWritten by `scripts/bench.sh`; each section is replaced by its own run.\n' >"$file"
  fi
  if ! replace_block "$file" "$section" "$block"; then
    { printf '\n'; cat "$block"; } >>"$file"
  fi
  log "wrote section '$section' to BENCHMARKS.md"
  # A section may also have a short block in README.md (readme_block_<section>, written between
  # README's <!-- bench:<section>-readme:start/end --> markers when README has them).
  if declare -F "readme_block_$section" >/dev/null; then
    "readme_block_$section" >"$WORK_DIR/readme-block.md"
    if replace_block "$ROOT/README.md" "$section-readme" "$WORK_DIR/readme-block.md"; then
      log "wrote section '$section' to README.md"
    else
      log "README.md has no <!-- bench:$section-readme:start --> block: its table is left as it is"
    fi
  fi
}

main() {
  parse_args "$@"
  COMMAND_LINE="./scripts/bench.sh${ORIGINAL_ARGS[*]:+ ${ORIGINAL_ARGS[*]}}"
  ensure_tools
  MACHINE_NOTE="$(machine_note)"
  start_redis
  local section status ran=0
  for section in "${SECTIONS[@]}"; do
    [[ -z "$ONLY" || "$ONLY" == "$section" ]] || continue
    RESULT_ROWS=()
    SECTION_NOTES=()
    status=0
    "bench_$section" || status=$?
    if [[ "$status" -eq 3 ]]; then
      log "$section: skipped (${SECTION_NOTES[*]})"
      [[ -z "$ONLY" ]] || exit 1
      continue
    fi
    [[ "$status" -eq 0 ]] || die "$section failed"
    ran=1
    printf '\n' >&2
    section_markdown "$section"
    [[ "$WRITE_MD" -eq 0 ]] || {
      write_chart "$section" "$ROOT/docs/bench/$section.svg"
      write_markdown "$section"
    }
  done
  [[ "$ran" -eq 1 ]] || die "no benchmark ran"
}

main "$@"
