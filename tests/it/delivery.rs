//! Nothing is lost: not when the runtime is killed mid-stream, not when partitions move between
//! two runtimes of one group. Duplicates are allowed (at-least-once), gaps are not. A lane that
//! cannot go on stops the process with exit status 1, without committing past it.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::{
    Rec, Weir, committed, create_topic, create_topic_with, module, one_stage_pipeline, produce,
    source_table, unique, write_pipeline,
};
use crate::tail::Tail;

/// An identity pipeline from `input` to `output`.
fn identity_pipeline(
    input: &str,
    output: &str,
    dlq: &str,
    group: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    write_pipeline(&one_stage_pipeline(
        "delivery",
        &source_table(&[input], group),
        "identity",
        &module("identity"),
        "",
        output,
        dlq,
    ))
}

/// Records `first..first+n` spread over `partitions`; each value is a unique id.
fn numbered(first: usize, n: usize, partitions: i32) -> Vec<Rec> {
    (first..first + n)
        .map(|i| Rec::new(i as i32 % partitions, &format!("k{i}"), format!("id-{i}")))
        .collect()
}

fn ids(records: &[Rec]) -> BTreeSet<String> {
    records.iter().map(Rec::value_str).collect()
}

fn missing(want: usize, got: &BTreeSet<String>) -> Vec<usize> {
    (0..want)
        .filter(|i| !got.contains(&format!("id-{i}")))
        .take(20)
        .collect()
}

#[test]
fn kill_9_mid_stream_then_restart_loses_nothing() {
    let _broker = crate::harness::exclusive();
    const N: usize = 100_000;
    let (input, output, dlq) = (unique("in"), unique("out"), unique("dlq"));
    create_topic(&input, 3);
    create_topic(&output, 3);
    create_topic(&dlq, 1);
    let (_dir, pipeline) = identity_pipeline(&input, &output, &dlq, &unique("group"));
    produce(&input, &numbered(0, N, 3));

    let tail = Tail::start(&output);
    let first = Weir::run(&pipeline);
    tail.wait_until("a fifth of the output", Duration::from_secs(120), |r| {
        r.len() >= N / 5
    });
    first.kill9();
    let at_kill = tail.len();
    assert!(
        at_kill < N,
        "the kill came too late to test anything ({at_kill} records out)"
    );

    let second = Weir::run(&pipeline);
    tail.wait_until(
        "every input id in the output",
        Duration::from_secs(180),
        |r| r.len() >= N && ids(r).len() == N,
    );
    second.terminate();
    let out = tail.snapshot();
    let got = ids(&out);
    assert_eq!(
        got.len(),
        N,
        "missing ids, first few: {:?}",
        missing(N, &got)
    );
    eprintln!(
        "kill -9 after {at_kill} outputs: {} outputs for {N} inputs ({} duplicates)",
        out.len(),
        out.len() - N
    );
}

#[test]
fn a_rebalance_between_two_runtimes_loses_nothing() {
    let _broker = crate::harness::exclusive();
    const HALF: usize = 20_000;
    const LAST: usize = 5_000;
    const TOTAL: usize = 2 * HALF + LAST;
    let (input, output, dlq) = (unique("in"), unique("out"), unique("dlq"));
    create_topic(&input, 4);
    create_topic(&output, 4);
    create_topic(&dlq, 1);
    let (_dir, pipeline) = identity_pipeline(&input, &output, &dlq, &unique("group"));
    produce(&input, &numbered(0, HALF, 4));

    let tail = Tail::start(&output);
    let a = Weir::run(&pipeline);
    tail.wait_until(
        "some output from the first runtime",
        Duration::from_secs(120),
        |r| r.len() >= 2_000,
    );
    // A second member joins: partitions are revoked from the first and spread over both.
    let b = Weir::run(&pipeline);
    b.wait_assigned();
    produce(&input, &numbered(HALF, HALF, 4));
    tail.wait_until("the first half", Duration::from_secs(120), |r| {
        ids(r).len() >= HALF + HALF / 2
    });
    // The first member leaves cleanly: the second is assigned every partition, and records
    // produced from then on can only come out through it.
    a.terminate();
    b.wait_for_logs("Partitions assigned", 2, Duration::from_secs(60));
    produce(&input, &numbered(2 * HALF, LAST, 4));
    tail.wait_until(
        "every input id in the output",
        Duration::from_secs(180),
        |r| ids(r).len() == TOTAL,
    );
    b.terminate();
    let out = tail.snapshot();
    let got = ids(&out);
    assert_eq!(
        got.len(),
        TOTAL,
        "missing ids, first few: {:?}",
        missing(TOTAL, &got)
    );
    eprintln!(
        "rebalance: {} outputs for {TOTAL} inputs ({} duplicates)",
        out.len(),
        out.len() - TOTAL
    );
}

/// Exit status 1: a fatal error at run time. Here an aggregate stage's changelog holds a
/// checkpoint that does not decode, so the lane that restores from it cannot start; the process
/// says why, fails, and commits nothing for the partition.
#[test]
fn a_lane_that_cannot_go_on_ends_weir_run_with_status_1() {
    let (input, output, dlq) = (unique("fatal-in"), unique("fatal-out"), unique("fatal-dlq"));
    create_topic(&input, 1);
    create_topic(&output, 1);
    create_topic(&dlq, 1);
    let name = unique("fatal");
    let changelog = format!("{name}.count.changelog");
    create_topic_with(&changelog, 1, &[("cleanup.policy", "compact")]);
    // The meta record's key of source partition 0: topic, 0, partition (big-endian), kind 0.
    let mut key = input.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&0i32.to_be_bytes());
    key.push(0);
    let mut garbage = Rec::new(0, "", "not a checkpoint");
    garbage.key = Some(key);
    produce(&changelog, &[garbage]);
    let group = unique("group");
    produce(
        &input,
        &[Rec::new(0, "k", r#"{"k":"a","ts":1,"amount":1}"#)],
    );

    let (_dir, file) = write_pipeline(&format!(
        r#"name = "{name}"
{source}
[[stage]]
name = "count"
kind = "aggregate"
module = "{module}"
config = {{ field = "amount" }}
key = "/k"
time = "/ts"
window = {{ tumbling = "10s" }}
output = "{output}"

[dead_letter]
topic = "{dlq}"
"#,
        source = source_table(&[&input], &group),
        module = module("count_sum").display(),
    ));
    let (status, log) = Weir::run(&file).wait_exit(Duration::from_secs(90));
    assert_eq!(
        status.code(),
        Some(1),
        "a fatal error at run time: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("cannot restore") && l.contains("does not decode")),
        "the log says why: {log:#?}"
    );
    assert_eq!(committed(&group, &input, 0), None, "nothing was committed");
}
