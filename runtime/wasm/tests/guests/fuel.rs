//! `limits.fuel`: a deterministic CPU budget per call. The `endless_loop` stage and the
//! `count_sum` aggregate's `loop_on` run out of it (kind `timeout`, long before the time limit),
//! ordinary calls pass, a budget too small to start the module refuses it, and the fuel engine's
//! compiled modules have their own disk cache entries.

use std::time::{Duration, Instant};

use weir_core::{FailureKind, Record, Stage};
use weir_wasm::{AggregateModule, EnrichModule, Limits, ModuleSpec, WasmError, WasmHost};

use crate::module_path;

/// A time limit the fuel runs out well before.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Enough for a small batch of these stages, far from enough for a loop without end.
const FUEL: u64 = 50_000_000;

const LIMITS: Limits = Limits {
    memory: 64 << 20,
    timeout: TIMEOUT,
    recycle_after: None,
    recycle_memory: None,
    fuel: Some(FUEL),
};

fn record(offset: i64, value: &str) -> Record {
    Record {
        offset,
        timestamp: Some(1_000 + offset),
        value: Some(value.as_bytes().to_vec().into()),
        ..Record::default()
    }
}

#[test]
fn an_enrich_call_that_runs_out_of_fuel_fails_as_a_timeout() {
    let host = WasmHost::new(None).unwrap();
    let compiled = host.compile_file(&module_path("endless_loop")).unwrap();
    let stage = EnrichModule::new(
        &host,
        ModuleSpec {
            stage: "loop",
            module: compiled,
            config: String::new(),
            limits: LIMITS,
        },
    )
    .unwrap();
    let mut instance = stage.instance().unwrap();

    let started = Instant::now();
    let out = instance.process("t", 0, &[record(0, "a"), record(1, "loop"), record(2, "b")]);
    let took = started.elapsed();
    assert!(out[0].is_ok(), "{:?}", out[0]);
    let failure = out[1].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert!(
        failure.message.contains("ran out of fuel")
            && failure.message.contains(&format!("{FUEL} units")),
        "{failure}"
    );
    assert!(out[2].is_ok(), "{:?}", out[2]);
    assert!(
        took < TIMEOUT / 2,
        "fuel, not the clock, ended it ({took:?})"
    );

    // The same record runs out again: the bound does not depend on the clock.
    let again = instance.process("t", 0, &[record(3, "loop")]);
    assert!(
        again[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("ran out of fuel")
    );
    assert!(instance.process("t", 0, &[record(4, "c")])[0].is_ok());
}

#[test]
fn a_stage_with_fuel_gives_the_outputs_it_gives_without() {
    let host = WasmHost::new(None).unwrap();
    let compiled = host.compile_file(&module_path("json_enrich")).unwrap();
    let config = r#"{"field":"url"}"#;
    let load = |fuel| {
        let limits = Limits { fuel, ..LIMITS };
        EnrichModule::new(
            &host,
            ModuleSpec {
                stage: "enrich",
                module: compiled.clone(),
                config: config.into(),
                limits,
            },
        )
        .unwrap()
        .instance()
        .unwrap()
    };
    let records: Vec<Record> = (0..32)
        .map(|o| {
            record(
                o,
                &format!(r#"{{"url":"https://shop.example/p/{o}?ref=mail"}}"#),
            )
        })
        .collect();
    let with = load(Some(FUEL)).process("t", 0, &records);
    let without = load(None).process("t", 0, &records);
    assert!(with.iter().all(Result::is_ok), "{with:?}");
    assert_eq!(with, without);
}

#[test]
fn an_aggregate_call_that_runs_out_of_fuel_fails_as_a_timeout() {
    let host = WasmHost::new(None).unwrap();
    let compiled = host.compile_file(&module_path("count_sum")).unwrap();
    let config = r#"{"loop_on":"spin"}"#;
    let module = AggregateModule::new(
        &host,
        ModuleSpec {
            stage: "count-sum",
            module: compiled,
            config: config.into(),
            limits: LIMITS,
        },
    )
    .unwrap();
    let mut agg = module.instance().unwrap();
    let empty = agg.create().unwrap();
    let spin = [record(1, r#"{"amount":1,"spin":true}"#)];
    let failure = agg.add(&[(empty.clone(), &spin[..])]).unwrap_err();
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert!(failure.message.contains("ran out of fuel"), "{failure}");
    // The accumulator the caller kept is still good, on a fresh instance.
    let good = [record(2, r#"{"amount":2}"#)];
    let acc = agg.add(&[(empty, &good[..])]).unwrap().remove(0).unwrap();
    let out = agg.emit(b"k", 0, 1, &acc).unwrap().unwrap();
    assert_eq!(
        out[0].value.as_deref(),
        Some(&br#"{"count":1,"sum":2.0}"#[..])
    );
}

#[test]
fn a_budget_too_small_to_start_the_module_refuses_it() {
    let host = WasmHost::new(None).unwrap();
    let compiled = host.compile_file(&module_path("identity")).unwrap();
    let limits = Limits {
        fuel: Some(1),
        ..LIMITS
    };
    let err = EnrichModule::new(
        &host,
        ModuleSpec {
            stage: "id",
            module: compiled,
            config: String::new(),
            limits,
        },
    )
    .unwrap_err();
    assert!(matches!(err, WasmError::Instantiate { .. }), "{err}");
    assert!(err.to_string().contains("fuel"), "{err}");
}

#[test]
fn the_fuel_engine_keeps_its_own_entries_in_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let host = WasmHost::new(Some(cache.clone())).unwrap();
    let compiled = host.compile_file(&module_path("identity")).unwrap();
    let sha = compiled.sha256().to_owned();
    assert_eq!(entries().len(), 1);
    let with_fuel = Limits {
        fuel: Some(FUEL),
        ..LIMITS
    };
    EnrichModule::new(
        &host,
        ModuleSpec {
            stage: "id",
            module: compiled.clone(),
            config: String::new(),
            limits: with_fuel,
        },
    )
    .unwrap();
    let names = entries();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with(&format!("{sha}-"))),
        "{names:?}"
    );

    // Another host uses both entries as they are: no new ones.
    let again = WasmHost::new(Some(cache.clone())).unwrap();
    let compiled = again.compile_file(&module_path("identity")).unwrap();
    EnrichModule::new(
        &again,
        ModuleSpec {
            stage: "id",
            module: compiled,
            config: String::new(),
            limits: with_fuel,
        },
    )
    .unwrap();
    assert_eq!(entries(), names);
}
