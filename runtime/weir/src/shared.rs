//! What the engine, its lanes and the reload thread share, in named parts: each lane module
//! takes the part it needs rather than the whole.
//!
//! - [`Settings`]: the pipeline's fixed settings, read once at start.
//! - [`Versions`]: the stage versions in force, their generation, and the instances prepared
//!   for (and retired by) each lane's swap.
//! - [`RolloutBoard`]: the canaries' status and the operators' canary requests.
//! - [`Fatal`]: the first error that stops the pipeline.
//! - [`Transactions`]: with exactly-once delivery, what each lane's producer is made from.
//!
//! Owns: these values and their locking. Touches no record and no client: a lane reads them, the
//! reload thread and the admin API write them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use weir_kafka::{KafkaSink, TopicPartition};
use weir_telemetry::{Metrics, Spans};

use crate::error::FatalError;
use crate::loader::{LoadedPipeline, StageInstance};
use crate::rollout::canary::{Action, CanaryStatus};
use crate::stall::Stalls;

/// Counters shared by every lane, for progress logs and the final summary.
#[derive(Debug, Default)]
pub struct Stats {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub dead_letters: AtomicU64,
}

/// The pipeline's stores by name: few, so a list.
pub(crate) type Stores = Arc<[(Arc<str>, Arc<dyn weir_core::Sink>)]>;

/// What lanes share with the engine.
pub(crate) struct Shared {
    pub settings: Settings,
    pub versions: Versions,
    pub rollout: RolloutBoard,
    pub fatal: Fatal,
    /// The pipeline's producer: every lane's sink, unless lanes write in transactions.
    pub sink: Arc<KafkaSink>,
    /// The pipeline's stores (its `[sinks.<name>]` other than Kafka), by name.
    pub stores: Stores,
    pub transactions: Option<Transactions>,
    pub stats: Arc<Stats>,
    /// Partitions whose consumption keeps failing, for `/readyz`.
    pub stalls: Arc<Stalls>,
    pub metrics: Arc<Metrics>,
    pub tracing: Tracing,
    /// The `weir tap` clients attached, which lanes offer their records to.
    pub tap: Arc<crate::tap::TapHub>,
    /// The pipeline's `[privacy]`, if it has one.
    pub privacy: Option<Arc<weir_core::Redactor>>,
    /// Whether dead letters are redacted too (`[dead_letter] redact`).
    pub redact_letters: bool,
}

/// The pipeline's settings every lane reads.
pub(crate) struct Settings {
    pub pipeline: Arc<str>,
    /// The dead-letter topic, or the name of the store dead letters go to.
    pub dead_letter: Arc<str>,
    /// Whether `dead_letter` names a store (`schema = "dead-letters"`) rather than a topic.
    pub dead_letter_store: bool,
    pub batch_size: usize,
    /// Where aggregate lanes read their changelog from, and with which client properties.
    pub cluster: weir_kafka::Cluster,
    pub source_properties: BTreeMap<String, String>,
    /// How often aggregate lanes checkpoint and transactional lanes commit.
    pub commit_interval: Duration,
    /// The longest a lane waits for its outputs, window results or checkpoint when it stops.
    pub drain_timeout: Duration,
}

/// With exactly-once delivery, each lane writes in transactions with its own producer.
pub(crate) struct Transactions {
    /// What each lane's transactional producer is made from.
    pub sink_settings: weir_kafka::SinkSettings,
    /// The consumer group's latest identity and generation, which transactions commit under.
    pub group_metadata: Mutex<Option<Arc<weir_kafka::GroupMetadata>>>,
}

/// How lanes trace records.
#[derive(Debug, Clone)]
pub(crate) struct Tracing {
    pub spans: Spans,
    pub group: Arc<str>,
    /// Share of healthy records kept.
    pub ratio: f64,
    pub keep_errors: bool,
    pub slow: Duration,
    pub keep_sampled_parents: bool,
}

/// The first error that stops the pipeline.
#[derive(Debug, Default)]
pub(crate) struct Fatal(Mutex<Option<Arc<FatalError>>>);

impl Fatal {
    /// Keeps `error` unless an earlier one was kept.
    pub fn set(&self, error: impl Into<FatalError>) {
        let error = error.into();
        tracing::error!(%error, "Pipeline failing.");
        self.0.lock().get_or_insert_with(|| Arc::new(error));
    }

    pub fn get(&self) -> Option<Arc<FatalError>> {
        self.0.lock().clone()
    }

    /// Runs `work`, the body of thread `what`; a panic in it makes the pipeline fail.
    pub fn guarded(&self, what: &str, work: impl FnOnce()) {
        crate::stall::guarded(
            what,
            |message| {
                self.set(FatalError::Panic {
                    what: what.to_owned(),
                    message,
                })
            },
            work,
        );
    }
}

/// The canaries' status board and the requests operators made through the admin API.
#[derive(Debug, Default)]
pub(crate) struct RolloutBoard {
    /// Every canary's status, refreshed by the rollout on the reload thread.
    board: Mutex<Vec<CanaryStatus>>,
    /// Canary actions asked through the admin API, for the reload thread.
    requests: Mutex<Vec<(String, Action)>>,
}

impl RolloutBoard {
    pub fn show(&self, board: Vec<CanaryStatus>) {
        *self.board.lock() = board;
    }

    pub fn board(&self) -> Vec<CanaryStatus> {
        self.board.lock().clone()
    }

    pub fn request(&self, stage: &str, action: Action) {
        self.requests.lock().push((stage.to_owned(), action));
    }

    pub fn take_requests(&self) -> Vec<(String, Action)> {
        std::mem::take(&mut *self.requests.lock())
    }
}

/// Instances prepared for one lane: the stages that change between two generations.
pub(crate) struct Prepared {
    /// The generation the lane must be at for these to apply, and the one they lead to.
    from: u64,
    to: u64,
    stages: Vec<StageInstance>,
}

/// The stage versions in force, and the instances moving between the publisher and the lanes.
pub(crate) struct Versions {
    /// The stages' modules every lane should run; replaced by a reload.
    loaded: RwLock<Arc<LoadedPipeline>>,
    /// Bumped after `loaded` is replaced: lanes compare it at every batch boundary.
    generation: AtomicU64,
    /// The partitions with a running lane, so a publish can prepare their new instances.
    assigned: Mutex<Vec<TopicPartition>>,
    /// Instances lanes swapped out, dropped by the reload thread.
    retired: Mutex<Vec<Box<dyn weir_core::Stage>>>,
    /// New stage instances made ready for each lane by the publisher, so that a lane's swap
    /// costs a few pointer moves rather than instantiations.
    prepared: Mutex<BTreeMap<TopicPartition, Prepared>>,
}

impl Versions {
    pub fn new(loaded: Arc<LoadedPipeline>) -> Self {
        Self {
            loaded: RwLock::new(loaded),
            generation: AtomicU64::new(0),
            assigned: Mutex::default(),
            retired: Mutex::default(),
            prepared: Mutex::default(),
        }
    }

    /// The stages' modules now in force.
    pub fn current(&self) -> Arc<LoadedPipeline> {
        Arc::clone(&self.loaded.read())
    }

    /// The generation of [`Versions::current`]; read it first, then `current`, so a lane that
    /// races a publish swaps (to the same version) once rather than never.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Puts `loaded` in force: every lane swaps to it before its next batch. The new instances
    /// of the changed stages are made here, on the publisher's thread, so lanes barely pause.
    pub fn publish(&self, loaded: Arc<LoadedPipeline>) {
        let previous = self.current();
        let from = self.generation();
        let mut ready = Vec::new();
        for tp in self.assigned.lock().clone() {
            // Should one fail, the lane makes its own (and reports why).
            if let Ok(stages) = loaded.changed_instances(&previous, tp.partition) {
                ready.push((tp, stages));
            }
        }
        {
            let mut prepared = self.prepared.lock();
            prepared.clear();
            for (tp, stages) in ready {
                let to = from + 1;
                prepared.insert(tp, Prepared { from, to, stages });
            }
        }
        *self.loaded.write() = loaded;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The instances prepared for `tp`'s move from generation `from` to `to`, if any.
    pub fn take_prepared(
        &self,
        tp: &TopicPartition,
        from: u64,
        to: u64,
    ) -> Option<Vec<StageInstance>> {
        self.prepared
            .lock()
            .remove(tp)
            .filter(|p| p.from == from && p.to == to)
            .map(|p| p.stages)
    }

    /// The partitions whose lanes run now.
    pub fn set_assigned(&self, partitions: Vec<TopicPartition>) {
        *self.assigned.lock() = partitions;
    }

    /// `tp`'s lane is going away: its prepared instances are retired.
    pub fn forget(&self, tp: &TopicPartition) {
        if let Some(p) = self.prepared.lock().remove(tp) {
            self.retire(p.stages.into_iter().map(|(_, s)| s));
        }
    }

    /// Instances to drop off the data path (dropping one unmaps its memory).
    pub fn retire(&self, stages: impl IntoIterator<Item = Box<dyn weir_core::Stage>>) {
        self.retired.lock().extend(stages);
    }

    /// Drops the retired instances; called by the reload thread.
    pub fn drop_retired(&self) {
        drop(std::mem::take(&mut *self.retired.lock()));
    }
}
