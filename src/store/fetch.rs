//! worker::Fetch transport (wasm).
