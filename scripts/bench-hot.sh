#!/usr/bin/env bash
# One hot counter on `edgecount serve`: reads/s of GET /get/bench/hot with the read cache on
# (--read-cache-ms 250, the default) and off (0), and REST calls per read (the proxy's /_stats).
# A private redis-server (no persistence, never 6379), the release proxy, two serves over REST to
# it; wrk rounds alternate between the two serves, the median of each is reported.
#   usage: scripts/bench-hot.sh [ROUNDS (default 3)] [SECONDS per round (default 5)]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-3}"
SECONDS_PER_ROUND="${2:-5}"
BIN="target/release/edgecount"
TOKEN="bench-hot-token"
WORK_DIR="$(mktemp -d)"
GROUPS_STARTED=()
die() {
  echo "bench-hot: $*" >&2
  exit 1
}
# shellcheck source=scripts/lib/process-groups.sh
source scripts/lib/process-groups.sh

cargo build --release --bin edgecount --quiet
[[ -x "$BIN" ]] || die "no release binary at $BIN"

REDIS_PORT="$(free_port)"
start_group redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$WORK_DIR" --daemonize no
for ((n = 0; n < 100; n++)); do
  [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null || true)" == "PONG" ]] && break
  sleep 0.1
done

# wait_url NAME: the URL from NAME's listening line.
wait_url() {
  local n
  for ((n = 0; n < 200; n++)); do
    if grep -q 'listening on' "$WORK_DIR/$1.log" 2>/dev/null; then
      grep -Eo 'http://[^ ]+' "$WORK_DIR/$1.log" | head -n 1
      return
    fi
    sleep 0.1
  done
  die "$1 did not start: $(cat "$WORK_DIR/$1.log")"
}

PROXY_PORT="$(free_port)"
UPSTASH_REDIS_REST_TOKEN="$TOKEN" RUST_LOG=warn start_group proxy \
  "$BIN" proxy --redis-url "redis://127.0.0.1:$REDIS_PORT" --listen "127.0.0.1:$PROXY_PORT"
PROXY_URL="$(wait_url proxy)"

declare -A SERVE_URL
for mode in on off; do
  ms=250
  [[ "$mode" == on ]] || ms=0
  port="$(free_port)"
  RUST_LOG=warn start_group "serve-$mode" "$BIN" serve --listen "127.0.0.1:$port" \
    --rest-url "$PROXY_URL" --rest-token "$TOKEN" --read-cache-ms "$ms"
  SERVE_URL[$mode]="$(wait_url "serve-$mode")"
done

curl -fsS -X POST -A "Mozilla/5.0 (bench)" "${SERVE_URL[on]}/hit/bench/hot" >/dev/null

rest_requests() {
  curl -fsS -H "Authorization: Bearer $TOKEN" "$PROXY_URL/_stats" |
    grep -Eo '"requests":[0-9]+' | cut -d: -f2
}

declare -A RPS CALLS
for ((r = 1; r <= ROUNDS; r++)); do
  for mode in on off; do
    before="$(rest_requests)"
    out="$(wrk -t 2 -c 50 -d "${SECONDS_PER_ROUND}s" "${SERVE_URL[$mode]}/get/bench/hot")"
    after="$(rest_requests)"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    reads="$(awk '/requests in/ {print $1}' <<<"$out")"
    per_read="$(awk -v c="$((after - before))" -v n="$reads" 'BEGIN {printf "%.4f", c / n}')"
    echo "round $r cache $mode: $rps reads/s, $((after - before)) REST calls for $reads reads ($per_read per read)"
    RPS[$mode]+="$rps "
    CALLS[$mode]+="$per_read "
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
on="$(median <<<"${RPS[on]}")"
off="$(median <<<"${RPS[off]}")"
echo "median reads/s: cache on $on ($(median <<<"${CALLS[on]}") REST calls/read), cache off $off ($(median <<<"${CALLS[off]}") REST calls/read); on/off = $(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.2f", a / b}')"
