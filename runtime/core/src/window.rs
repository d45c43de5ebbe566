//! Event-time windows for aggregate stages: which windows a record falls in, the per-partition
//! watermark, when a window closes, and the host-owned accumulators in between.
//!
//! Pure logic: no clock, no wasm, no Kafka. The engine drives one [`WindowState`] per partition
//! lane, batch by batch.
//!
//! # Units
//! Every time and duration is an `i64` count of milliseconds (times since the Unix epoch). One
//! integer type keeps the arithmetic, the snapshots and the Kafka record timestamps alike.
//!
//! # Watermark, lateness and closing
//! - `max_event` is the largest event time the partition has seen (or reached by the idle rule).
//! - The **watermark** already includes the allowed lateness:
//!   `watermark = max_event - lateness_ms` (`None` before the first record).
//! - A window `[start, end)` is **closed** once `end <= watermark`, i.e. once
//!   `end + lateness <= max_event`. A closed window never receives a record again and is never
//!   merged; [`WindowState::closed`] hands it out and forgets it.
//! - Records of a batch are taken in order: each one is assigned against the watermark left by the
//!   records before it, then raises `max_event`. (A record cannot close its own windows: they all
//!   end after its time.) A record is **late** when every window it belongs to is closed; late
//!   records are reported by index and counted, never stored. A hopping record whose older windows
//!   are closed but newer ones open goes to the open ones only.
//! - Because closed windows are frozen, the output does not depend on how records are cut into
//!   batches or on how often `closed()` is called.
//!
//! # Idle partitions
//! With `idle_timeout_ms = Some(d)`, [`WindowState::on_idle`]`(now)` assumes event time keeps pace
//! with the wall clock once the partition has been quiet for `d`: if the last non-empty batch was
//! applied at wall time `w`, when `max_event` was `m`, then for `now - w >= d`,
//! `max_event = max(max_event, m + (now - w - d))`. So a quiet partition closes its windows `d`
//! (plus the lateness) after their event-time end would have passed, however old the data's
//! timestamps are (replays of old data are not wiped out by the wall clock), and a partition that
//! resumes with timestamps following the wall clock is not made late by its pause. Restoring a
//! snapshot restarts the quiet period at the restore time, so downtime does not count as idleness.
//!
//! # Sessions
//! A record at `t` opens `[t, t + gap)`. It merges with every open session of its key that
//! overlaps or touches that window (`start <= t + gap && end >= t`); the result spans all of them.
//! Open sessions of a key therefore never overlap or touch. With lateness, a record may still open
//! a session that overlaps one already closed (and possibly emitted); they stay separate.
//!
//! # Driving it per batch
//! ```
//! use weir_core::window::{WindowConfig, WindowSpec, WindowState};
//!
//! let mut state = WindowState::<Vec<u8>>::new(WindowConfig::new(WindowSpec::Tumbling { size_ms: 10 }))?;
//! let batch = [(b"a", 1), (b"b", 3), (b"a", 12)];
//! // 1. Group the batch by (key, window); nothing changes yet.
//! let plan = state.plan_batch(&batch, 0)?;
//! // 2. For each group: start from `create()` (no accs), the one stored acc, or the `merge` of
//! //    several (sessions), then `add` the group's records. In the engine this is one wasm call.
//! let results: Vec<Vec<u8>> = plan
//!     .groups
//!     .iter()
//!     .map(|g| {
//!         let before = g.accs.first().map_or(0, |a| a[0]);
//!         vec![before + g.records.len() as u8]
//!     })
//!     .collect();
//! // 3. Store the new accumulators (and get back any windows evicted early).
//! let evicted = state.apply(plan.into_commit(), results)?;
//! assert!(evicted.is_empty());
//! // 4. Emit what the watermark closed.
//! let closed = state.closed();
//! // The record at 12 moved the watermark to 12: [0, 10) of a, then of b (by end, then key).
//! assert_eq!(closed.len(), 2);
//! assert_eq!((&*closed[0].key, closed[0].window.end_ms, &closed[0].acc[..]), (&b"a"[..], 10, &[1][..]));
//! # Ok::<(), weir_core::window::WindowError>(())
//! ```
//! A plan borrows the state, so nothing can change it between steps 1 and 3; if the wasm call
//! fails, dropping the plan leaves the state as it was. [`WindowState::fold_batch`] does steps 1–3
//! with a native closure.
//!
//! # Bounds
//! `max_entries` bounds the open `(key, window)` entries of the partition after a batch (windows
//! closed but not yet handed out by `closed()` do not count). [`OnFull::Fail`] makes `plan_batch`
//! refuse a batch that would exceed it ([`WindowError::TooManyEntries`], state untouched);
//! [`OnFull::EvictOldest`] lets `apply` hand out the open windows that end first (then by key) as
//! early results until the bound holds. A later record for an evicted window starts a fresh
//! accumulator.
//!
//! # Snapshot encoding (version 1)
//! Little-endian, `uvar` = unsigned LEB128, `svar` = zigzag then LEB128:
//! ```text
//! "WWIN" u8:version=1
//! u8:spec  0 = tumbling uvar:size | 1 = hopping uvar:size uvar:every | 2 = session uvar:gap
//! u8:has_max_event [svar:max_event]
//! uvar:key_count, keys in ascending byte order, each:
//!   uvar:key_len key_bytes uvar:window_count, windows ascending by (start, end), each:
//!     svar:start uvar:(end - start) uvar:acc_len acc_bytes
//! ```
//! Counters and the idle clock are not part of a snapshot: they describe this process, not the
//! data. Restoring checks the spec matches the configuration, that keys and windows are sorted and
//! unique, that window extents fit the spec, and that no bytes are left over.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Most windows one record may belong to (`ceil(size / every)` for hopping windows).
pub const MAX_WINDOWS_PER_RECORD: i64 = 1024;

const MAGIC: &[u8; 4] = b"WWIN";
const SNAPSHOT_VERSION: u8 = 1;

/// How records are grouped in time. All durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowSpec {
    /// Back-to-back windows `[n*size, (n+1)*size)`.
    Tumbling { size_ms: i64 },
    /// Windows `[n*every, n*every + size)`: a record is in every one containing its time.
    Hopping { size_ms: i64, every_ms: i64 },
    /// Per key, records less than `gap` apart share a window `[first, last + gap)`.
    Session { gap_ms: i64 },
}

impl WindowSpec {
    /// Checks the durations: sizes, hops and gaps positive, `every <= size`, and at most
    /// [`MAX_WINDOWS_PER_RECORD`] windows per record.
    pub fn validate(&self) -> Result<(), WindowError> {
        match *self {
            WindowSpec::Tumbling { size_ms } => {
                if size_ms <= 0 {
                    return Err(WindowError::NonPositiveSize(size_ms));
                }
            }
            WindowSpec::Hopping { size_ms, every_ms } => {
                if size_ms <= 0 {
                    return Err(WindowError::NonPositiveSize(size_ms));
                }
                if every_ms <= 0 {
                    return Err(WindowError::NonPositiveEvery(every_ms));
                }
                if every_ms > size_ms {
                    return Err(WindowError::EveryExceedsSize { every_ms, size_ms });
                }
                let hops = (i128::from(size_ms) + i128::from(every_ms) - 1) / i128::from(every_ms);
                if hops > i128::from(MAX_WINDOWS_PER_RECORD) {
                    return Err(WindowError::TooManyHops { hops: hops as i64 });
                }
            }
            WindowSpec::Session { gap_ms } => {
                if gap_ms <= 0 {
                    return Err(WindowError::NonPositiveGap(gap_ms));
                }
            }
        }
        Ok(())
    }

    /// `(size, every)` of a fixed (tumbling or hopping) spec.
    fn fixed(&self) -> Option<(i64, i64)> {
        match *self {
            WindowSpec::Tumbling { size_ms } => Some((size_ms, size_ms)),
            WindowSpec::Hopping { size_ms, every_ms } => Some((size_ms, every_ms)),
            WindowSpec::Session { .. } => None,
        }
    }

    /// The windows a record at `t` belongs to, ascending by start. For sessions, the record's own
    /// window `[t, t + gap)` before any merge.
    pub fn windows_of(&self, t: i64) -> Vec<Window> {
        match self.fixed() {
            Some((size, every)) => fixed_windows(size, every, t).collect(),
            None => {
                let WindowSpec::Session { gap_ms } = *self else {
                    unreachable!()
                };
                vec![Window::new(t, t.saturating_add(gap_ms))]
            }
        }
    }
}

/// The windows `[s, s + size)` with `s` a multiple of `every` that contain `t`, ascending.
fn fixed_windows(size: i64, every: i64, t: i64) -> impl Iterator<Item = Window> {
    let last = i128::from(t.div_euclid(every)) * i128::from(every);
    let (t, size, every) = (i128::from(t), i128::from(size), i128::from(every));
    // Starts in (t - size, last], stepping by `every`.
    let count =
        (last - (t - size)).div_euclid(every) + i128::from((last - (t - size)) % every != 0);
    let first = last - (count - 1) * every;
    (0..count).map(move |i| {
        let s = first + i * every;
        let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        Window::new(clamp(s), clamp(s + size))
    })
}

/// A half-open window of event time `[start_ms, end_ms)`. Ordered by start, then end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    pub fn new(start_ms: i64, end_ms: i64) -> Self {
        Window { start_ms, end_ms }
    }

    /// Whether `t` lies in `[start, end)`.
    pub fn contains(&self, t: i64) -> bool {
        self.start_ms <= t && t < self.end_ms
    }
}

/// What to do when a batch would leave more than `max_entries` open windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// Refuse the batch with [`WindowError::TooManyEntries`].
    #[default]
    Fail,
    /// Hand out the open windows that end first as early results.
    EvictOldest,
}

/// The configuration of one aggregate stage's windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    pub spec: WindowSpec,
    /// How far behind the largest event time seen a record may be and still count (ms, >= 0).
    pub lateness_ms: i64,
    /// Quiet time after which [`WindowState::on_idle`] advances the watermark (ms, > 0); `None`:
    /// never.
    pub idle_timeout_ms: Option<i64>,
    /// Most open `(key, window)` entries per partition (> 0).
    pub max_entries: usize,
    pub on_full: OnFull,
}

impl WindowConfig {
    /// No lateness, no idle timeout, 100 000 entries, [`OnFull::Fail`].
    pub fn new(spec: WindowSpec) -> Self {
        WindowConfig {
            spec,
            lateness_ms: 0,
            idle_timeout_ms: None,
            max_entries: 100_000,
            on_full: OnFull::Fail,
        }
    }

    pub fn validate(&self) -> Result<(), WindowError> {
        self.spec.validate()?;
        if self.lateness_ms < 0 {
            return Err(WindowError::NegativeLateness(self.lateness_ms));
        }
        if let Some(d) = self.idle_timeout_ms
            && d <= 0
        {
            return Err(WindowError::NonPositiveIdleTimeout(d));
        }
        if self.max_entries == 0 {
            return Err(WindowError::ZeroMaxEntries);
        }
        Ok(())
    }
}

/// Why a window configuration, a batch or a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("window size must be positive, got {0} ms")]
    NonPositiveSize(i64),
    #[error("window hop must be positive, got {0} ms")]
    NonPositiveEvery(i64),
    #[error("window hop ({every_ms} ms) must not exceed the window size ({size_ms} ms)")]
    EveryExceedsSize { every_ms: i64, size_ms: i64 },
    #[error(
        "a record would belong to {hops} hopping windows; at most {MAX_WINDOWS_PER_RECORD} allowed"
    )]
    TooManyHops { hops: i64 },
    #[error("session gap must be positive, got {0} ms")]
    NonPositiveGap(i64),
    #[error("lateness must not be negative, got {0} ms")]
    NegativeLateness(i64),
    #[error("idle timeout must be positive, got {0} ms")]
    NonPositiveIdleTimeout(i64),
    #[error("max_entries must be positive")]
    ZeroMaxEntries,
    #[error("the batch would leave {needed} open windows; the limit is {limit}")]
    TooManyEntries { limit: usize, needed: usize },
    #[error("the plan was made against an older version of the window state")]
    StalePlan,
    #[error("the plan has {expected} groups but {got} accumulators came back")]
    ResultCount { expected: usize, got: usize },
    #[error("window state snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// Why a snapshot could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a window state snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported snapshot version {0}")]
    UnsupportedVersion(u8),
    #[error("snapshot ends early")]
    Truncated,
    #[error("malformed snapshot: {0}")]
    Malformed(&'static str),
    #[error("snapshot was taken with {snapshot:?} but the stage is configured with {config:?}")]
    SpecMismatch {
        snapshot: WindowSpec,
        config: WindowSpec,
    },
    #[error("{0} bytes left over after the snapshot")]
    TrailingBytes(usize),
}

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
    config: WindowConfig,
    entries: BTreeMap<Arc<[u8]>, BTreeMap<Window, A>>,
    /// (end, key, start) of every entry: the closing and eviction order.
    by_end: BTreeSet<(i64, Arc<[u8]>, i64)>,
    max_event: Option<i64>,
    /// (wall time, max_event) when the last non-empty batch was applied.
    idle_anchor: Option<(i64, i64)>,
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

    fn insert(&mut self, key: Arc<[u8]>, w: Window, acc: A) {
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

impl<A: AsRef<[u8]>> WindowState<A> {
    /// The state as version-1 bytes (see the module documentation).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = self.snapshot_header();
        put_uvar(&mut out, self.entries.len() as u64);
        for (key, windows) in &self.entries {
            put_uvar(&mut out, key.len() as u64);
            out.extend_from_slice(key);
            put_windows(&mut out, windows);
        }
        out
    }

    /// The part of a snapshot before its keys: magic, version, window spec and watermark. With
    /// [`snapshot_key`](Self::snapshot_key) it lets a changelog store the state key by key.
    pub fn snapshot_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(MAGIC);
        out.push(SNAPSHOT_VERSION);
        match self.config.spec {
            WindowSpec::Tumbling { size_ms } => {
                out.push(0);
                put_uvar(&mut out, size_ms as u64);
            }
            WindowSpec::Hopping { size_ms, every_ms } => {
                out.push(1);
                put_uvar(&mut out, size_ms as u64);
                put_uvar(&mut out, every_ms as u64);
            }
            WindowSpec::Session { gap_ms } => {
                out.push(2);
                put_uvar(&mut out, gap_ms as u64);
            }
        }
        match self.max_event {
            None => out.push(0),
            Some(m) => {
                out.push(1);
                put_svar(&mut out, m);
            }
        }
        out
    }

    /// The windows of `key` as a snapshot encodes them after the key, or `None` when the key
    /// holds no window (a changelog then deletes it).
    pub fn snapshot_key(&self, key: &[u8]) -> Option<Vec<u8>> {
        let windows = self.entries.get(key)?;
        let mut out = Vec::with_capacity(8 + windows.len() * 16);
        put_windows(&mut out, windows);
        Some(out)
    }
}

fn put_windows<A: AsRef<[u8]>>(out: &mut Vec<u8>, windows: &BTreeMap<Window, A>) {
    put_uvar(out, windows.len() as u64);
    for (w, acc) in windows {
        put_svar(out, w.start_ms);
        put_uvar(out, (i128::from(w.end_ms) - i128::from(w.start_ms)) as u64);
        let acc = acc.as_ref();
        put_uvar(out, acc.len() as u64);
        out.extend_from_slice(acc);
    }
}

impl<A: for<'a> From<&'a [u8]>> WindowState<A> {
    /// A state for `config` holding a snapshot's windows and watermark; counters start at zero and
    /// the idle clock at `now_ms`.
    pub fn restore(config: WindowConfig, bytes: &[u8], now_ms: i64) -> Result<Self, WindowError> {
        let mut state = WindowState::new(config)?;
        let mut r = Reader { bytes, pos: 0 };
        state.read_header(&mut r)?;
        let keys = r.uvar()?;
        let mut previous_key: Option<Arc<[u8]>> = None;
        for _ in 0..keys {
            let len = r.len()?;
            let key: Arc<[u8]> = Arc::from(r.take(len)?);
            if previous_key.as_ref().is_some_and(|p| *p >= key) {
                return Err(SnapshotError::Malformed("keys not strictly ascending").into());
            }
            state.read_windows(&key, &mut r)?;
            previous_key = Some(key);
        }
        if r.pos != bytes.len() {
            return Err(SnapshotError::TrailingBytes(bytes.len() - r.pos).into());
        }
        state.idle_anchor = state.max_event.map(|m| (now_ms, m));
        Ok(state)
    }

    /// Like [`restore`](Self::restore), from a [`snapshot_header`](Self::snapshot_header) and the
    /// [`snapshot_key`](Self::snapshot_key) of every key (in any order, each once).
    pub fn restore_parts<'k>(
        config: WindowConfig,
        header: &[u8],
        keys: impl IntoIterator<Item = (&'k [u8], &'k [u8])>,
        now_ms: i64,
    ) -> Result<Self, WindowError> {
        let mut state = WindowState::new(config)?;
        let mut r = Reader {
            bytes: header,
            pos: 0,
        };
        state.read_header(&mut r)?;
        if r.pos != header.len() {
            return Err(SnapshotError::TrailingBytes(header.len() - r.pos).into());
        }
        for (key, body) in keys {
            if state.entries.contains_key(key) {
                return Err(SnapshotError::Malformed("a key given twice").into());
            }
            let mut r = Reader {
                bytes: body,
                pos: 0,
            };
            state.read_windows(&Arc::from(key), &mut r)?;
            if r.pos != body.len() {
                return Err(SnapshotError::TrailingBytes(body.len() - r.pos).into());
            }
        }
        state.idle_anchor = state.max_event.map(|m| (now_ms, m));
        Ok(state)
    }

    fn read_header(&mut self, r: &mut Reader<'_>) -> Result<(), WindowError> {
        if r.take(4).map_err(|_| SnapshotError::BadMagic)? != MAGIC {
            return Err(SnapshotError::BadMagic.into());
        }
        let version = r.byte()?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version).into());
        }
        let spec = match r.byte()? {
            0 => WindowSpec::Tumbling {
                size_ms: r.duration()?,
            },
            1 => WindowSpec::Hopping {
                size_ms: r.duration()?,
                every_ms: r.duration()?,
            },
            2 => WindowSpec::Session {
                gap_ms: r.duration()?,
            },
            _ => return Err(SnapshotError::Malformed("unknown window kind").into()),
        };
        if spec != self.config.spec {
            return Err(SnapshotError::SpecMismatch {
                snapshot: spec,
                config: self.config.spec,
            }
            .into());
        }
        self.max_event = match r.byte()? {
            0 => None,
            1 => Some(r.svar()?),
            _ => return Err(SnapshotError::Malformed("bad watermark flag").into()),
        };
        Ok(())
    }

    fn read_windows(&mut self, key: &Arc<[u8]>, r: &mut Reader<'_>) -> Result<(), WindowError> {
        let count = r.uvar()?;
        if count == 0 {
            return Err(SnapshotError::Malformed("key without windows").into());
        }
        let mut previous: Option<Window> = None;
        for _ in 0..count {
            let start = r.svar()?;
            let span = r.uvar()?;
            let end = i64::try_from(i128::from(start) + i128::from(span))
                .map_err(|_| SnapshotError::Malformed("window end out of range"))?;
            let w = Window::new(start, end);
            if span == 0 || !fits(&self.config.spec, &w) {
                return Err(SnapshotError::Malformed("window does not fit the spec").into());
            }
            if previous.is_some_and(|p| p >= w) {
                return Err(SnapshotError::Malformed("windows not strictly ascending").into());
            }
            previous = Some(w);
            let len = r.len()?;
            let acc = A::from(r.take(len)?);
            self.insert(key.clone(), w, acc);
        }
        Ok(())
    }
}

/// Whether a stored window has an extent the spec can produce (fixed windows: aligned and exactly
/// `size` long, unless clamped at the end of time; sessions: at least `gap` long).
fn fits(spec: &WindowSpec, w: &Window) -> bool {
    let span = i128::from(w.end_ms) - i128::from(w.start_ms);
    match *spec {
        WindowSpec::Session { gap_ms } => span >= i128::from(gap_ms) || w.end_ms == i64::MAX,
        _ => {
            let (size, every) = spec.fixed().unwrap();
            w.start_ms.rem_euclid(every) == 0
                && (span == i128::from(size) || (w.end_ms == i64::MAX && span < i128::from(size)))
        }
    }
}

fn watermark(max_event: Option<i64>, lateness_ms: i64) -> Option<i64> {
    max_event.map(|m| m.saturating_sub(lateness_ms))
}

fn union(a: Window, b: Window) -> Window {
    Window::new(a.start_ms.min(b.start_ms), a.end_ms.max(b.end_ms))
}

fn put_uvar(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_svar(out: &mut Vec<u8>, v: i64) {
    put_uvar(out, ((v << 1) ^ (v >> 63)) as u64);
}

struct Reader<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], SnapshotError> {
        let end = self.pos.checked_add(n).ok_or(SnapshotError::Truncated)?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(SnapshotError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }

    fn uvar(&mut self) -> Result<u64, SnapshotError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(SnapshotError::Malformed("varint overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SnapshotError::Malformed("varint overflows 64 bits"))
    }

    fn svar(&mut self) -> Result<i64, SnapshotError> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn duration(&mut self) -> Result<i64, SnapshotError> {
        i64::try_from(self.uvar()?).map_err(|_| SnapshotError::Malformed("duration out of range"))
    }

    /// A length that must fit in what is left.
    fn len(&mut self) -> Result<usize, SnapshotError> {
        let n = self.uvar()?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(SnapshotError::Truncated);
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type State = WindowState<Vec<u8>>;

    fn ids(acc: &[u8]) -> Vec<u32> {
        let mut v: Vec<u32> = acc
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        v.sort_unstable();
        v
    }

    /// The test's accumulator: the ids of the records folded in (merge = concatenation).
    fn fold_ids(base: u32) -> impl FnMut(&Group<'_, Vec<u8>>) -> Vec<u8> {
        move |g| {
            let mut acc: Vec<u8> = g.accs.iter().flat_map(|a| a.iter().copied()).collect();
            for &i in &g.records {
                acc.extend_from_slice(&(base + i as u32).to_le_bytes());
            }
            acc
        }
    }

    fn config(spec: WindowSpec, lateness_ms: i64) -> WindowConfig {
        WindowConfig {
            lateness_ms,
            ..WindowConfig::new(spec)
        }
    }

    fn feed(state: &mut State, base: u32, batch: &[(&[u8], i64)]) -> Vec<usize> {
        state.fold_batch(batch, 0, fold_ids(base)).unwrap().late
    }

    fn summary(closed: &[Closed<Vec<u8>>]) -> Vec<(Vec<u8>, Window, Vec<u32>)> {
        closed
            .iter()
            .map(|c| (c.key.to_vec(), c.window, ids(&c.acc)))
            .collect()
    }

    fn w(s: i64, e: i64) -> Window {
        Window::new(s, e)
    }

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
    fn run(
        cfg: WindowConfig,
        records: &[(u8, i64)],
        cuts: &[usize],
        snap_at: Option<usize>,
    ) -> Run {
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
                let parts = State::restore_parts(
                    cfg,
                    &header,
                    keys.iter().map(|(k, b)| (&k[..], &b[..])),
                    0,
                )
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
}
