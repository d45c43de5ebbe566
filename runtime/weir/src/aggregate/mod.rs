//! An aggregate stage on one lane: the partition's windows and accumulators, the module instance
//! that folds records into them, and the checkpoints that make them durable.
//!
//! The fold itself (which records a restored state covers, grouping, the calls into the module
//! and the fate of each record, closing windows) is `weir_core`'s [`WindowFold`], here over the
//! wasm module ([`adapter`]); a record's key and event time are read by [`key`]; a checkpoint is
//! written by [`checkpoint`] in the layout of [`changelog`], which also restores it.
//!
//! Owns the lane's wiring of those parts and its clock; may not fold, lay out changelog records
//! or read a record's fields itself.
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

mod adapter;
mod changelog;
mod checkpoint;
mod error;
mod key;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir_core::aggregate::WindowFold;
use weir_core::window::{WindowConfig, WindowSpec, WindowState};
use weir_core::{InputAck, Record};
use weir_kafka::{KafkaSink, TopicPartition};
use weir_wasm::AggregateInstance;

use crate::loader::LoadedAggregate;

use adapter::WasmAggregator;
use changelog::Restored;
use checkpoint::{Changelog, Checkpoints};
use key::KeyFields;

pub use error::AggregateError;
pub(crate) use weir_core::aggregate::{Fate, SpanLink, WINDOW_END, WINDOW_START, WindowResult};

/// The state of one partition's aggregate stage.
pub(crate) struct AggregateLane {
    pub loaded: Arc<LoadedAggregate>,
    fold: WindowFold<WasmAggregator>,
    fields: KeyFields,
    tp: TopicPartition,
    checkpoints: Checkpoints,
}

impl AggregateLane {
    /// Restores the partition's state from the changelog and makes an instance of the module.
    pub fn start(
        loaded: Arc<LoadedAggregate>,
        tp: &TopicPartition,
        cluster: &weir_kafka::Cluster,
        properties: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Self, AggregateError> {
        let config = window_config(&loaded.spec);
        let started = Instant::now();
        let stored = weir_kafka::read_changelog(
            cluster,
            properties,
            &loaded.spec.changelog,
            tp.partition,
            &changelog::key_prefix(&tp.topic, tp.partition),
            timeout,
        )
        .map_err(|source| AggregateError::ReadChangelog {
            tp: tp.clone(),
            source: Box::new(source),
        })?;
        let restored = changelog::restore(&stored, config, loaded.module.state_version(), now_ms())
            .map_err(|source| AggregateError::Restore {
                tp: tp.clone(),
                changelog: loaded.spec.changelog.clone(),
                source,
            })?;
        tracing::info!(
            partition = %tp,
            windows = restored.state.counters().open_windows,
            next_offset = restored.restored_next,
            took_ms = started.elapsed().as_millis() as u64,
            "Aggregate state restored."
        );
        Self::new(loaded, tp, restored)
    }

    /// A lane over a restored state.
    fn new(
        loaded: Arc<LoadedAggregate>,
        tp: &TopicPartition,
        restored: Restored,
    ) -> Result<Self, AggregateError> {
        let Restored {
            state,
            restored_next,
            covered,
        } = restored;
        let aggregator = instance(&loaded, tp)?;
        let fold = WindowFold::new(aggregator, state, loaded.spec.late, restored_next, covered);
        Ok(Self {
            fields: KeyFields::new(&loaded.spec),
            loaded,
            fold,
            tp: tp.clone(),
            checkpoints: Checkpoints::new(tp),
        })
    }

    /// A lane with no state and no changelog, for `weir test`.
    pub fn detached(loaded: Arc<LoadedAggregate>, topic: &str) -> Result<Self, AggregateError> {
        let state = WindowState::new(window_config(&loaded.spec))?;
        let tp = TopicPartition {
            topic: topic.into(),
            partition: 0,
        };
        let restored = Restored {
            state,
            restored_next: i64::MIN,
            covered: HashMap::new(),
        };
        Self::new(loaded, &tp, restored)
    }

    /// Closes every window, open or not (the end of a `weir test` case), and turns them into
    /// output records.
    pub fn close_all(&mut self) -> Vec<WindowResult> {
        self.fold.close_all()
    }

    /// Swaps in a new version of the module (same state version, checked when it was loaded).
    /// On an error the running module stays.
    pub fn replace(&mut self, loaded: Arc<LoadedAggregate>) -> Result<(), AggregateError> {
        let aggregator = instance(&loaded, &self.tp)?;
        self.fold.replace(aggregator, loaded.spec.late);
        self.fields = KeyFields::new(&loaded.spec);
        self.loaded = loaded;
        Ok(())
    }

    pub fn instance(&mut self) -> &mut AggregateInstance {
        self.fold.aggregator().instance()
    }

    /// Open `(key, window)` accumulators.
    pub fn open_windows(&self) -> u64 {
        self.fold.state().counters().open_windows
    }

    /// Folds `records` (each with the span its aggregate pass is recorded under) into their
    /// windows. Returns each record's fate, in order.
    pub fn fold(&mut self, records: &[(Record, SpanLink)]) -> Vec<Fate> {
        let fields = &self.fields;
        let fates = self.fold.fold(records, now_ms(), |r| fields.read(r));
        if let Some((last, _)) = records.last() {
            self.checkpoints.folded(last.offset + 1);
        }
        fates
    }

    /// Applies the idle rule at wall time now: whether the watermark moved.
    pub fn on_idle(&mut self) -> bool {
        let moved = self.fold.on_idle(now_ms());
        if moved {
            self.checkpoints.changed();
        }
        moved
    }

    /// Turns every window closed (or evicted) since the last call into output records.
    pub fn closed(&mut self) -> Vec<WindowResult> {
        self.fold.closed()
    }

    /// The acknowledgement unit the outputs of closed windows are sent under: the next
    /// checkpoint waits for them.
    pub fn emitted(&self) -> &Arc<InputAck> {
        self.checkpoints.emitted()
    }

    /// Keeps one unit of `ack` (an input folded into a window) until the next checkpoint is
    /// acknowledged.
    pub fn hold(&mut self, ack: &Arc<InputAck>) {
        self.checkpoints.hold(ack);
    }

    /// Whether a checkpoint is due: `interval` passed and something changed.
    pub fn checkpoint_due(&self, interval: Duration) -> bool {
        self.checkpoints.due(self.fold.is_dirty(), interval)
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
        let to = Changelog {
            topic: &self.loaded.spec.changelog,
            state_version: self.loaded.module.state_version(),
        };
        self.checkpoints.write(&mut self.fold, to, sink, timeout)
    }

    /// Releases the inputs of every acknowledged checkpoint. An error: a checkpoint failed, so
    /// its inputs must never be committed.
    pub fn poll(&mut self) -> Result<(), AggregateError> {
        self.checkpoints.poll(&self.loaded.spec.changelog)
    }

    /// Whether checkpoints are still waiting for the changelog.
    pub fn pending(&self) -> bool {
        self.checkpoints.pending()
    }
}

/// An instance of `loaded`'s module for partition `tp`.
fn instance(
    loaded: &LoadedAggregate,
    tp: &TopicPartition,
) -> Result<WasmAggregator, AggregateError> {
    let mut instance = loaded.module.instance()?;
    instance.set_source(&tp.topic, tp.partition);
    Ok(WasmAggregator::new(instance))
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
    config.on_full = spec.on_full;
    config
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
