//! A lane: one assigned partition, processed in order on its own thread.
//!
//! A lane reads its partition in batches ([`feed`]), runs each batch through its chain of
//! enrich stages and the aggregate stage that may end it ([`fold`]), traces the records
//! ([`spans`]), and writes outputs and dead letters ([`letters`]) to the sink ([`deliver`]).
//! With exactly-once delivery it writes in transactions of its own ([`transaction`]); between
//! two batches it swaps to a new version of its stages ([`swap`]).
//!
//! Owns: the lane's thread, its loop, and [`Lane`], the engine's handle on it. Each part above
//! gets only the state it needs; the lane reads the engine's [`Shared`] parts and writes none
//! but the fatal signal and the counters.

mod deliver;
mod feed;
mod fold;
mod letters;
mod spans;
mod swap;
mod transaction;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use weir_core::{PartitionTracker, Record, SinkError};
use weir_kafka::{KafkaSink, PartitionFeed, TopicPartition};
use weir_telemetry::{PartitionMetrics, StageMetrics};

use crate::chain::{Chain, Run, StageInfo, StageRef};
use crate::error::LaneError;
use crate::loader::LoadedPipeline;
use crate::shared::{Shared, Transactions};
use crate::stall::FeedErrors;
use deliver::Outlet;
use feed::Batcher;
use fold::{Batch, Folder, Traced};
use spans::{RecordTrace, Tracer};
use swap::Running;
use transaction::Transaction;

/// The engine's handle on a running lane.
pub(crate) struct Lane {
    pub stop: Arc<AtomicBool>,
    pub tracker: Arc<PartitionTracker>,
    pub thread: JoinHandle<()>,
    /// Whether the lane's last batch was full: records are waiting for it (backpressure).
    pub saturated: Arc<AtomicBool>,
    /// The last offset committed for this lane.
    pub committed: Option<i64>,
}

impl Lane {
    /// Starts the lane's thread, which reads `feed` at its own pace.
    pub fn start(
        feed: PartitionFeed,
        chain: Chain,
        loaded: Arc<LoadedPipeline>,
        generation: u64,
        shared: Arc<Shared>,
        metrics: PartitionMetrics,
    ) -> std::io::Result<Self> {
        let tp = feed.partition().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let saturated = Arc::new(AtomicBool::new(false));
        let tracker = Arc::new(PartitionTracker::new());
        let errors = FeedErrors::new(
            tp.clone(),
            metrics.clone(),
            Arc::clone(&shared.metrics),
            Arc::clone(&shared.stalls),
        );
        let settings = &shared.settings;
        let outlet = Outlet {
            sink: Arc::clone(&shared.sink) as Arc<dyn weir_core::Sink>,
            tp: tp.clone(),
            pipeline: Arc::clone(&settings.pipeline),
            dead_letter: Arc::clone(&settings.dead_letter),
            stats: Arc::clone(&shared.stats),
            stop: Arc::clone(&stop),
            backoff: weir_core::Backoff::default(),
        };
        let worker = Worker {
            batcher: Batcher::new(feed, errors, settings.batch_size, Arc::clone(&saturated)),
            tracer: Tracer::new(
                shared.tracing.clone(),
                tp.clone(),
                Arc::clone(&settings.pipeline),
            ),
            running: Running {
                chain,
                folder: None,
                loaded,
                generation,
            },
            tp: tp.clone(),
            stop: Arc::clone(&stop),
            tracker: Arc::clone(&tracker),
            metrics,
            checkpoints: Arc::clone(&shared.sink),
            outlet,
            transaction: None,
            shared,
        };
        let thread = std::thread::Builder::new()
            .name(format!("weir-lane-{}-{}", tp.topic, tp.partition))
            .spawn(move || {
                // A lane that panics must not leave a live process with a dead partition.
                let shared = Arc::clone(&worker.shared);
                shared
                    .fatal
                    .guarded(&format!("lane {}", worker.tp), || worker.run());
            })?;
        Ok(Self {
            stop,
            tracker,
            thread,
            saturated,
            committed: None,
        })
    }
}

/// A lane's thread and what it owns.
struct Worker {
    tp: TopicPartition,
    shared: Arc<Shared>,
    batcher: Batcher,
    running: Running,
    tracer: Tracer,
    outlet: Outlet,
    /// Where aggregate checkpoints go: the pipeline's producer, or with exactly-once delivery
    /// the lane's own transactional one.
    checkpoints: Arc<KafkaSink>,
    /// The open transaction, with exactly-once delivery.
    transaction: Option<Transaction>,
    stop: Arc<AtomicBool>,
    tracker: Arc<PartitionTracker>,
    metrics: PartitionMetrics,
}

impl Worker {
    fn run(mut self) {
        if let Err(error) = self.start() {
            self.shared.fatal.set(error);
            return;
        }
        // An aggregate lane tends its state without records too: idle partitions still close
        // their windows, and checkpoints still go out. A transactional lane commits on time.
        let tends = self.running.folder.is_some() || self.transaction.is_some();
        let mut batch = Vec::with_capacity(self.batcher.batch_size());
        while !self.stop.load(Ordering::Acquire) {
            self.batcher.next(&mut batch);
            let result = if !batch.is_empty() {
                if self.stop.load(Ordering::Acquire) {
                    break;
                }
                self.process(&batch).and_then(|()| self.tend(false))
            } else if tends {
                self.tend(true)
            } else {
                Ok(())
            };
            if let Err(error) = result {
                // A sink still unavailable when the lane was told to stop is no failure:
                // what it did not take is simply not committed.
                let stopped = matches!(
                    error,
                    LaneError::Sink {
                        source: SinkError::Stopped(_),
                        ..
                    }
                );
                if !stopped {
                    self.shared.fatal.set(error);
                }
                return;
            }
        }
        if let Err(error) = self.finish() {
            tracing::warn!(
                partition = %self.tp,
                %error,
                "Final checkpoint or transaction failed; the next owner re-reads from the last \
                 commit."
            );
        }
        tracing::debug!(partition = %self.tp, "Lane stopped.");
    }

    /// The lane's transactional producer, then its aggregate state.
    fn start(&mut self) -> Result<(), LaneError> {
        if let Some(transactions) = &self.shared.transactions {
            let t = Transaction::begin(&self.tp, &self.shared.tracing.group, transactions)?;
            self.checkpoints = Arc::clone(t.sink());
            self.outlet.sink = Arc::clone(t.sink()) as Arc<dyn weir_core::Sink>;
            self.transaction = Some(t);
        }
        self.running.folder = Folder::start(
            &self.running.loaded,
            &self.tp,
            &self.shared.settings,
            &self.shared.metrics,
        )?;
        Ok(())
    }

    /// One batch through the chain (and the aggregate stage), then to the sink.
    fn process(&mut self, batch: &[Record]) -> Result<(), LaneError> {
        if self.running.stale(&self.shared.versions) {
            let shared = &self.shared;
            self.running.swap(
                &self.tp,
                &shared.versions,
                &shared.settings.pipeline,
                &shared.metrics,
            );
        }
        self.shared
            .stats
            .records_in
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.metrics.consumed.inc_by(batch.len() as u64);
        let running = &mut self.running;
        let Run {
            mut emits,
            mut spans,
            mut calls,
            elapsed,
            forwarded,
        } = running.chain.run(&self.tp.topic, self.tp.partition, batch);
        let mut traces: Vec<RecordTrace> = batch
            .iter()
            .zip(&emits)
            .map(|(input, emits)| {
                let ids = running.chain.ids();
                self.tracer.trace(input, emits, elapsed, ids, &self.metrics)
            })
            .collect();
        let mut held = vec![false; batch.len()];
        if let Some(folder) = running.folder.as_mut() {
            let into = Batch {
                emits: &mut emits,
                spans: &mut spans,
                calls: &mut calls,
                traces: &mut traces,
                held: &mut held,
            };
            let (keep_errors, record) = (self.tracer.keep_errors(), self.tracer.enabled());
            folder.fold(forwarded, running.chain.ids(), into, keep_errors, record);
        }
        let stages = running.stages(self.tp.partition);
        if self.tracer.enabled() {
            self.tracer.export(batch, &traces, &spans, &calls, &stages);
        }
        if let (Some(t), Some(last)) = (self.transaction.as_mut(), batch.last()) {
            t.processed(last.offset);
        }
        let acks: Vec<_> = batch
            .iter()
            .map(|input| self.tracker.track(input.offset))
            .collect();
        if let Some(folder) = self.running.folder.as_mut() {
            for (ack, _) in acks.iter().zip(&held).filter(|(_, held)| **held) {
                folder.lane.hold(ack);
            }
        }
        let stages = self.running.stages(self.tp.partition);
        self.outlet.deliver(batch, emits, &traces, &acks, &stages)
    }

    /// Between batches: the idle rule, closed windows to the output topic, checkpoints, the
    /// release of inputs whose checkpoint is acknowledged, and the transaction's commit.
    fn tend(&mut self, idle: bool) -> Result<(), LaneError> {
        let interval = self.shared.settings.commit_interval;
        let running = &mut self.running;
        if let Some(folder) = running.folder.as_mut() {
            if idle {
                folder.lane.on_idle();
            }
            let closed = folder.lane.closed();
            if !closed.is_empty() {
                if let Some(t) = self.transaction.as_mut() {
                    t.wrote();
                }
                let ack = Arc::clone(folder.lane.emitted());
                let ids = running.chain.ids();
                let windows: Vec<Traced> = closed
                    .into_iter()
                    .map(|result| {
                        let trace = self.tracer.window_trace(result.outputs.is_err(), ids);
                        let span = ids.span_id();
                        Traced {
                            result,
                            trace,
                            span,
                        }
                    })
                    .collect();
                let stages = running.stages(self.tp.partition);
                let records = fold::window_records(windows, &self.tracer, &self.outlet, &stages);
                self.outlet.publish_windows(records, &ack, &stages)?;
            }
            // Transactional lanes checkpoint in every transaction, others on their own
            // schedule.
            let folder = running.folder.as_mut().expect("checked above");
            let due = match &self.transaction {
                Some(t) => t.due(interval),
                None => folder.lane.checkpoint_due(interval),
            };
            if due {
                folder.checkpoint(&self.checkpoints, &self.tp, &self.shared.settings)?;
            }
            folder.poll(&self.tp)?;
        }
        if self.transaction.as_ref().is_some_and(|t| t.due(interval)) {
            self.commit()?;
        }
        Ok(())
    }

    fn transactions(&self) -> &Transactions {
        self.shared
            .transactions
            .as_ref()
            .expect("a lane with a transaction has transaction settings")
    }

    /// On stop: the aggregate stage's last checkpoint and, with transactions, the last commit.
    fn finish(&mut self) -> Result<(), LaneError> {
        if let Some(folder) = self.running.folder.as_mut() {
            folder.finish(&self.checkpoints, &self.tp, &self.shared.settings)?;
        }
        self.commit()
    }

    /// Commits the open transaction, if any, and begins the next.
    fn commit(&mut self) -> Result<(), LaneError> {
        let Some(mut t) = self.transaction.take() else {
            return Ok(());
        };
        let committed = t.commit(&self.tp, self.transactions());
        self.transaction = Some(t);
        committed
    }
}

/// A lane's stages as delivery and tracing see them: each stage's description, cohort and
/// metrics, by [`StageRef`].
pub(super) struct Stages<'a> {
    chain: &'a Chain,
    loaded: &'a LoadedPipeline,
    aggregate_metrics: Option<&'a StageMetrics>,
    partition: i32,
}

impl Stages<'_> {
    pub fn info(&self, stage: StageRef) -> &StageInfo {
        match stage {
            StageRef::Enrich(i) => &self.chain.infos()[i],
            StageRef::Aggregate => {
                &self
                    .loaded
                    .aggregate()
                    .expect("a lane that refers to its aggregate stage has one")
                    .info
            }
        }
    }

    /// The number of enrich stages.
    pub fn chain_len(&self) -> usize {
        self.chain.infos().len()
    }

    /// The stage at `position` in the pipeline's list of stages.
    pub fn at(&self, position: usize) -> StageRef {
        if position < self.chain_len() {
            StageRef::Enrich(position)
        } else {
            StageRef::Aggregate
        }
    }

    /// Whether this lane runs the stage's canary or its stable version.
    pub fn cohort(&self, stage: StageRef) -> &'static str {
        match stage {
            StageRef::Enrich(i)
                if i < self.loaded.canaries().len()
                    && self.loaded.canary_on(i, self.partition).is_some() =>
            {
                crate::loader::CANARY
            }
            _ => crate::loader::STABLE,
        }
    }

    pub fn metrics(&self, stage: StageRef) -> Option<&StageMetrics> {
        match stage {
            StageRef::Enrich(i) => self.chain.stage_metrics(i),
            StageRef::Aggregate => self.aggregate_metrics,
        }
    }
}
