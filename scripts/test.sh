#!/usr/bin/env bash
# The one command that runs every test edgecount has:
#
#   setup.sh → check.sh → cargo build → build-worker.sh (when present) → cargo test (all targets,
#   then doc tests) → official-client suites (node @upstash/redis, python upstash-redis) → real-browser
#   tests of the dashboard (tests/browser, Debian's chromium) → a bounded fuzzing pass
#   (scripts/fuzz.sh, EDGECOUNT_FUZZ_SECONDS per target, default 20; 0 skips it; the quick build
#   unless EDGECOUNT_FUZZ_BUILD=release)
#
# Each client suite starts its own private redis-server (free port, temp dir, never 6379) and the
# real proxy binary (target/debug/edgecount; `cargo test` builds the binary with the same dev
# profile, so no release build is needed here — scripts/bench.sh builds release).
#
# Every stage runs even when an earlier test stage failed (one run shows every failure); setup and
# build failures stop the run. The last line is a summary `summary: N passed, N failed`, and the
# exit code is non-zero when anything failed.
#
# Options (env):  EDGECOUNT_SKIP_SETUP=1  skip setup.sh (you know the machine is ready)
#                 EDGECOUNT_SKIP_CHECK=1  skip fmt/clippy (quick local loop)
#                 EDGECOUNT_ONLY_CLIENTS=1  only the official-client suites (binary must be built)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export EDGECOUNT_BIN="${EDGECOUNT_BIN:-$TARGET_DIR/debug/edgecount}"

# Client suites record the process-group ids of what they spawn here, so that this script's trap can
# stop any redis-server or proxy a suite left behind when it was killed hard (timeout, Ctrl-C).
PGID_FILE="$(mktemp "${TMPDIR:-/tmp}/edgecount-test-pgids.XXXXXX")"
export EDGECOUNT_PGID_FILE="$PGID_FILE"
LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/edgecount-test-logs.XXXXXX")"

STAGE_PGID=""
WATCHDOG_PGID=""
PASSED=0
FAILED=0
FAILED_STAGES=()
STARTED_AT="$(date +%s)"

stop_group() {
  local pgid="$1"
  [[ -n "$pgid" ]] || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || return 0
  # Give the group a moment to run its own cleanup, then make sure.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [[ -z "$WATCHDOG_PGID" ]] || kill -KILL -- "-$WATCHDOG_PGID" 2>/dev/null || true
  stop_group "$STAGE_PGID"
  if [[ -s "$PGID_FILE" ]]; then
    local pgid
    while read -r pgid; do
      [[ "$pgid" =~ ^[0-9]+$ ]] && stop_group "$pgid"
    done <"$PGID_FILE"
  fi
  rm -f "$PGID_FILE"
  rm -rf "$LOG_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

banner() { printf '\n==== [test] %s ====\n' "$*"; }

# Run one stage in its own session/process group (setsid: its pid is the group id), bounded in time
# by a watchdog that stops the whole group, output to the terminal and to a log that the summary
# counts are read from. Whatever the stage leaves running in its group is stopped afterwards.
run_stage() {
  local name="$1" limit="$2"
  shift 2
  local log="$LOG_DIR/$name.log"
  banner "$name: $*"
  local started status=0
  started="$(date +%s)"
  # shellcheck disable=SC2016 # expanded by the inner bash
  STAGE_LOG="$log" setsid bash -c '"$@" </dev/null 2>&1 | tee "$STAGE_LOG"; exit "${PIPESTATUS[0]}"' \
    "$name" "$@" &
  STAGE_PGID=$!
  # The watchdog has its own group and no inherited stdout, so nothing of it outlives this stage or
  # holds CI's output pipe open.
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c 'sleep "$1"; kill -TERM -- "-$2"; sleep 15; kill -KILL -- "-$2"' watchdog \
    "$limit" "$STAGE_PGID" </dev/null >/dev/null 2>&1 &
  WATCHDOG_PGID=$!
  wait "$STAGE_PGID" || status=$?
  kill -KILL -- "-$WATCHDOG_PGID" 2>/dev/null || true
  wait "$WATCHDOG_PGID" 2>/dev/null || true # reap quietly (no "Killed" job notice)
  WATCHDOG_PGID=""
  stop_group "$STAGE_PGID"
  STAGE_PGID=""
  local took=$(($(date +%s) - started))
  if [[ "$status" -ne 0 && "$took" -ge "$limit" ]]; then
    printf '[test] %s: TIMED OUT after %ss\n' "$name" "$limit"
  fi
  printf '[test] %s: exit %s in %ss\n' "$name" "$status" "$took"
  return "$status"
}

# Add the pass/fail counts a runner printed to the totals. Formats: cargo's `test result: ok. 12
# passed; 0 failed`, node's `# pass 12`/`ℹ pass 12` (+ fail, cancelled), pytest's `12 passed, 1 failed`.
count_results() {
  local kind="$1" log="$LOG_DIR/$2.log" p=0 f=0
  [[ -f "$log" ]] || return 0
  case "$kind" in
    cargo)
      p="$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" |
        awk '{p += $4; f += $6} END {print p + 0}')"
      f="$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" |
        awk '{p += $4; f += $6} END {print f + 0}')"
      ;;
    node)
      p="$(grep -Eo '^(# |ℹ )pass [0-9]+' "$log" | awk '{s += $NF} END {print s + 0}')"
      # A failed before() hook cancels the tests under it: those count as failures too.
      f="$(grep -Eo '^(# |ℹ )(fail|cancelled) [0-9]+' "$log" | awk '{s += $NF} END {print s + 0}')"
      ;;
    fuzz)
      p="$(grep -Ec '^\[fuzz\] [a-z_]+: ok' "$log" || true)"
      f="$(grep -Ec '^\[fuzz\] [a-z_]+: FAILED' "$log" || true)"
      ;;
    pytest)
      local last
      last="$(grep -E '[0-9]+ (passed|failed|error)' "$log" | tail -n 1 || true)"
      p="$(grep -Eo '[0-9]+ passed' <<<"$last" | awk '{print $1}' || true)"
      f="$(grep -Eo '[0-9]+ (failed|errors?)' <<<"$last" | awk '{s += $1} END {print s + 0}' || true)"
      ;;
  esac
  PASSED=$((PASSED + ${p:-0}))
  FAILED=$((FAILED + ${f:-0}))
}

record_failure() {
  FAILED_STAGES+=("$1")
}

main() {
  if [[ -z "${EDGECOUNT_ONLY_CLIENTS:-}" ]]; then
    if [[ -z "${EDGECOUNT_SKIP_SETUP:-}" ]]; then
      run_stage setup 1800 ./scripts/setup.sh || { echo "[test] setup failed: stopping"; exit 1; }
    fi
    if [[ -z "${EDGECOUNT_SKIP_CHECK:-}" ]]; then
      run_stage check 1200 ./scripts/check.sh || record_failure check
    fi
    run_stage build 1800 cargo build --all-targets || {
      echo "[test] cargo build failed: stopping"
      exit 1
    }
    if [[ -x scripts/build-worker.sh ]]; then
      run_stage build-worker 1200 ./scripts/build-worker.sh || record_failure build-worker
    elif [[ -f scripts/build-worker.sh ]]; then
      run_stage build-worker 1200 bash scripts/build-worker.sh || record_failure build-worker
    else
      banner "build-worker: scripts/build-worker.sh not present yet, skipped"
    fi
    run_stage cargo-test 1800 cargo test --all-targets --no-fail-fast || record_failure cargo-test
    count_results cargo cargo-test
    run_stage doc-test 900 cargo test --doc --no-fail-fast || record_failure doc-test
    count_results cargo doc-test
  fi

  # The client suites need the binary the way `cargo test` built it.
  [[ -x "$EDGECOUNT_BIN" ]] || run_stage build-bin 1800 cargo build --bin edgecount ||
    { echo "[test] cannot build $EDGECOUNT_BIN: stopping"; exit 1; }

  local node_tests=(tests/clients/node/*.test.mjs)
  if [[ -e "${node_tests[0]}" ]]; then
    run_stage node-clients 600 node --test --test-reporter=spec "${node_tests[@]}" ||
      record_failure node-clients
    count_results node node-clients
  fi

  # The dashboard in Debian's chromium (playwright-core), against the same binary: it embeds web/.
  local browser_tests=(tests/browser/*.test.mjs)
  if [[ -e "${browser_tests[0]}" ]]; then
    run_stage browser 600 node --test --test-reporter=spec "${browser_tests[@]}" || record_failure browser
    count_results node browser
  fi

  if [[ -d tests/clients/python ]]; then
    # pytest's exit 5 (no tests collected) is a failure here: the suite exists, so it must run.
    run_stage python-clients 600 .venv/bin/python -m pytest -q -p no:cacheprovider tests/clients/python ||
      record_failure python-clients
    count_results pytest python-clients
  fi

  if [[ -z "${EDGECOUNT_ONLY_CLIENTS:-}" && "${EDGECOUNT_FUZZ_SECONDS:-20}" != 0 ]]; then
    EDGECOUNT_FUZZ_BUILD="${EDGECOUNT_FUZZ_BUILD:-quick}" \
      run_stage fuzz 1800 ./scripts/fuzz.sh "${EDGECOUNT_FUZZ_SECONDS:-20}" || record_failure fuzz
    count_results fuzz fuzz
  fi

  local took=$(($(date +%s) - STARTED_AT))
  banner "done in ${took}s"
  if [[ "${#FAILED_STAGES[@]}" -gt 0 ]]; then
    printf '[test] FAILED stages: %s\n' "${FAILED_STAGES[*]}"
    # A stage can fail without a test failing (clippy, a build, a crash): count it as one failure.
    [[ "$FAILED" -gt 0 ]] || FAILED="${#FAILED_STAGES[@]}"
    printf 'summary: %s passed, %s failed\n' "$PASSED" "$FAILED"
    exit 1
  fi
  printf 'summary: %s passed, %s failed\n' "$PASSED" "$FAILED"
}

main "$@"
