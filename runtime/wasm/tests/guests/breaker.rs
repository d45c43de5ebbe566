//! The per-batch breaker against the `trap` stage (built by `make wasm`): a batch whose call
//! fails as a whole is re-run record by record, and after `RERUN_BREAKER` records in a row fail
//! so, the rest of the batch fails unrun, without a fresh instance per record; every record
//! still gets its own failure, and the next batch starts on a fresh instance.

use std::sync::Arc;
use std::time::Duration;

use weir_core::{FailureKind, Outputs, Record, Stage, StageOutcome};
use weir_wasm::{EnrichModule, Limits, ModuleSpec, RERUN_BREAKER, WasmHost};

use crate::module_path;

const LIMITS: Limits = Limits {
    memory: 64 << 20,
    timeout: Duration::from_secs(10),
    recycle_after: None,
    recycle_memory: None,
    fuel: None,
};

fn trap_stage(host: &WasmHost) -> Arc<EnrichModule> {
    let compiled = host.compile_file(&module_path("trap")).unwrap();
    EnrichModule::new(
        host,
        ModuleSpec {
            stage: "trap",
            module: compiled,
            config: String::new(),
            limits: LIMITS,
        },
    )
    .unwrap()
}

fn record(offset: i64, value: &str) -> Record {
    Record {
        offset,
        value: Some(value.as_bytes().to_vec().into()),
        ..Record::default()
    }
}

/// Records at `offset..`, poisoned where `pattern` has a `p`.
fn batch(offset: i64, pattern: &str) -> Vec<Record> {
    (offset..)
        .zip(pattern.chars())
        .map(|(o, c)| record(o, if c == 'p' { "poison" } else { "fine" }))
        .collect()
}

fn passed(outcome: &StageOutcome) -> bool {
    matches!(outcome, Ok(Outputs::Input))
}

/// A failure of the record's own (the guest's panic), not the breaker's.
fn trapped(outcome: &StageOutcome, offset: i64) -> bool {
    outcome.as_ref().is_err_and(|f| {
        f.kind == FailureKind::Trap
            && f.message.contains(&format!("offset {offset} is poisoned"))
            && !f.message.contains("breaker")
    })
}

#[test]
fn a_stage_that_fails_every_record_trips_the_breaker() {
    const { assert!(RERUN_BREAKER >= 2 && RERUN_BREAKER <= 10) };
    let host = WasmHost::new(None).unwrap();
    let mut stage = trap_stage(&host).instance().unwrap();
    assert_eq!(stage.instantiated(), 1);

    let records = batch(100, &"p".repeat(64));
    let out = stage.process("t", 0, &records);
    assert_eq!(out.len(), records.len(), "one outcome per record");
    let ran = RERUN_BREAKER as usize;
    for (i, outcome) in out.iter().enumerate().take(ran) {
        assert!(trapped(outcome, 100 + i as i64), "{outcome:?}");
    }
    let last_run = 100 + ran as i64 - 1;
    for outcome in &out[ran..] {
        let failure = outcome.as_ref().unwrap_err();
        assert_eq!(
            failure.kind,
            FailureKind::Trap,
            "the kind of the failure it follows"
        );
        assert!(
            failure.message.contains("breaker tripped")
                && failure.message.contains(&format!("at offset {last_run}"))
                && failure.message.contains("poisoned"),
            "{failure}"
        );
    }
    // The batch's instance, then one per record run alone until the breaker tripped: not one
    // per record.
    assert_eq!(stage.instantiated(), 1 + u64::from(RERUN_BREAKER));

    // The next batch starts normally, on a fresh instance.
    let out = stage.process("t", 0, &batch(200, "fff"));
    assert!(out.iter().all(passed), "{out:?}");
    assert_eq!(stage.instantiated(), 2 + u64::from(RERUN_BREAKER));
    assert_eq!(stage.recycled(), 0, "failures are not recycling");
}

#[test]
fn bad_records_fewer_in_a_row_than_the_breaker_are_isolated_exactly() {
    const {
        assert!(
            RERUN_BREAKER == 3,
            "the batch below has two bad records in a row"
        )
    };
    let host = WasmHost::new(None).unwrap();
    let mut stage = trap_stage(&host).instance().unwrap();
    let pattern = "fppfpfppff";
    let out = stage.process("t", 0, &batch(0, pattern));
    for (i, (outcome, c)) in out.iter().zip(pattern.chars()).enumerate() {
        if c == 'p' {
            assert!(trapped(outcome, i as i64), "{i}: {outcome:?}");
        } else {
            assert!(passed(outcome), "{i}: {outcome:?}");
        }
    }
}

#[test]
fn the_breaker_fails_the_rest_of_its_batch_and_only_that() {
    const { assert!(RERUN_BREAKER == 3) };
    let host = WasmHost::new(None).unwrap();
    let mut stage = trap_stage(&host).instance().unwrap();
    let out = stage.process("t", 0, &batch(0, "fpppff"));
    assert!(passed(&out[0]));
    for (o, outcome) in (1..).zip(&out[1..4]) {
        assert!(trapped(outcome, o), "{o}: {outcome:?}");
    }
    for outcome in &out[4..] {
        let failure = outcome.as_ref().unwrap_err();
        assert!(failure.message.starts_with("not run: "), "{failure}");
    }
    // Three bad records at the end of a batch leave nothing to trip over.
    let out = stage.process("t", 0, &batch(10, "ffppp"));
    assert!(passed(&out[0]) && passed(&out[1]));
    for (o, outcome) in (12..).zip(&out[2..]) {
        assert!(trapped(outcome, o), "{o}: {outcome:?}");
    }
}
