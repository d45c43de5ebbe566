//! An aggregate lane's checkpoints: the acknowledgement units that hold folded inputs and the
//! outputs of closed windows, the records a checkpoint writes, and the release of the inputs it
//! covers once the changelog acknowledges it.
//!
//! Owns the order of a checkpoint (window results acknowledged first, then the changed keys,
//! then the meta record) and the two-step deletion of emptied keys; may not fold, decide a
//! record's fate, or lay out the bytes of a changelog record ([`super::changelog`] does).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_core::aggregate::WindowFold;
use weir_core::{Aggregator, Bytes, InputAck, PartitionTracker, Record};
use weir_kafka::{KafkaSink, TopicPartition};

use super::changelog::{encode_key_value, encode_meta, key_prefix, meta_key, window_key};
use super::error::AggregateError;

/// Where a checkpoint goes: the stage's changelog topic, and the state version its accumulators
/// are of.
#[derive(Debug, Clone, Copy)]
pub(super) struct Changelog<'a> {
    pub topic: &'a str,
    pub state_version: u32,
}

/// One partition's checkpoints.
pub(super) struct Checkpoints {
    tp: TopicPartition,
    /// Changelog keys of this partition start with it.
    prefix: Vec<u8>,
    /// Keys written empty by the last checkpoint, to delete in the next one.
    retired: Vec<Arc<[u8]>>,
    /// One past the last offset folded (or covered).
    next_offset: Option<i64>,
    /// Whether anything (watermark, offsets) changed since the last checkpoint.
    changed: bool,
    /// Inputs folded since the last checkpoint.
    held: Vec<Arc<InputAck>>,
    /// Units for the outputs of windows closed since the last checkpoint.
    tracker: PartitionTracker,
    sequence: i64,
    emitted: Arc<InputAck>,
    /// Checkpoints sent and not yet acknowledged, with the inputs each one releases.
    in_flight: VecDeque<(Arc<InputAck>, Vec<Arc<InputAck>>)>,
    last: Instant,
}

impl Checkpoints {
    pub fn new(tp: &TopicPartition) -> Self {
        let tracker = PartitionTracker::new();
        let emitted = tracker.track(0);
        Self {
            tp: tp.clone(),
            prefix: key_prefix(&tp.topic, tp.partition),
            retired: Vec::new(),
            next_offset: None,
            changed: false,
            held: Vec::new(),
            tracker,
            sequence: 0,
            emitted,
            in_flight: VecDeque::new(),
            last: Instant::now(),
        }
    }

    /// Records up to `next` (exclusive) were handed to the fold.
    pub fn folded(&mut self, next: i64) {
        self.next_offset = Some(self.next_offset.map_or(next, |n| n.max(next)));
        self.changed = true;
    }

    /// Something the meta record holds (the watermark) changed.
    pub fn changed(&mut self) {
        self.changed = true;
    }

    /// The acknowledgement unit the outputs of closed windows are sent under.
    pub fn emitted(&self) -> &Arc<InputAck> {
        &self.emitted
    }

    /// Keeps one unit of `ack` until the next checkpoint is acknowledged.
    pub fn hold(&mut self, ack: &Arc<InputAck>) {
        ack.add_pending(1);
        self.held.push(Arc::clone(ack));
    }

    /// Whether a checkpoint is due: `interval` passed and something changed (`dirty`: some
    /// key's windows).
    pub fn due(&self, dirty: bool, interval: Duration) -> bool {
        (self.changed || dirty || !self.held.is_empty()) && self.last.elapsed() >= interval
    }

    /// Writes a checkpoint of `fold`'s changed keys and the meta record, once the outputs of
    /// the windows closed since the last one are acknowledged (waiting at most `timeout`).
    /// Returns the bytes written.
    pub fn write<G: Aggregator>(
        &mut self,
        fold: &mut WindowFold<G>,
        to: Changelog<'_>,
        sink: &KafkaSink,
        timeout: Duration,
    ) -> Result<u64, AggregateError> {
        self.last = Instant::now();
        // 1. The outputs of closed windows first.
        self.sequence += 1;
        let emitted = std::mem::replace(&mut self.emitted, self.tracker.track(self.sequence));
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
        let unit = self.tracker.track(self.sequence);
        let restored_next = fold.restored_next();
        let next = self.next_offset.unwrap_or(restored_next).max(restored_next);
        let mut bytes = 0usize;
        let mut writes = 0usize;
        let mut send = |key: Vec<u8>, value: Option<Vec<u8>>| {
            bytes += key.len() + value.as_ref().map_or(0, Vec::len);
            writes += 1;
            let record = Record {
                key: Some(Bytes::from(key)),
                value: value.map(Bytes::from),
                ..Record::default()
            };
            sink.send(to.topic, Some(self.tp.partition), &record, &unit)
                .map_err(|source| AggregateError::Send {
                    tp: self.tp.clone(),
                    changelog: to.topic.to_owned(),
                    source: Box::new(source),
                })
        };
        let dirty = fold.take_dirty();
        let state = fold.state();
        // Keys emptied by the last checkpoint and still empty: a meta record newer than their
        // empty record is written, so they can go.
        let gone: Vec<Arc<[u8]>> = std::mem::take(&mut self.retired)
            .into_iter()
            .filter(|k| !dirty.contains(k) && state.snapshot_key(k).is_none())
            .collect();
        for key in &gone {
            send(window_key(&self.prefix, key), None)?;
        }
        let mut retired = Vec::new();
        for key in dirty {
            let windows = state.snapshot_key(&key);
            let value = encode_key_value(next, windows.as_deref().unwrap_or_default());
            send(window_key(&self.prefix, &key), Some(value))?;
            if windows.is_none() {
                retired.push(key);
            }
        }
        let meta = encode_meta(to.state_version, next, &state.snapshot_header());
        send(meta_key(&self.prefix), Some(meta))?;
        self.retired = retired;
        unit.settle();
        self.changed = false;
        tracing::debug!(partition = %self.tp, writes, bytes, "Checkpoint sent.");
        self.in_flight
            .push_back((unit, std::mem::take(&mut self.held)));
        Ok(bytes as u64)
    }

    /// Releases the inputs of every acknowledged checkpoint to `changelog`. An error: a
    /// checkpoint failed, so its inputs must never be committed.
    pub fn poll(&mut self, changelog: &str) -> Result<(), AggregateError> {
        while let Some((unit, _)) = self.in_flight.front() {
            if unit.has_failed() {
                return Err(AggregateError::CheckpointFailed {
                    tp: self.tp.clone(),
                    changelog: changelog.to_owned(),
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
