//! Aggregate stages against the host: the `count-sum` example built by `make wasm`.

use std::sync::Arc;
use std::time::Duration;

use weir_core::{FailureKind, Record};
use weir_wasm::{
    AggregateInstance, AggregateModule, EnrichModule, Limits, ModuleSpec, WasmError, WasmHost,
};

use crate::module_path;

const LIMITS: Limits = Limits {
    memory: 64 << 20,
    timeout: Duration::from_secs(5),
    recycle_after: None,
    recycle_memory: None,
    fuel: None,
};

fn load(config: &str) -> Result<Arc<AggregateModule>, WasmError> {
    let host = WasmHost::new(None).unwrap();
    let path = module_path("count_sum");
    let module = host
        .compile_file(&path)
        .unwrap_or_else(|e| panic!("{e} (build the examples with `make wasm`)"));
    AggregateModule::new(
        &host,
        ModuleSpec {
            stage: "count-sum",
            module,
            config: config.into(),
            limits: LIMITS,
        },
    )
}

fn instance(config: &str) -> AggregateInstance {
    load(config).unwrap().instance().unwrap()
}

fn amount(offset: i64, n: f64) -> Record {
    Record {
        offset,
        timestamp: Some(1_000 + offset),
        value: Some(
            format!(r#"{{"amount":{n},"user":"u{offset}"}}"#)
                .into_bytes()
                .into(),
        ),
        ..Record::default()
    }
}

/// What count-sum emits for these amounts: `{"count":…,"sum":…}` (serde_json writes an `f64`
/// the way `{:?}` does for these values).
fn reference(amounts: &[f64]) -> String {
    let sum = amounts.iter().fold(0.0, |s, n| s + n);
    format!(r#"{{"count":{},"sum":{sum:?}}}"#, amounts.len())
}

#[test]
fn count_sum_matches_a_reference() {
    let module = load(r#"{"field":"amount"}"#).unwrap();
    assert_eq!(module.state_version(), 1);
    let mut agg = module.instance().unwrap();
    agg.set_source("payments", 3);

    let a_amounts = [1.5, 2.0, 40.25];
    let b_amounts = [7.0, 0.5];
    let a: Vec<Record> = (0..).zip(a_amounts).map(|(o, n)| amount(o, n)).collect();
    let b: Vec<Record> = (10..).zip(b_amounts).map(|(o, n)| amount(o, n)).collect();

    let empty = agg.create().unwrap();
    // Key a's records arrive over two calls; key b's in one.
    let first = agg
        .add(&[(empty.clone(), &a[..2]), (empty.clone(), &b[..])])
        .unwrap();
    let (acc_a, acc_b) = (first[0].clone().unwrap(), first[1].clone().unwrap());
    let acc_a = agg.add(&[(acc_a, &a[2..])]).unwrap().remove(0).unwrap();

    let emit = |agg: &mut AggregateInstance, key: &[u8], acc: &[u8]| {
        let out = agg.emit(key, 0, 60_000, acc).unwrap().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key.as_deref(), Some(key));
        String::from_utf8(out[0].value.as_deref().unwrap().to_vec()).unwrap()
    };
    assert_eq!(emit(&mut agg, b"a", &acc_a), reference(&a_amounts));
    assert_eq!(emit(&mut agg, b"b", &acc_b), reference(&b_amounts));
    assert_eq!(emit(&mut agg, b"c", &empty), reference(&[]));

    let merged = agg.merge(&acc_a, &acc_b).unwrap().unwrap();
    let all: Vec<f64> = a_amounts.iter().chain(&b_amounts).copied().collect();
    assert_eq!(emit(&mut agg, b"a", &merged), reference(&all));
}

#[test]
fn a_failing_group_yields_its_error_and_the_others_their_accumulators() {
    let mut agg = instance(r#"{"field":"amount"}"#);
    let empty = agg.create().unwrap();
    let good = [amount(1, 2.0), amount(2, 3.0)];
    let bad = [
        amount(3, 1.0),
        Record {
            offset: 4,
            value: Some(br#"{"amount":"lots"}"#.to_vec().into()),
            ..Record::default()
        },
    ];
    let out = agg
        .add(&[
            (empty.clone(), &good[..]),
            (empty.clone(), &bad[..]),
            (empty.clone(), &good[..1]),
        ])
        .unwrap();
    assert_eq!(out.len(), 3);
    let failure = out[1].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::StageError);
    assert_eq!(failure.code, "not-a-number");
    let mut value = |acc: &[u8]| {
        let out = agg.emit(b"k", 0, 1, acc).unwrap().unwrap();
        out[0].value.clone().unwrap()
    };
    assert_eq!(
        value(out[0].as_ref().unwrap()),
        reference(&[2.0, 3.0]).as_bytes()
    );
    assert_eq!(
        value(out[2].as_ref().unwrap()),
        reference(&[2.0]).as_bytes()
    );
}

#[test]
fn stage_errors_of_merge_and_emit_are_not_call_failures() {
    let mut agg = instance("{}");
    let empty = agg.create().unwrap();
    let merged = agg.merge(b"not an accumulator", &empty).unwrap();
    assert_eq!(merged.unwrap_err().code, "bad-state");
    let emitted = agg.emit(b"k", 0, 1, b"{").unwrap();
    assert_eq!(emitted.unwrap_err().code, "bad-state");
    // The instance is still the same, working one.
    assert!(agg.create().is_ok());
}

#[test]
fn a_trap_in_add_fails_the_whole_call_and_the_instance_is_replaced() {
    let mut agg = instance(r#"{"trap_on":"poison"}"#);
    let empty = agg.create().unwrap();
    let good = [amount(1, 2.0)];
    let poisoned = [Record {
        offset: 7,
        value: Some(br#"{"amount":1,"poison":true}"#.to_vec().into()),
        ..Record::default()
    }];
    let failure = agg
        .add(&[(empty.clone(), &good[..]), (empty.clone(), &poisoned[..])])
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Trap);
    assert!(
        failure.message.contains("offset 7 is poisoned"),
        "{failure}"
    );
    // The next call runs on a fresh instance.
    let out = agg.add(&[(empty, &good[..])]).unwrap();
    let acc = out[0].as_ref().unwrap();
    let emitted = agg.emit(b"k", 0, 1, acc).unwrap().unwrap();
    assert_eq!(
        emitted[0].value.as_deref(),
        Some(reference(&[2.0]).as_bytes())
    );
}

#[test]
fn a_refused_config_refuses_the_module() {
    match load(r#"{"field":""}"#).unwrap_err() {
        WasmError::Init { code, .. } => assert_eq!(code, "bad-config"),
        other => panic!("{other}"),
    }
}

#[test]
fn an_enrich_module_is_not_an_aggregator_and_vice_versa() {
    let host = WasmHost::new(None).unwrap();
    let enrich = host.compile_file(&module_path("identity")).unwrap();
    let err = AggregateModule::new(
        &host,
        ModuleSpec {
            stage: "id",
            module: enrich,
            config: "{}".into(),
            limits: LIMITS,
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            WasmError::WrongWorld {
                world: "aggregator",
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("does not export `weir:stage/aggregate@0.1.0`")
            && message.contains("weir:stage/enrich@0.1.0"),
        "{message}"
    );

    let aggregate = host.compile_file(&module_path("count_sum")).unwrap();
    let err = EnrichModule::new(
        &host,
        ModuleSpec {
            stage: "cs",
            module: aggregate,
            config: "{}".into(),
            limits: LIMITS,
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            WasmError::WrongWorld {
                world: "enricher",
                ..
            }
        ),
        "{err}"
    );
}
