# shellcheck shell=bash
# Shared by scripts/setup.sh and scripts/build-worker.sh.

# lock_version_of CRATE → the version Cargo.lock resolves for it (run from the repository root).
# setup.sh installs wasm-bindgen-cli at exactly this version of `wasm-bindgen` and build-worker.sh
# checks it: a mismatch makes worker-build fail with a schema error.
lock_version_of() {
  awk -v want="$1" '
    $0 == "[[package]]" { name = "" }
    $1 == "name" { gsub(/"/, "", $3); name = $3 }
    $1 == "version" && name == want { gsub(/"/, "", $3); print $3; exit }
  ' Cargo.lock
}
