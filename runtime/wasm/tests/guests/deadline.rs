//! Time limits hold while a guest waits in the host: the `sleeper` and `poller` stages (Rust,
//! built by `make wasm`) and their C twins (`examples-wasm/sleeper-c`, `poller-c`, built by
//! `make languages`) sleep or poll WASI clocks for seconds on a marked record. The call must end
//! as a timeout within twice the stage's limit, and the instance be replaced so the next records
//! flow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_core::{FailureKind, Outputs, Record, Stage};
use weir_wasm::{EnrichModule, Limits, ModuleSpec, WasmHost};

use crate::module_path;

/// The stages' time limit: long enough that a loaded machine does not make a prompt call late,
/// short against the guests' waits (5 and 10 seconds).
const LIMIT: Duration = Duration::from_millis(200);

const LIMITS: Limits = Limits {
    memory: 64 << 20,
    timeout: LIMIT,
    recycle_after: None,
    recycle_memory: None,
    fuel: None,
};

fn load(host: &WasmHost, name: &str, config: &str) -> Arc<EnrichModule> {
    let compiled = host
        .compile_file(&module_path(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    EnrichModule::new(
        host,
        ModuleSpec {
            stage: name,
            module: compiled,
            config: config.into(),
            limits: LIMITS,
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn record(offset: i64, value: &str) -> Record {
    Record {
        offset,
        value: Some(value.as_bytes().to_vec().into()),
        ..Record::default()
    }
}

fn passed(outcomes: &[weir_core::StageOutcome]) -> bool {
    outcomes.iter().all(|o| matches!(o, Ok(Outputs::Input)))
}

/// `module` waits for seconds on a record containing `marker`: the call must fail as a timeout
/// within twice its limit, and the stage go on with a fresh instance.
fn ends_at_the_deadline(module: &str, marker: &str) {
    let host = WasmHost::new(None).unwrap();
    let stage = load(&host, module, "");
    let mut instance = stage.instance().unwrap();
    assert!(passed(&instance.process("t", 0, &[record(0, "plain")])));

    let started = Instant::now();
    let out = instance.process("t", 0, &[record(1, marker)]);
    let took = started.elapsed();
    let failure = out[0].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Timeout, "{module}: {failure}");
    assert!(
        failure
            .message
            .contains("time limit of 200ms while waiting in a WASI"),
        "{module}: the host wait, not guest code, must have been cut short: {failure}"
    );
    assert!(
        took < 2 * LIMIT,
        "{module}: the call took {took:?} against a limit of {LIMIT:?}"
    );
    assert!(took >= LIMIT, "{module}: ended before its limit ({took:?})");
    eprintln!("{module}: a {marker} call ended as a timeout after {took:?} (limit {LIMIT:?})");

    // The poisoned instance was dropped; a fresh one serves what comes next.
    assert!(passed(&instance.process(
        "t",
        0,
        &[record(2, "plain"), record(3, "more")]
    )));
    // In a batch, only the waiting record fails (the batch is re-run record by record).
    let batch = [record(4, "a"), record(5, marker), record(6, "b")];
    let out = instance.process("t", 0, &batch);
    assert!(
        matches!(out[0], Ok(Outputs::Input)),
        "{module}: {:?}",
        out[0]
    );
    assert_eq!(out[1].as_ref().unwrap_err().kind, FailureKind::Timeout);
    assert!(
        matches!(out[2], Ok(Outputs::Input)),
        "{module}: {:?}",
        out[2]
    );
    assert_eq!(
        host.overdue_calls(),
        0,
        "{module}: no call ran to twice its limit"
    );
}

#[test]
fn a_rust_guest_sleeping_past_its_limit_times_out_at_it() {
    ends_at_the_deadline("sleeper", "sleep");
}

#[test]
fn a_rust_guest_polling_past_its_limit_times_out_at_it() {
    ends_at_the_deadline("poller", "poll");
}

#[test]
fn a_c_guest_sleeping_past_its_limit_times_out_at_it() {
    ends_at_the_deadline("sleeper_c", "sleep");
}

#[test]
fn a_c_guest_polling_past_its_limit_times_out_at_it() {
    ends_at_the_deadline("poller_c", "poll");
}

#[test]
fn a_sleep_within_the_limit_just_ends() {
    let host = WasmHost::new(None).unwrap();
    let stage = load(&host, "sleeper", r#"{"millis":20}"#);
    let mut instance = stage.instance().unwrap();
    let started = Instant::now();
    let out = instance.process("t", 0, &[record(0, "sleep"), record(1, "sleep")]);
    let took = started.elapsed();
    assert!(passed(&out), "{out:?}");
    assert!(
        took >= Duration::from_millis(40),
        "both sleeps happened ({took:?})"
    );
}
