#!/usr/bin/env bash
# Static checks, the same locally and in CI: formatting, clippy on every native target (lib, bin,
# tests, benches, examples), on the lib without the default `management` feature, and on the wasm
# lib with and without it (the edge worker's two modules; its code paths only compile there),
# rustdoc with its warnings as errors. Warnings are errors. shellcheck (installed by
# setup.sh) lints every script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n[check] %s\n' "$*"; }

step "cargo fmt --check (and the fuzz targets' own workspace)"
cargo fmt --all --check
cargo fmt --all --check --manifest-path fuzz/Cargo.toml

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

step "cargo doc --no-deps (broken intra-doc links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

step "cargo clippy --lib --no-default-features -- -D warnings (without the management routes)"
cargo clippy --lib --no-default-features --quiet -- -D warnings

if rustup target list --installed 2>/dev/null | grep -qx 'wasm32-unknown-unknown'; then
  # The worker's two modules: the main one (no management routes) and the management one.
  step "cargo clippy --target wasm32-unknown-unknown --lib --no-default-features -- -D warnings"
  cargo clippy --target wasm32-unknown-unknown --lib --no-default-features --quiet -- -D warnings
  step "cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings"
  cargo clippy --target wasm32-unknown-unknown --lib --quiet -- -D warnings
else
  # setup.sh installs the target; say loudly that this check did not run rather than pass silently.
  printf '[check] SKIPPED wasm clippy: target wasm32-unknown-unknown not installed (run scripts/setup.sh)\n' >&2
  [[ -z "${CI:-}" ]] || exit 1
fi

command -v shellcheck >/dev/null 2>&1 || {
  echo "[check] shellcheck not found: ./scripts/setup.sh installs it" >&2
  exit 1
}
shopt -s nullglob
own_scripts=(scripts/*.sh scripts/bench/*.sh scripts/lib/*.sh .ci/run)
shopt -u nullglob
step "shellcheck ${own_scripts[*]}"
shellcheck -x "${own_scripts[@]}"

step "ok"
