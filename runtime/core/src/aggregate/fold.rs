//! [`WindowFold`]: one partition's windows and the aggregator that folds records into them.
//!
//! Owns the fate of every record handed to it, the span links of open windows, the keys changed
//! since the last checkpoint, and turning closed windows into results; may not touch a clock, a
//! changelog, Kafka or wasm (the [`Aggregator`] hides the module).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::window::{Closed, Window, WindowError, WindowState};
use crate::{Failure, FailureKind, Record};

use super::breaker::add_groups;
use super::{
    Aggregator, Fate, LatePolicy, MAX_LINKS, SpanLink, WINDOW_END, WINDOW_START, WindowResult,
};

/// An aggregate stage's windows on one partition, and the aggregator that folds into them.
///
/// Accumulators are the aggregator's opaque bytes. A record's fate is decided here: covered by a
/// restored state, folded (held until a checkpoint), late (dropped or failed), or failed (its key
/// or time unreadable, its group refused, the state full).
#[derive(Debug)]
pub struct WindowFold<G> {
    aggregator: G,
    state: WindowState<Vec<u8>>,
    late: LatePolicy,
    /// Records below this offset are already in the restored state.
    restored_next: i64,
    /// Keys whose restored state covers records past `restored_next` (a checkpoint that did not
    /// finish): the offset each one covers.
    covered: HashMap<Arc<[u8]>, i64>,
    /// Keys whose windows changed since [`Self::take_dirty`].
    dirty: BTreeSet<Arc<[u8]>>,
    /// Input spans of each open window, for the result's span links.
    links: HashMap<(Arc<[u8]>, Window), Vec<SpanLink>>,
    /// `create()`'s accumulator, asked once per aggregator.
    empty: Option<Vec<u8>>,
    /// Windows evicted early, handed out with the closed ones.
    evicted: Vec<Closed<Vec<u8>>>,
}

impl<G: Aggregator> WindowFold<G> {
    /// A fold over `state`, which holds every record below `restored_next` (and, for the keys in
    /// `covered`, every record of theirs below their offset). A fresh state: `i64::MIN` and no
    /// covered keys.
    pub fn new(
        aggregator: G,
        state: WindowState<Vec<u8>>,
        late: LatePolicy,
        restored_next: i64,
        covered: HashMap<Arc<[u8]>, i64>,
    ) -> Self {
        Self {
            aggregator,
            state,
            late,
            restored_next,
            covered,
            dirty: BTreeSet::new(),
            links: HashMap::new(),
            empty: None,
            evicted: Vec::new(),
        }
    }

    pub fn aggregator(&mut self) -> &mut G {
        &mut self.aggregator
    }

    /// Swaps in another aggregator (a new version of the module, whose accumulators read the
    /// running one's) and late policy; the windows stay. Returns the previous aggregator.
    pub fn replace(&mut self, aggregator: G, late: LatePolicy) -> G {
        self.empty = None;
        self.late = late;
        std::mem::replace(&mut self.aggregator, aggregator)
    }

    pub fn state(&self) -> &WindowState<Vec<u8>> {
        &self.state
    }

    /// Records below this offset were in the restored state.
    pub fn restored_next(&self) -> i64 {
        self.restored_next
    }

    /// Whether some key's windows changed since the last [`Self::take_dirty`].
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The keys whose windows changed (folded, closed, evicted) since the last call, ascending.
    pub fn take_dirty(&mut self) -> BTreeSet<Arc<[u8]>> {
        std::mem::take(&mut self.dirty)
    }

    /// Folds `records` (each with the span its aggregate pass is recorded under) into their
    /// windows at wall time `now_ms`, reading each record's key and event time with
    /// `key_and_time` (not asked for records the restored state covers). Returns each record's
    /// fate, in order.
    pub fn fold(
        &mut self,
        records: &[(Record, SpanLink)],
        now_ms: i64,
        mut key_and_time: impl FnMut(&Record) -> Result<(Arc<[u8]>, i64), Failure>,
    ) -> Vec<Fate> {
        let mut fates: Vec<Option<Fate>> = records.iter().map(|_| None).collect();
        let mut keyed: Vec<(Arc<[u8]>, i64)> = Vec::with_capacity(records.len());
        let mut index: Vec<usize> = Vec::with_capacity(records.len());
        for (i, (record, _)) in records.iter().enumerate() {
            if record.offset < self.restored_next {
                fates[i] = Some(Fate::Covered);
                continue;
            }
            match key_and_time(record) {
                Ok(kt) => {
                    if self.covered.get(&kt.0).is_some_and(|&n| record.offset < n) {
                        fates[i] = Some(Fate::Covered);
                        continue;
                    }
                    keyed.push(kt);
                    index.push(i);
                }
                Err(failure) => fates[i] = Some(Fate::Failed(failure)),
            }
        }
        if !keyed.is_empty() {
            for (k, fate) in self
                .fold_keyed(records, &keyed, &index, now_ms)
                .into_iter()
                .enumerate()
            {
                fates[index[k]] = Some(fate);
            }
        }
        fates
            .into_iter()
            .map(|f| f.expect("every record has a fate"))
            .collect()
    }

    /// Plans, calls the aggregator and applies: the fate of each keyed record.
    fn fold_keyed(
        &mut self,
        records: &[(Record, SpanLink)],
        keyed: &[(Arc<[u8]>, i64)],
        index: &[usize],
        now_ms: i64,
    ) -> Vec<Fate> {
        let all = |f: Failure| keyed.iter().map(|_| Fate::Failed(f.clone())).collect();
        let plan = match self.state.plan_batch(keyed, now_ms) {
            Ok(plan) => plan,
            Err(WindowError::TooManyEntries { .. }) if keyed.len() > 1 => {
                // Record by record, so that only the records that would open a window too
                // many fail; the others still go into the windows that exist.
                return (0..keyed.len())
                    .map(|k| {
                        self.fold_keyed(records, &keyed[k..=k], &index[k..=k], now_ms)
                            .pop()
                            .expect("one fate per record")
                    })
                    .collect();
            }
            Err(WindowError::TooManyEntries { limit, needed }) => {
                let failure = Failure::new(
                    FailureKind::StateFull,
                    format!(
                        "the stage would hold {needed} windows on this partition, more than \
                         max_windows = {limit} (raise it, or set on_full = \"evict-oldest\")"
                    ),
                );
                return all(failure);
            }
            Err(e) => return all(Failure::new(FailureKind::InvalidInput, e.to_string())),
        };
        // Each group's starting accumulator: create(), the stored one, or the merge of several.
        let mut starts: Vec<Result<Vec<u8>, Failure>> = Vec::with_capacity(plan.groups.len());
        for group in &plan.groups {
            let start = match &group.accs[..] {
                [] => empty_acc(&mut self.aggregator, &mut self.empty),
                [one] => Ok((*one).clone()),
                [first, rest @ ..] => {
                    let mut acc = (*first).clone();
                    let mut result = Ok(());
                    for next in rest {
                        match self.aggregator.merge(&acc, next) {
                            Ok(merged) => acc = merged,
                            Err(e) => {
                                result = Err(e);
                                break;
                            }
                        }
                    }
                    result.map(|()| acc)
                }
            };
            starts.push(start);
        }
        let members: Vec<Vec<Record>> = plan
            .groups
            .iter()
            .map(|g| {
                g.records
                    .iter()
                    .map(|&k| records[index[k]].0.clone())
                    .collect()
            })
            .collect();
        let callable: Vec<(Vec<u8>, &[Record])> = starts
            .iter()
            .zip(&members)
            .filter_map(|(s, m)| s.as_ref().ok().map(|acc| (acc.clone(), &m[..])))
            .collect();
        let mut answers = add_groups(&mut self.aggregator, &callable).into_iter();
        // A group the module refused keeps its previous accumulator (the merged one for
        // bridged sessions, a fresh one for a new window), and its records fail.
        let mut failed: Vec<Option<Failure>> = vec![None; keyed.len()];
        let mut discard = Vec::new();
        let mut results = Vec::with_capacity(plan.groups.len());
        for (g, group) in plan.groups.iter().enumerate() {
            let outcome = match &starts[g] {
                Err(e) => Err((e.clone(), None)),
                Ok(start) => match answers.next() {
                    Some(Ok(acc)) => Ok(acc),
                    Some(Err(e)) => Err((e, Some(start.clone()))),
                    None => Err((
                        Failure::new(FailureKind::InvalidOutput, "add() answered too few groups"),
                        Some(start.clone()),
                    )),
                },
            };
            let acc = match outcome {
                Ok(acc) => acc,
                Err((failure, start)) => {
                    for &k in &group.records {
                        failed[k] = Some(failure.clone());
                    }
                    if group.accs.is_empty() {
                        // A window the failed records would have opened: not kept at all.
                        discard.push((group.key.clone(), group.window));
                    }
                    start
                        .or_else(|| group.accs.first().map(|a| (*a).clone()))
                        .unwrap_or_default()
                }
            };
            results.push(acc);
        }
        // Span links of the windows the records went into (a merged session takes those of
        // the sessions it absorbed).
        let mut link_updates = Vec::with_capacity(plan.groups.len());
        for group in &plan.groups {
            let mut links = Vec::new();
            for &k in &group.records {
                if failed[k].is_none() {
                    links.push(records[index[k]].1);
                }
            }
            link_updates.push((group.key.clone(), group.window, group.accs.len() > 1, links));
        }
        let late = plan.late.clone();
        let commit = plan.into_commit();
        let evicted = match self.state.apply(commit, results) {
            Ok(evicted) => evicted,
            Err(e) => return all(Failure::new(FailureKind::InvalidInput, e.to_string())),
        };
        for (key, window) in discard {
            self.state.discard(&key, &window);
        }
        for (key, window, merged, links) in link_updates {
            if merged {
                self.absorb_links(&key, window);
            }
            if !links.is_empty() {
                let entry = self.links.entry((key.clone(), window)).or_default();
                let room = MAX_LINKS.saturating_sub(entry.len());
                entry.extend(links.into_iter().take(room));
            }
            self.dirty.insert(key);
        }
        for e in &evicted {
            self.dirty.insert(e.key.clone());
        }
        self.evicted.extend(evicted);
        let mut fates: Vec<Fate> = failed
            .into_iter()
            .map(|f| f.map_or(Fate::Held, Fate::Failed))
            .collect();
        for k in late {
            fates[k] = self.late_fate(keyed[k].1);
        }
        fates
    }

    /// Sessions bridged by a batch into `window`: gathers the links of every old session of
    /// `key` that the new window covers.
    fn absorb_links(&mut self, key: &Arc<[u8]>, window: Window) {
        let absorbed: Vec<_> = self
            .links
            .keys()
            .filter(|(k, w)| k == key && w.start_ms >= window.start_ms && w.end_ms <= window.end_ms)
            .cloned()
            .collect();
        let mut all = Vec::new();
        for k in absorbed {
            all.extend(self.links.remove(&k).unwrap_or_default());
        }
        self.links.insert((key.clone(), window), all);
    }

    fn late_fate(&self, time: i64) -> Fate {
        match self.late {
            LatePolicy::Drop => Fate::Dropped,
            LatePolicy::DeadLetter => Fate::Failed(Failure::new(
                FailureKind::Late,
                format!(
                    "event time {time} is behind the partition's watermark {} (the newest event \
                     time minus `lateness`): every window of the record has closed",
                    self.state.watermark().unwrap_or(i64::MIN)
                ),
            )),
        }
    }

    /// Applies the idle rule at wall time `now_ms`: whether the watermark moved.
    pub fn on_idle(&mut self, now_ms: i64) -> bool {
        self.state.on_idle(now_ms)
    }

    /// Closes every window, open or not (the end of a finite input, such as a test case), and
    /// turns them into results.
    pub fn close_all(&mut self) -> Vec<WindowResult> {
        self.evicted.extend(self.state.drain());
        self.closed()
    }

    /// Turns every window closed (or evicted) since the last call into results, ordered as
    /// [`WindowState::closed`] orders them, evicted ones first. An output gets the window's key
    /// when it has none, the window's last millisecond when it has no timestamp, offset -1, and
    /// the [`WINDOW_START`] and [`WINDOW_END`] headers.
    pub fn closed(&mut self) -> Vec<WindowResult> {
        let mut windows = std::mem::take(&mut self.evicted);
        windows.extend(self.state.closed());
        windows
            .into_iter()
            .map(|Closed { key, window, acc }| {
                self.dirty.insert(key.clone());
                let links = self
                    .links
                    .remove(&(key.clone(), window))
                    .unwrap_or_default();
                let outputs = self.aggregator.emit(&key, window, &acc).map(|mut outputs| {
                    for out in &mut outputs {
                        stamp(out, &key, window);
                    }
                    outputs
                });
                WindowResult {
                    key,
                    window,
                    outputs,
                    acc,
                    links,
                }
            })
            .collect()
    }
}

/// Fills in what a window result's output lacks, and marks it with its window.
fn stamp(out: &mut Record, key: &[u8], window: Window) {
    if out.key.is_none() {
        out.key = Some(crate::Bytes::copy_from_slice(key));
    }
    // A result without a time of its own is stamped at its window's last millisecond.
    out.timestamp = out.timestamp.or(Some(window.end_ms.saturating_sub(1)));
    out.offset = -1;
    out.headers
        .push(WINDOW_START, Some(window.start_ms.to_string().as_bytes()));
    out.headers
        .push(WINDOW_END, Some(window.end_ms.to_string().as_bytes()));
}

/// `create()`'s accumulator, asked of `aggregator` once and kept in `empty`.
fn empty_acc<G: Aggregator>(
    aggregator: &mut G,
    empty: &mut Option<Vec<u8>>,
) -> Result<Vec<u8>, Failure> {
    if let Some(acc) = empty {
        return Ok(acc.clone());
    }
    let acc = aggregator.create()?;
    *empty = Some(acc.clone());
    Ok(acc)
}
