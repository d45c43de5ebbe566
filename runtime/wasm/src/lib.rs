//! Weir's WebAssembly host: the only crate that touches wasmtime.
