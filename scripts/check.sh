#!/usr/bin/env bash
# Static checks, the same locally and in CI: formatting, clippy on every native target (lib, bin,
# tests, benches, examples) and clippy on the wasm lib (the edge worker's code paths only compile
# there). Warnings are errors. shellcheck runs on our scripts when it is installed (optional).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n[check] %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

if rustup target list --installed 2>/dev/null | grep -qx 'wasm32-unknown-unknown'; then
  step "cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings"
  cargo clippy --target wasm32-unknown-unknown --lib --quiet -- -D warnings
else
  # setup.sh installs the target; say loudly that this check did not run rather than pass silently.
  printf '[check] SKIPPED wasm clippy: target wasm32-unknown-unknown not installed (run scripts/setup.sh)\n' >&2
  [[ -z "${CI:-}" ]] || exit 1
fi

if command -v shellcheck >/dev/null 2>&1; then
  # Only the scripts this check owns the style of; other scripts are checked by their owners.
  shopt -s nullglob
  own_scripts=(scripts/setup.sh scripts/check.sh scripts/test.sh scripts/dev.sh scripts/bench.sh
    scripts/bench/*.sh scripts/lib/*.sh .ci/run)
  shopt -u nullglob
  existing=()
  for f in "${own_scripts[@]}"; do [[ -f "$f" ]] && existing+=("$f"); done
  step "shellcheck ${existing[*]}"
  shellcheck -x "${existing[@]}"
fi

step "ok"
