#!/usr/bin/env bash
# Install everything edgecount's build, tests, dev loop and benchmarks need, on a fresh Debian 12
# box (as root) or a developer machine. Idempotent: every step checks first, so a second run on a
# ready machine takes a second or two and touches no network.
#
#   ./scripts/setup.sh            # everything
#   EDGECOUNT_SKIP_WASM_TOOLS=1   # skip the wasm toolchain (target, worker-build, wasm-bindgen-cli)
#
# What it installs, and why:
#   apt:    redis-server + redis-tools (private test/dev servers, redis-cli, redis-benchmark),
#           webdis + wrk (scripts/bench.sh), curl (dev.sh examples, health checks), bc (build-worker.sh),
#           the linter for our scripts (check.sh runs it: package shellcheck), chromium (tests/browser)
#   rustup: rustfmt, clippy, the wasm32-unknown-unknown target (the edge worker)
#   cargo:  worker-build 0.8.7, wasm-bindgen-cli at exactly the version Cargo.lock resolves,
#           cargo-fuzz (scripts/fuzz.sh) with the nightly toolchain it needs (rustup)
#   npm:    `npm ci` from package-lock.json (workerd, wrangler, @upstash/redis for client tests...)
#   python: ./.venv with tests/clients/python/requirements.txt (upstash-redis, pytest)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/cargo-lock.sh
source "$ROOT/scripts/lib/cargo-lock.sh"

WORKER_BUILD_VERSION="0.8.7"
CARGO_FUZZ_VERSION="0.13.2"
APT_PACKAGES=(redis-server redis-tools webdis wrk curl bc shellcheck chromium)

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root (CI, the dev box), through sudo otherwise.
as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

apt_missing() {
  local pkg missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  printf '%s\n' "${missing[@]+"${missing[@]}"}"
}

# Install Debian packages that are missing. `apt-get update` only runs when something is missing, so
# a ready machine never touches the network. A temporary policy-rc.d stops the redis-server package
# from starting (or restarting) a system service on 6379: that port belongs to the machine's own
# Redis, which we must never touch; our servers are always private ones on other ports.
ensure_apt_packages() {
  local missing
  mapfile -t missing < <(apt_missing "$@")
  if [[ "${#missing[@]}" -eq 0 || -z "${missing[0]}" ]]; then
    log "apt: ok ($*)"
    return
  fi
  log "apt: installing ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e "$policy" ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > '$policy' && chmod 755 '$policy'"
    added_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [[ "$added_policy" -eq 1 ]]; then
    as_root rm -f "$policy"
  fi
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup first"
  if command -v rustup >/dev/null 2>&1; then
    local installed
    installed="$(rustup component list --installed 2>/dev/null || true)"
    for component in rustfmt clippy; do
      if ! grep -q "^${component}" <<<"$installed"; then
        log "rustup: adding $component"
        rustup component add "$component"
      fi
    done
    if [[ -z "${EDGECOUNT_SKIP_WASM_TOOLS:-}" ]]; then
      if ! rustup target list --installed | grep -qx 'wasm32-unknown-unknown'; then
        log "rustup: adding target wasm32-unknown-unknown"
        rustup target add wasm32-unknown-unknown
      fi
    fi
  fi
  log "rust: ok ($(cargo --version))"
}


ensure_wasm_tools() {
  if [[ -n "${EDGECOUNT_SKIP_WASM_TOOLS:-}" ]]; then
    log "wasm tools: skipped (EDGECOUNT_SKIP_WASM_TOOLS)"
    return
  fi
  if [[ "$(worker-build --version 2>/dev/null || true)" != *"$WORKER_BUILD_VERSION"* ]]; then
    log "cargo: installing worker-build $WORKER_BUILD_VERSION"
    cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --force ||
      cargo install worker-build --version "$WORKER_BUILD_VERSION" --force
  fi
  local wbg
  wbg="$(lock_version_of wasm-bindgen)"
  if [[ -z "$wbg" ]]; then
    log "wasm-bindgen: not in Cargo.lock, skipping wasm-bindgen-cli"
  elif [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wbg" ]]; then
    log "cargo: installing wasm-bindgen-cli $wbg (matches Cargo.lock)"
    # --locked first (reproducible); the registry can lack a locked transitive version (seen:
    # webpki-roots 1.0.11 for 0.2.130), so fall back to fresh resolution of the same CLI version.
    cargo install wasm-bindgen-cli --version "$wbg" --locked --force ||
      cargo install wasm-bindgen-cli --version "$wbg" --force
  fi
  log "wasm tools: ok (worker-build $WORKER_BUILD_VERSION, wasm-bindgen ${wbg:-none})"
}

# cargo fuzz builds with nightly-only flags (sanitizers); the project itself builds on stable.
ensure_fuzz_tools() {
  if ! rustup toolchain list | grep -q '^nightly'; then
    log "rustup: installing the nightly toolchain (cargo fuzz)"
    rustup toolchain install nightly --profile minimal
  fi
  if [[ "$(cargo fuzz --version 2>/dev/null || true)" != *"$CARGO_FUZZ_VERSION"* ]]; then
    log "cargo: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force ||
      cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --force
  fi
  log "fuzz tools: ok (nightly, cargo-fuzz $CARGO_FUZZ_VERSION)"
}

hash_of() { sha256sum "$1" | cut -d' ' -f1; }

# `npm ci` wipes and reinstalls node_modules, so run it only when node_modules is missing or was
# installed from a different package-lock.json (a stamp file records the lock's hash).
ensure_node_modules() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    ensure_apt_packages nodejs npm
  fi
  local stamp="node_modules/.edgecount-lock.sha256" want
  want="$(hash_of package-lock.json)"
  if [[ -d node_modules && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "npm: ok (node_modules matches package-lock.json)"
    return
  fi
  log "npm: npm ci (node_modules missing or stale)"
  npm ci --no-audit --no-fund --loglevel=error
  printf '%s\n' "$want" >"$stamp"
}

# The official Python client suite runs in ./.venv (gitignored), pinned by requirements.txt.
ensure_python_venv() {
  local req="tests/clients/python/requirements.txt"
  [[ -f "$req" ]] || { log "python: no $req, skipping venv"; return; }
  local stamp=".venv/.edgecount-requirements.sha256" want
  want="$(hash_of "$req")"
  if [[ -x .venv/bin/python && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "python: ok (.venv matches $req)"
    return
  fi
  local py
  py="$(command -v python3 || true)"
  [[ -n "$py" ]] || ensure_apt_packages python3 python3-venv
  py="$(command -v python3)"
  if [[ ! -x .venv/bin/python ]]; then
    log "python: creating .venv"
    "$py" -m venv .venv || { ensure_apt_packages python3-venv; rm -rf .venv; "$py" -m venv .venv; }
  fi
  log "python: installing $req"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req"
  printf '%s\n' "$want" >"$stamp"
}

main() {
  ensure_apt_packages "${APT_PACKAGES[@]}"
  ensure_rust
  ensure_wasm_tools
  ensure_fuzz_tools
  ensure_node_modules
  ensure_python_venv
  log "done"
}

main "$@"
