//! The host's caps against a guest that asks for more (`flood`, built by `make wasm`): log lines
//! and fields are dropped and counted, outputs over the caps fail their record with kind
//! `limit`, error texts are cut, a metric name keeps one kind, and the instance serves on.

use std::sync::Arc;
use std::time::Duration;

use weir_core::{FailureKind, Outputs, Record, Stage, StageOutcome};
use weir_wasm::caps::{
    MAX_ERROR_CODE, MAX_ERROR_MESSAGE, MAX_LOG_BYTES_PER_CALL, MAX_LOG_FIELDS,
    MAX_LOG_LINES_PER_CALL, MAX_OUTPUT_BYTES_PER_BATCH, MAX_OUTPUTS_PER_INPUT, TRUNCATED,
};
use weir_wasm::{EnrichModule, Limits, ModuleSpec, WasmHost};

use crate::module_path;

const LIMITS: Limits = Limits {
    memory: 64 << 20,
    timeout: Duration::from_secs(10),
    recycle_after: None,
    recycle_memory: None,
    fuel: None,
};

/// What the flood stage asks for (its constants).
const LOG_LINES: u64 = 1000;
const LOG_FIELDS: u64 = 40;
const FANOUT: usize = 10_001;
const AMPLIFY: usize = 3000;

fn flood(host: &WasmHost) -> Arc<EnrichModule> {
    let compiled = host.compile_file(&module_path("flood")).unwrap();
    EnrichModule::new(
        host,
        ModuleSpec {
            stage: "flood",
            module: compiled,
            config: String::new(),
            limits: LIMITS,
        },
    )
    .unwrap()
}

fn record(offset: i64, value: impl Into<Vec<u8>>) -> Record {
    Record {
        offset,
        value: Some(value.into().into()),
        ..Record::default()
    }
}

fn outputs(outcome: &StageOutcome) -> usize {
    match outcome {
        Ok(Outputs::Input) => 1,
        Ok(Outputs::Records(r)) => r.len(),
        Err(f) => panic!("failed: {f}"),
    }
}

#[test]
fn log_lines_over_the_caps_are_dropped_and_counted() {
    const { assert!(MAX_LOG_FIELDS < LOG_FIELDS as usize) };
    const { assert!((MAX_LOG_LINES_PER_CALL as u64) < LOG_LINES) };
    let host = WasmHost::new(None).unwrap();
    let stage = flood(&host);
    let mut instance = stage.instance().unwrap();
    let metrics = stage.guest_metrics();

    let out = instance.process("t", 0, &[record(0, "logs")]);
    assert_eq!(outputs(&out[0]), 1, "the record itself goes on");
    let dropped = metrics.log_lines_dropped();
    let written = LOG_LINES - dropped;
    // Each written line has 16 fields of 1 KiB (cut from 2,000 bytes): the byte budget, not the
    // line count, is what stops this guest.
    assert!(
        written > 0 && written * 16 * 1024 <= MAX_LOG_BYTES_PER_CALL as u64,
        "{written} lines written"
    );
    assert_eq!(
        metrics.log_fields_dropped(),
        written * (LOG_FIELDS - MAX_LOG_FIELDS as u64),
        "the fields past the cap, of the lines written"
    );

    // The budget is per call: the next call writes as much again, and drops as much again.
    instance.process("t", 0, &[record(1, "logs")]);
    assert_eq!(metrics.log_lines_dropped(), 2 * dropped);
    instance.process("t", 0, &[record(2, "plain")]);
    assert_eq!(
        metrics.log_lines_dropped(),
        2 * dropped,
        "a quiet call drops nothing"
    );
}

#[test]
fn too_many_outputs_fail_their_record_with_kind_limit() {
    const { assert!(FANOUT > MAX_OUTPUTS_PER_INPUT) };
    let host = WasmHost::new(None).unwrap();
    let mut instance = flood(&host).instance().unwrap();
    let batch = [record(0, "a"), record(1, "fanout"), record(2, "b")];
    let out = instance.process("t", 0, &batch);
    assert_eq!(outputs(&out[0]), 1);
    let failure = out[1].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Limit, "{failure}");
    assert_eq!(failure.kind.as_str(), "limit");
    assert!(failure.message.contains("10001 outputs"), "{failure}");
    assert_eq!(
        outputs(&out[2]),
        1,
        "the record after it is read past the capped one"
    );
    // The instance was not poisoned: it goes on serving.
    assert_eq!(outputs(&instance.process("t", 0, &[record(3, "c")])[0]), 1);
}

#[test]
fn outputs_over_the_batch_byte_cap_fail_their_record_with_kind_limit() {
    let host = WasmHost::new(None).unwrap();
    let mut instance = flood(&host).instance().unwrap();
    // Three thousand copies of a 1 KiB record: about 3.4 MB, well within the cap.
    let small = format!("amplify{}", "x".repeat(1024));
    let out = instance.process("t", 0, &[record(0, small)]);
    assert_eq!(outputs(&out[0]), AMPLIFY);

    // Of a 100 KiB record: 300 MB downstream, over the cap, from a few bytes per copy in the
    // module's result.
    let big = format!("amplify{}", "x".repeat(100 * 1024));
    const { assert!((AMPLIFY * 100 * 1024) as u64 > MAX_OUTPUT_BYTES_PER_BATCH) };
    let out = instance.process("t", 0, &[record(1, big), record(2, "after")]);
    let failure = out[0].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Limit, "{failure}");
    assert!(
        failure.message.contains("bytes one batch may produce"),
        "{failure}"
    );
    assert_eq!(outputs(&out[1]), 1, "the next record still fits");
}

#[test]
fn guest_error_texts_are_cut_and_marked() {
    let host = WasmHost::new(None).unwrap();
    let mut instance = flood(&host).instance().unwrap();
    let out = instance.process("t", 0, &[record(0, "long-error")]);
    let failure = out[0].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::StageError);
    assert_eq!(failure.code.len(), MAX_ERROR_CODE + TRUNCATED.len());
    assert_eq!(failure.message.len(), MAX_ERROR_MESSAGE + TRUNCATED.len());
    assert!(failure.code.starts_with("ccc") && failure.code.ends_with(TRUNCATED));
    assert!(failure.message.starts_with("mmm") && failure.message.ends_with(TRUNCATED));
}

#[test]
fn a_metric_name_keeps_its_first_kind() {
    let host = WasmHost::new(None).unwrap();
    let stage = flood(&host);
    let mut instance = stage.instance().unwrap();
    for offset in 0..3 {
        let out = instance.process("t", 0, &[record(offset, "clash")]);
        assert_eq!(
            outputs(&out[0]),
            1,
            "a refused metric does not fail the record"
        );
    }
    let metrics = stage.guest_metrics();
    assert_eq!(metrics.counters().get("clash"), Some(&3));
    assert!(
        metrics.histograms().is_empty(),
        "the histogram of the counter's name was refused: {:?}",
        metrics.histograms()
    );

    // Another module on the same host is held to the same kind.
    let other = flood(&host);
    let mut other_instance = other.instance().unwrap();
    other_instance.process("t", 0, &[record(0, "clash")]);
    assert_eq!(other.guest_metrics().counters().get("clash"), Some(&1));
    assert!(other.guest_metrics().histograms().is_empty());
}
