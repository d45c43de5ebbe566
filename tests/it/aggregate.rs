//! Aggregate stages against the broker: window results equal a reference computed here, under
//! disorder and lateness, a crash, a failing module and a rebalance.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::harness::{
    Rec, Weir, consume, consume_all, create_topic, module, produce, source_table, unique,
    write_pipeline,
};

/// A window result: (partition, key, start, end, count, sum).
type Result = (i32, String, i64, i64, u64, i64);

/// Event-time windows as the test's reference computes them.
#[derive(Debug, Clone, Copy)]
enum Spec {
    Fixed { size: i64, every: i64 },
    Session { gap: i64 },
}

impl Spec {
    fn toml(self) -> String {
        match self {
            Spec::Fixed { size, every } if size == every => {
                format!(r#"window = {{ tumbling = "{size}ms" }}"#)
            }
            Spec::Fixed { size, every } => {
                format!(r#"window = {{ hopping = {{ size = "{size}ms", every = "{every}ms" }} }}"#)
            }
            Spec::Session { gap } => format!(r#"window = {{ session = {{ gap = "{gap}ms" }} }}"#),
        }
    }
}

/// An input: (key, event time, amount).
type Input = (String, i64, i64);

/// A closed window of one partition: (key, start, end, count, sum).
type Closed = (String, i64, i64, u64, i64);

/// What a partition's records become: the closed windows, and the indices of the late records.
/// Each record is assigned against the watermark (newest event time before it minus
/// `lateness`); windows whose end is at or before the watermark are closed and frozen.
fn reference(records: &[Input], spec: Spec, lateness: i64) -> (Vec<Closed>, Vec<usize>) {
    let mut open: BTreeMap<(String, i64, i64), (u64, i64)> = BTreeMap::new();
    let mut closed = Vec::new();
    let mut late = Vec::new();
    let mut max: Option<i64> = None;
    let close =
        |open: &mut BTreeMap<(String, i64, i64), (u64, i64)>, closed: &mut Vec<Closed>, wm: i64| {
            let done: Vec<_> = open
                .keys()
                .filter(|(_, _, end)| *end <= wm)
                .cloned()
                .collect();
            for k in done {
                let (count, sum) = open.remove(&k).unwrap();
                closed.push((k.0, k.1, k.2, count, sum));
            }
        };
    for (i, (key, t, amount)) in records.iter().enumerate() {
        let wm = max.map(|m| m - lateness);
        if let Some(wm) = wm {
            close(&mut open, &mut closed, wm);
        }
        let is_closed = |end: i64| wm.is_some_and(|wm| end <= wm);
        match spec {
            Spec::Fixed { size, every } => {
                let mut start = t.div_euclid(every) * every;
                let mut any = false;
                while start + size > *t {
                    if !is_closed(start + size) {
                        let e = open.entry((key.clone(), start, start + size)).or_default();
                        e.0 += 1;
                        e.1 += amount;
                        any = true;
                    }
                    start -= every;
                }
                if !any {
                    late.push(i);
                }
            }
            Spec::Session { gap } => {
                if is_closed(t + gap) {
                    late.push(i);
                } else {
                    let (mut start, mut end, mut count, mut sum) = (*t, t + gap, 1, *amount);
                    let touching: Vec<_> = open
                        .keys()
                        .filter(|(k, s, e)| k == key && *s <= t + gap && *e >= *t)
                        .cloned()
                        .collect();
                    for k in touching {
                        let (c, s) = open.remove(&k).unwrap();
                        start = start.min(k.1);
                        end = end.max(k.2);
                        count += c;
                        sum += s;
                    }
                    open.insert((key.clone(), start, end), (count, sum));
                }
            }
        }
        max = Some(max.map_or(*t, |m| m.max(*t)));
    }
    if let Some(m) = max {
        close(&mut open, &mut closed, m - lateness);
    }
    (closed, late)
}

/// Fresh input and output topics of `partitions` partitions, and a dead-letter topic.
fn topics(partitions: i32) -> (String, String, String) {
    let (input, output, dlq) = (unique("agg-in"), unique("agg-out"), unique("agg-dlq"));
    create_topic(&input, partitions);
    create_topic(&output, partitions);
    create_topic(&dlq, 1);
    (input, output, dlq)
}

fn value(key: &str, t: i64, amount: i64) -> String {
    format!(r#"{{"k":"{key}","ts":{t},"amount":{amount}}}"#)
}

/// Deterministic disorder: times mostly rising with jitter, now and then a record far behind.
fn inputs(partition: i32, n: usize, keys: usize, step: i64) -> Vec<Input> {
    let mut x: u64 = 0x9E37_79B9 ^ (partition as u64 + 1);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let r = next();
            let base = 1_700_000_000_000 + i as i64 * step;
            let jitter = (r % 5) as i64 * step - 2 * step;
            let far_behind = if r % 23 == 0 { 40 * step } else { 0 };
            (
                format!("k{}", r % keys as u64),
                base + jitter - far_behind,
                (r % 100) as i64,
            )
        })
        .collect()
}

fn records(partition: i32, inputs: &[Input]) -> Vec<Rec> {
    inputs
        .iter()
        .map(|(k, t, a)| Rec::new(partition, k, value(k, *t, *a)))
        .collect()
}

fn results(out: &[Rec]) -> Vec<Result> {
    out.iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            let start = r
                .header_str("weir.window.start")
                .expect("window start header");
            let end = r.header_str("weir.window.end").expect("window end header");
            (
                r.partition,
                String::from_utf8(r.key.clone().unwrap()).unwrap(),
                start.parse().unwrap(),
                end.parse().unwrap(),
                v["count"].as_u64().unwrap(),
                v["sum"].as_f64().unwrap().round() as i64,
            )
        })
        .collect()
}

fn pipeline(name: &str, input: &str, output: &str, dlq: &str, window: &str, extra: &str) -> String {
    format!(
        r#"name = "{name}"
{source}
[[stage]]
name = "count"
kind = "aggregate"
module = "{module}"
config = {{ field = "amount" }}
key = "/k"
time = "/ts"
{window}
output = "{output}"
{extra}

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"
"#,
        source = source_table(&[input], &unique("group")),
        module = module("count_sum").display(),
    )
}

#[test]
fn windows_of_every_kind_match_a_reference_under_disorder_and_lateness() {
    let _broker = crate::harness::exclusive();
    let step = 100;
    for spec in [
        Spec::Fixed {
            size: 1000,
            every: 1000,
        },
        Spec::Fixed {
            size: 1000,
            every: 250,
        },
        Spec::Session { gap: 250 },
    ] {
        let lateness = 500;
        let (input, output, dlq) = topics(2);
        let mut expected = BTreeSet::new();
        let mut late_offsets = BTreeSet::new();
        for p in 0..2 {
            let mut data = inputs(p, 600, 5, step);
            // Far ahead, so that every window of the data closes.
            data.push(("flush".into(), 1_800_000_000_000, 0));
            let (closed, late) = reference(&data, spec, lateness);
            expected.extend(
                closed
                    .into_iter()
                    .map(|(k, s, e, c, sum)| (p, k, s, e, c, sum)),
            );
            late_offsets.extend(late.into_iter().map(|i| (p, i as i64)));
            produce(&input, &records(p, &data));
        }
        assert!(!late_offsets.is_empty(), "the data has late records");
        let toml = pipeline(
            "windows",
            &input,
            &output,
            &dlq,
            &spec.toml(),
            &format!("lateness = \"{lateness}ms\"\nidle_timeout = \"1h\""),
        );
        let (_dir, path) = write_pipeline(&toml);
        let weir = Weir::run(&path);
        let out = consume(&output, expected.len(), Duration::from_secs(60));
        let letters = consume(&dlq, late_offsets.len(), Duration::from_secs(30));
        weir.terminate();
        let got: BTreeSet<Result> = results(&out).into_iter().collect();
        assert_eq!(got.len(), out.len(), "{spec:?}: no window is emitted twice");
        let missing: Vec<_> = expected.difference(&got).take(5).collect();
        let extra: Vec<_> = got.difference(&expected).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{spec:?}: {} results, {} expected; missing {missing:?}, unexpected {extra:?}",
            got.len(),
            expected.len()
        );
        let dead: BTreeSet<(i32, i64)> = letters
            .iter()
            .map(|r| {
                assert_eq!(r.header_str("weir.error.kind").as_deref(), Some("late"));
                assert_eq!(r.header_str("weir.stage").as_deref(), Some("count"));
                (
                    r.header_str("weir.source.partition")
                        .unwrap()
                        .parse()
                        .unwrap(),
                    r.header_str("weir.source.offset").unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            dead, late_offsets,
            "{spec:?}: exactly the late records are dead-lettered"
        );
    }
}

#[test]
fn a_trapping_or_endless_group_is_dead_lettered_and_the_other_groups_count() {
    let _broker = crate::harness::exclusive();
    for (knob, kind) in [("trap_on", "trap"), ("loop_on", "timeout")] {
        failing_group(knob, kind);
    }
}

fn failing_group(knob: &str, kind: &str) {
    let (input, output, dlq) = topics(1);
    let base = 1_700_000_000_000i64;
    let mut data: Vec<Input> = (0..40)
        .map(|i| (format!("k{}", i % 4), base + i * 10, i))
        .collect();
    // The only record of its key: its window must not appear at all.
    data.insert(17, ("poison".into(), base + 170, 1));
    data.push(("flush".into(), base + 10_000, 0));
    let produced: Vec<Rec> = data
        .iter()
        .map(|(k, t, a)| {
            let v = if k == "poison" {
                format!(r#"{{"k":"{k}","ts":{t},"amount":{a},"poison":true}}"#)
            } else {
                value(k, *t, *a)
            };
            Rec::new(0, k, v)
        })
        .collect();
    produce(&input, &produced);
    let clean: Vec<Input> = data.iter().filter(|d| d.0 != "poison").cloned().collect();
    let (closed, _) = reference(
        &clean,
        Spec::Fixed {
            size: 1000,
            every: 1000,
        },
        0,
    );
    let expected: BTreeSet<Result> = closed
        .into_iter()
        .map(|(k, s, e, c, sum)| (0, k, s, e, c, sum))
        .collect();

    let toml = pipeline(
        "trap",
        &input,
        &output,
        &dlq,
        r#"window = { tumbling = "1s" }"#,
        r#"idle_timeout = "1h""#,
    )
    .replace(
        r#"config = { field = "amount" }"#,
        &format!(r#"config = {{ field = "amount", {knob} = "poison" }}"#),
    );
    let (_dir, path) = write_pipeline(&toml);
    let weir = Weir::run(&path);
    let out = consume(&output, expected.len(), Duration::from_secs(60));
    let letters = consume_all(&dlq, Duration::from_secs(2), Duration::from_secs(30));
    weir.terminate();
    assert_eq!(
        results(&out).into_iter().collect::<BTreeSet<_>>(),
        expected,
        "{kind}"
    );
    assert_eq!(
        letters.len(),
        1,
        "{kind}: only the poisoned record: {letters:?}"
    );
    let letter = &letters[0];
    assert_eq!(letter.header_str("weir.error.kind").as_deref(), Some(kind));
    assert_eq!(
        letter.header_str("weir.source.offset").as_deref(),
        Some("17")
    );
    assert!(letter.value_str().contains("poison"));
}

#[test]
fn a_crash_mid_window_loses_no_input_and_repeats_only_identical_results() {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq) = topics(2);
    let mut expected = BTreeMap::new();
    for p in 0..2 {
        // Rising times, 50 keys, one window per 200 records: many windows open at any time.
        let mut data: Vec<Input> = (0..20_000)
            .map(|i| (format!("k{}", i % 50), 1_700_000_000_000 + i * 5, i % 7))
            .collect();
        data.push(("flush".into(), 1_800_000_000_000, 0));
        let (closed, late) = reference(
            &data,
            Spec::Fixed {
                size: 1000,
                every: 1000,
            },
            0,
        );
        assert!(late.is_empty());
        for (k, s, e, c, sum) in closed {
            expected.insert((p, k, s, e), (c, sum));
        }
        produce(&input, &records(p, &data));
    }
    let toml = pipeline(
        "crash",
        &input,
        &output,
        &dlq,
        r#"window = { tumbling = "1s" }"#,
        r#"idle_timeout = "1h""#,
    );
    let (_dir, path) = write_pipeline(&toml);
    // Twice: die without a drain or a commit while some windows are out and most are not.
    for share in [20, 2] {
        let weir = Weir::run(&path);
        let early = consume(&output, expected.len() / share, Duration::from_secs(120));
        assert!(
            early.len() >= expected.len() / share,
            "results before the crash"
        );
        weir.kill9();
    }
    let weir = Weir::run(&path);
    weir.wait_for_log("Aggregate state restored", Duration::from_secs(60));
    let out = consume(&output, expected.len(), Duration::from_secs(120));
    let all = consume_all(&output, Duration::from_secs(3), Duration::from_secs(60));
    weir.terminate();
    assert!(out.len() >= expected.len());
    let mut seen: BTreeMap<(i32, String, i64, i64), (u64, i64)> = BTreeMap::new();
    for (p, k, s, e, c, sum) in results(&all) {
        let window = (p, k, s, e);
        let want = expected
            .get(&window)
            .unwrap_or_else(|| panic!("unexpected window {window:?}"));
        assert_eq!(
            &(c, sum),
            want,
            "window {window:?}: a repeat must equal the result"
        );
        seen.insert(window, (c, sum));
    }
    assert_eq!(seen, expected, "every window, with all its input");
}

#[test]
fn a_rebalance_moves_a_partitions_windows_to_the_other_process() {
    rebalance_moves_windows("range");
}

/// The same with incremental rebalancing: the moved partition's state is restored by its new
/// owner while the other partition's lane goes on.
#[test]
fn a_cooperative_rebalance_moves_a_partitions_windows_to_the_other_process() {
    rebalance_moves_windows("cooperative-sticky");
}

fn rebalance_moves_windows(strategy: &str) {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq) = topics(2);
    let data: Vec<Vec<Input>> = (0..2)
        .map(|_| {
            let mut d: Vec<Input> = (0..4_000)
                .map(|i| (format!("k{}", i % 20), 1_700_000_000_000 + i * 5, i % 11))
                .collect();
            d.push(("flush".into(), 1_800_000_000_000, 0));
            d
        })
        .collect();
    let mut expected = BTreeMap::new();
    for (p, d) in data.iter().enumerate() {
        let (closed, _) = reference(
            d,
            Spec::Fixed {
                size: 1000,
                every: 1000,
            },
            0,
        );
        for (k, s, e, c, sum) in closed {
            expected.insert((p as i32, k, s, e), (c, sum));
        }
    }
    let toml = pipeline(
        "rebalance",
        &input,
        &output,
        &dlq,
        r#"window = { tumbling = "1s" }"#,
        r#"idle_timeout = "1h""#,
    )
    .replace(
        "kafka = {",
        &format!("kafka = {{ \"partition.assignment.strategy\" = \"{strategy}\","),
    );
    assert!(toml.contains(strategy));
    let (_dir, path) = write_pipeline(&toml);
    // The first half of every partition, through one process: each ends with open windows.
    for (p, d) in data.iter().enumerate() {
        produce(&input, &records(p as i32, &d[..2_000]));
    }
    let first = Weir::run(&path);
    let early = consume(&output, 100, Duration::from_secs(60));
    assert!(early.len() >= 100);
    // A second process joins: one partition, and its windows, move to it.
    let second = Weir::run(&path);
    wait_until_restored(&second);
    for (p, d) in data.iter().enumerate() {
        produce(&input, &records(p as i32, &d[2_000..]));
    }
    let out = consume(&output, expected.len(), Duration::from_secs(120));
    let all = consume_all(&output, Duration::from_secs(3), Duration::from_secs(60));
    second.terminate();
    first.terminate();
    assert!(out.len() >= expected.len());
    let mut seen = BTreeMap::new();
    for (p, k, s, e, c, sum) in results(&all) {
        let window = (p, k, s, e);
        let want = expected
            .get(&window)
            .unwrap_or_else(|| panic!("unexpected window {window:?}"));
        assert_eq!(&(c, sum), want, "window {window:?}: all its input, once");
        seen.insert(window, (c, sum));
    }
    assert_eq!(seen, expected, "every window of both partitions");
}

/// Waits until `weir` restored a partition's windows that another process had built.
fn wait_until_restored(weir: &Weir) {
    crate::harness::wait_for_value(Duration::from_secs(90), || {
        weir.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Aggregate state restored") && !l.contains("\"windows\":0"))
            .then_some(())
    });
}

#[test]
fn exactly_once_a_crash_mid_window_changes_nothing_in_the_committed_output() {
    let _broker = crate::harness::exclusive();
    let strict = crate::harness::broker_hides_aborted_transactions();
    let (input, output, dlq) = topics(2);
    let mut expected = BTreeMap::new();
    for p in 0..2 {
        let mut data: Vec<Input> = (0..20_000)
            .map(|i| (format!("k{}", i % 50), 1_700_000_000_000 + i * 5, i % 7))
            .collect();
        data.push(("flush".into(), 1_800_000_000_000, 0));
        let (closed, _) = reference(
            &data,
            Spec::Fixed {
                size: 1000,
                every: 1000,
            },
            0,
        );
        for (k, s, e, c, sum) in closed {
            expected.insert((p, k, s, e), (c, sum));
        }
        produce(&input, &records(p, &data));
    }
    let toml = pipeline(
        "exactly-once",
        &input,
        &output,
        &dlq,
        r#"window = { tumbling = "1s" }"#,
        r#"idle_timeout = "1h""#,
    )
    .replace(
        "[dead_letter]",
        "[sink]\ndelivery = \"exactly-once\"\n\n[dead_letter]",
    );
    let (_dir, path) = write_pipeline(&toml);
    for share in [20, 2] {
        let weir = Weir::run(&path);
        let early = consume(&output, expected.len() / share, Duration::from_secs(120));
        assert!(
            early.len() >= expected.len() / share,
            "results before the crash"
        );
        weir.kill9();
    }
    let weir = Weir::run(&path);
    consume(&output, expected.len(), Duration::from_secs(120));
    let all = consume_all(&output, Duration::from_secs(3), Duration::from_secs(60));
    weir.terminate();
    let got = results(&all);
    let mut seen = BTreeMap::new();
    for (p, k, s, e, c, sum) in &got {
        let window = (*p, k.clone(), *s, *e);
        let want = expected
            .get(&window)
            .unwrap_or_else(|| panic!("unexpected window {window:?}"));
        assert_eq!(&(*c, *sum), want, "window {window:?}");
        seen.insert(window, (*c, *sum));
    }
    assert_eq!(seen, expected, "every window, with all its input");
    if strict {
        // What a read_committed reader sees: each window exactly once.
        assert_eq!(got.len(), expected.len(), "no window twice");
    }
    // The offsets went in the transactions: a restart has nothing left to do.
    let weir = Weir::run(&path);
    weir.wait_for_log("Aggregate state restored", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    weir.terminate();
    let after = consume_all(&output, Duration::from_secs(2), Duration::from_secs(30));
    assert_eq!(
        after.len(),
        all.len(),
        "a restart after a clean stop adds nothing"
    );
}

/// (trace id, span id) of a record's `traceparent` header.
fn traceparent(r: &Rec) -> (String, String) {
    let tp = r.header_str("traceparent").expect("a traceparent");
    let parts: Vec<&str> = tp.split('-').collect();
    (parts[1].to_owned(), parts[2].to_owned())
}

#[test]
fn a_window_result_starts_a_trace_that_links_to_its_inputs() {
    let _broker = crate::harness::exclusive();
    let collector = crate::otlp::OtlpReceiver::start();
    let (input, output, dlq) = topics(1);
    let base = 1_700_000_000_000i64;
    // 5 records of "few" and 200 of "many" in one window, each in a trace of its own.
    let mut produced = Vec::new();
    let mut parents = BTreeMap::new();
    for i in 0..205i64 {
        let key = if i < 5 { "few" } else { "many" };
        let trace = format!("{:032x}", 0xabc0_0000 + i);
        let span = format!("{:016x}", 0x5000 + i);
        parents.insert(trace.clone(), (key, span.clone()));
        produced.push(
            Rec::new(0, key, value(key, base + i, 1))
                .header("traceparent", &format!("00-{trace}-{span}-01")),
        );
    }
    produced.push(Rec::new(0, "flush", value("flush", base + 60_000, 0)));
    produce(&input, &produced);
    let toml = pipeline(
        "links",
        &input,
        &output,
        &dlq,
        r#"window = { tumbling = "10s" }"#,
        r#"idle_timeout = "1h""#,
    ) + &format!(
        "otlp = \"{}\"\nsample = {{ ratio = 1.0, slow = \"1h\" }}\n",
        collector.endpoint()
    );
    let (_dir, path) = write_pipeline(&toml);
    let weir = Weir::run(&path);
    let out = consume(&output, 2, Duration::from_secs(60));
    let spans = collector.wait_for(Duration::from_secs(30), |s| {
        s.iter().filter(|s| s.name == "weir.window").count() >= 2
    });
    weir.terminate();
    assert_eq!(out.len(), 2);
    for result in &out {
        let key = String::from_utf8(result.key.clone().unwrap()).unwrap();
        let (trace, span) = traceparent(result);
        assert!(
            !parents.contains_key(&trace),
            "a window result starts a trace of its own"
        );
        let window = spans
            .iter()
            .find(|s| s.name == "weir.window" && s.trace_id == trace && s.span_id == span)
            .unwrap_or_else(|| panic!("no weir.window span for {key}"));
        assert_eq!(window.kind, 4, "a producer span");
        let inputs = if key == "few" { 5 } else { 200 };
        assert_eq!(
            window.links.len(),
            inputs.min(128),
            "{key}: links capped at 128"
        );
        for (linked_trace, linked_span) in &window.links {
            let (parent_key, upstream) = &parents[linked_trace];
            assert_eq!(*parent_key, key, "a link points to an input of the window");
            // The linked span is the input's pass through the aggregate stage, a child of the
            // span its traceparent named.
            let stage = spans
                .iter()
                .find(|s| &s.trace_id == linked_trace && &s.span_id == linked_span)
                .unwrap_or_else(|| panic!("linked span {linked_span} was not exported"));
            assert_eq!(stage.name, "weir.stage");
            assert_eq!(stage.attributes["weir.stage"], "count");
            assert_eq!(stage.parent_span_id.as_deref(), Some(upstream.as_str()));
        }
    }
}

#[test]
fn a_module_reload_keeps_the_open_windows() {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq) = topics(1);
    let mut data: Vec<Input> = (0..2_000)
        .map(|i| (format!("k{}", i % 10), 1_700_000_000_000 + i * 5, i % 13))
        .collect();
    data.push(("flush".into(), 1_800_000_000_000, 0));
    let (closed, _) = reference(
        &data,
        Spec::Fixed {
            size: 4000,
            every: 4000,
        },
        0,
    );
    let expected: BTreeSet<Result> = closed
        .into_iter()
        .map(|(k, s, e, c, sum)| (0, k, s, e, c, sum))
        .collect();
    let toml = pipeline(
        "reload",
        &input,
        &output,
        &dlq,
        r#"window = { tumbling = "4s" }"#,
        r#"idle_timeout = "1h""#,
    );
    let (dir, path) = write_pipeline(&toml);
    produce(&input, &records(0, &data[..1_000]));
    let weir = Weir::run(&path);
    // The first windows are out; the window around record 1000 is open.
    consume(&output, 10, Duration::from_secs(60));
    // Another configuration of the module: a new instance, the same accumulators.
    let next = toml.replace(
        r#"config = { field = "amount" }"#,
        r#"config = { field = "amount", trap_on = "not-in-the-data" }"#,
    );
    let tmp = dir.path().join(".next.toml");
    std::fs::write(&tmp, next).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    weir.wait_for_log("Reload", Duration::from_secs(30));
    produce(&input, &records(0, &data[1_000..1_001]));
    weir.wait_for_log("Stages swapped", Duration::from_secs(30));
    produce(&input, &records(0, &data[1_001..]));
    let out = consume(&output, expected.len(), Duration::from_secs(60));
    let all = consume_all(&output, Duration::from_secs(2), Duration::from_secs(30));
    weir.terminate();
    assert_eq!(out.len(), expected.len());
    assert_eq!(results(&all).into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(all.len(), expected.len());
}

#[test]
fn a_full_partition_dead_letters_only_the_records_that_would_open_a_window() {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq) = topics(1);
    let base = 1_700_000_000_000i64;
    // Keys k0..k4 in one window, but room for three windows: k3 and k4 do not fit, while
    // k0..k2 keep counting.
    let data: Vec<Input> = (0..50)
        .map(|i| (format!("k{}", i % 5), base + i, 1))
        .collect();
    produce(&input, &records(0, &data));
    let toml = pipeline(
        "full",
        &input,
        &output,
        &dlq,
        r#"window = { tumbling = "10s" }"#,
        "idle_timeout = \"1h\"\nmax_windows = 3",
    );
    let (_dir, path) = write_pipeline(&toml);
    let weir = Weir::run(&path);
    let letters = consume(&dlq, 20, Duration::from_secs(60));
    // The watermark moves past the window: k0..k2's results come out.
    produce(&input, &records(0, &[("k0".into(), base + 60_000, 1)]));
    let out = consume(&output, 3, Duration::from_secs(60));
    weir.terminate();
    assert_eq!(letters.len(), 20, "the records of k3 and k4");
    for l in &letters {
        assert_eq!(
            l.header_str("weir.error.kind").as_deref(),
            Some("state-full")
        );
        assert!(matches!(l.key.as_deref(), Some(b"k3" | b"k4")), "{l:?}");
    }
    let got: BTreeSet<Result> = results(&out).into_iter().collect();
    let want: BTreeSet<Result> = (0..3)
        .map(|k| {
            (
                0,
                format!("k{k}"),
                base - base % 10_000,
                base - base % 10_000 + 10_000,
                10,
                10,
            )
        })
        .collect();
    assert_eq!(got, want);
}
