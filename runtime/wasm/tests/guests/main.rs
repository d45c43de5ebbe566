//! The host against real guest modules from `pipelines/modules/`: aggregate stages and the
//! Python and JavaScript guests. One test binary, so wasmtime is linked once.

mod aggregate;
mod python_js;

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
