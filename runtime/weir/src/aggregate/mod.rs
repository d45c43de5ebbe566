//! An aggregate stage on one lane: the partition's windows and accumulators, the module instance
//! that folds records into them, and the checkpoints that make them durable.
//!
//! # Delivery
//! A record folded into a window holds one unit of its [`InputAck`] until a checkpoint that
//! contains its contribution is acknowledged by the changelog, so its offset is committed only
//! once the state it went into is durable. A checkpoint writes, for every key whose windows
//! changed, the key's windows (or a tombstone once it has none), then a meta record with the
//! watermark and the next source offset the state covers. The outputs of closed windows are
//! acknowledged before the checkpoint that forgets those windows is written, so a window is
//! never lost between its emission and its removal; a crash in between emits it again after the
//! restart (at-least-once: a window result can repeat, a contribution is never lost or counted
//! twice, since records below the restored offset are not folded again).
//!
//! A checkpoint is several records, so a crash can leave one half written (the meta record is
//! written last). Each key's record therefore carries the offset its state covers, and a record
//! of that key below it is not folded again, even when the meta record (and the offset it
//! covers) is older. A key whose windows are all gone is first written as an empty record with
//! its offset, and deleted (a tombstone, which compaction removes) only by the next checkpoint,
//! once a meta record newer than that offset precedes the deletion.

mod changelog;
mod error;
mod key;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir_core::trace::{SpanId, TraceId};
use weir_core::window::{
    Closed, OnFull, Window, WindowConfig, WindowError, WindowSpec, WindowState,
};
use weir_core::{Failure, FailureKind, InputAck, PartitionTracker, Record};
use weir_kafka::{KafkaSink, TopicPartition};
use weir_wasm::AggregateInstance;

use crate::loader::LoadedAggregate;

use changelog::{
    Restored, encode_key_value, encode_meta, key_prefix, meta_key, restore, window_key,
};
use key::KeyFields;

pub use error::AggregateError;

/// Header of every window result: the window's start, in milliseconds since the Unix epoch.
pub const WINDOW_START: &str = "weir.window.start";
/// Header of every window result: the window's end (exclusive), in milliseconds.
pub const WINDOW_END: &str = "weir.window.end";
/// Most input spans a window result's span links to.
pub const MAX_LINKS: usize = 128;

/// A span a window result links to: an input's pass through the aggregate stage.
pub(crate) type SpanLink = (TraceId, SpanId);

/// What became of a record handed to the aggregate stage.
#[derive(Debug)]
pub(crate) enum Fate {
    /// Folded into its windows: its offset waits for the checkpoint.
    Held,
    /// Already in the restored state (below the checkpoint's offset): nothing to wait for.
    Covered,
    /// Late and dropped by configuration.
    Dropped,
    /// Sent to the dead-letter topic.
    Failed(Failure),
}

/// A closed window turned into output records (or the module's error for it).
pub(crate) struct WindowResult {
    pub key: Arc<[u8]>,
    pub window: Window,
    pub outputs: Result<Vec<Record>, Failure>,
    /// The accumulator, for a dead letter when `outputs` failed.
    pub acc: Vec<u8>,
    /// Spans of the records that went into the window (capped at [`MAX_LINKS`]).
    pub links: Vec<SpanLink>,
}

/// The state of one partition's aggregate stage.
pub(crate) struct AggregateLane {
    pub loaded: Arc<LoadedAggregate>,
    instance: AggregateInstance,
    /// The stage's `key` and `time`, read from each record.
    fields: KeyFields,
    state: WindowState<Vec<u8>>,
    tp: TopicPartition,
    /// Changelog keys of this partition start with it.
    prefix: Vec<u8>,
    /// Records below this offset are already in the restored state.
    restored_next: i64,
    /// Keys whose restored state covers records past `restored_next` (a checkpoint that did not
    /// finish): the offset each one covers.
    covered: HashMap<Arc<[u8]>, i64>,
    /// Keys written empty by the last checkpoint, to delete in the next one.
    retired: Vec<Arc<[u8]>>,
    /// One past the last offset folded (or covered).
    next_offset: Option<i64>,
    /// Keys whose windows changed since the last checkpoint.
    dirty: BTreeSet<Arc<[u8]>>,
    /// Whether anything (watermark, offsets) changed since the last checkpoint.
    changed: bool,
    /// Inputs folded since the last checkpoint.
    held: Vec<Arc<InputAck>>,
    /// Units for the outputs of windows closed since the last checkpoint.
    checkpoints: PartitionTracker,
    sequence: i64,
    emitted: Arc<InputAck>,
    /// Checkpoints sent and not yet acknowledged, with the inputs each one releases.
    in_flight: VecDeque<(Arc<InputAck>, Vec<Arc<InputAck>>)>,
    last_checkpoint: Instant,
    /// Input spans of each open window, for the result's span links.
    links: HashMap<(Arc<[u8]>, Window), Vec<SpanLink>>,
    /// `create()`'s accumulator, asked once per instance.
    empty: Option<Vec<u8>>,
    /// Windows evicted early, emitted with the closed ones.
    evicted: Vec<Closed<Vec<u8>>>,
}

impl AggregateLane {
    /// Restores the partition's state from the changelog and makes an instance of the module.
    pub fn start(
        loaded: Arc<LoadedAggregate>,
        tp: &TopicPartition,
        cluster: &weir_kafka::Cluster,
        properties: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Self, AggregateError> {
        let config = window_config(&loaded.spec);
        let prefix = key_prefix(&tp.topic, tp.partition);
        let started = Instant::now();
        let stored = weir_kafka::read_changelog(
            cluster,
            properties,
            &loaded.spec.changelog,
            tp.partition,
            &prefix,
            timeout,
        )
        .map_err(|source| AggregateError::ReadChangelog {
            tp: tp.clone(),
            source: Box::new(source),
        })?;
        let Restored {
            state,
            restored_next,
            covered,
        } = restore(&stored, config, loaded.module.state_version(), now_ms()).map_err(
            |source| AggregateError::Restore {
                tp: tp.clone(),
                changelog: loaded.spec.changelog.clone(),
                source,
            },
        )?;
        tracing::info!(
            partition = %tp,
            windows = state.counters().open_windows,
            next_offset = restored_next,
            took_ms = started.elapsed().as_millis() as u64,
            "Aggregate state restored."
        );
        Self::new(loaded, tp, state, restored_next, covered)
    }

    /// A lane over `state`, which holds every record below `restored_next` (and, for the keys
    /// in `covered`, every record of theirs below their offset).
    fn new(
        loaded: Arc<LoadedAggregate>,
        tp: &TopicPartition,
        state: WindowState<Vec<u8>>,
        restored_next: i64,
        covered: HashMap<Arc<[u8]>, i64>,
    ) -> Result<Self, AggregateError> {
        let mut instance = loaded.module.instance()?;
        instance.set_source(&tp.topic, tp.partition);
        let checkpoints = PartitionTracker::new();
        let emitted = checkpoints.track(0);
        Ok(Self {
            prefix: key_prefix(&tp.topic, tp.partition),
            fields: KeyFields::new(&loaded.spec),
            loaded,
            instance,
            state,
            tp: tp.clone(),
            restored_next,
            covered,
            retired: Vec::new(),
            next_offset: None,
            dirty: BTreeSet::new(),
            changed: false,
            held: Vec::new(),
            checkpoints,
            sequence: 0,
            emitted,
            in_flight: VecDeque::new(),
            last_checkpoint: Instant::now(),
            links: HashMap::new(),
            empty: None,
            evicted: Vec::new(),
        })
    }

    /// A lane with no state and no changelog, for `weir test`.
    pub fn detached(loaded: Arc<LoadedAggregate>, topic: &str) -> Result<Self, AggregateError> {
        let state = WindowState::new(window_config(&loaded.spec))?;
        let tp = TopicPartition {
            topic: topic.into(),
            partition: 0,
        };
        Self::new(loaded, &tp, state, i64::MIN, HashMap::new())
    }

    /// Closes every window, open or not (the end of a `weir test` case), and turns them into
    /// output records.
    pub fn close_all(&mut self) -> Vec<WindowResult> {
        self.evicted.extend(self.state.drain());
        self.closed()
    }

    /// Swaps in a new version of the module (same state version, checked when it was loaded).
    pub fn replace(&mut self, loaded: Arc<LoadedAggregate>) -> Result<(), AggregateError> {
        let mut instance = loaded.module.instance()?;
        instance.set_source(&self.tp.topic, self.tp.partition);
        self.instance = instance;
        self.fields = KeyFields::new(&loaded.spec);
        self.loaded = loaded;
        self.empty = None;
        Ok(())
    }

    pub fn instance(&mut self) -> &mut AggregateInstance {
        &mut self.instance
    }

    /// Open `(key, window)` accumulators.
    pub fn open_windows(&self) -> u64 {
        self.state.counters().open_windows
    }

    /// Folds `records` (each with the span its aggregate pass is recorded under) into their
    /// windows. Returns each record's fate, in order.
    pub fn fold(&mut self, records: &[(Record, SpanLink)]) -> Vec<Fate> {
        let mut fates: Vec<Option<Fate>> = records.iter().map(|_| None).collect();
        let mut keyed: Vec<(Arc<[u8]>, i64)> = Vec::with_capacity(records.len());
        let mut index: Vec<usize> = Vec::with_capacity(records.len());
        for (i, (record, _)) in records.iter().enumerate() {
            if record.offset < self.restored_next {
                fates[i] = Some(Fate::Covered);
                continue;
            }
            match self.fields.read(record) {
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
        if let Some(last) = records.last() {
            let next = last.0.offset + 1;
            self.next_offset = Some(self.next_offset.map_or(next, |n| n.max(next)));
            self.changed = true;
        }
        if !keyed.is_empty() {
            for (k, fate) in self
                .fold_keyed(records, &keyed, &index)
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

    /// Plans, calls the module and applies: the fate of each keyed record.
    fn fold_keyed(
        &mut self,
        records: &[(Record, SpanLink)],
        keyed: &[(Arc<[u8]>, i64)],
        index: &[usize],
    ) -> Vec<Fate> {
        let all = |f: Failure| keyed.iter().map(|_| Fate::Failed(f.clone())).collect();
        let now = now_ms();
        let plan = match self.state.plan_batch(keyed, now) {
            Ok(plan) => plan,
            Err(WindowError::TooManyEntries { .. }) if keyed.len() > 1 => {
                // Record by record, so that only the records that would open a window too
                // many fail; the others still go into the windows that exist.
                return (0..keyed.len())
                    .map(|k| {
                        self.fold_keyed(records, &keyed[k..=k], &index[k..=k])
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
                [] => empty_acc(&mut self.instance, &mut self.empty),
                [one] => Ok((*one).clone()),
                [first, rest @ ..] => {
                    let mut acc = (*first).clone();
                    let mut result = Ok(());
                    for next in rest {
                        match self.instance.merge(&acc, next) {
                            Ok(Ok(merged)) => acc = merged,
                            Ok(Err(e)) | Err(e) => {
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
        let answers = if callable.is_empty() {
            Ok(Vec::new())
        } else {
            self.instance.add(&callable)
        };
        let mut answers = match answers {
            Ok(a) => a.into_iter(),
            // The call failed as a whole (a trap, a timeout): each group is tried alone, so
            // that only the groups that fail again lose their records.
            Err(failure) if callable.len() == 1 => vec![Err(failure)].into_iter(),
            Err(_) => callable
                .iter()
                .map(
                    |group| match self.instance.add(std::slice::from_ref(group)) {
                        Ok(mut one) if one.len() == 1 => one.pop().expect("one result"),
                        Ok(_) => Err(Failure::new(
                            FailureKind::InvalidOutput,
                            "add() answered a wrong number of results",
                        )),
                        Err(failure) => Err(failure),
                    },
                )
                .collect::<Vec<_>>()
                .into_iter(),
        };
        // A group the module refused keeps its previous accumulator (the merged one for
        // bridged sessions, a fresh one for a new window), and its records are dead-lettered.
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
                // Sessions bridged by this batch: gather the links of every old session of
                // the key that the new window covers.
                let absorbed: Vec<_> = self
                    .links
                    .keys()
                    .filter(|(k, w)| {
                        *k == key && w.start_ms >= window.start_ms && w.end_ms <= window.end_ms
                    })
                    .cloned()
                    .collect();
                let mut all = Vec::new();
                for k in absorbed {
                    all.extend(self.links.remove(&k).unwrap_or_default());
                }
                self.links.insert((key.clone(), window), all);
            }
            if links.is_empty() {
                self.dirty.insert(key);
                continue;
            }
            let entry = self.links.entry((key.clone(), window)).or_default();
            let room = MAX_LINKS.saturating_sub(entry.len());
            entry.extend(links.into_iter().take(room));
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

    fn late_fate(&self, time: i64) -> Fate {
        match self.loaded.spec.late {
            weir_config::LatePolicy::Drop => Fate::Dropped,
            weir_config::LatePolicy::DeadLetter => Fate::Failed(Failure::new(
                FailureKind::Late,
                format!(
                    "event time {time} is behind the partition's watermark {} (the newest event \
                     time minus `lateness`): every window of the record has closed",
                    self.state.watermark().unwrap_or(i64::MIN)
                ),
            )),
        }
    }

    /// Applies the idle rule at wall time `now`: whether the watermark moved.
    pub fn on_idle(&mut self) -> bool {
        let moved = self.state.on_idle(now_ms());
        self.changed |= moved;
        moved
    }

    /// Turns every window closed (or evicted) since the last call into output records.
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
                let outputs = match self
                    .instance
                    .emit(&key, window.start_ms, window.end_ms, &acc)
                {
                    Ok(Ok(mut outputs)) => {
                        for out in &mut outputs {
                            if out.key.is_none() {
                                out.key = Some(weir_core::Bytes::copy_from_slice(&key));
                            }
                            // A result without a time of its own is stamped at its window's
                            // last millisecond.
                            out.timestamp = out.timestamp.or(Some(window.end_ms.saturating_sub(1)));
                            out.offset = -1;
                            out.headers
                                .push(WINDOW_START, Some(window.start_ms.to_string().as_bytes()));
                            out.headers
                                .push(WINDOW_END, Some(window.end_ms.to_string().as_bytes()));
                        }
                        Ok(outputs)
                    }
                    Ok(Err(e)) | Err(e) => Err(e),
                };
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

    /// The acknowledgement unit the outputs of closed windows are sent under: the next
    /// checkpoint waits for them.
    pub fn emitted(&self) -> &Arc<InputAck> {
        &self.emitted
    }

    /// Keeps one unit of `ack` (an input folded into a window) until the next checkpoint is
    /// acknowledged.
    pub fn hold(&mut self, ack: &Arc<InputAck>) {
        ack.add_pending(1);
        self.held.push(Arc::clone(ack));
    }

    /// Whether a checkpoint is due: `interval` passed and something changed.
    pub fn checkpoint_due(&self, interval: Duration) -> bool {
        (self.changed || !self.dirty.is_empty() || !self.held.is_empty())
            && self.last_checkpoint.elapsed() >= interval
    }

    /// Writes a checkpoint of every changed key and the meta record to the changelog, once the
    /// outputs of the windows closed since the last one are acknowledged (waiting at most
    /// `timeout`). The inputs folded since the last checkpoint are released when the
    /// changelog acknowledges it (see [`Self::poll`]).
    /// Returns the bytes written.
    pub fn checkpoint(
        &mut self,
        sink: &KafkaSink,
        timeout: Duration,
    ) -> Result<u64, AggregateError> {
        self.last_checkpoint = Instant::now();
        // 1. The outputs of closed windows first.
        self.sequence += 1;
        let emitted = std::mem::replace(&mut self.emitted, self.checkpoints.track(self.sequence));
        emitted.settle();
        let deadline = Instant::now() + timeout;
        while !emitted.is_complete() {
            if emitted.has_failed() || Instant::now() >= deadline {
                return Err(AggregateError::Unacknowledged {
                    tp: self.tp.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // 2. The changed keys, then the meta record.
        self.sequence += 1;
        let unit = self.checkpoints.track(self.sequence);
        let topic = &self.loaded.spec.changelog;
        let next = self
            .next_offset
            .unwrap_or(self.restored_next)
            .max(self.restored_next);
        let mut bytes = 0usize;
        let mut writes = 0usize;
        let dirty = std::mem::take(&mut self.dirty);
        // Keys emptied by the last checkpoint and still empty: a meta record newer than their
        // empty record is written, so they can go.
        let gone: Vec<Arc<[u8]>> = std::mem::take(&mut self.retired)
            .into_iter()
            .filter(|k| !dirty.contains(k) && self.state.snapshot_key(k).is_none())
            .collect();
        for key in &gone {
            let record = Record {
                key: Some(weir_core::Bytes::from(self.changelog_key(key))),
                value: None,
                ..Record::default()
            };
            bytes += record.key.as_ref().map_or(0, |k| k.len());
            writes += 1;
            sink.send(topic, Some(self.tp.partition), &record, &unit)
                .map_err(|e| self.send_error(topic, e))?;
        }
        for key in dirty {
            let windows = self.state.snapshot_key(&key);
            if windows.is_none() {
                self.retired.push(key.clone());
            }
            let record = Record {
                key: Some(weir_core::Bytes::from(self.changelog_key(&key))),
                value: Some(weir_core::Bytes::from(encode_key_value(
                    next,
                    windows.as_deref().unwrap_or_default(),
                ))),
                ..Record::default()
            };
            bytes += record.key.as_ref().map_or(0, |k| k.len())
                + record.value.as_ref().map_or(0, |v| v.len());
            writes += 1;
            sink.send(topic, Some(self.tp.partition), &record, &unit)
                .map_err(|e| self.send_error(topic, e))?;
        }
        let k = meta_key(&self.prefix);
        let meta = encode_meta(
            self.loaded.module.state_version(),
            next,
            &self.state.snapshot_header(),
        );
        bytes += k.len() + meta.len();
        writes += 1;
        let record = Record {
            key: Some(weir_core::Bytes::from(k)),
            value: Some(weir_core::Bytes::from(meta)),
            ..Record::default()
        };
        sink.send(topic, Some(self.tp.partition), &record, &unit)
            .map_err(|e| self.send_error(topic, e))?;
        unit.settle();
        self.changed = false;
        tracing::debug!(partition = %self.tp, writes, bytes, "Checkpoint sent.");
        self.in_flight
            .push_back((unit, std::mem::take(&mut self.held)));
        Ok(bytes as u64)
    }

    fn changelog_key(&self, key: &[u8]) -> Vec<u8> {
        window_key(&self.prefix, key)
    }

    fn send_error(&self, changelog: &str, source: weir_kafka::KafkaError) -> AggregateError {
        AggregateError::Send {
            tp: self.tp.clone(),
            changelog: changelog.to_owned(),
            source: Box::new(source),
        }
    }

    /// Releases the inputs of every acknowledged checkpoint. An error: a checkpoint failed, so
    /// its inputs must never be committed.
    pub fn poll(&mut self) -> Result<(), AggregateError> {
        while let Some((unit, _)) = self.in_flight.front() {
            if unit.has_failed() {
                return Err(AggregateError::CheckpointFailed {
                    tp: self.tp.clone(),
                    changelog: self.loaded.spec.changelog.clone(),
                });
            }
            if !unit.is_complete() {
                break;
            }
            let (_, inputs) = self.in_flight.pop_front().expect("front exists");
            for ack in inputs {
                ack.ack();
            }
        }
        Ok(())
    }

    /// Whether checkpoints are still waiting for the changelog.
    pub fn pending(&self) -> bool {
        !self.in_flight.is_empty()
    }
}

/// `create()`'s accumulator, asked of `instance` once and kept in `empty`.
fn empty_acc(
    instance: &mut AggregateInstance,
    empty: &mut Option<Vec<u8>>,
) -> Result<Vec<u8>, Failure> {
    if let Some(acc) = empty {
        return Ok(acc.clone());
    }
    let acc = instance.create()?;
    *empty = Some(acc.clone());
    Ok(acc)
}

/// The window configuration of an aggregate stage.
pub(crate) fn window_config(spec: &weir_config::Aggregate) -> WindowConfig {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let window = match spec.window {
        weir_config::WindowKind::Tumbling(size) => WindowSpec::Tumbling { size_ms: ms(size) },
        weir_config::WindowKind::Hopping { size, every } => WindowSpec::Hopping {
            size_ms: ms(size),
            every_ms: ms(every),
        },
        weir_config::WindowKind::Session { gap } => WindowSpec::Session { gap_ms: ms(gap) },
    };
    let mut config = WindowConfig::new(window);
    config.lateness_ms = ms(spec.lateness);
    config.idle_timeout_ms = Some(ms(spec.idle_timeout));
    config.max_entries = spec.max_windows;
    config.on_full = match spec.on_full {
        weir_config::OnFull::Fail => OnFull::Fail,
        weir_config::OnFull::EvictOldest => OnFull::EvictOldest,
    };
    config
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
