# shellcheck shell=bash
# Shared by scripts/bench.sh and scripts/soak.sh: everything they start runs in its own process
# group and is stopped by that group's id when the script exits, however it exits; WORK_DIR goes
# with it. The sourcing script defines WORK_DIR, GROUPS_STARTED=() and die() first.

# shellcheck disable=SC2317 # runs from the trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local pgid
  for pgid in "${GROUPS_STARTED[@]+"${GROUPS_STARTED[@]}"}"; do
    kill -TERM -- "-$pgid" 2>/dev/null || true
  done
  sleep 0.3
  for pgid in "${GROUPS_STARTED[@]+"${GROUPS_STARTED[@]}"}"; do
    kill -KILL -- "-$pgid" 2>/dev/null || true
  done
  rm -rf "$WORK_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start "$@" in a new session (setsid without a fork: the pid is the process and its group id),
# output to $WORK_DIR/NAME.log. Sets LAST_PID.
start_group() {
  local name="$1"
  shift
  setsid "$@" </dev/null >"$WORK_DIR/$name.log" 2>&1 &
  LAST_PID=$!
  GROUPS_STARTED+=("$LAST_PID")
}

# A port nothing listens on, below the kernel's ephemeral range (ip_local_port_range), so no
# outgoing connection of the run can be holding it when a server binds it.
free_port() {
  local port n low
  low="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
  (( low > 12000 )) || low=32768
  for ((n = 0; n < 100; n++)); do
    port=$((10000 + RANDOM % (low - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
  die "no free port found"
}
