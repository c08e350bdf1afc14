# shellcheck shell=bash disable=SC2016,SC2034 # Markdown backticks in printf formats; globals bench.sh reads
# Sourced by scripts/bench.sh: the `serve` section. Uses bench.sh's helpers (start_group,
# free_port, cpu_ticks, cpu_percent, run_wrk, wrk_* parsers, compare_rounds, median_of, spread_of, add_row,
# ratio, check_counter, log, die) and its globals (ROOT, WORK_DIR, TOKEN, REDIS_PORT/REDIS_PID,
# PROXY_URL/PROXY_PID, THREADS, CONNECTIONS, DURATION, RESULT_ROWS, SECTION_NOTES).
#
#   serve   hits through `edgecount serve` (release build, default threads: half the cores),
#           wrk `POST /hit/bench/{key}` with a browser User-Agent, on ONE private redis-server:
#           (a) serve --redis-url: RESP straight to Redis
#           (b) serve --rest-url: through the release proxy (Upstash REST), as before issue 13
#           (c) the same as (b) with --threads 2 (serve's default before this section existed)
#           (d) redis-benchmark -c CONNECTIONS running the EVALSHA a hit sends — the same script,
#               keys and arguments, captured from Redis's MONITOR — : the Redis-side limit of the
#               hit script, one call per round trip
#           then alternating rounds (EDGECOUNT_BENCH_ROUNDS, default 7): (a) vs (b) with
#           compare_rounds, and (a) vs (d), each 5 s (redis-benchmark: as many requests as 5 s of
#           (d) took), either side first in every other round.

SERVE_ENV=(EDGECOUNT_ABUSE_LIMIT=0 RUST_LOG=warn)
SERVE_LUA="scripts/bench/worker_post.lua"

# start_serve NAME ARGS... → `edgecount serve` on a free port; sets SERVE_URL and SERVE_PID.
start_serve() {
  local name="$1" port n
  shift
  port="$(free_port)" || exit 1
  start_group "$name" env "${SERVE_ENV[@]}" "$BIN" serve --listen "127.0.0.1:$port" "$@"
  SERVE_PID="$LAST_PID"
  for ((n = 0; n < 200; n++)); do
    if grep -q 'edgecount serve listening on' "$WORK_DIR/$name.log" 2>/dev/null; then
      SERVE_URL="http://127.0.0.1:$port"
      return
    fi
    kill -0 "$SERVE_PID" 2>/dev/null || die "serve ($name) exited: $(cat "$WORK_DIR/$name.log")"
    sleep 0.1
  done
  die "serve ($name) did not print its listening line within 20 s"
}

# One hit by hand, to check the route counts as the benchmark assumes.
expect_counted() {
  local body
  body="$(curl -s --max-time 10 -X POST -A "$BENCH_USER_AGENT" -w ' HTTP %{http_code}' "$1")" || true
  [[ "$body" =~ \"counted\":true.*\ HTTP\ 200$ ]] || die "unexpected answer from POST $1: $body"
  log "POST $1: $body"
}

# Requests Redis has read from its clients (INFO stats), for round trips per hit.
redis_reads() {
  redis-cli -p "$REDIS_PORT" INFO stats | awk -F: '/^total_reads_processed:/ {print $2 + 0}'
}

# measure_serve NAME PID URL → run_wrk's row, with Redis reads per hit and the proxy's CPU added.
measure_serve() {
  local name="$1" pid="$2" url="$3" reads0 reads1 p0 p1
  reads0="$(redis_reads)"
  p0="$(cpu_ticks "$PROXY_PID")"
  run_wrk "$name" "$pid" -s "$SERVE_LUA" "$url"
  p1="$(cpu_ticks "$PROXY_PID")"
  reads1="$(redis_reads)"
  local last=$((${#RESULT_ROWS[@]} - 1))
  RESULT_ROWS[last]="${RESULT_ROWS[last]}; Redis reads/hit $(awk -v r=$((reads1 - reads0)) -v n="$LAST_REQUESTS" 'BEGIN {printf "%.2f", r / n}'); proxy CPU $(cpu_percent "$p0" "$p1" "$DURATION")"
}

# The EVALSHA (name and every argument) that one hit through SERVE_DIRECT_URL sends, as Redis's
# MONITOR shows it; into HIT_EVALSHA (an array).
capture_hit_evalsha() {
  local url="$1" line n
  start_group monitor redis-cli -p "$REDIS_PORT" MONITOR
  local monitor_pid="$LAST_PID"
  for ((n = 0; n < 50; n++)); do
    grep -q '^OK' "$WORK_DIR/monitor.log" 2>/dev/null && break
    sleep 0.1
  done
  curl -s --max-time 10 -o /dev/null -X POST -A "$BENCH_USER_AGENT" "$url"
  for ((n = 0; n < 50; n++)); do
    line="$(grep -m 1 '"EVALSHA"' "$WORK_DIR/monitor.log" 2>/dev/null || true)"
    [[ -z "$line" ]] || break
    sleep 0.1
  done
  kill -TERM -- "-$monitor_pid" 2>/dev/null || true
  [[ -n "$line" ]] || die "no EVALSHA seen by MONITOR for POST $url"
  mapfile -d '' HIT_EVALSHA < <(printf '%s\n' "$line" | python3 "$ROOT/scripts/bench/monitor_args.py")
  [[ "${HIT_EVALSHA[0]:-}" == EVALSHA && "${#HIT_EVALSHA[@]}" -ge 4 ]] ||
    die "could not read the EVALSHA arguments from: $line"
  log "a hit's script call: ${HIT_EVALSHA[*]}"
}

# redis_benchmark_evalsha N OUT → redis-benchmark running HIT_EVALSHA N times from CONNECTIONS
# connections; sets RB_RPS, RB_P50, RB_P99, RB_SECS and RB_REDIS_CPU (redis-server's CPU %).
redis_benchmark_evalsha() {
  local requests="$1" out="$2" before after started ended
  before="$(cpu_ticks "$REDIS_PID")"
  started="$(date +%s.%N)"
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONNECTIONS" -n "$requests" \
    --csv "${HIT_EVALSHA[@]}" >"$out" 2>&1 || die "redis-benchmark failed: $(cat "$out")"
  ended="$(date +%s.%N)"
  after="$(cpu_ticks "$REDIS_PID")"
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  RB_RPS="$(awk -F'","' '/^"EVALSHA/ {printf "%.0f", $2}' "$out")"
  RB_P50="$(awk -F'","' '/^"EVALSHA/ {printf "%.2f", $5}' "$out")"
  RB_P99="$(awk -F'","' '/^"EVALSHA/ {printf "%.2f", $7}' "$out")"
  RB_SECS="$(awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.2f", b - a}')"
  RB_REDIS_CPU="$(cpu_percent "$before" "$after" "$RB_SECS")"
  [[ "$RB_RPS" =~ ^[0-9]+$ && "$RB_RPS" -gt 0 ]] || die "redis-benchmark gave no rate: $(cat "$out")"
  grep -q 'ERR\|NOSCRIPT' "$out" && die "redis-benchmark saw errors: $(cat "$out")"
  return 0
}

# versus_redis_benchmark PID URL → alternating rounds of 5 s of wrk on URL and redis-benchmark
# for as many EVALSHAs as 5 s of it took in row (d); a note with the median ratio and its spread.
versus_redis_benchmark() {
  local pid="$1" url="$2" rounds="${EDGECOUNT_BENCH_ROUNDS:-7}" n side order rb_n="$((RB_ROW_RPS * 5))"
  local -a ratios=() serve_rps=() rb_rps=()
  for ((n = 0; n < rounds; n++)); do
    local a b
    order="serve rb"
    ((n % 2 == 0)) || order="rb serve"
    for side in $order; do
      if [[ "$side" == serve ]]; then
        wrk_round "$WORK_DIR/round-rb-$n-serve.txt" "$pid" "$url" "$SERVE_LUA"
        a="$ROUND_RPS"
      else
        redis_benchmark_evalsha "$rb_n" "$WORK_DIR/round-rb-$n-rb.csv"
        b="$RB_RPS"
      fi
    done
    serve_rps+=("$a")
    rb_rps+=("$b")
    ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a / b}')")
    log "vs redis-benchmark round $((n + 1))/$rounds ($order): serve direct $a hits/s, redis-benchmark $b EVALSHA/s, ratio ${ratios[-1]}"
  done
  LAST_ROUNDS="$(median_of "${ratios[@]}")"
  SECTION_NOTES+=("serve direct vs the Redis-side limit (redis-benchmark, the hit's EVALSHA, c=$CONNECTIONS), $rounds alternating rounds of 5 s: hits/s / EVALSHA/s median **$LAST_ROUNDS** (spread $(spread_of "${ratios[@]}"); rounds ${ratios[*]}); medians serve direct $(median_of "${serve_rps[@]}") hits/s, redis-benchmark $(median_of "${rb_rps[@]}") EVALSHA/s")
}

bench_serve() {
  build_release
  command -v python3 >/dev/null || die "python3 is needed to read MONITOR's output"
  [[ -n "${PROXY_URL:-}" ]] || start_proxy
  BENCH_USER_AGENT="${BENCH_USER_AGENT:-Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36}"
  export EDGECOUNT_BENCH_UA="$BENCH_USER_AGENT"
  start_serve serve-direct --redis-url "redis://127.0.0.1:$REDIS_PORT"
  local direct_url="$SERVE_URL/hit/bench/direct" direct_pid="$SERVE_PID"
  start_serve serve-rest --rest-url "$PROXY_URL" --rest-token "$TOKEN"
  local rest_url="$SERVE_URL/hit/bench/rest" rest_pid="$SERVE_PID"
  start_serve serve-rest-2 --rest-url "$PROXY_URL" --rest-token "$TOKEN" --threads 2
  local rest2_url="$SERVE_URL/hit/bench/rest2" rest2_pid="$SERVE_PID"
  log "redis :$REDIS_PORT, proxy $PROXY_URL; serve direct $direct_url, via proxy $rest_url, via proxy (2 threads) $rest2_url"
  expect_counted "$direct_url"
  expect_counted "$rest_url"
  expect_counted "$rest2_url"

  measure_serve "serve --redis-url (RESP, direct)" "$direct_pid" "$direct_url"
  local direct_rps="$LAST_RPS"
  check_counter 'ec:{bench:direct}:v' "$LAST_REQUESTS"
  measure_serve "serve --rest-url → proxy (REST)" "$rest_pid" "$rest_url"
  local rest_rps="$LAST_RPS"
  check_counter 'ec:{bench:rest}:v' "$LAST_REQUESTS"
  measure_serve "serve --rest-url → proxy, --threads 2" "$rest2_pid" "$rest2_url"
  local rest2_rps="$LAST_RPS"
  check_counter 'ec:{bench:rest2}:v' "$LAST_REQUESTS"

  capture_hit_evalsha "$direct_url"
  log "redis-benchmark -c $CONNECTIONS -n $REDIS_BENCH_REQUESTS --csv ${HIT_EVALSHA[*]}"
  redis_benchmark_evalsha "$REDIS_BENCH_REQUESTS" "$WORK_DIR/redis-benchmark-evalsha.csv"
  RB_ROW_RPS="$RB_RPS"
  add_row "redis-benchmark: the hit's EVALSHA (c=$CONNECTIONS)" "$RB_RPS" "$RB_P50" "$RB_P99" \
    "$RB_REDIS_CPU (redis)" "$REDIS_BENCH_REQUESTS calls in ${RB_SECS}s; the Redis-side limit of the hit script, one call per round trip"

  compare_rounds "serve direct vs serve through the proxy" \
    "direct|$direct_pid|$direct_url|$SERVE_LUA" "via proxy|$rest_pid|$rest_url|$SERVE_LUA"
  local vs_proxy="$LAST_ROUNDS"
  versus_redis_benchmark "$direct_pid" "$direct_url"
  local vs_rb="$LAST_ROUNDS"

  SECTION_NOTES+=(
    "targets (issue 13): hits/s direct / through the proxy ≥ 3: rows **$(ratio "$direct_rps" "$rest_rps")** (vs --threads 2: $(ratio "$direct_rps" "$rest2_rps")), alternating median **$vs_proxy** — $(awk -v r="$vs_proxy" 'BEGIN {print (r >= 3) ? "met" : "NOT met"}'); hits/s direct / redis-benchmark EVALSHA/s ≥ 0.8: rows **$(ratio "$direct_rps" "$RB_ROW_RPS")**, alternating median **$vs_rb** — $(awk -v r="$vs_rb" 'BEGIN {print (r >= 0.8) ? "met" : "NOT met"}')"
    "the hit's script call, as MONITOR showed it: \`${HIT_EVALSHA[*]}\` (empty arguments are empty strings: no uniques secret, no abuse limit, Redis's clock). A hit sends it with the four service-wide commands (PFADD, INCR, EXPIREAT, SADD) in one pipeline, so Redis does a little more per hit than per redis-benchmark call."
    "Redis reads/hit: requests Redis read from its clients (INFO total_reads_processed) per hit; below 1 when serve's one multiplexed connection brings several hits' pipelines in one read, as the proxy's do."
    "$(source_note); load after the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other builds share the machine: compare rows of one run, and the alternating medians above all)"
  )
}

section_intro_serve() {
  printf 'wrk: `-t %s -c %s -d %ss --latency -s scripts/bench/worker_post.lua` (+2 s warm-up), `POST\n' "$THREADS" "$CONNECTIONS" "$DURATION"
  printf '/hit/bench/{key}` with a browser User-Agent, one counter per run, `EDGECOUNT_ABUSE_LIMIT=0`.\n'
  printf 'Release `edgecount serve` (default threads: half the cores) with `--redis-url` (RESP straight\n'
  printf 'to Redis) or `--rest-url` (through the release `edgecount proxy`), one private redis-server\n'
  printf '(no persistence). redis-benchmark: `-c %s -n %s --csv EVALSHA <the hit'"'"'s sha, keys and\n' "$CONNECTIONS" "$REDIS_BENCH_REQUESTS"
  printf 'arguments>`. Server CPU is the serve process (100%% = one core).\n\n'
}
