//! A partition's windowed accumulators: planning a batch by (key, window), applying the
//! accumulators computed for it, the watermark, closing, eviction and the idle rule.
//!
//! Owns [`WindowState`] and its in-memory invariants; may not compute accumulators (the caller
//! does, through a plan) and leaves the byte encoding of snapshots to `snapshot`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::spec::{fixed_windows, union, watermark};
use super::{OnFull, Window, WindowConfig, WindowError, WindowSpec};

/// A window handed out by [`WindowState::closed`] or evicted by [`WindowState::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed<A> {
    pub key: Arc<[u8]>,
    pub window: Window,
    pub acc: A,
}

/// The counters the engine exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowCounters {
    /// Records that arrived after all their windows closed (since this state was created).
    pub late_records: u64,
    /// Windows handed out early by [`OnFull::EvictOldest`].
    pub evicted_windows: u64,
    /// `(key, window)` entries held now (open, or closed and not yet handed out).
    pub open_windows: u64,
}

/// One `(key, window)` of a batch: the accumulators it starts from and the records to add.
#[derive(Debug)]
pub struct Group<'s, A> {
    pub key: Arc<[u8]>,
    pub window: Window,
    /// Stored accumulators to start from, ascending by their window: none means `create()`, one
    /// means that accumulator, several (sessions bridged by this batch) mean their `merge`.
    pub accs: Vec<&'s A>,
    /// Indices into the batch, ascending.
    pub records: Vec<usize>,
}

/// How a batch maps onto windows. Borrows the state; see the module documentation.
#[derive(Debug)]
pub struct BatchPlan<'s, A> {
    /// Fixed windows in order of first appearance in the batch; sessions in order of the record
    /// that last extended them.
    pub groups: Vec<Group<'s, A>>,
    /// Indices of the late records, ascending.
    pub late: Vec<usize>,
    commit: Commit,
}

impl<A> BatchPlan<'_, A> {
    /// Releases the borrow of the state, keeping what [`WindowState::apply`] needs.
    pub fn into_commit(self) -> Commit {
        self.commit
    }
}

/// The state changes of a planned batch, waiting for its accumulators.
#[derive(Debug, Clone)]
pub struct Commit {
    generation: u64,
    max_event: Option<i64>,
    removed: Vec<(Arc<[u8]>, Window)>,
    targets: Vec<(Arc<[u8]>, Window)>,
    late: u64,
    had_records: bool,
    now_ms: i64,
}

/// What [`WindowState::fold_batch`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded<A> {
    /// Indices of the late records, ascending.
    pub late: Vec<usize>,
    /// Windows evicted early by [`OnFull::EvictOldest`].
    pub evicted: Vec<Closed<A>>,
}

/// The windowed accumulators of one partition, keyed by (key bytes, window). `A` is opaque: the
/// engine stores the module's accumulator bytes (`Vec<u8>`).
#[derive(Debug, Clone)]
pub struct WindowState<A> {
    pub(super) config: WindowConfig,
    pub(super) entries: BTreeMap<Arc<[u8]>, BTreeMap<Window, A>>,
    /// (end, key, start) of every entry: the closing and eviction order.
    pub(super) by_end: BTreeSet<(i64, Arc<[u8]>, i64)>,
    pub(super) max_event: Option<i64>,
    /// (wall time, max_event) when the last non-empty batch was applied.
    pub(super) idle_anchor: Option<(i64, i64)>,
    generation: u64,
    late_records: u64,
    evicted_windows: u64,
}

impl<A> WindowState<A> {
    pub fn new(config: WindowConfig) -> Result<Self, WindowError> {
        config.validate()?;
        Ok(WindowState {
            config,
            entries: BTreeMap::new(),
            by_end: BTreeSet::new(),
            max_event: None,
            idle_anchor: None,
            generation: 0,
            late_records: 0,
            evicted_windows: 0,
        })
    }

    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// The largest event time seen (or reached by the idle rule).
    pub fn max_event_ms(&self) -> Option<i64> {
        self.max_event
    }

    /// `max_event - lateness`: windows ending at or before it are closed.
    pub fn watermark(&self) -> Option<i64> {
        watermark(self.max_event, self.config.lateness_ms)
    }

    pub fn counters(&self) -> WindowCounters {
        WindowCounters {
            late_records: self.late_records,
            evicted_windows: self.evicted_windows,
            open_windows: self.by_end.len() as u64,
        }
    }

    /// Every entry held, by key then window.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<[u8]>, Window, &A)> {
        self.entries
            .iter()
            .flat_map(|(k, m)| m.iter().map(move |(w, a)| (k, *w, a)))
    }

    /// Groups a batch of `(key, event time)` by `(key, window)` without changing the state.
    /// `now_ms` is the wall clock, remembered for the idle rule when the plan is applied.
    pub fn plan_batch<'r, K: AsRef<[u8]>>(
        &self,
        records: &'r [(K, i64)],
        now_ms: i64,
    ) -> Result<BatchPlan<'_, A>, WindowError> {
        let lateness = self.config.lateness_ms;
        let mut max_event = self.max_event;
        let mut groups: Vec<Option<Group<'_, A>>> = Vec::new();
        let mut late = Vec::new();
        let mut removed: Vec<(Arc<[u8]>, Window)> = Vec::new();
        let mut new_keys: HashMap<&'r [u8], Arc<[u8]>> = HashMap::new();
        let mut key_arc = |key: &'r [u8]| -> Arc<[u8]> {
            match self.entries.get_key_value(key) {
                Some((k, _)) => k.clone(),
                None => new_keys
                    .entry(key)
                    .or_insert_with(|| Arc::from(key))
                    .clone(),
            }
        };
        let closed = |wm: Option<i64>, w: &Window| wm.is_some_and(|wm| w.end_ms <= wm);

        match self.config.spec.fixed() {
            Some((size, every)) => {
                let mut index: HashMap<(&[u8], Window), usize> = HashMap::new();
                for (i, (key, t)) in records.iter().enumerate() {
                    let (key, t) = (key.as_ref(), *t);
                    let wm = watermark(max_event, lateness);
                    let mut any = false;
                    for w in fixed_windows(size, every, t) {
                        if closed(wm, &w) {
                            continue;
                        }
                        any = true;
                        let g = *index.entry((key, w)).or_insert_with(|| {
                            let key = key_arc(key);
                            let stored = self.entries.get(&key).and_then(|m| m.get(&w));
                            if stored.is_some() {
                                removed.push((key.clone(), w));
                            }
                            groups.push(Some(Group {
                                key,
                                window: w,
                                accs: stored.into_iter().collect(),
                                records: Vec::new(),
                            }));
                            groups.len() - 1
                        });
                        groups[g].as_mut().unwrap().records.push(i);
                    }
                    if !any {
                        late.push(i);
                    }
                    max_event = Some(max_event.map_or(t, |m| m.max(t)));
                }
            }
            None => {
                let WindowSpec::Session { gap_ms } = self.config.spec else {
                    unreachable!()
                };
                // Sessions planned so far: (key, extent, stored accs by window, records); the
                // ones merged into a later session are taken out.
                type Planned<'k, 's, A> = (&'k [u8], Window, Vec<(Window, &'s A)>, Vec<usize>);
                let mut sessions: Vec<Option<Planned<'_, '_, A>>> = Vec::new();
                let mut live: HashMap<&[u8], Vec<usize>> = HashMap::new();
                let mut absorbed: HashSet<(&[u8], Window)> = HashSet::new();
                for (i, (key, t)) in records.iter().enumerate() {
                    let (key, t) = (key.as_ref(), *t);
                    let wm = watermark(max_event, lateness);
                    let own = Window::new(t, t.saturating_add(gap_ms));
                    if closed(wm, &own) {
                        late.push(i);
                    } else {
                        let touches = |w: &Window| w.start_ms <= own.end_ms && w.end_ms >= t;
                        let mut extent = own;
                        let mut accs: Vec<(Window, &A)> = Vec::new();
                        let mut recs = vec![i];
                        if let Some(stored) = self.entries.get(key) {
                            let upto = Window::new(own.end_ms, i64::MAX);
                            for (w, a) in stored.range(..=upto) {
                                if touches(w) && !closed(wm, w) && absorbed.insert((key, *w)) {
                                    removed.push((key_arc(key), *w));
                                    extent = union(extent, *w);
                                    accs.push((*w, a));
                                }
                            }
                        }
                        let live = live.entry(key).or_default();
                        live.retain(|&p| {
                            let window = sessions[p].as_ref().unwrap().1;
                            if touches(&window) && !closed(wm, &window) {
                                let (_, window, stored, rs) = sessions[p].take().unwrap();
                                extent = union(extent, window);
                                accs.extend(stored);
                                recs.extend(rs);
                                false
                            } else {
                                true
                            }
                        });
                        accs.sort_by_key(|(w, _)| *w);
                        recs.sort_unstable();
                        live.push(sessions.len());
                        sessions.push(Some((key, extent, accs, recs)));
                    }
                    max_event = Some(max_event.map_or(t, |m| m.max(t)));
                }
                for (key, window, accs, records) in sessions.into_iter().flatten() {
                    groups.push(Some(Group {
                        key: key_arc(key),
                        window,
                        accs: accs.into_iter().map(|(_, a)| a).collect(),
                        records,
                    }));
                }
            }
        }

        let groups: Vec<Group<'_, A>> = groups.into_iter().flatten().collect();
        let wm = watermark(max_event, lateness);
        if self.config.on_full == OnFull::Fail {
            let open_now = self.by_end.len() - self.closed_count(wm);
            let removed_open = removed.iter().filter(|(_, w)| !closed(wm, w)).count();
            let added_open = groups.iter().filter(|g| !closed(wm, &g.window)).count();
            let needed = open_now - removed_open + added_open;
            if needed > self.config.max_entries {
                return Err(WindowError::TooManyEntries {
                    limit: self.config.max_entries,
                    needed,
                });
            }
        }
        let commit = Commit {
            generation: self.generation,
            max_event,
            removed,
            targets: groups.iter().map(|g| (g.key.clone(), g.window)).collect(),
            late: late.len() as u64,
            had_records: !records.is_empty(),
            now_ms,
        };
        Ok(BatchPlan {
            groups,
            late,
            commit,
        })
    }

    /// Stores the accumulators computed for a plan's groups (`results[i]` for `groups[i]`),
    /// advances the watermark, and returns the windows evicted early, if any.
    pub fn apply(
        &mut self,
        commit: Commit,
        results: Vec<A>,
    ) -> Result<Vec<Closed<A>>, WindowError> {
        if commit.generation != self.generation {
            return Err(WindowError::StalePlan);
        }
        if results.len() != commit.targets.len() {
            return Err(WindowError::ResultCount {
                expected: commit.targets.len(),
                got: results.len(),
            });
        }
        for (key, w) in &commit.removed {
            self.remove(key, w);
        }
        for ((key, w), acc) in commit.targets.into_iter().zip(results) {
            self.insert(key, w, acc);
        }
        self.max_event = commit.max_event;
        if commit.had_records
            && let Some(m) = self.max_event
        {
            self.idle_anchor = Some((commit.now_ms, m));
        }
        self.late_records += commit.late;
        self.generation += 1;

        let mut evicted = Vec::new();
        if self.config.on_full == OnFull::EvictOldest {
            let wm = self.watermark();
            let mut open = self.by_end.len() - self.closed_count(wm);
            while open > self.config.max_entries {
                let Some((end, key, start)) = self.first_open(wm) else {
                    break;
                };
                let window = Window::new(start, end);
                let acc = self.remove(&key, &window).unwrap();
                evicted.push(Closed { key, window, acc });
                open -= 1;
            }
            self.evicted_windows += evicted.len() as u64;
        }
        Ok(evicted)
    }

    /// [`plan_batch`](Self::plan_batch), a native accumulator update per group, and
    /// [`apply`](Self::apply) in one call.
    pub fn fold_batch<K: AsRef<[u8]>>(
        &mut self,
        records: &[(K, i64)],
        now_ms: i64,
        mut update: impl FnMut(&Group<'_, A>) -> A,
    ) -> Result<Folded<A>, WindowError> {
        let plan = self.plan_batch(records, now_ms)?;
        let results: Vec<A> = plan.groups.iter().map(&mut update).collect();
        let late = plan.late.clone();
        let evicted = self.apply(plan.into_commit(), results)?;
        Ok(Folded { late, evicted })
    }

    /// Removes and returns the closed windows (`end <= watermark`), ordered by end, then key,
    /// then start.
    pub fn closed(&mut self) -> Vec<Closed<A>> {
        let mut out = Vec::new();
        let Some(wm) = self.watermark() else {
            return out;
        };
        while self.by_end.first().is_some_and(|(end, _, _)| *end <= wm) {
            let (end, key, start) = self.by_end.first().unwrap().clone();
            let window = Window::new(start, end);
            let acc = self.remove(&key, &window).unwrap();
            out.push(Closed { key, window, acc });
        }
        if !out.is_empty() {
            self.generation += 1;
        }
        out
    }

    /// Removes and returns every entry, closed or open, ordered by end, then key, then start
    /// (the end of a finite input, such as a test case).
    pub fn drain(&mut self) -> Vec<Closed<A>> {
        let mut out = Vec::with_capacity(self.by_end.len());
        while let Some((end, key, start)) = self.by_end.first().cloned() {
            let window = Window::new(start, end);
            let acc = self.remove(&key, &window).expect("by_end matches entries");
            out.push(Closed { key, window, acc });
        }
        if !out.is_empty() {
            self.generation += 1;
        }
        out
    }

    /// Forgets the entry `(key, window)` without handing it out (the engine's way to undo a
    /// window that a failed update would have opened). Returns whether it was there.
    pub fn discard(&mut self, key: &Arc<[u8]>, window: &Window) -> bool {
        let found = self.remove(key, window).is_some();
        if found {
            self.generation += 1;
        }
        found
    }

    /// The idle rule (see the module documentation): returns whether the watermark moved.
    pub fn on_idle(&mut self, now_ms: i64) -> bool {
        let (Some(timeout), Some((wall, event))) = (self.config.idle_timeout_ms, self.idle_anchor)
        else {
            return false;
        };
        let quiet = now_ms.saturating_sub(wall);
        if quiet < timeout {
            return false;
        }
        let reached = event.saturating_add(quiet - timeout);
        if self.max_event.is_some_and(|m| m >= reached) {
            return false;
        }
        self.max_event = Some(reached);
        self.generation += 1;
        true
    }

    fn closed_count(&self, wm: Option<i64>) -> usize {
        match wm {
            None => 0,
            Some(wm) => self.by_end.iter().take_while(|(e, _, _)| *e <= wm).count(),
        }
    }

    fn first_open(&self, wm: Option<i64>) -> Option<(i64, Arc<[u8]>, i64)> {
        let lowest_key: Arc<[u8]> = Arc::from(&[][..]);
        match wm {
            None => self.by_end.first().cloned(),
            Some(wm) => {
                let lo = wm.checked_add(1)?;
                self.by_end
                    .range((lo, lowest_key, i64::MIN)..)
                    .next()
                    .cloned()
            }
        }
    }

    pub(super) fn insert(&mut self, key: Arc<[u8]>, w: Window, acc: A) {
        self.by_end.insert((w.end_ms, key.clone(), w.start_ms));
        self.entries.entry(key).or_default().insert(w, acc);
    }

    fn remove(&mut self, key: &Arc<[u8]>, w: &Window) -> Option<A> {
        let windows = self.entries.get_mut(key)?;
        let acc = windows.remove(w)?;
        if windows.is_empty() {
            self.entries.remove(key);
        }
        self.by_end.remove(&(w.end_ms, key.clone(), w.start_ms));
        Some(acc)
    }
}
