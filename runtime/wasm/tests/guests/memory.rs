//! `limits.memory` holds for a store's total: the `memory_hog` stage (built by `make wasm`)
//! grows until the limit stops it with kind `memory`, and the instance is replaced. (That the
//! limit counts all of a store's memories and tables together, not each alone, is tested where
//! the limiter lives, with core modules of several memories: `state.rs`.)

use std::time::Duration;

use weir_core::{FailureKind, Outputs, Record, Stage};
use weir_wasm::{EnrichModule, Limits, ModuleSpec, WasmHost};

use crate::module_path;

#[test]
fn a_guest_that_grows_past_its_memory_limit_fails_with_kind_memory() {
    let host = WasmHost::new(None).unwrap();
    let compiled = host.compile_file(&module_path("memory_hog")).unwrap();
    let limits = Limits {
        memory: 32 << 20,
        timeout: Duration::from_secs(10),
        recycle_after: None,
        recycle_memory: None,
        fuel: None,
    };
    let stage = EnrichModule::new(
        &host,
        ModuleSpec {
            stage: "hog",
            module: compiled,
            config: String::new(),
            limits,
        },
    )
    .unwrap();
    let mut instance = stage.instance().unwrap();
    let record = |offset, value: &str| Record {
        offset,
        value: Some(value.as_bytes().to_vec().into()),
        ..Record::default()
    };
    let out = instance.process("t", 0, &[record(0, "a"), record(1, "hog"), record(2, "b")]);
    assert!(matches!(out[0], Ok(Outputs::Input)), "{:?}", out[0]);
    let failure = out[1].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Memory, "{failure}");
    assert!(
        failure
            .message
            .contains(&format!("memory limit of {} bytes", 32 << 20))
            && failure.message.contains("memories and tables"),
        "{failure}"
    );
    assert!(matches!(out[2], Ok(Outputs::Input)), "{:?}", out[2]);
}
