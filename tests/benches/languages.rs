//! The JSON enrich stage of every language through the wasm host on the same input: records per
//! second (criterion, one batch of 64 realistic clicks per iteration), then module size and cold
//! start (compile, and load from the on-disk cache; instantiate: a new instance of a loaded
//! module, which runs the guest's start-up and its `init`). Results: BENCHMARKS.md.
//!
//! Needs the example modules: `make wasm languages`. Run with `cargo bench -p weir-tests --bench
//! languages`. Under `cargo test` it only checks that every module answers like the Rust one on
//! a few records (compiling every guest in a debug build would take minutes).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use weir_core::{Record, Stage};
use weir_wasm::{EnrichModule, Limits, ModuleSpec, WasmHost};

/// (language, module): the same stage in every language.
const LANGUAGES: [(&str, &str); 6] = [
    ("rust", "json_enrich"),
    ("c", "json_enrich_c"),
    ("zig", "json_enrich_zig"),
    ("go", "json_enrich_go"),
    ("python", "json_enrich_python"),
    ("js", "json_enrich_js"),
];
const BATCH: usize = 64;
const CONFIG: &str = r#"{"field":"url"}"#;
const TOPIC: &str = "clicks";

fn module_path(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pipelines/modules")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `make wasm languages` first",
        path.display()
    );
    path
}

fn limits() -> Limits {
    Limits {
        memory: 256 << 20,
        timeout: Duration::from_secs(30),
        recycle_after: None,
        recycle_memory: None,
        fuel: None,
    }
}

fn load(host: &WasmHost, name: &str) -> Arc<EnrichModule> {
    let compiled = host
        .compile_file(&module_path(name))
        .unwrap_or_else(|e| panic!("cannot compile {name}: {e}"));
    EnrichModule::new(
        host,
        ModuleSpec {
            stage: "enrich",
            module: compiled,
            config: CONFIG.to_owned(),
            limits: limits(),
        },
    )
    .unwrap_or_else(|e| panic!("cannot load {name}: {e}"))
}

/// `n` realistic clicks (about 220 bytes each with key and header), as in the enrich bench.
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
            let trace = format!(
                "00-{:032x}-{:016x}-01",
                (i as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            );
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

/// The values a stage made of `records`, as JSON (every language must agree with Rust).
fn outputs(stage: &mut dyn Stage, records: &[Record]) -> Vec<serde_json::Value> {
    stage
        .process(TOPIC, 0, records)
        .into_iter()
        .zip(records)
        .map(|(o, input)| {
            let out = o.expect("the stage refused a click");
            let first = out.iter(input).next().expect("the stage dropped a click");
            serde_json::from_slice(first.value.as_deref().unwrap()).unwrap()
        })
        .collect()
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// Module size, compile time (no cache), load time from the disk cache (a new engine, as after a
/// restart) and instantiation time, per language.
fn cold_start() {
    let cache = tempfile_dir();
    println!("\n| language | module size | compile (uncached) | load from cache | instantiate |");
    println!("|---|---|---|---|---|");
    for (lang, name) in LANGUAGES {
        let path = module_path(name);
        let size = std::fs::metadata(&path).unwrap().len();
        // Uncached: a new engine without a disk cache each time.
        let compile: Vec<Duration> = (0..3)
            .map(|_| {
                let host = WasmHost::new(None).unwrap();
                let t = Instant::now();
                host.compile_file(&path).unwrap();
                t.elapsed()
            })
            .collect();
        // Cached: the first engine writes the artefact, the next ones (a restart) load it.
        WasmHost::new(Some(cache.clone()))
            .unwrap()
            .compile_file(&path)
            .unwrap();
        let cached: Vec<Duration> = (0..5)
            .map(|_| {
                let host = WasmHost::new(Some(cache.clone())).unwrap();
                let t = Instant::now();
                host.compile_file(&path).unwrap();
                t.elapsed()
            })
            .collect();
        let host = WasmHost::new(Some(cache.clone())).unwrap();
        let module = load(&host, name);
        let instantiate: Vec<Duration> = (0..20)
            .map(|_| {
                let t = Instant::now();
                black_box(module.instance().unwrap());
                t.elapsed()
            })
            .collect();
        println!(
            "| {lang} | {:.1} KiB | {} ms | {} ms | {} ms |",
            size as f64 / 1024.0,
            ms(median(compile)),
            ms(median(cached)),
            ms(median(instantiate)),
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-bench-languages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let host = WasmHost::new(Some(
        WasmHost::default_cache_dir().unwrap_or_else(tempfile_dir),
    ))
    .expect("wasm engine");
    let records = clicks(BATCH);
    let languages: &[(&str, &str)] = if bench { &LANGUAGES } else { &LANGUAGES[..2] };

    // Every language must do the same work: check the answers before timing.
    let reference = outputs(
        &mut load(&host, "json_enrich").instance().unwrap(),
        &records,
    );
    let mut stages = Vec::new();
    for &(lang, name) in languages {
        let mut instance = load(&host, name).instance().unwrap();
        assert_eq!(outputs(&mut instance, &records), reference, "{lang}");
        stages.push((lang, instance));
    }
    if !bench {
        // The other modules must exist too.
        for (_, name) in LANGUAGES {
            module_path(name);
        }
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("languages");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BATCH as u64));
    for (lang, instance) in &mut stages {
        group.bench_with_input(BenchmarkId::new(*lang, BATCH), &records, |b, records| {
            b.iter(|| instance.process(TOPIC, 0, black_box(records)));
        });
    }
    group.finish();
    c.final_summary();
    cold_start();
}
