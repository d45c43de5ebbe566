//! The JSON enrich stage through the wasm host versus the same logic compiled natively, and the
//! identity stage through the host, which isolates what crossing the boundary costs (host encode,
//! call, guest decode and encode, host decode), next to the floor any stage pays: building the
//! outcomes `Stage::process` returns. Results and targets: BENCHMARKS.md.
//!
//! Needs the example modules: run `make wasm` first. Run with `cargo bench -p weir-tests --bench
//! enrich`; under `cargo test` each benchmark runs once, as a smoke test.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir_core::{Outputs, Record, Stage, StageOutcome};
use weir_example_json_enrich::enrich_value;
use weir_wasm::{EnrichModule, Limits, ModuleSpec, WasmHost};

/// The batch sizes measured: one record per call, a typical batch, a large one.
const BATCH_SIZES: [usize; 3] = [1, 64, 1024];
/// The enrich stage's configuration, as in the demo pipeline.
const FIELD: &str = "url";
const TOPIC: &str = "clicks";

/// `pipelines/modules/<name>.wasm`, or a panic that says how to build it.
fn module_path(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pipelines/modules")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `make wasm` first",
        path.display()
    );
    path
}

fn load(host: &WasmHost, stage: &str, name: &str, config: &str) -> Arc<EnrichModule> {
    let compiled = host
        .compile_file(&module_path(name))
        .unwrap_or_else(|e| panic!("cannot compile {name}: {e}"));
    let limits = Limits {
        memory: 64 << 20,
        timeout: Duration::from_secs(5),
        recycle_after: None,
        recycle_memory: None,
        fuel: None,
    };
    EnrichModule::new(
        host,
        ModuleSpec {
            stage,
            module: compiled,
            config: config.to_owned(),
            limits,
        },
    )
    .unwrap_or_else(|e| panic!("cannot load {name}: {e}"))
}

/// `n` realistic clicks (about 220 bytes each with key and header), with varying ids, products,
/// sections and timestamps.
fn clicks(n: usize) -> Vec<Record> {
    const SECTIONS: [&str; 4] = ["products", "cart", "search", "account"];
    (0..n)
        .map(|i| {
            let user = format!("u{}", 100 + (i * 7919) % 9000);
            let section = SECTIONS[i % SECTIONS.len()];
            let ts = 1_700_000_000_123_i64 + i as i64 * 1_237;
            let value = format!(
                r#"{{"user":"{user}","url":"https://shop.example/{section}/{}?ref=mail&utm_source=news","ts":{ts},"ua":"Mozilla/5.0 (X11; Linux x86_64)"}}"#,
                100 + i % 900
            );
            // W3C traceparent: 55 bytes.
            let trace = format!(
                "00-{:032x}-{:016x}-01",
                (i as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            );
            debug_assert_eq!(trace.len(), 55);
            Record {
                offset: i as i64,
                timestamp: Some(ts),
                key: Some(user.into()),
                value: Some(value.into()),
                headers: [weir_core::Header::new("traceparent", Some(trace.as_bytes()))]
                    .into_iter()
                    .collect(),
            }
        })
        .collect()
}

/// The native baseline: the per-record work the guest does, without the boundary. The guest's SDK
/// hands the stage an owned record (key and headers shared, not copied), the stage replaces the
/// value by `enrich_value`'s, and the output record goes back with the input's timestamp.
fn enrich_native(records: &[Record]) -> Vec<Result<Outputs, weir_sdk::Error>> {
    records
        .iter()
        .map(|r| {
            enrich_value(r.value.as_deref().unwrap_or_default(), FIELD).map(|value| {
                Outputs::Records(vec![Record {
                    offset: -1,
                    timestamp: r.timestamp,
                    key: r.key.clone(),
                    value: Some(value.into()),
                    headers: r.headers.clone(),
                }])
            })
        })
        .collect()
}

/// The floor under any stage, wasm or not: the outcomes `Stage::process` must return for an
/// identity stage (one "the input, unchanged" per input), built and dropped.
fn identity_native(records: &[Record]) -> Vec<StageOutcome> {
    records.iter().map(|_| Ok(Outputs::Input)).collect()
}

fn benches(c: &mut Criterion) {
    let host = WasmHost::new(None).expect("wasm engine");
    let enrich = load(&host, "enrich", "json_enrich", r#"{"field":"url"}"#);
    let identity = load(&host, "identity", "identity", "");
    let mut enrich_wasm = enrich.instance().expect("enrich instance");
    let mut identity_wasm = identity.instance().expect("identity instance");

    // The two sides must do the same work: check that they answer the same before timing them.
    let sample = clicks(BATCH_SIZES[BATCH_SIZES.len() - 1]);
    let native: Vec<StageOutcome> = enrich_native(&sample)
        .into_iter()
        .map(|o| Ok(o.expect("native enrich failed")))
        .collect();
    assert_eq!(enrich_wasm.process(TOPIC, 0, &sample), native);
    assert_eq!(
        identity_wasm.process(TOPIC, 0, &sample),
        identity_native(&sample)
    );

    let mut group = c.benchmark_group("enrich");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in BATCH_SIZES {
        let records = clicks(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("native", n), &records, |b, records| {
            b.iter(|| enrich_native(black_box(records)));
        });
        group.bench_with_input(BenchmarkId::new("wasm", n), &records, |b, records| {
            b.iter(|| enrich_wasm.process(TOPIC, 0, black_box(records)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("identity");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in BATCH_SIZES {
        let records = clicks(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("native", n), &records, |b, records| {
            b.iter(|| identity_native(black_box(records)));
        });
        group.bench_with_input(BenchmarkId::new("wasm", n), &records, |b, records| {
            b.iter(|| identity_wasm.process(TOPIC, 0, black_box(records)));
        });
    }
    group.finish();
}

criterion_group!(enrich, benches);
criterion_main!(enrich);
