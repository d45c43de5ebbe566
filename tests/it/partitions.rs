//! Many partitions per instance: one `weir run` serves 64 partitions on two lane workers; every
//! record is delivered in order and committed, a hot reload reaches every partition, the process
//! runs a bounded number of threads, not one per partition, sleeps when idle, and a rebalance to a second
//! instance loses and repeats nothing.

use std::time::Duration;

use crate::harness::{
    Rec, Weir, by_partition, committed, consume, create_topic, module, produce, source_table,
    unique, write_pipeline,
};

const PARTITIONS: i32 = 64;
const PER_ROUND: usize = 20;

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

fn version_of(r: &Rec) -> String {
    let versions: Vec<_> = r.headers.iter().filter(|(k, _)| k == "version").collect();
    assert_eq!(versions.len(), 1, "exactly one version marks {r:?}");
    String::from_utf8_lossy(versions[0].1.as_deref().unwrap()).into_owned()
}

/// The pipeline: `tag` marks every record with header `version` = `version`.
fn pipeline(input: &str, group: &str, output: &str, dlq: &str, version: &str) -> String {
    format!(
        r#"name = "partitions"
{source}lane_workers = 2

[[stage]]
name = "tag"
module = "{module}"
config = {{ header = "version", value = "{version}" }}
output = "{output}"

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"
"#,
        source = source_table(&[input], group),
        module = module("tag").display(),
    )
}

fn round(from: usize) -> Vec<Rec> {
    (0..PARTITIONS)
        .flat_map(|p| (from..from + PER_ROUND).map(move |s| seq_record(p, s)))
        .collect()
}

fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// CPU time so far of process `pid`'s lane workers (threads `weir-lanes-N`), from `schedstat`
/// (nanoseconds).
fn workers_cpu_time(pid: u32) -> Duration {
    let mut ns = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("schedstat")),
        ) else {
            continue;
        };
        if name.starts_with("weir-lanes-") {
            ns += stat
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    Duration::from_nanos(ns)
}

#[test]
fn one_instance_serves_64_partitions_delivers_commits_and_reloads_them_all() {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq, group) = (unique("in"), unique("out"), unique("dlq"), unique("g"));
    create_topic(&input, PARTITIONS);
    create_topic(&output, PARTITIONS);
    create_topic(&dlq, 1);
    let (dir, path) = write_pipeline(&pipeline(&input, &group, &output, &dlq, "v0"));

    produce(&input, &round(0));
    let weir = Weir::run(&path);
    let first = consume(&output, round(0).len(), Duration::from_secs(120));
    assert_eq!(
        first.len(),
        round(0).len(),
        "every record of the first round"
    );
    assert!(first.iter().all(|r| version_of(r) == "v0"));
    let n = threads(weir.pid());
    assert!(
        n < PARTITIONS as usize,
        "{n} threads for {PARTITIONS} partitions: lanes share workers"
    );

    // A reload reaches every partition: records produced after it is applied carry v1.
    let tmp = dir.path().join(".pipeline.toml.tmp");
    std::fs::write(&tmp, pipeline(&input, &group, &output, &dlq, "v1")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    weir.wait_for_logs("Reload applied", 1, Duration::from_secs(60));
    produce(&input, &round(PER_ROUND));
    let total = 2 * round(0).len();
    let out = consume(&output, total, Duration::from_secs(120));
    assert_eq!(out.len(), total, "every record came out once");
    let parts = by_partition(&out);
    assert_eq!(parts.len(), PARTITIONS as usize);
    for (partition, recs) in parts {
        let seqs: Vec<usize> = recs.iter().map(|r| seq_of(r)).collect();
        assert_eq!(
            seqs,
            (0..2 * PER_ROUND).collect::<Vec<_>>(),
            "partition {partition}: no gap, no duplicate, in order"
        );
        for r in recs {
            let expected = if seq_of(r) < PER_ROUND { "v0" } else { "v1" };
            assert_eq!(version_of(r), expected, "partition {partition}: {r:?}");
        }
    }

    // With nothing to read, the lane workers sleep (under 1 % of a core): they wake ten times a
    // second and look at 64 empty queues. (The client's own threads, with this test's 50 ms fetch waits and
    // statistics every second, are `idle`'s business.)
    std::thread::sleep(Duration::from_secs(2));
    let (before, t0) = (workers_cpu_time(weir.pid()), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let spent = workers_cpu_time(weir.pid()) - before;
    let share = spent.as_secs_f64() / t0.elapsed().as_secs_f64();
    assert!(
        share < 0.01,
        "idle lane workers with {PARTITIONS} partitions: {share:.5} of a core"
    );

    // A clean stop commits every partition's offset to its end.
    let end = 2 * PER_ROUND as i64;
    let log = weir.terminate();
    assert!(log.iter().any(|l| l.contains("Pipeline stopped")));
    for p in 0..PARTITIONS {
        assert_eq!(committed(&group, &input, p), Some(end), "partition {p}");
    }
}

#[test]
fn a_second_instance_takes_half_of_64_partitions_and_nothing_is_lost_or_repeated() {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq, group) = (unique("in"), unique("out"), unique("dlq"), unique("g"));
    create_topic(&input, PARTITIONS);
    create_topic(&output, PARTITIONS);
    create_topic(&dlq, 1);
    let (_dir, path) = write_pipeline(&pipeline(&input, &group, &output, &dlq, "v0"));

    produce(&input, &round(0));
    let first = Weir::run(&path);
    let out = consume(&output, round(0).len(), Duration::from_secs(120));
    assert_eq!(out.len(), round(0).len());

    // A second member joins: the first drains and commits what it gives away, each resumes
    // from the committed offsets.
    let second = Weir::run(&path);
    second.wait_assigned();
    first.wait_for_log("Partitions revoked", Duration::from_secs(60));
    produce(&input, &round(PER_ROUND));
    let total = 2 * round(0).len();
    let out = consume(&output, total, Duration::from_secs(120));
    first.terminate();
    second.terminate();
    let out_all =
        crate::harness::consume_all(&output, Duration::from_secs(2), Duration::from_secs(60));
    assert!(out.len() >= total);
    let parts = by_partition(&out_all);
    assert_eq!(parts.len(), PARTITIONS as usize);
    for (partition, recs) in parts {
        let seqs: Vec<usize> = recs.iter().map(|r| seq_of(r)).collect();
        assert_eq!(
            seqs,
            (0..2 * PER_ROUND).collect::<Vec<_>>(),
            "partition {partition}: no gap, no duplicate, in order"
        );
    }
    let end = 2 * PER_ROUND as i64;
    for p in 0..PARTITIONS {
        assert_eq!(committed(&group, &input, p), Some(end), "partition {p}");
    }
}
