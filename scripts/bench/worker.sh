# shellcheck shell=bash disable=SC2016,SC2034 # Markdown backticks in printf formats; globals bench.sh reads
# Sourced by scripts/bench.sh: the `worker` and `ratelimit` sections. Uses bench.sh's helpers
# (start_group, free_port, cpu_ticks, cpu_percent, wrk_* parsers, add_row, ratio, median_of, log, die) and its
# globals (ROOT, WORK_DIR, TOKEN, REDIS_PORT/REDIS_PID, PROXY_URL/PROXY_PID, THREADS, CONNECTIONS,
# DURATION, RESULT_ROWS, SECTION_NOTES).
#
# Both sections, on ONE private redis-server and ONE release proxy (started once per section),
# side by side in one run, every worker in the same workerd binary (one workerd process each):
#
#   worker     wrk → workerd → proxy → Redis, POST /hit/bench/{key} with a browser User-Agent:
#              (a) our wasm worker (build/, scripts/build-worker.sh)
#              (b) bench/js/upstash-redis-hit.mjs HIT_MODE=script: @upstash/redis running the
#                  same hit script (+ the same global figures) in one pipeline
#              (c) the same JS worker, HIT_MODE=incr: a bare INCR (less Redis work than ours)
#              REST requests per hit from the proxy's /_stats, the gzipped wasm and JS bundle sizes.
#   ratelimit  wrk → workerd → proxy → Redis, POST /limit/{policy}/bench:
#              our worker with fixed, sliding, token and gcra policies (limits of 10^6 per hour, so
#              nothing is refused in a run), vs bench/js/upstash-ratelimit.mjs
#              (@upstash/ratelimit slidingWindow(10^6, "1 h"), no cache, no analytics).
#              REST round trips per decision from /_stats. Then refused vs allowed decisions:
#              one identity far over `refuse` (sliding 5/h) against `sliding` (nothing refused), a
#              row and alternating rounds (refused decisions/s / allowed decisions/s).

WORKERD_BIN="${WORKERD_BIN:-$ROOT/node_modules/@cloudflare/workerd-linux-64/bin/workerd}"
ESBUILD="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
# Newest date the pinned workerd supports (tests/support/workerd.rs, wrangler.toml).
WORKERD_COMPAT_DATE="2026-07-30"
BENCH_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
BENCH_RATE_LIMITS="fixed=fixed:1000000/1h; sliding=sliding:1000000/1h; token=token:1000000/1h; gcra=gcra:1000000/1h; conc=concurrency:1000000/1h; refuse=sliding:5/1h"
BENCH_ADMIN_TOKEN="bench-admin-token"

# admin_put URL: an admin PUT (override, deny entry) that must succeed.
admin_put() {
  local answer
  answer="$(curl -s --max-time 10 -X PUT -H "Authorization: Bearer $BENCH_ADMIN_TOKEN" -w ' HTTP %{http_code}' "$1")" || true
  [[ "$answer" == *" HTTP 200" ]] || die "PUT $1: $answer"
  log "PUT $1: $answer"
}

ensure_worker_tools() {
  [[ -x "$WORKERD_BIN" ]] || die "workerd not found at $WORKERD_BIN (npm ci / scripts/setup.sh)"
  [[ -x "$ESBUILD" ]] || die "esbuild not found at $ESBUILD (npm ci / scripts/setup.sh)"
  log "./scripts/build-worker.sh"
  "$ROOT/scripts/build-worker.sh" || die "scripts/build-worker.sh failed"
  local f
  for f in "${WORKER_FILES[@]/#/worker/}"; do
    [[ -f "$ROOT/build/$f" ]] || die "build/$f is missing after scripts/build-worker.sh"
  done
}

# What was measured: commit, and whether the tree had uncommitted changes under src/ (others work
# in the same tree; the build takes whatever is there).
source_note() {
  local rev dirty=""
  rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml build.rs 2>/dev/null || dirty=" + uncommitted changes in src/"
  printf 'built from %s%s' "$rev" "$dirty"
}

# start_workerd NAME MODULES_CAPNP BINDING=VALUE... → serves $WORK_DIR/NAME/config.capnp (modules
# already copied next to it) on a free loopback port. Sets WORKER_URL and WORKER_PID.
start_workerd() {
  local name="$1" modules="$2" dir="$WORK_DIR/$1" port bindings="" pair n
  shift 2
  for pair in "$@"; do
    bindings+="$(workerd_binding "${pair%%=*}" "${pair#*=}")"$'\n'
  done
  port="$(free_port)" || exit 1
  workerd_config "$port" "$WORKERD_COMPAT_DATE" "$modules" "$bindings" >"$dir/config.capnp"
  start_group "workerd-$name" "$WORKERD_BIN" serve "$dir/config.capnp"
  WORKER_PID="$LAST_PID"
  WORKER_URL="http://127.0.0.1:$port"
  for ((n = 0; n < 200; n++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return
    fi
    kill -0 "$WORKER_PID" 2>/dev/null || die "workerd ($name) exited: $(cat "$WORK_DIR/workerd-$name.log")"
    sleep 0.1
  done
  die "workerd ($name) did not listen within 20 s: $(cat "$WORK_DIR/workerd-$name.log")"
}

# Our wasm worker, as scripts/build-worker.sh built it.
start_wasm_worker() {
  local name="$1" dir="$WORK_DIR/$1"
  shift
  mkdir -p "$dir/worker"
  cp "${WORKER_FILES[@]/#/$ROOT/build/worker/}" "$dir/worker/"
  start_workerd "$name" "$WORKERD_WASM_MODULES" "$@"
}

# bundle_js ENTRY OUT: one ES module with its npm imports (workerd conditions), .lua as text.
bundle_js() {
  "$ESBUILD" "$1" --bundle --format=esm --platform=neutral --conditions=workerd,worker,browser \
    --main-fields=module,main --external:'cloudflare:*' --external:'node:*' --loader:.lua=text \
    --log-level=warning --outfile="$2" || die "esbuild failed to bundle $1"
}

# A JS module worker from bench/js, bundled with esbuild.
start_js_worker() {
  local name="$1" entry="$2" dir="$WORK_DIR/$1"
  shift 2
  mkdir -p "$dir"
  bundle_js "$entry" "$dir/worker.mjs"
  start_workerd "$name" '    (name = "worker.mjs", esModule = embed "worker.mjs"),
' "$@"
}

# The wrk script for URL: acquire/release pairs on /lease/…, a bodiless POST otherwise.
wrk_script() {
  case "$1" in
    */lease/*) printf '%s' "$ROOT/scripts/bench/lease_pair.lua" ;;
    *) printf '%s' "$ROOT/scripts/bench/worker_post.lua" ;;
  esac
}

# REST requests the proxy has answered so far (its /_stats does not count itself).
proxy_requests() {
  local body
  body="$(curl -sf --max-time 5 -H "Authorization: Bearer $TOKEN" "$PROXY_URL/_stats")" ||
    die "proxy /_stats did not answer"
  [[ "$body" =~ \"requests\":([0-9]+) ]] || die "unexpected /_stats answer: $body"
  printf '%s' "${BASH_REMATCH[1]}"
}

# Wait (bounded) until the proxy's count stops moving: requests still in flight in workerd when
# wrk stopped finish first. Prints the settled count.
settled_proxy_requests() {
  local previous current n
  previous="$(proxy_requests)" || exit 1
  for ((n = 0; n < 50; n++)); do
    sleep 0.2
    current="$(proxy_requests)" || exit 1
    if [[ "$current" == "$previous" ]]; then
      printf '%s' "$current"
      return
    fi
    previous="$current"
  done
  die "proxy request count still moving after 10 s"
}

# One request by hand before the load, to check the route answers as the benchmark assumes.
# expect_answer NAME URL EXTENDED_REGEX
expect_answer() {
  local body
  body="$(curl -s --max-time 10 -X POST -A "$BENCH_USER_AGENT" -w ' HTTP %{http_code}' "$2")" || true
  [[ "$body" =~ $3 ]] || die "$1: unexpected answer from POST $2: $body (log: $(tail -n 20 "$WORK_DIR/workerd-$1.log"))"
  log "$1: $body"
}

# measure_worker NAME WORKER_PID URL [EXPECTED_NON2XX_NOTE] → warm-up, then DURATION s of wrk with
# the REST requests the proxy answered meanwhile; adds a row. Sets LAST_RPS, LAST_REQUESTS,
# LAST_REST_PER_REQ. With a 4th argument every answer is expected to be non-2xx (a baseline route)
# and the note says so instead of flagging it.
measure_worker() {
  local name="$1" worker_pid="$2" url="$3" expected_non2xx="${4:-}"
  local out="$WORK_DIR/wrk-${name//[^A-Za-z0-9]/_}.txt"
  local w0 w1 p0 p1 r0 r1 rest0 rest1
  log "$name: wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s -s scripts/bench/worker_post.lua $url"
  EDGECOUNT_BENCH_UA="$BENCH_USER_AGENT" timeout 30 wrk -t "$THREADS" -c "$CONNECTIONS" -d 2s \
    -s "$(wrk_script "$url")" "$url" >/dev/null 2>&1 || true
  rest0="$(settled_proxy_requests)" || exit 1
  w0="$(cpu_ticks "$worker_pid")"
  p0="$(cpu_ticks "$PROXY_PID")"
  r0="$(cpu_ticks "$REDIS_PID")"
  EDGECOUNT_BENCH_UA="$BENCH_USER_AGENT" timeout $((DURATION + 30)) wrk -t "$THREADS" \
    -c "$CONNECTIONS" -d "${DURATION}s" --latency -s "$(wrk_script "$url")" "$url" \
    >"$out" 2>&1 || die "wrk failed for $name: $(cat "$out")"
  w1="$(cpu_ticks "$worker_pid")"
  p1="$(cpu_ticks "$PROXY_PID")"
  r1="$(cpu_ticks "$REDIS_PID")"
  rest1="$(settled_proxy_requests)" || exit 1
  cat "$out" >&2
  LAST_RPS="$(wrk_rps "$out")"
  LAST_REQUESTS="$(wrk_requests "$out")"
  [[ "$LAST_REQUESTS" =~ ^[0-9]+$ && "$LAST_REQUESTS" -gt 0 ]] || die "$name: wrk completed no requests"
  LAST_REST_PER_REQ="$(awk -v r=$((rest1 - rest0)) -v n="$LAST_REQUESTS" 'BEGIN {printf "%.2f", r / n}')"
  local non2xx errors notes=""
  non2xx="$(wrk_non2xx "$out")"
  errors="$(wrk_errors "$out" | sed "s/^ *//")"
  if [[ -n "$expected_non2xx" ]]; then
    [[ "$non2xx" == "$LAST_REQUESTS" ]] || die "$name: expected $LAST_REQUESTS non-2xx answers, wrk saw '$non2xx'"
    notes="$expected_non2xx; "
  elif [[ -n "$non2xx" ]]; then
    notes="NON-2XX: $non2xx (sample: $(curl -s --max-time 10 -X POST -A "$BENCH_USER_AGENT" -w ' HTTP %{http_code}' "$url" | tr '|\n' '/ ')); "
  fi
  [[ -z "$errors" ]] || notes="${notes}${errors}; "
  notes="${notes}workerd CPU $(awk -v t=$((w1 - w0)) -v hz="$CLK_TCK" -v n="$LAST_REQUESTS" 'BEGIN {printf "%.0f", t / hz / n * 1e6}') µs/req; **$LAST_REST_PER_REQ REST/req** ($((rest1 - rest0)) for $LAST_REQUESTS); proxy CPU $(cpu_percent "$p0" "$p1" "$DURATION"), redis-server CPU $(cpu_percent "$r0" "$r1" "$DURATION")"
  add_row "$name" "$LAST_RPS" "$(wrk_latency_ms 50 "$out")" "$(wrk_latency_ms 99 "$out")" \
    "$(cpu_percent "$w0" "$w1" "$DURATION")" "$notes"
}

# alternate_rounds PID_A URL_A PID_B URL_B [B_OVER_A_LABEL] → after the main rows, ROUNDS (EDGECOUNT_BENCH_ROUNDS,
# default 7) alternating wrk runs of 5 s, already warm: A then B in even rounds, B then A in odd
# ones, so neither side always runs first (or always right after the other). Sequential single
# runs favour whichever ran while the machine was quieter; alternating runs see the same noise. Sets
# LAST_ROUNDS (the median req/s ratio A/B) and LAST_ROUNDS_DETAIL (every round, and the median
# workerd-CPU-per-request ratio B/A).
alternate_rounds() {
  local rounds="${EDGECOUNT_BENCH_ROUNDS:-7}" label="${5:-JS / ours}" n side pid url out t0 t1 reqs
  local -a rps_ratios=() cpu_ratios=()
  for ((n = 0; n < rounds; n++)); do
    local -A rps=() cpu=()
    local order="a b"
    ((n % 2 == 0)) || order="b a"
    for side in $order; do
      if [[ "$side" == a ]]; then pid="$1" url="$2"; else pid="$3" url="$4"; fi
      out="$WORK_DIR/wrk-round-$n-$side.txt"
      t0="$(cpu_ticks "$pid")"
      EDGECOUNT_BENCH_UA="$BENCH_USER_AGENT" timeout 40 wrk -t "$THREADS" -c "$CONNECTIONS" -d 5s \
        -s "$(wrk_script "$url")" "$url" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
      t1="$(cpu_ticks "$pid")"
      reqs="$(wrk_requests "$out")"
      [[ "$reqs" =~ ^[0-9]+$ && "$reqs" -gt 0 ]] || die "round $n: wrk completed no requests on $url"
      rps[$side]="$(wrk_rps "$out")"
      cpu[$side]="$(awk -v t=$((t1 - t0)) -v n="$reqs" 'BEGIN {printf "%.9f", t / n}')"
    done
    rps_ratios+=("$(awk -v a="${rps[a]}" -v b="${rps[b]}" 'BEGIN {printf "%.3f", a / b}')")
    cpu_ratios+=("$(awk -v a="${cpu[a]}" -v b="${cpu[b]}" 'BEGIN {printf "%.3f", b / a}')")
    log "round $((n + 1))/$rounds: req/s ratio ${rps_ratios[-1]}, CPU/req ratio (B/A) ${cpu_ratios[-1]}"
  done
  LAST_ROUNDS="$(median_of "${rps_ratios[@]}")"
  LAST_ROUNDS_SPREAD="$(spread_of "${rps_ratios[@]}")"
  LAST_ROUNDS_DETAIL="rounds: ${rps_ratios[*]}; workerd CPU per request $label: median $(median_of "${cpu_ratios[@]}"), rounds ${cpu_ratios[*]}"
}

gzip_size() { gzip -9 -c "$1" | wc -c; }

bench_worker() {
  build_release
  ensure_worker_tools
  [[ -n "${PROXY_URL:-}" ]] || start_proxy
  local upstash=("UPSTASH_REDIS_REST_URL=$PROXY_URL" "UPSTASH_REDIS_REST_TOKEN=$TOKEN")
  start_wasm_worker wasm "${upstash[@]}" "EDGECOUNT_ABUSE_LIMIT=0"
  local wasm_url="$WORKER_URL" wasm_pid="$WORKER_PID"
  start_js_worker js-script "$ROOT/bench/js/upstash-redis-hit.mjs" "${upstash[@]}" "HIT_MODE=script"
  local js_url="$WORKER_URL" js_pid="$WORKER_PID"
  start_js_worker js-incr "$ROOT/bench/js/upstash-redis-hit.mjs" "${upstash[@]}" "HIT_MODE=incr"
  local incr_url="$WORKER_URL" incr_pid="$WORKER_PID"
  log "redis :$REDIS_PORT, proxy $PROXY_URL, workerd: wasm $wasm_url, js-script $js_url, js-incr $incr_url"

  local counted='"counted":true.* HTTP 200$'
  expect_answer wasm "$wasm_url/hit/bench/wasm" "$counted"
  expect_answer js-script "$js_url/hit/bench/js" "$counted"
  expect_answer js-incr "$incr_url/hit/bench/jsincr" "$counted"

  measure_worker "ours: wasm worker" "$wasm_pid" "$wasm_url/hit/bench/wasm"
  local ours_rps="$LAST_RPS" ours_rest="$LAST_REST_PER_REQ"
  check_counter 'ec:{bench:wasm}:v' "$LAST_REQUESTS"
  measure_worker "JS @upstash/redis, same hit script" "$js_pid" "$js_url/hit/bench/js"
  local js_rps="$LAST_RPS" js_rest="$LAST_REST_PER_REQ"
  check_counter 'ec:{bench:js}:v' "$LAST_REQUESTS"
  measure_worker "JS @upstash/redis, bare INCR" "$incr_pid" "$incr_url/hit/bench/jsincr"
  local incr_rps="$LAST_RPS" incr_rest="$LAST_REST_PER_REQ"
  check_counter 'ec:{bench:jsincr}:v' "$LAST_REQUESTS"
  # Baseline without Redis: an unknown route, answered 404 by the worker itself. What is left of a
  # hit's cost after this is the subrequest and the hit's own work.
  measure_worker "baseline, no Redis: ours, 404" "$wasm_pid" "$wasm_url/no-such-route" "all 404 (expected)"
  local ours_404="$LAST_RPS"
  measure_worker "baseline, no Redis: JS, 404" "$js_pid" "$js_url/no-such-route" "all 404 (expected)"
  local js_404="$LAST_RPS"

  alternate_rounds "$wasm_pid" "$wasm_url/hit/bench/wasm" "$js_pid" "$js_url/hit/bench/js"
  local hit_rounds="**$LAST_ROUNDS** ($LAST_ROUNDS_DETAIL)"
  # The minimal JavaScript counter: one INCR, no buckets, uniques or live update. Its workerd CPU
  # per request against ours is the figure issue 13 asks about (B/A: above 1 means ours costs less).
  alternate_rounds "$wasm_pid" "$wasm_url/hit/bench/wasm" "$incr_pid" "$incr_url/hit/bench/jsincr" \
    "JS bare INCR / ours"
  local incr_rounds="**$LAST_ROUNDS** ($LAST_ROUNDS_DETAIL)"

  local wasm_gz js_gz
  wasm_gz="$(gzip_size "$ROOT/build/worker/index.wasm")"
  js_gz="$(gzip_size "$WORK_DIR/js-script/worker.mjs")"
  SECTION_NOTES=(
    "hits/s ours / JS same script: **$(ratio "$ours_rps" "$js_rps")**; ours / JS bare INCR: **$(ratio "$ours_rps" "$incr_rps")**"
    "alternating rounds after the rows above (ours then JS same script, then JS then ours, …; ${EDGECOUNT_BENCH_ROUNDS:-7} × 5 s each; the steadier comparison on a shared machine): hits/s ours / JS median $hit_rounds"
    "the same against the minimal JS counter (bare INCR): hits/s ours / JS bare INCR median $incr_rounds"
    "REST requests per hit at the proxy: ours $ours_rest, JS same script $js_rest, JS bare INCR $incr_rest (the proxy also counts the up to $CONNECTIONS requests still in flight when wrk stops, which wrk does not: at most $CONNECTIONS / requests above the true figure)"
    "no-Redis baseline (404 answered by the worker itself), ours / JS: **$(ratio "$ours_404" "$js_404")**: the workers' own per-request CPU (workerd serves a worker on one thread; see 'workerd CPU µs/req', which depends less on the machine's other load than req/s) bounds these rates"
    "wasm size: \`gzip -9 -c build/worker/index.wasm | wc -c\` = **$wasm_gz bytes** ($(awk -v b="$wasm_gz" 'BEGIN {printf "%.1f", b / 1024}') KiB; raw $(stat -c %s "$ROOT/build/worker/index.wasm") bytes, plus $(gzip_size "$ROOT/build/worker/shim.mjs") bytes gzipped JS entry + glue; the management module, loaded on an isolate's first management request: $(gzip_size "$ROOT/build/worker/management.wasm") bytes gzipped); the JS worker's esbuild bundle (with @upstash/redis and the Lua text): $js_gz bytes gzipped (not minified)"
    "$(source_note); workerd $(node_pkg_version workerd), @upstash/redis $(node_pkg_version @upstash/redis); load after the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other builds share the machine: compare rows of one run)"
  )
}

bench_ratelimit() {
  build_release
  ensure_worker_tools
  [[ -n "${PROXY_URL:-}" ]] || start_proxy
  local upstash=("UPSTASH_REDIS_REST_URL=$PROXY_URL" "UPSTASH_REDIS_REST_TOKEN=$TOKEN")
  start_wasm_worker rl-wasm "${upstash[@]}" "EDGECOUNT_RATE_LIMITS=$BENCH_RATE_LIMITS" \
    "EDGECOUNT_ADMIN_TOKEN=$BENCH_ADMIN_TOKEN"
  local wasm_url="$WORKER_URL" wasm_pid="$WORKER_PID"
  start_js_worker rl-js "$ROOT/bench/js/upstash-ratelimit.mjs" "${upstash[@]}" "RATELIMIT_LIMIT=1000000"
  local js_url="$WORKER_URL" js_pid="$WORKER_PID"
  log "redis :$REDIS_PORT, proxy $PROXY_URL, workerd: wasm $wasm_url, js $js_url"

  local allowed='"allowed":true.* HTTP 200$' policy
  for policy in fixed sliding token gcra; do
    expect_answer rl-wasm "$wasm_url/limit/$policy/check" "$allowed"
  done
  expect_answer rl-js "$js_url/limit/check" "$allowed"
  # The identity `bench-o` has an override of `sliding`, and the decision checks a client address
  # against a deny list of three ranges (v4 /24 and /25, v6 /32) that do not hold it: the override
  # and the deny check are in the same script call, so still one REST round trip.
  admin_put "$wasm_url/limit/sliding/bench-o/override?limit=900000&window=1h"
  admin_put "$wasm_url/deny/203.0.113.0/24"
  admin_put "$wasm_url/deny/198.51.100.0/25"
  admin_put "$wasm_url/deny/2001:db8::%2F32"
  local checked="/limit/sliding/bench-o?ip=198.51.100.200"
  expect_answer rl-wasm "$wasm_url$checked" '"limit":900000.*"reason":"override".* HTTP 200$'
  expect_answer rl-wasm "$wasm_url/limit/sliding/check-deny?ip=198.51.100.7" '"reason":"deny".* HTTP 403$'
  expect_answer rl-wasm "$wasm_url/lease/conc/check" '"lease":".* HTTP 200$'

  local -A rps rest
  for policy in fixed sliding token gcra; do
    measure_worker "ours: $policy" "$wasm_pid" "$wasm_url/limit/$policy/bench"
    rps[$policy]="$LAST_RPS"
    rest[$policy]="$LAST_REST_PER_REQ"
  done
  measure_worker "ours: sliding, override + deny check" "$wasm_pid" "$wasm_url$checked"
  rps[checked]="$LAST_RPS"
  rest[checked]="$LAST_REST_PER_REQ"
  # Lease pairs: every other request an acquire, the next its release (scripts/bench/lease_pair.lua).
  measure_worker "ours: lease acquire + release" "$wasm_pid" "$wasm_url/lease/conc/bench"
  rps[lease]="$LAST_RPS"
  rest[lease]="$LAST_REST_PER_REQ"
  measure_worker "JS @upstash/ratelimit slidingWindow" "$js_pid" "$js_url/limit/bench"
  local js_rps="$LAST_RPS" js_rest="$LAST_REST_PER_REQ"
  local -A rounds
  for policy in fixed sliding token gcra; do
    alternate_rounds "$wasm_pid" "$wasm_url/limit/$policy/bench" "$js_pid" "$js_url/limit/bench"
    rounds[$policy]="**$LAST_ROUNDS** ($LAST_ROUNDS_DETAIL)"
  done
  alternate_rounds "$wasm_pid" "$wasm_url$checked" "$js_pid" "$js_url/limit/bench"
  rounds[checked]="**$LAST_ROUNDS** ($LAST_ROUNDS_DETAIL)"
  # Lease operations against our own decisions, in one worker: "each as fast as a decision".
  alternate_rounds "$wasm_pid" "$wasm_url/lease/conc/bench" "$wasm_pid" "$wasm_url/limit/sliding/bench" \
    "decision / lease operation"
  rounds[lease]="**$LAST_ROUNDS** ($LAST_ROUNDS_DETAIL)"

  # Refused decisions: one identity far over a small limit (5 per hour), against allowed ones (a
  # limit nothing reaches), in the one worker. A row, then alternating rounds.
  local refused="$wasm_url/limit/refuse/bench-hammer" n
  for ((n = 0; n < 5; n++)); do
    curl -s --max-time 10 -o /dev/null -X POST -A "$BENCH_USER_AGENT" "$refused" || true
  done
  expect_answer rl-wasm "$refused" ' HTTP 429$'
  measure_worker "ours: sliding, refused (one id over 5/h)" "$wasm_pid" "$refused" "all 429 (expected)"
  rps[refused]="$LAST_RPS"
  rest[refused]="$LAST_REST_PER_REQ"
  alternate_rounds "$wasm_pid" "$refused" "$wasm_pid" "$wasm_url/limit/sliding/bench" "allowed / refused"
  local refused_rounds="$LAST_ROUNDS" refused_spread="$LAST_ROUNDS_SPREAD" refused_detail="$LAST_ROUNDS_DETAIL"

  SECTION_NOTES=(
    "decisions/s ours / @upstash/ratelimit sliding: fixed **$(ratio "${rps[fixed]}" "$js_rps")**, sliding **$(ratio "${rps[sliding]}" "$js_rps")** (same algorithm family), token **$(ratio "${rps[token]}" "$js_rps")**, gcra **$(ratio "${rps[gcra]}" "$js_rps")**, sliding with an override and a deny-list check **$(ratio "${rps[checked]}" "$js_rps")**"
    "alternating rounds after the rows above (ours then JS, then JS then ours, …; ${EDGECOUNT_BENCH_ROUNDS:-7} × 5 s each; the steadier comparison on a shared machine), decisions/s ours / JS median: fixed ${rounds[fixed]}; sliding ${rounds[sliding]}; token ${rounds[token]}; gcra ${rounds[gcra]}; **sliding with an override and a deny-list check** ${rounds[checked]}"
    "REST round trips per decision at the proxy: ours fixed ${rest[fixed]}, sliding ${rest[sliding]}, token ${rest[token]}, gcra ${rest[gcra]}, sliding with an override and a deny-list check ${rest[checked]}; @upstash/ratelimit $js_rest"
    "refused vs allowed through our worker (one identity far over \`refuse=sliding:5/1h\` vs \`sliding\`, which nothing reaches), ${EDGECOUNT_BENCH_ROUNDS:-7} alternating rounds of 5 s, each side first in every other round: refused decisions/s / allowed decisions/s median **$refused_rounds** (spread $refused_spread; $refused_detail); rows: $(ratio "${rps[refused]}" "${rps[sliding]}"); REST round trips per refused decision ${rest[refused]} (allowed: ${rest[sliding]}). Target once refused decisions are answered from a block cache: ≥ 3 — $(awk -v r="$refused_rounds" 'BEGIN {print (r >= 3) ? "met" : "not met"}')"
    "leases: ${rest[lease]} REST round trips per lease operation (so 2 per acquire + release pair); lease operations/s / our sliding decisions/s, alternating rounds in the one worker: median ${rounds[lease]}"
    "@upstash/ratelimit 2.2.0 starts its scripts with \`#!lua flags=allow-key-locking\`, which only Upstash's own server accepts (Redis 7.0 answers \`ERR Unexpected flag in script shebang\`; hiett/serverless-redis-http#40 is the same problem). edgecount proxy drops that flag and maps the library's SHAs to the stripped scripts' (src/proxy/scripts.rs), so the library runs unmodified, one EVALSHA per decision; Redis runs the same script under its usual global script lock."
    "Our policies: \`$BENCH_RATE_LIMITS\`; @upstash/ratelimit: \`slidingWindow(1000000, \"1 h\")\`, \`ephemeralCache: false, analytics: false, enableProtection: false, dynamicLimits: false\`. One identifier per run (a hot key), limits far above what a run can use, so every answer is a 200 decision that went to Redis (except the refused row and rounds: \`refuse\`, 5 per hour, all 429)."
    "$(source_note); workerd $(node_pkg_version workerd), @upstash/ratelimit $(node_pkg_version @upstash/ratelimit), @upstash/redis $(node_pkg_version @upstash/redis); load after the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other builds share the machine: compare rows of one run)"
  )
}

node_pkg_version() {
  grep -o '"version": *"[^"]*"' "$ROOT/node_modules/$1/package.json" | head -n 1 | cut -d'"' -f4
}

# The text above each table.
section_intro_worker() {
  printf 'wrk: `-t %s -c %s -d %ss --latency -s scripts/bench/worker_post.lua` (+2 s warm-up), `POST\n' "$THREADS" "$CONNECTIONS" "$DURATION"
  printf '/hit/bench/{key}` with a browser User-Agent, one counter per run. Path: wrk → workerd (one\n'
  printf 'process per worker, same binary) → release `edgecount proxy` → one private redis-server (no\n'
  printf 'persistence). Server CPU is the workerd process (100%% = one core). REST/req = requests the proxy\n'
  printf 'answered during the run (its `/_stats`, settled before and after) / requests wrk completed.\n'
  printf 'The JS worker is `bench/js/upstash-redis-hit.mjs`: "same hit script" runs our `counter_lib.lua` +\n'
  printf '`counter_hit.lua` (the readable sources, concatenated as `counter_script!` does; we embed a\n'
  printf 'minified copy of the same code) with the same keys, arguments and global-figure commands in one\n'
  printf '@upstash/redis pipeline, so Redis does the same work; "bare INCR" is the minimal JS counter (less\n'
  printf 'Redis work than ours). Ours also parses/validates names and checks bot/prefetch headers; theirs\n'
  printf 'does not. `EDGECOUNT_ABUSE_LIMIT=0` (and no `CF-Connecting-IP` in bare workerd, so no per-IP cap).\n\n'
}

section_intro_ratelimit() {
  printf 'wrk: `-t %s -c %s -d %ss --latency -s scripts/bench/worker_post.lua` (+2 s warm-up), `POST\n' "$THREADS" "$CONNECTIONS" "$DURATION"
  printf '/limit/{policy}/bench` (ours) and `POST /limit/bench` (`bench/js/upstash-ratelimit.mjs`). Path: wrk →\n'
  printf 'workerd (one process per worker, same binary) → release `edgecount proxy` → one private\n'
  printf 'redis-server. Server CPU is the workerd process (100%% = one core). REST/req = requests the proxy\n'
  printf 'answered during the run (its `/_stats`) / decisions wrk completed.\n\n'
}
