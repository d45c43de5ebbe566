//! Edge cases of windows, the watermark, bounds and snapshots, and the helpers the property
//! tests share.

use super::*;

pub(super) type State = WindowState<Vec<u8>>;

pub(super) fn ids(acc: &[u8]) -> Vec<u32> {
    let mut v: Vec<u32> = acc
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    v.sort_unstable();
    v
}

/// The test's accumulator: the ids of the records folded in (merge = concatenation).
pub(super) fn fold_ids(base: u32) -> impl FnMut(&Group<'_, Vec<u8>>) -> Vec<u8> {
    move |g| {
        let mut acc: Vec<u8> = g.accs.iter().flat_map(|a| a.iter().copied()).collect();
        for &i in &g.records {
            acc.extend_from_slice(&(base + i as u32).to_le_bytes());
        }
        acc
    }
}

pub(super) fn config(spec: WindowSpec, lateness_ms: i64) -> WindowConfig {
    WindowConfig {
        lateness_ms,
        ..WindowConfig::new(spec)
    }
}

pub(super) fn feed(state: &mut State, base: u32, batch: &[(&[u8], i64)]) -> Vec<usize> {
    state.fold_batch(batch, 0, fold_ids(base)).unwrap().late
}

pub(super) fn summary(closed: &[Closed<Vec<u8>>]) -> Vec<(Vec<u8>, Window, Vec<u32>)> {
    closed
        .iter()
        .map(|c| (c.key.to_vec(), c.window, ids(&c.acc)))
        .collect()
}

pub(super) fn w(s: i64, e: i64) -> Window {
    Window::new(s, e)
}

// ---- edge cases -----------------------------------------------------------------------

#[test]
fn record_exactly_at_a_boundary_opens_the_next_window() {
    let spec = WindowSpec::Tumbling { size_ms: 10 };
    assert_eq!(spec.windows_of(10), vec![w(10, 20)]);
    assert_eq!(spec.windows_of(9), vec![w(0, 10)]);
    assert_eq!(spec.windows_of(0), vec![w(0, 10)]);
    assert_eq!(spec.windows_of(-1), vec![w(-10, 0)]);
    let mut s = State::new(config(spec, 0)).unwrap();
    feed(&mut s, 0, &[(b"a", 9), (b"a", 10)]);
    // The record at 10 moves the watermark to 10, which closes [0, 10) and nothing else.
    assert_eq!(
        summary(&s.closed()),
        vec![(b"a".to_vec(), w(0, 10), vec![0])]
    );
    assert_eq!(s.counters().open_windows, 1);
}

#[test]
fn hopping_windows_when_size_is_not_a_multiple_of_every() {
    let spec = WindowSpec::Hopping {
        size_ms: 10,
        every_ms: 4,
    };
    assert_eq!(spec.windows_of(9), vec![w(0, 10), w(4, 14), w(8, 18)]);
    assert_eq!(spec.windows_of(12), vec![w(4, 14), w(8, 18), w(12, 22)]);
    assert_eq!(spec.windows_of(-3), vec![w(-12, -2), w(-8, 2), w(-4, 6)]);
    let spec = WindowSpec::Hopping {
        size_ms: 10,
        every_ms: 5,
    };
    assert_eq!(spec.windows_of(10), vec![w(5, 15), w(10, 20)]);
}

#[test]
fn lateness_zero_makes_anything_behind_a_closed_window_late() {
    let mut s = State::new(config(WindowSpec::Tumbling { size_ms: 10 }, 0)).unwrap();
    assert_eq!(
        feed(&mut s, 0, &[(b"a", 5), (b"a", 10), (b"a", 9), (b"b", 3)]),
        vec![2, 3]
    );
    assert_eq!(s.counters().late_records, 2);
    assert_eq!(s.watermark(), Some(10));
}

#[test]
fn lateness_keeps_a_window_open_until_end_plus_lateness() {
    let mut s = State::new(config(WindowSpec::Tumbling { size_ms: 10 }, 5)).unwrap();
    assert!(feed(&mut s, 0, &[(b"a", 5), (b"a", 14), (b"a", 9)]).is_empty());
    assert!(s.closed().is_empty());
    feed(&mut s, 3, &[(b"a", 15)]);
    assert_eq!(
        summary(&s.closed()),
        vec![(b"a".to_vec(), w(0, 10), vec![0, 2])]
    );
    assert_eq!(feed(&mut s, 4, &[(b"a", 9)]), vec![0]);
}

#[test]
fn hopping_record_goes_only_to_its_open_windows() {
    let spec = WindowSpec::Hopping {
        size_ms: 10,
        every_ms: 5,
    };
    let mut s = State::new(config(spec, 0)).unwrap();
    assert!(feed(&mut s, 0, &[(b"a", 12), (b"a", 7)]).is_empty());
    let held: Vec<_> = s.iter().map(|(_, w, a)| (w, ids(a))).collect();
    assert_eq!(held, vec![(w(5, 15), vec![0, 1]), (w(10, 20), vec![0])]);
}

#[test]
fn session_bridge_merges_three_windows() {
    let spec = WindowSpec::Session { gap_ms: 10 };
    let mut s = State::new(config(spec, 100)).unwrap();
    feed(&mut s, 0, &[(b"a", 0), (b"a", 25), (b"b", 12)]);
    let held: Vec<_> = s.iter().map(|(k, w, _)| (k.to_vec(), w)).collect();
    assert_eq!(
        held,
        vec![
            (b"a".to_vec(), w(0, 10)),
            (b"a".to_vec(), w(25, 35)),
            (b"b".to_vec(), w(12, 22))
        ]
    );
    // 15 touches neither [0,10) nor [25,35); 10 then bridges [0,10) and [15,25) (planned in
    // this batch), and [15,25) touches [25,35): all three and the record become [0, 35).
    let plan = s.plan_batch(&[(b"a", 15), (b"a", 10)], 0).unwrap();
    assert_eq!(plan.groups.len(), 1);
    let g = &plan.groups[0];
    assert_eq!(
        (g.window, g.records.clone(), g.accs.len()),
        (w(0, 35), vec![0, 1], 2)
    );
    drop(plan);
    feed(&mut s, 3, &[(b"a", 15), (b"a", 10)]);
    let held: Vec<_> = s.iter().map(|(k, w, a)| (k.to_vec(), w, ids(a))).collect();
    assert_eq!(held[0], (b"a".to_vec(), w(0, 35), vec![0, 1, 3, 4]));
    // One record bridging two stored sessions: the group starts from both accumulators.
    let mut s = State::new(config(spec, 100)).unwrap();
    feed(&mut s, 0, &[(b"a", 0), (b"a", 20)]);
    let plan = s.plan_batch(&[(b"a", 10)], 0).unwrap();
    let g = &plan.groups[0];
    assert_eq!((g.window, g.accs.len()), (w(0, 30), 2));
    assert_eq!((ids(g.accs[0]), ids(g.accs[1])), (vec![0], vec![1]));
}

#[test]
fn closed_sessions_are_not_merged() {
    let mut s = State::new(config(WindowSpec::Session { gap_ms: 10 }, 0)).unwrap();
    // [0, 10) closes when 10 arrives... but 10 is assigned before it raises the watermark.
    feed(&mut s, 0, &[(b"a", 0), (b"a", 10), (b"a", 25)]);
    let closed = summary(&s.closed());
    assert_eq!(closed, vec![(b"a".to_vec(), w(0, 20), vec![0, 1])]);
    assert_eq!(feed(&mut s, 3, &[(b"a", 14)]), vec![0]);
}

#[test]
fn idle_timeout_advances_the_watermark_from_the_last_input() {
    let cfg = WindowConfig {
        idle_timeout_ms: Some(100),
        ..config(WindowSpec::Tumbling { size_ms: 10 }, 0)
    };
    let mut s = State::new(cfg).unwrap();
    assert!(!s.on_idle(5_000), "nothing seen: nothing to advance");
    s.fold_batch(&[(b"a", 5)], 1_000, fold_ids(0)).unwrap();
    assert!(!s.on_idle(1_099));
    assert!(
        !s.on_idle(1_100),
        "quiet for exactly the timeout: event time 5 + 0"
    );
    assert!(s.on_idle(1_105));
    assert_eq!(s.watermark(), Some(10));
    assert_eq!(
        summary(&s.closed()),
        vec![(b"a".to_vec(), w(0, 10), vec![0])]
    );
    assert!(!s.on_idle(1_105));
    // New input re-anchors the idle clock.
    s.fold_batch(&[(b"a", 12)], 2_000, fold_ids(1)).unwrap();
    assert!(!s.on_idle(2_050));
    assert!(s.on_idle(2_108));
    assert_eq!(s.max_event_ms(), Some(20));
    // An empty batch is not input.
    s.fold_batch::<&[u8]>(&[], 3_000, fold_ids(2)).unwrap();
    assert!(s.on_idle(3_000));
}

#[test]
fn restore_restarts_the_idle_clock() {
    let cfg = WindowConfig {
        idle_timeout_ms: Some(100),
        ..config(WindowSpec::Tumbling { size_ms: 10 }, 0)
    };
    let mut s = State::new(cfg).unwrap();
    s.fold_batch(&[(b"a", 5)], 1_000, fold_ids(0)).unwrap();
    let mut r = State::restore(cfg, &s.snapshot(), 50_000).unwrap();
    assert!(!r.on_idle(50_099));
    assert!(r.on_idle(50_105));
    assert_eq!(r.max_event_ms(), Some(10));
}

#[test]
fn fail_policy_refuses_the_batch_and_keeps_the_state() {
    let cfg = WindowConfig {
        max_entries: 2,
        ..config(WindowSpec::Tumbling { size_ms: 10 }, 0)
    };
    let mut s = State::new(cfg).unwrap();
    feed(&mut s, 0, &[(b"a", 1), (b"b", 1)]);
    let before = s.snapshot();
    let err = s.fold_batch(&[(b"c", 2)], 0, fold_ids(2)).unwrap_err();
    assert_eq!(
        err,
        WindowError::TooManyEntries {
            limit: 2,
            needed: 3
        }
    );
    assert_eq!(s.snapshot(), before);
    // Windows the batch itself closes do not count.
    feed(&mut s, 2, &[(b"c", 10)]);
    assert_eq!(s.closed().len(), 2);
}

#[test]
fn evict_oldest_hands_out_the_earliest_ending_windows() {
    let cfg = WindowConfig {
        max_entries: 2,
        on_full: OnFull::EvictOldest,
        ..config(WindowSpec::Tumbling { size_ms: 10 }, 100)
    };
    let mut s = State::new(cfg).unwrap();
    let folded = s
        .fold_batch(&[(b"b", 1), (b"a", 2), (b"a", 15)], 0, fold_ids(0))
        .unwrap();
    assert_eq!(
        summary(&folded.evicted),
        vec![(b"a".to_vec(), w(0, 10), vec![1])]
    );
    let folded = s.fold_batch(&[(b"a", 3)], 0, fold_ids(3)).unwrap();
    assert_eq!(
        summary(&folded.evicted),
        vec![(b"a".to_vec(), w(0, 10), vec![3])]
    );
    assert_eq!(s.counters().evicted_windows, 2);
    assert_eq!(s.counters().open_windows, 2);
}

#[test]
fn stale_plans_and_wrong_result_counts_are_refused() {
    let mut s = State::new(config(WindowSpec::Tumbling { size_ms: 10 }, 0)).unwrap();
    let first = s.plan_batch(&[(b"a", 1)], 0).unwrap().into_commit();
    let second = s.plan_batch(&[(b"a", 2)], 0).unwrap().into_commit();
    assert_eq!(
        s.apply(first.clone(), vec![]).unwrap_err(),
        WindowError::ResultCount {
            expected: 1,
            got: 0
        }
    );
    s.apply(first, vec![vec![1]]).unwrap();
    assert_eq!(
        s.apply(second, vec![vec![2]]).unwrap_err(),
        WindowError::StalePlan
    );
}

#[test]
fn validation_errors_are_typed() {
    let v = |spec: WindowSpec| spec.validate().unwrap_err();
    assert_eq!(
        v(WindowSpec::Tumbling { size_ms: 0 }),
        WindowError::NonPositiveSize(0)
    );
    assert_eq!(
        v(WindowSpec::Hopping {
            size_ms: 10,
            every_ms: 0
        }),
        WindowError::NonPositiveEvery(0)
    );
    assert_eq!(
        v(WindowSpec::Hopping {
            size_ms: 10,
            every_ms: 11
        }),
        WindowError::EveryExceedsSize {
            every_ms: 11,
            size_ms: 10
        }
    );
    assert_eq!(
        v(WindowSpec::Hopping {
            size_ms: 60_000,
            every_ms: 1
        }),
        WindowError::TooManyHops { hops: 60_000 }
    );
    assert_eq!(
        v(WindowSpec::Session { gap_ms: -1 }),
        WindowError::NonPositiveGap(-1)
    );
    let base = WindowConfig::new(WindowSpec::Session { gap_ms: 1 });
    assert_eq!(
        WindowConfig {
            lateness_ms: -1,
            ..base
        }
        .validate(),
        Err(WindowError::NegativeLateness(-1))
    );
    assert_eq!(
        WindowConfig {
            idle_timeout_ms: Some(0),
            ..base
        }
        .validate(),
        Err(WindowError::NonPositiveIdleTimeout(0))
    );
    assert_eq!(
        WindowConfig {
            max_entries: 0,
            ..base
        }
        .validate(),
        Err(WindowError::ZeroMaxEntries)
    );
    assert!(
        State::new(WindowConfig {
            max_entries: 0,
            ..base
        })
        .is_err()
    );
}

#[test]
fn snapshot_round_trips_and_rejects_garbage() {
    let spec = WindowSpec::Hopping {
        size_ms: 10,
        every_ms: 5,
    };
    let cfg = config(spec, 3);
    let mut s = State::new(cfg).unwrap();
    feed(&mut s, 0, &[(b"a", -7), (b"", 12), (b"bb", i64::MAX - 1)]);
    let bytes = s.snapshot();
    assert_eq!(&bytes[..5], b"WWIN\x01");
    let r = State::restore(cfg, &bytes, 0).unwrap();
    assert_eq!(r.snapshot(), bytes);
    assert_eq!(r.max_event_ms(), s.max_event_ms());
    let held = |s: &State| {
        s.iter()
            .map(|(k, w, a)| (k.to_vec(), w, a.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(held(&r), held(&s));

    let err = |b: &[u8]| State::restore(cfg, b, 0).unwrap_err();
    assert_eq!(err(b"nope"), SnapshotError::BadMagic.into());
    assert_eq!(err(b""), SnapshotError::BadMagic.into());
    assert_eq!(
        err(b"WWIN\x02"),
        SnapshotError::UnsupportedVersion(2).into()
    );
    for cut in 5..bytes.len() {
        assert!(
            State::restore(cfg, &bytes[..cut], 0).is_err(),
            "prefix of {cut} bytes"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(err(&long), SnapshotError::TrailingBytes(1).into());
    let other = config(
        WindowSpec::Hopping {
            size_ms: 10,
            every_ms: 2,
        },
        3,
    );
    assert!(matches!(
        State::restore(other, &bytes, 0),
        Err(WindowError::Snapshot(SnapshotError::SpecMismatch { .. }))
    ));
    // A misaligned window.
    let bad = b"WWIN\x01\x00\x0a\x00\x01\x01a\x01\x02\x0a\x00";
    let tumbling = config(WindowSpec::Tumbling { size_ms: 10 }, 0);
    assert_eq!(
        State::restore(tumbling, bad, 0).unwrap_err(),
        SnapshotError::Malformed("window does not fit the spec").into()
    );
    let good = b"WWIN\x01\x00\x0a\x00\x01\x01a\x01\x14\x0a\x00";
    let r = State::restore(config(WindowSpec::Tumbling { size_ms: 10 }, 0), good, 0).unwrap();
    assert_eq!(
        r.iter().map(|(_, w, _)| w).collect::<Vec<_>>(),
        vec![w(10, 20)]
    );
}
