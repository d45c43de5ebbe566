//! Property tests: windows against a brute-force reference, snapshots mid-stream, eviction.

use std::sync::Arc;

use proptest::prelude::*;

use super::tests::{State, config, fold_ids, ids, summary, w};
use super::*;

// ---- reference implementation -------------------------------------------------------

#[derive(Default)]
struct Reference {
    max_event: Option<i64>,
    windows: Vec<(Vec<u8>, Window, Vec<u32>)>,
    late: Vec<u32>,
}

impl Reference {
    fn feed(&mut self, spec: WindowSpec, lateness: i64, id: u32, key: &[u8], t: i64) {
        let wm = self.max_event.map(|m| m - lateness);
        let is_closed = |w: &Window| wm.is_some_and(|wm| w.end_ms <= wm);
        match spec {
            WindowSpec::Session { gap_ms } => {
                let own = Window::new(t, t + gap_ms);
                if is_closed(&own) {
                    self.late.push(id);
                } else {
                    let (mut merged, mut ids) = (own, vec![id]);
                    let mut keep = Vec::new();
                    for (k, win, v) in std::mem::take(&mut self.windows) {
                        let touches = win.start_ms <= t + gap_ms && win.end_ms >= t;
                        if k == key && touches && !is_closed(&win) {
                            merged = w(
                                merged.start_ms.min(win.start_ms),
                                merged.end_ms.max(win.end_ms),
                            );
                            ids.extend(v);
                        } else {
                            keep.push((k, win, v));
                        }
                    }
                    keep.push((key.to_vec(), merged, ids));
                    self.windows = keep;
                }
            }
            _ => {
                let (size, every) = spec.fixed().unwrap();
                // Brute force: every multiple of `every` near t.
                let mut any = false;
                let mut s = (t - size - every).div_euclid(every) * every;
                while s <= t {
                    let win = w(s, s + size);
                    if win.contains(t) && !is_closed(&win) {
                        any = true;
                        match self
                            .windows
                            .iter_mut()
                            .find(|(k, x, _)| k == key && *x == win)
                        {
                            Some((_, _, v)) => v.push(id),
                            None => self.windows.push((key.to_vec(), win, vec![id])),
                        }
                    }
                    s += every;
                }
                if !any {
                    self.late.push(id);
                }
            }
        }
        self.max_event = Some(self.max_event.map_or(t, |m| m.max(t)));
    }
}

struct Run {
    emitted: Vec<(Vec<u8>, Window, Vec<u32>)>,
    remaining: Vec<(Vec<u8>, Window, Vec<u32>)>,
    late: Vec<u32>,
    counters: WindowCounters,
}

/// Feeds `records` cut at `cuts`, calling `closed()` after every batch; optionally replaces
/// the state by a restored snapshot of itself after batch `snap_at`.
fn run(cfg: WindowConfig, records: &[(u8, i64)], cuts: &[usize], snap_at: Option<usize>) -> Run {
    let mut state = State::new(cfg).unwrap();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (records.len() + 1)).collect();
    bounds.push(0);
    bounds.push(records.len());
    bounds.sort_unstable();
    let mut emitted = Vec::new();
    let mut late = Vec::new();
    let mut late_before_snapshot = 0;
    for (b, pair) in bounds.windows(2).enumerate() {
        let batch: Vec<([u8; 1], i64)> = records[pair[0]..pair[1]]
            .iter()
            .map(|&(k, t)| ([k], t))
            .collect();
        let folded = state
            .fold_batch(&batch, 0, fold_ids(pair[0] as u32))
            .unwrap();
        assert!(folded.evicted.is_empty());
        late.extend(folded.late.iter().map(|&i| (pair[0] + i) as u32));
        let closed = state.closed();
        let order: Vec<_> = closed
            .iter()
            .map(|c| (c.window.end_ms, c.key.clone(), c.window.start_ms))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "closed() out of order");
        emitted.extend(summary(&closed));
        if snap_at == Some(b) {
            let bytes = state.snapshot();
            late_before_snapshot = state.counters().late_records;
            let restored = State::restore(cfg, &bytes, 0).unwrap();
            assert_eq!(restored.snapshot(), bytes);
            // Key by key, as a changelog holds it, in reverse order: the same state.
            let header = state.snapshot_header();
            let keys: Vec<(Arc<[u8]>, Vec<u8>)> = state
                .entries
                .keys()
                .rev()
                .map(|k| (k.clone(), state.snapshot_key(k).unwrap()))
                .collect();
            let parts =
                State::restore_parts(cfg, &header, keys.iter().map(|(k, b)| (&k[..], &b[..])), 0)
                    .unwrap();
            assert_eq!(parts.snapshot(), bytes);
            state = restored;
        }
    }
    let remaining = state
        .iter()
        .map(|(k, w, a)| (k.to_vec(), w, ids(a)))
        .collect();
    let mut counters = state.counters();
    counters.late_records += late_before_snapshot;
    Run {
        emitted,
        remaining,
        late,
        counters,
    }
}

fn spec_strategy() -> impl Strategy<Value = WindowSpec> {
    prop_oneof![
        (1i64..50).prop_map(|size_ms| WindowSpec::Tumbling { size_ms }),
        (1i64..50)
            .prop_flat_map(|size| (Just(size), 1..=size))
            .prop_map(|(size_ms, every_ms)| WindowSpec::Hopping { size_ms, every_ms }),
        (1i64..30).prop_map(|gap_ms| WindowSpec::Session { gap_ms }),
    ]
}

/// Keys from a small set; times drifting upwards with disorder of up to 60 ms back.
fn stream_strategy() -> impl Strategy<Value = Vec<(u8, i64)>> {
    prop::collection::vec((0u8..3, 0i64..20, -60i64..10), 0..80).prop_map(|steps| {
        let mut cursor = -100;
        steps
            .into_iter()
            .map(|(k, step, off)| {
                cursor += step;
                (k, cursor + off)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_matches_reference(
        spec in spec_strategy(),
        lateness in 0i64..40,
        records in stream_strategy(),
        cuts in prop::collection::vec(0usize..100, 0..6),
    ) {
        let cfg = config(spec, lateness);
        let got = run(cfg, &records, &cuts, None);
        let mut reference = Reference::default();
        for (i, &(k, t)) in records.iter().enumerate() {
            reference.feed(spec, lateness, i as u32, &[k], t);
        }
        let wm = reference.max_event.map(|m| m - lateness);
        let (mut closed, mut open): (Vec<_>, Vec<_>) = reference
            .windows
            .into_iter()
            .map(|(k, w, mut v)| { v.sort_unstable(); (k, w, v) })
            .partition(|(_, w, _)| wm.is_some_and(|wm| w.end_ms <= wm));
        closed.sort();
        open.sort();
        let mut emitted = got.emitted.clone();
        emitted.sort();
        let mut remaining = got.remaining.clone();
        remaining.sort();
        prop_assert_eq!(emitted, closed);
        prop_assert_eq!(remaining, open);
        prop_assert_eq!(&got.late, &reference.late);
        prop_assert_eq!(got.counters.late_records, reference.late.len() as u64);
        prop_assert_eq!(got.counters.open_windows, got.remaining.len() as u64);
    }

    #[test]
    fn prop_snapshot_restore_mid_stream_changes_nothing(
        spec in spec_strategy(),
        lateness in 0i64..40,
        records in stream_strategy(),
        cuts in prop::collection::vec(0usize..100, 1..6),
        snap_at in 0usize..6,
    ) {
        let cfg = config(spec, lateness);
        let plain = run(cfg, &records, &cuts, None);
        let snapped = run(cfg, &records, &cuts, Some(snap_at));
        prop_assert_eq!(plain.emitted, snapped.emitted);
        prop_assert_eq!(plain.remaining, snapped.remaining);
        prop_assert_eq!(plain.late, snapped.late);
        prop_assert_eq!(plain.counters, snapped.counters);
    }

    #[test]
    fn prop_eviction_keeps_the_bound_and_loses_no_record(
        session in any::<bool>(),
        size in 1i64..30,
        lateness in 0i64..40,
        max_entries in 1usize..5,
        records in stream_strategy(),
        cuts in prop::collection::vec(0usize..100, 0..6),
    ) {
        let spec = if session {
            WindowSpec::Session { gap_ms: size }
        } else {
            WindowSpec::Tumbling { size_ms: size }
        };
        let cfg = WindowConfig { on_full: OnFull::EvictOldest, max_entries, ..config(spec, lateness) };
        let mut state = State::new(cfg).unwrap();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (records.len() + 1)).collect();
        bounds.extend([0, records.len()]);
        bounds.sort_unstable();
        let mut seen: Vec<u32> = Vec::new();
        let mut late = 0;
        let mut evicted = 0;
        for pair in bounds.windows(2) {
            let batch: Vec<([u8; 1], i64)> =
                records[pair[0]..pair[1]].iter().map(|&(k, t)| ([k], t)).collect();
            let folded = state.fold_batch(&batch, 0, fold_ids(pair[0] as u32)).unwrap();
            late += folded.late.len();
            evicted += folded.evicted.len();
            for c in folded.evicted.iter().chain(&state.closed()) {
                seen.extend(ids(&c.acc));
            }
            prop_assert!(state.counters().open_windows as usize <= max_entries);
        }
        seen.extend(state.iter().flat_map(|(_, _, a)| ids(a)));
        seen.sort_unstable();
        seen.dedup();
        prop_assert_eq!(seen.len() + late, records.len());
        prop_assert_eq!(state.counters().evicted_windows, evicted as u64);
    }

    #[test]
    fn prop_restore_of_garbage_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let cfg = config(WindowSpec::Tumbling { size_ms: 10 }, 0);
        let _ = State::restore(cfg, &bytes, 0);
        let mut prefixed = b"WWIN\x01\x00\x0a".to_vec();
        prefixed.extend(&bytes);
        let _ = State::restore(cfg, &prefixed, 0);
    }
}
