//! Recycling of aggregate instances (`count_sum`, built by `make wasm`): at `recycle_after`
//! records and at `recycle_memory` bytes, an instance is replaced between calls, and since the
//! accumulators live with the caller, nothing is lost: the windows come out as without it.

use std::time::Duration;

use weir_core::Record;
use weir_wasm::{AggregateInstance, AggregateModule, Limits, ModuleSpec, WasmHost};

use crate::module_path;

const LIMITS: Limits = Limits {
    memory: 64 << 20,
    timeout: Duration::from_secs(5),
    recycle_after: None,
    recycle_memory: None,
    fuel: None,
};

fn instance(limits: Limits) -> AggregateInstance {
    let host = WasmHost::new(None).unwrap();
    let compiled = host.compile_file(&module_path("count_sum")).unwrap();
    let module = AggregateModule::new(
        &host,
        ModuleSpec {
            stage: "count-sum",
            module: compiled,
            config: "{}".into(),
            limits,
        },
    )
    .unwrap();
    module.instance().unwrap()
}

fn amount(offset: i64) -> Record {
    Record {
        offset,
        timestamp: Some(1_000 + offset),
        value: Some(format!(r#"{{"amount":{offset}}}"#).into_bytes().into()),
        ..Record::default()
    }
}

/// Folds 0..30 into two keys' accumulators, three records per group per call, merges them and
/// emits the result; `after_each_add` sees the instance after every `add`.
fn run(
    agg: &mut AggregateInstance,
    mut after_each_add: impl FnMut(&AggregateInstance, usize),
) -> String {
    let mut acc = [agg.create().unwrap(), agg.create().unwrap()];
    let records: Vec<Record> = (0..30).map(amount).collect();
    for (call, chunk) in records.chunks(6).enumerate() {
        let out = agg
            .add(&[(acc[0].clone(), &chunk[..3]), (acc[1].clone(), &chunk[3..])])
            .unwrap();
        let [a, b] = <[_; 2]>::try_from(out).unwrap();
        acc = [a.unwrap(), b.unwrap()];
        after_each_add(agg, call);
    }
    let merged = agg.merge(&acc[0], &acc[1]).unwrap().unwrap();
    let out = agg.emit(b"k", 0, 60_000, &merged).unwrap().unwrap();
    String::from_utf8(out[0].value.as_deref().unwrap().to_vec()).unwrap()
}

const WANT: &str = r#"{"count":30,"sum":435.0}"#;

#[test]
fn an_aggregate_instance_is_recycled_after_recycle_after_records() {
    let mut agg = instance(Limits {
        recycle_after: Some(10),
        ..LIMITS
    });
    // Six records per call: the instance has seen 12 records after the second call, so it is
    // replaced before the third, then before the fifth.
    let mut seen = Vec::new();
    let result = run(&mut agg, |agg, _| seen.push(agg.recycled()));
    assert_eq!(result, WANT);
    assert_eq!(seen, [0, 0, 1, 1, 2]);
    assert_eq!(agg.instantiated(), 3);
}

#[test]
fn an_aggregate_instance_is_recycled_at_its_memory_threshold() {
    // Below what any instance holds: replaced after every call, and nothing is lost.
    let mut agg = instance(Limits {
        recycle_memory: Some(1 << 20),
        ..LIMITS
    });
    let calls_before_add = agg.recycled();
    let mut seen = Vec::new();
    let result = run(&mut agg, |agg, _| seen.push(agg.recycled()));
    assert_eq!(result, WANT);
    // Two creates, then five adds, a merge and an emit, each followed by a fresh instance.
    assert_eq!(calls_before_add, 0);
    assert_eq!(seen, [3, 4, 5, 6, 7]);
    assert_eq!(agg.recycled(), 9);

    // Far above what an instance holds: never replaced.
    let mut agg = instance(Limits {
        recycle_memory: Some(60 << 20),
        ..LIMITS
    });
    assert_eq!(run(&mut agg, |_, _| {}), WANT);
    assert_eq!(agg.recycled(), 0);
    assert_eq!(agg.instantiated(), 1);
}
