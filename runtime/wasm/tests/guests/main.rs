//! The host against real guest modules from `pipelines/modules/`: aggregate stages, the Python
//! and JavaScript guests, time limits over WASI waits, the host's caps, the memory limit, fuel,
//! recycling and the per-batch breaker. One test binary, so
//! wasmtime is linked once.

mod aggregate;
mod breaker;
mod caps;
mod deadline;
mod fuel;
mod memory;
mod python_js;
mod recycle;

use std::path::{Path, PathBuf};

/// The module `name` as `make wasm` and `make languages` build it.
fn module_path(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../pipelines/modules")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the example stages (`make wasm languages`)",
        path.display()
    );
    path
}
