//! `enricher!` with a closure: natively it only type-checks its argument, so a stage crate builds
//! and tests without a wasm toolchain.

use weir_sdk::{Error, Record, testing};

weir_sdk::enricher!(|record: Record| Ok::<_, Error>(record.with_header("seen", "1")));

#[test]
fn a_closure_stage_runs_natively() {
    let out = testing::run_fn(
        |record: Record| Ok::<_, Error>(record.with_header("seen", "1")),
        vec![Record::new("v")],
    );
    assert_eq!(out[0].as_ref().unwrap()[0].header_str("seen"), Some("1"));
}
