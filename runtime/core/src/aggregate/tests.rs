//! [`WindowFold`] against a native aggregator: count and sum of each record's value (decimal
//! text), keyed by the Kafka key, timed by the Kafka timestamp.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::window::{OnFull, WindowConfig, WindowSpec, WindowState};
use crate::{Bytes, FailureKind};

/// Counts and sums. A record whose value is `trap` makes the whole `add` call fail; one whose
/// value is `refuse` makes its group fail with a stage error.
#[derive(Debug, Default)]
struct CountSum {
    adds: usize,
    merges: usize,
}

fn acc(count: u64, sum: i64) -> Vec<u8> {
    [count.to_le_bytes(), sum.to_le_bytes()].concat()
}

fn read(acc: &[u8]) -> (u64, i64) {
    (
        u64::from_le_bytes(acc[..8].try_into().unwrap()),
        i64::from_le_bytes(acc[8..16].try_into().unwrap()),
    )
}

impl Aggregator for CountSum {
    fn create(&mut self) -> Result<Vec<u8>, Failure> {
        Ok(acc(0, 0))
    }

    fn add(&mut self, groups: &[(Vec<u8>, &[Record])]) -> Result<Vec<GroupOutcome>, Failure> {
        self.adds += 1;
        let text = |r: &Record| String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap();
        if groups.iter().flat_map(|g| g.1).any(|r| text(r) == "trap") {
            return Err(Failure::new(FailureKind::Trap, "wasm trap: unreachable"));
        }
        Ok(groups
            .iter()
            .map(|(start, records)| {
                let (mut count, mut sum) = read(start);
                for r in *records {
                    match text(r).as_str() {
                        "refuse" => return Err(Failure::stage_error("refused", "no")),
                        t => {
                            count += 1;
                            sum += t.parse::<i64>().unwrap();
                        }
                    }
                }
                Ok(acc(count, sum))
            })
            .collect())
    }

    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, Failure> {
        self.merges += 1;
        let ((ca, sa), (cb, sb)) = (read(a), read(b));
        Ok(acc(ca + cb, sa + sb))
    }

    fn emit(&mut self, _key: &[u8], _window: Window, acc: &[u8]) -> Result<Vec<Record>, Failure> {
        let (count, sum) = read(acc);
        Ok(vec![Record {
            value: Some(Bytes::from(format!("{count}/{sum}"))),
            ..Record::default()
        }])
    }
}

type Fold = WindowFold<CountSum>;

fn fold_with(config: WindowConfig, late: LatePolicy) -> Fold {
    WindowFold::new(
        CountSum::default(),
        WindowState::new(config).unwrap(),
        late,
        i64::MIN,
        HashMap::new(),
    )
}

fn tumbling(size_ms: i64, lateness_ms: i64) -> WindowConfig {
    WindowConfig {
        lateness_ms,
        ..WindowConfig::new(WindowSpec::Tumbling { size_ms })
    }
}

/// `(key, time, value)` at offsets from `first`.
fn batch(first: i64, records: &[(&str, i64, &str)]) -> Vec<(Record, SpanLink)> {
    records
        .iter()
        .zip(first..)
        .map(|(&(k, t, v), offset)| {
            let record = Record {
                key: Some(Bytes::copy_from_slice(k.as_bytes())),
                value: Some(Bytes::copy_from_slice(v.as_bytes())),
                timestamp: Some(t),
                offset,
                ..Record::default()
            };
            (record, ([offset as u8; 16], [1; 8]))
        })
        .collect()
}

fn key_and_time(r: &Record) -> Result<(Arc<[u8]>, i64), Failure> {
    match (&r.key, r.timestamp) {
        (Some(k), Some(t)) => Ok((Arc::from(&k[..]), t)),
        _ => Err(Failure::new(FailureKind::InvalidInput, "no key or time")),
    }
}

fn feed(fold: &mut Fold, records: &[(Record, SpanLink)]) -> Vec<Fate> {
    fold.fold(records, 0, key_and_time)
}

/// `(key, start, end, "count/sum")` of each result.
fn results(results: &[WindowResult]) -> Vec<(String, i64, i64, String)> {
    results
        .iter()
        .map(|r| {
            let outputs = r.outputs.as_ref().unwrap();
            assert_eq!(outputs.len(), 1);
            (
                String::from_utf8(r.key.to_vec()).unwrap(),
                r.window.start_ms,
                r.window.end_ms,
                String::from_utf8(outputs[0].value.as_deref().unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

fn r(k: &str, s: i64, e: i64, v: &str) -> (String, i64, i64, String) {
    (k.into(), s, e, v.into())
}

#[test]
fn tumbling_windows_count_and_sum_per_key() {
    let mut fold = fold_with(tumbling(10, 0), LatePolicy::DeadLetter);
    let fates = feed(
        &mut fold,
        &batch(
            0,
            &[("a", 1, "5"), ("b", 2, "7"), ("a", 9, "1"), ("a", 12, "3")],
        ),
    );
    assert_eq!(fates, vec![Fate::Held; 4]);
    assert_eq!(fold.aggregator().adds, 1, "one call for the batch");
    assert_eq!(
        results(&fold.closed()),
        vec![r("a", 0, 10, "2/6"), r("b", 0, 10, "1/7")]
    );
    assert_eq!(fold.state().counters().open_windows, 1);
    assert_eq!(
        results(&fold.close_all()),
        vec![r("a", 10, 20, "1/3")],
        "close_all closes open windows"
    );
}

#[test]
fn results_are_stamped_with_their_window_and_link_their_inputs() {
    let mut fold = fold_with(tumbling(10, 0), LatePolicy::DeadLetter);
    feed(&mut fold, &batch(0, &[("a", 1, "5"), ("a", 2, "5")]));
    feed(&mut fold, &batch(2, &[("a", 20, "1")]));
    let closed = fold.closed();
    assert_eq!(closed.len(), 1);
    let out = &closed[0].outputs.as_ref().unwrap()[0];
    assert_eq!(out.key.as_deref(), Some(&b"a"[..]));
    assert_eq!((out.timestamp, out.offset), (Some(9), -1));
    let header = |name: &str| out.header(name).map(<[u8]>::to_vec);
    assert_eq!(header(WINDOW_START), Some(b"0".to_vec()));
    assert_eq!(header(WINDOW_END), Some(b"10".to_vec()));
    assert_eq!(closed[0].links, vec![([0; 16], [1; 8]), ([1; 16], [1; 8])]);
    assert_eq!(read(&closed[0].acc), (2, 10));
}

#[test]
fn hopping_windows_fold_a_record_into_each_of_its_windows() {
    let config = WindowConfig::new(WindowSpec::Hopping {
        size_ms: 10,
        every_ms: 5,
    });
    let mut fold = fold_with(config, LatePolicy::DeadLetter);
    feed(&mut fold, &batch(0, &[("a", 7, "2"), ("a", 12, "3")]));
    feed(&mut fold, &batch(2, &[("a", 30, "0")]));
    assert_eq!(
        results(&fold.closed()),
        vec![
            r("a", 0, 10, "1/2"),
            r("a", 5, 15, "2/5"),
            r("a", 10, 20, "1/3")
        ]
    );
}

#[test]
fn sessions_a_batch_bridges_are_merged() {
    let config = WindowConfig {
        lateness_ms: 100,
        ..WindowConfig::new(WindowSpec::Session { gap_ms: 10 })
    };
    let mut fold = fold_with(config, LatePolicy::DeadLetter);
    feed(&mut fold, &batch(0, &[("a", 0, "1"), ("a", 20, "2")]));
    feed(&mut fold, &batch(2, &[("a", 10, "4")]));
    assert_eq!(fold.aggregator().merges, 1);
    let all = fold.close_all();
    assert_eq!(results(&all), vec![r("a", 0, 30, "3/7")]);
    assert_eq!(
        all[0].links.len(),
        3,
        "the merged session links every input"
    );
}

#[test]
fn lateness_keeps_windows_open_and_late_records_fail_or_drop() {
    for late in [LatePolicy::DeadLetter, LatePolicy::Drop] {
        let mut fold = fold_with(tumbling(10, 5), late);
        let fates = feed(
            &mut fold,
            &batch(0, &[("a", 5, "1"), ("a", 14, "1"), ("a", 9, "1")]),
        );
        assert_eq!(fates, vec![Fate::Held; 3], "within the lateness");
        assert!(fold.closed().is_empty());
        // 15 moves the watermark to 10: [0, 10) closes, and 9 is late.
        let fates = feed(&mut fold, &batch(3, &[("a", 15, "1"), ("a", 9, "1")]));
        assert_eq!(fates[0], Fate::Held);
        match (&fates[1], late) {
            (Fate::Failed(f), LatePolicy::DeadLetter) => {
                assert_eq!(f.kind, FailureKind::Late);
                assert!(f.message.contains("event time 9"), "{f}");
                assert!(f.message.contains("watermark 10"), "{f}");
            }
            (Fate::Dropped, LatePolicy::Drop) => {}
            (other, _) => panic!("{late:?}: {other:?}"),
        }
        assert_eq!(results(&fold.closed()), vec![r("a", 0, 10, "2/2")]);
        assert_eq!(fold.state().counters().late_records, 1);
    }
}

#[test]
fn an_idle_partition_closes_its_windows() {
    let config = WindowConfig {
        idle_timeout_ms: Some(100),
        ..tumbling(10, 0)
    };
    let mut fold = fold_with(config, LatePolicy::DeadLetter);
    fold.fold(&batch(0, &[("a", 5, "1")]), 1_000, key_and_time);
    assert!(!fold.on_idle(1_100));
    assert!(fold.closed().is_empty());
    assert!(fold.on_idle(1_105));
    assert_eq!(results(&fold.closed()), vec![r("a", 0, 10, "1/1")]);
}

#[test]
fn unreadable_records_fail_alone() {
    let mut fold = fold_with(tumbling(10, 0), LatePolicy::DeadLetter);
    let mut records = batch(0, &[("a", 1, "1"), ("a", 2, "1")]);
    records[0].0.timestamp = None;
    let fates = feed(&mut fold, &records);
    assert!(matches!(&fates[0], Fate::Failed(f) if f.kind == FailureKind::InvalidInput));
    assert_eq!(fates[1], Fate::Held);
}

#[test]
fn a_failing_group_loses_its_records_and_the_others_fold() {
    let mut fold = fold_with(tumbling(10, 0), LatePolicy::DeadLetter);
    feed(&mut fold, &batch(0, &[("a", 1, "1"), ("b", 1, "1")]));
    let fates = feed(
        &mut fold,
        &batch(
            2,
            &[
                ("a", 2, "10"),
                ("poison", 3, "trap"),
                ("b", 4, "refuse"),
                ("c", 5, "2"),
                ("poison", 6, "1"),
            ],
        ),
    );
    // One call for the batch, then one per group (a, poison, b, c).
    assert_eq!(fold.aggregator().adds, 2 + 4);
    assert_eq!(fates[0], Fate::Held);
    assert!(matches!(&fates[1], Fate::Failed(f) if f.kind == FailureKind::Trap));
    assert!(matches!(&fates[2], Fate::Failed(f) if f.code == "refused"));
    assert_eq!(fates[3], Fate::Held);
    assert_eq!(fates[1], fates[4], "the group's records share its failure");
    feed(&mut fold, &batch(7, &[("z", 10, "0")]));
    // `poison` never opened its window; `b` kept its accumulator.
    assert_eq!(
        results(&fold.closed()),
        vec![
            r("a", 0, 10, "2/11"),
            r("b", 0, 10, "1/1"),
            r("c", 0, 10, "1/2")
        ]
    );
}

#[test]
fn the_breaker_trips_after_failures_in_a_row_and_fails_the_rest_unrun() {
    let mut fold = fold_with(tumbling(10, 0), LatePolicy::DeadLetter);
    let records: Vec<(String, i64, &str)> = (0..6).map(|i| (format!("k{i}"), i, "trap")).collect();
    let mut input: Vec<(&str, i64, &str)> =
        records.iter().map(|(k, t, v)| (&k[..], *t, *v)).collect();
    input.push(("ok", 7, "1"));
    let fates = feed(&mut fold, &batch(0, &input));
    assert_eq!(
        fold.aggregator().adds,
        1 + BREAKER_FAILURES,
        "the batch's call, then groups alone until the breaker trips"
    );
    for (i, fate) in fates.iter().enumerate() {
        let Fate::Failed(f) = fate else {
            panic!("record {i}: {fate:?}")
        };
        assert_eq!(f.kind, FailureKind::Trap, "record {i}");
        assert_eq!(
            f.message.contains("breaker tripped"),
            i >= BREAKER_FAILURES,
            "record {i}: {f}"
        );
    }
    assert!(fates.iter().all(|f| matches!(f, Fate::Failed(_))));
    assert!(
        fold.close_all().is_empty(),
        "no failed group opened a window"
    );
    // The next batch starts with the breaker closed.
    let fates = feed(&mut fold, &batch(7, &[("x", 1, "trap"), ("y", 1, "1")]));
    assert_eq!(fates[1], Fate::Held);
}

#[test]
fn the_breaker_counts_only_failures_in_a_row() {
    let mut fold = fold_with(tumbling(10, 0), LatePolicy::DeadLetter);
    // Two traps, a group that folds, a refused group (an answer, not a failed call), two traps.
    let fates = feed(
        &mut fold,
        &batch(
            0,
            &[
                ("a", 1, "trap"),
                ("b", 1, "trap"),
                ("c", 1, "1"),
                ("d", 1, "trap"),
                ("e", 1, "refuse"),
                ("f", 1, "trap"),
                ("g", 1, "trap"),
                ("h", 1, "2"),
            ],
        ),
    );
    assert_eq!(fold.aggregator().adds, 1 + 8, "every group was tried");
    assert_eq!((&fates[2], &fates[7]), (&Fate::Held, &Fate::Held));
    assert!(fates.iter().all(|f| match f {
        Fate::Failed(f) => !f.message.contains("breaker"),
        _ => true,
    }));
}

#[test]
fn a_full_state_fails_only_the_records_that_would_open_a_window() {
    let config = WindowConfig {
        max_entries: 2,
        on_full: OnFull::Fail,
        ..tumbling(10, 0)
    };
    let mut fold = fold_with(config, LatePolicy::DeadLetter);
    let fates = feed(
        &mut fold,
        &batch(
            0,
            &[("a", 1, "1"), ("b", 1, "1"), ("c", 1, "1"), ("a", 2, "1")],
        ),
    );
    assert_eq!(fates[0], Fate::Held);
    assert_eq!(fates[1], Fate::Held);
    assert!(matches!(&fates[2], Fate::Failed(f) if f.kind == FailureKind::StateFull));
    assert_eq!(fates[3], Fate::Held);
}

/// Feeds `batches` (of `(key, time, value)`) from offset 0; after batch `restart_at`, restores a
/// new fold from a snapshot of the state and feeds that batch again (a replay after a crash).
fn run(
    batches: &[Vec<(&str, i64, &str)>],
    restart_at: Option<usize>,
) -> (Vec<(String, i64, i64, String)>, usize) {
    let config = tumbling(10, 3);
    let mut fold = fold_with(config, LatePolicy::DeadLetter);
    let mut emitted = Vec::new();
    let mut covered = 0;
    let mut offset = 0;
    for (b, records) in batches.iter().enumerate() {
        let first = offset;
        let fates = feed(&mut fold, &batch(first, records));
        offset += records.len() as i64;
        emitted.extend(results(&fold.closed()));
        if restart_at == Some(b) {
            let snapshot = fold.state().snapshot();
            let state = WindowState::restore(config, &snapshot, 0).unwrap();
            fold = WindowFold::new(
                CountSum::default(),
                state,
                LatePolicy::DeadLetter,
                offset,
                HashMap::new(),
            );
            let replayed = feed(&mut fold, &batch(first, records));
            covered += replayed.iter().filter(|f| **f == Fate::Covered).count();
            assert_eq!(replayed.len(), fates.len());
        }
    }
    emitted.extend(results(&fold.close_all()));
    (emitted, covered)
}

#[test]
fn a_restored_snapshot_mid_stream_gives_the_uninterrupted_results() {
    let batches = vec![
        vec![("a", 1, "1"), ("b", 4, "2"), ("a", 12, "3")],
        vec![("a", 8, "4"), ("b", 17, "5"), ("c", 13, "6")],
        vec![("a", 25, "7"), ("b", 2, "8"), ("c", 29, "9")],
        vec![("a", 33, "10"), ("c", 41, "11")],
    ];
    let (plain, _) = run(&batches, None);
    assert!(!plain.is_empty());
    for restart_at in 0..batches.len() {
        let (restored, covered) = run(&batches, Some(restart_at));
        assert_eq!(restored, plain, "restart after batch {restart_at}");
        assert_eq!(covered, batches[restart_at].len(), "the replay is covered");
    }
}

#[test]
fn covered_keys_skip_only_their_own_records() {
    let config = tumbling(10, 0);
    let covered = HashMap::from([(Arc::from(&b"a"[..]), 5)]);
    let mut fold = WindowFold::new(
        CountSum::default(),
        WindowState::new(config).unwrap(),
        LatePolicy::DeadLetter,
        3,
        covered,
    );
    let fates = feed(
        &mut fold,
        &batch(
            2,
            &[("b", 1, "1"), ("a", 1, "1"), ("b", 1, "1"), ("a", 1, "1")],
        ),
    );
    assert_eq!(
        fates,
        vec![Fate::Covered, Fate::Covered, Fate::Held, Fate::Held]
    );
    let dirty: Vec<_> = fold.take_dirty().into_iter().collect();
    assert_eq!(dirty, vec![Arc::from(&b"a"[..]), Arc::from(&b"b"[..])]);
    assert!(!fold.is_dirty());
}
