// The entry of the worker's management module (src/api/manage.rs): worker-build's CUSTOM_SHIM
// template for the second build (`--features management`, see scripts/build-worker.sh, which
// points its wasm import at ./management.wasm and ships it as build/worker/management.mjs). The
// main entry module (scripts/worker-shim.js) imports it on the first management request of an
// isolate and drives it with the same step protocol (src/driver.rs).
import * as imports from "./index_bg.js";
import wasmModule from "./index.wasm";
$SNIPPET_JS_IMPORTS

export function instantiate() {
  const instance = new WebAssembly.Instance(wasmModule, {
    "./index_bg.js": imports,
    $SNIPPET_WASM_IMPORTS
  });
  imports.__wbg_set_wasm(instance.exports);
  instance.exports.__wbindgen_start?.();
}

instantiate();

export const { begin, resume, opened, feed, pull, cancel } = imports;
