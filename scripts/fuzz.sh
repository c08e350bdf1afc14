#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer, the nightly toolchain), bounded in time.
#
#   ./scripts/fuzz.sh                 every target, 60 s each
#   ./scripts/fuzz.sh 600 api_request one target, 10 minutes
#
# Targets (fuzz/fuzz_targets/): proxy_request (JSON commands, pipelines, the path form, ?_token=),
# rest_reply (REST answers with base64 at any depth, event streams cut anywhere), config (every
# EDGECOUNT_* variable at once), api_request (method, path, query, headers and body through the
# worker's driver), batch_body (POST /batch bodies). Each corpus grows in fuzz/corpus/<target>
# (gitignored) and carries over between runs. A crash stops the run with its input under
# fuzz/artifacts/<target>/: turn it into a regression test, then fix it.
#
# Builds: optimised with AddressSanitizer (the default, for the long runs), or with
# EDGECOUNT_FUZZ_BUILD=quick unoptimised without a sanitizer — 1.5 min to build instead of 7 on
# 2 cores, still ~25k inputs/s, and edgecount has no `unsafe` for a sanitizer to watch: what a
# short pass needs (./scripts/test.sh runs it so, with a shorter budget per target).
#
# scripts/setup.sh installs the nightly toolchain and cargo-fuzz.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
[[ "${#TARGETS[@]}" -gt 0 ]] || TARGETS=(proxy_request rest_reply config api_request batch_body)
[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ && "$SECONDS_PER_TARGET" -gt 0 ]] ||
  { echo "[fuzz] seconds per target must be a positive number" >&2; exit 2; }

log() { printf '[fuzz] %s\n' "$*"; }

rustup toolchain list | grep -q '^nightly' ||
  { log "no nightly toolchain: run ./scripts/setup.sh"; exit 1; }
command -v cargo-fuzz >/dev/null 2>&1 || { log "cargo-fuzz missing: run ./scripts/setup.sh"; exit 1; }

# -O: optimised, with debug assertions (overflow checks stay on); address sanitizer by default.
case "${EDGECOUNT_FUZZ_BUILD:-release}" in
  release) BUILD=(-O) ;;
  quick) BUILD=(--dev -s none) ;;
  *) echo "[fuzz] EDGECOUNT_FUZZ_BUILD must be release or quick" >&2; exit 2 ;;
esac
log "cargo +nightly fuzz build ${BUILD[*]}"
cargo +nightly fuzz build "${BUILD[@]}"

failed=()
for target in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  out="$(mktemp "${TMPDIR:-/tmp}/edgecount-fuzz-$target.XXXXXX")"
  log "$target: ${SECONDS_PER_TARGET}s"
  # -timeout: one input over 10 s is a hang; -rss_limit_mb bounds memory; the outer timeout
  # bounds the whole run even if libFuzzer itself stalls.
  if timeout $((SECONDS_PER_TARGET + 120)) cargo +nightly fuzz run "${BUILD[@]}" "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$out" 2>&1; then
    runs="$(awk '/^stat::number_of_executed_units:/ {print $2}' "$out")"
    cov="$(grep -Eo 'cov: [0-9]+' "$out" | tail -n 1 | awk '{print $2}')"
    log "$target: ok, ${runs:-?} inputs in ${SECONDS_PER_TARGET}s, coverage ${cov:-?} edges, corpus $(find "fuzz/corpus/$target" -type f | wc -l) files"
  else
    grep -E 'panicked|ERROR|SUMMARY|artifact|Test unit written' "$out" | head -n 20 >&2 || true
    log "$target: FAILED (log: $out)"
    failed+=("$target")
    continue
  fi
  rm -f "$out"
done

if [[ "${#failed[@]}" -gt 0 ]]; then
  log "failed: ${failed[*]}"
  exit 1
fi
log "all ${#TARGETS[@]} targets ok"
