//! Hot reload on a live pipeline: module and config changes swap in at a batch boundary without
//! losing, repeating or reordering a record; a broken version is rejected while the running one
//! keeps serving; SIGHUP triggers the same reload when watching is off.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::{
    Rec, Weir, by_partition, consume, create_topic, http_get, metric_value, module, produce,
    source_table, unique, weir_cli_env,
};

/// A pipeline directory: `pipeline.toml` running `modules/tag.wasm`, tagging every record with
/// header `version` = the config's value.
struct Dir {
    dir: tempfile::TempDir,
    input: String,
    output: String,
    dlq: String,
    group: String,
}

impl Dir {
    fn new(partitions: i32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("modules")).unwrap();
        let d = Self {
            dir,
            input: unique("in"),
            output: unique("out"),
            dlq: unique("dlq"),
            group: unique("group"),
        };
        create_topic(&d.input, partitions);
        create_topic(&d.output, partitions);
        create_topic(&d.dlq, 1);
        d.install("tag");
        d.write("v0");
        d
    }

    fn pipeline(&self) -> PathBuf {
        self.dir.path().join("pipeline.toml")
    }

    /// Replaces the stage's module file by `name`'s, atomically (as deploy tools do).
    fn install(&self, name: &str) {
        let tmp = self.dir.path().join("modules/.tag.wasm.tmp");
        std::fs::copy(module(name), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("modules/tag.wasm")).unwrap();
    }

    /// Rewrites the pipeline file with the stage tagging records `version`, atomically.
    fn write(&self, version: &str) {
        self.write_config(&format!(r#"{{ header = "version", value = "{version}" }}"#));
    }

    /// Rewrites the pipeline file with `config` as the stage's config, atomically.
    fn write_config(&self, config: &str) {
        let toml = format!(
            r#"name = "reload"
{source}
[[stage]]
name = "tag"
module = "modules/tag.wasm"
config = {config}
output = "{output}"

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"

[[test]]
name = "tags a record, even one a broken module would trap on"
input = [{{ value = '{{"url":"https://a.example/poison"}}' }}]
expect = [{{ stage = "tag", count = 1 }}]
"#,
            source = source_table(&[&self.input], &self.group),
            output = self.output,
            dlq = self.dlq,
        );
        let tmp = self.dir.path().join(".pipeline.toml.tmp");
        std::fs::write(&tmp, toml).unwrap();
        std::fs::rename(&tmp, self.pipeline()).unwrap();
    }
}

fn seq_record(partition: i32, seq: usize) -> Rec {
    Rec::new(
        partition,
        &format!("k{partition}-{seq}"),
        format!(r#"{{"seq":{seq}}}"#),
    )
}

fn seq_of(r: &Rec) -> usize {
    let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
    v["seq"].as_u64().unwrap() as usize
}

/// The version number of an output's one `version` header.
fn version_of(r: &Rec) -> u32 {
    let versions: Vec<_> = r.headers.iter().filter(|(k, _)| k == "version").collect();
    assert_eq!(versions.len(), 1, "exactly one version marks {r:?}");
    let v = String::from_utf8_lossy(versions[0].1.as_deref().unwrap()).into_owned();
    v.trim_start_matches('v').parse().unwrap()
}

#[test]
fn swaps_under_a_continuous_stream_lose_repeat_and_reorder_nothing() {
    let _broker = crate::harness::exclusive();
    let partitions = 3;
    let per_partition = 1500;
    let swaps = 6;
    let d = Dir::new(partitions);
    let weir = Weir::run(&d.pipeline());
    weir.wait_assigned();

    // Produce a steady stream in small chunks while the module is swapped again and again.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let input = d.input.clone();
        let producing = Arc::clone(&producing);
        std::thread::spawn(move || {
            for chunk in 0..per_partition / 25 {
                let recs: Vec<Rec> = (0..partitions)
                    .flat_map(|p| (chunk * 25..(chunk + 1) * 25).map(move |s| seq_record(p, s)))
                    .collect();
                produce(&input, &recs);
                std::thread::sleep(Duration::from_millis(60));
            }
            producing.store(false, Ordering::Relaxed);
        })
    };
    for v in 1..=swaps {
        std::thread::sleep(Duration::from_millis(500));
        d.write(&format!("v{v}"));
        weir.wait_for_logs("Reload applied", v as usize, Duration::from_secs(30));
    }
    producer.join().unwrap();
    assert!(!producing.load(Ordering::Relaxed));

    let total = partitions as usize * per_partition;
    let out = consume(&d.output, total, Duration::from_secs(120));
    assert_eq!(out.len(), total, "every record came out once");
    let mut versions_seen = BTreeMap::new();
    for (partition, recs) in by_partition(&out) {
        let seqs: Vec<usize> = recs.iter().map(|r| seq_of(r)).collect();
        assert_eq!(
            seqs,
            (0..per_partition).collect::<Vec<_>>(),
            "partition {partition}: no gap, no duplicate, in order"
        );
        let versions: Vec<u32> = recs.iter().map(|r| version_of(r)).collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "partition {partition}: each swap happens at one point: {versions:?}"
        );
        for v in versions {
            *versions_seen.entry(v).or_insert(0) += 1;
        }
    }
    assert!(
        versions_seen.len() >= 3,
        "swaps happened while records flowed: {versions_seen:?}"
    );
    let (_, metrics) = http_get(weir.admin_addr(), "/metrics");
    assert_eq!(
        metric_value(&metrics, "weir_reloads_total", &[("result", "applied")]),
        Some(swaps as f64),
        "{metrics}"
    );
    assert!(metric_value(&metrics, "weir_swap_pause_seconds_count", &[]).unwrap() >= 1.0);
    weir.terminate();
}

#[test]
fn a_broken_version_is_rejected_and_the_running_one_keeps_serving() {
    let _broker = crate::harness::exclusive();
    let d = Dir::new(1);
    let weir = Weir::run(&d.pipeline());
    weir.wait_assigned();
    produce(&d.input, &[seq_record(0, 0)]);
    assert_eq!(
        version_of(&consume(&d.output, 1, Duration::from_secs(60))[0]),
        0
    );

    // A module of another world; one that refuses the stage's config; one that takes the
    // config but fails the pipeline's own test case; a config the running module refuses; a
    // file that does not parse. Each is rejected with its reason.
    d.install("wrong_world");
    weir.wait_for_logs("Reload rejected", 1, Duration::from_secs(30));
    assert!(weir.logged("does not export `weir:stage/enrich@"));
    d.install("trap");
    weir.wait_for_logs("Reload rejected", 2, Duration::from_secs(30));
    assert!(weir.logged("refused its configuration"));
    d.write_config(r#"{ trap_on = "poison" }"#);
    weir.wait_for_log("fails the pipeline's tests", Duration::from_secs(30));
    d.install("tag");
    d.write_config(r#"{ value = "no header" }"#);
    weir.wait_for_log("missing field `header`", Duration::from_secs(30));
    let rejected = weir.count_logged("Reload rejected");
    std::fs::write(d.pipeline(), "name = [").unwrap();
    weir.wait_for_logs("Reload rejected", rejected + 1, Duration::from_secs(30));
    assert!(
        rejected + 1 >= 5,
        "{rejected} rejections before the unparsable file"
    );
    assert_eq!(weir.count_logged("Reload applied"), 0);

    // Records keep flowing, through the version that was running all along.
    produce(
        &d.input,
        &(1..50).map(|s| seq_record(0, s)).collect::<Vec<_>>(),
    );
    let out = consume(&d.output, 50, Duration::from_secs(60));
    assert_eq!(out.len(), 50);
    assert!(out.iter().all(|r| version_of(r) == 0));
    let (_, metrics) = http_get(weir.admin_addr(), "/metrics");
    assert!(
        metric_value(&metrics, "weir_reloads_total", &[("result", "rejected")]).unwrap() >= 5.0,
        "{metrics}"
    );

    // A good version after all that is taken.
    d.write("v1");
    weir.wait_for_logs("Reload applied", 1, Duration::from_secs(30));
    produce(&d.input, &[seq_record(0, 50)]);
    let out = consume(&d.output, 51, Duration::from_secs(60));
    assert_eq!(version_of(out.last().unwrap()), 1);
    weir.terminate();
}

#[test]
fn sighup_and_weir_reload_trigger_a_reload_when_watching_is_off() {
    let _broker = crate::harness::exclusive();
    let d = Dir::new(1);
    let weir = Weir::run_with_env(
        &d.pipeline(),
        &["--no-watch"],
        &[("WEIR_ADMIN_TOKEN", "t0k")],
    );
    weir.wait_assigned();
    d.write("v1");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !weir.logged("Reload"),
        "no watcher: the change is not picked up"
    );
    weir.signal(libc::SIGHUP);
    weir.wait_for_log("Reload applied", Duration::from_secs(30));
    produce(&d.input, &[seq_record(0, 0)]);
    assert_eq!(
        version_of(&consume(&d.output, 1, Duration::from_secs(60))[0]),
        1
    );

    // The admin API does the same, for a caller with the token only.
    d.write("v2");
    let admin = weir.admin_addr().to_string();
    let (ok, _, err) = weir_cli_env(
        &["reload", "--admin", &admin],
        &[("WEIR_ADMIN_TOKEN", "wrong")],
    );
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, out, err) = weir_cli_env(
        &["reload", "--admin", &admin],
        &[("WEIR_ADMIN_TOKEN", "t0k")],
    );
    assert!(ok, "{out}{err}");
    weir.wait_for_logs("Reload applied", 2, Duration::from_secs(30));
    produce(&d.input, &[seq_record(0, 1)]);
    assert_eq!(
        version_of(
            consume(&d.output, 2, Duration::from_secs(60))
                .last()
                .unwrap()
        ),
        2
    );
    weir.terminate();
}
