//! A lane: one assigned partition, processed in order by one worker of the lane [`pool`].
//!
//! A lane reads its partition in batches ([`feed`]), runs each batch through its chain of
//! enrich stages and the aggregate stage that may end it ([`fold`]), traces the records
//! ([`spans`]), and writes outputs and dead letters ([`letters`]) to the sink ([`deliver`]).
//! With exactly-once delivery it writes in transactions of its own ([`transaction`]); between
//! two batches it swaps to a new version of its stages ([`swap`]).
//!
//! Owns: the lane's step (one batch, or tending), and [`Lane`], the engine's handle on it. Each part above
//! gets only the state it needs; the lane reads the engine's [`Shared`] parts and writes none
//! but the fatal signal and the counters.

mod deliver;
mod feed;
mod fold;
mod letters;
pub(crate) mod pool;
mod quality;
mod spans;
mod swap;
mod transaction;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
use pool::{Pool, Signal, Step};
use spans::{RecordTrace, Tracer};
use swap::Running;
use transaction::Transaction;

/// The engine's handle on a running lane.
pub(crate) struct Lane {
    pub stop: Arc<AtomicBool>,
    pub tracker: Arc<PartitionTracker>,
    /// Set once the lane has finished, stopped (with its last checkpoint and transaction) or
    /// failed, and its worker has dropped it: its feed, so a new lane of the same partition
    /// owns the partition's queue alone, and its instances.
    pub done: Arc<AtomicBool>,
    /// Its worker's wake-up call, raised after setting `stop`.
    pub signal: Arc<Signal>,
    /// Whether the lane's last batch was full: records are waiting for it (backpressure).
    pub saturated: Arc<AtomicBool>,
    /// The last offset committed for this lane.
    pub committed: Option<i64>,
}

impl Lane {
    /// Stops the lane after its current batch and wakes its worker to see it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.signal.raise();
    }

    /// Places the lane on the pool's least loaded worker, which reads `feed` at the lane's
    /// pace. None when that worker is gone (it panicked: the pipeline is failing).
    pub fn start(
        mut feed: PartitionFeed,
        chain: Chain,
        loaded: Arc<LoadedPipeline>,
        generation: u64,
        shared: Arc<Shared>,
        metrics: PartitionMetrics,
        pool: &Pool,
    ) -> Option<Self> {
        let tp = feed.partition().clone();
        let (worker, signal) = pool.least_loaded();
        // Polled first without waiting for a signal: records may be queued already.
        let ready = Arc::new(AtomicBool::new(true));
        let (arrived, wake) = (Arc::clone(&ready), Arc::clone(&signal));
        feed.on_arrival(move || {
            arrived.store(true, Ordering::Release);
            wake.raise();
        });
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
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
            stores: Arc::clone(&shared.stores),
            tp: tp.clone(),
            pipeline: Arc::clone(&settings.pipeline),
            dead_letter: Arc::clone(&settings.dead_letter),
            dead_letter_store: settings
                .dead_letter_store
                .then(|| {
                    let name = &*settings.dead_letter;
                    shared.stores.iter().position(|(n, _)| &**n == name)
                })
                .flatten(),
            stats: Arc::clone(&shared.stats),
            redact_letters: shared.privacy.clone().filter(|_| shared.redact_letters),
            stop: Arc::clone(&stop),
            backoff: weir_core::Backoff::default(),
        };
        let task = Task {
            batcher: Batcher::new(
                feed,
                errors,
                settings.batch_size,
                ready,
                Arc::clone(&saturated),
            ),
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
            accounts: quality::Accounts::default(),
            transaction: None,
            shared,
            started: false,
            tends: false,
            tended: Instant::now(),
            polled: Instant::now(),
            done: Arc::clone(&done),
        };
        pool.place(worker, task).then_some(Self {
            stop,
            tracker,
            done,
            signal,
            saturated,
            committed: None,
        })
    }
}

/// A lane's state, stepped by its worker.
pub(super) struct Task {
    tp: TopicPartition,
    shared: Arc<Shared>,
    batcher: Batcher,
    running: Running,
    tracer: Tracer,
    outlet: Outlet,
    /// The conservation check of each enrich stage.
    accounts: quality::Accounts,
    /// Where aggregate checkpoints go: the pipeline's producer, or with exactly-once delivery
    /// the lane's own transactional one.
    checkpoints: Arc<KafkaSink>,
    /// The open transaction, with exactly-once delivery.
    transaction: Option<Transaction>,
    stop: Arc<AtomicBool>,
    tracker: Arc<PartitionTracker>,
    metrics: PartitionMetrics,
    /// Whether [`Self::start`] ran.
    started: bool,
    /// Whether the lane tends its state without records too: an aggregate lane's idle
    /// partition still closes windows and checkpoints, a transactional lane commits on time.
    tends: bool,
    /// When the lane last took a batch or tended.
    tended: Instant,
    /// When the lane last read its feed.
    polled: Instant,
    done: Arc<AtomicBool>,
}

impl Task {
    /// One step of the lane: its start, one batch and what follows it, tending when idle, or
    /// its finish once stopped. `batch` is the worker's buffer, lent for the step.
    pub(super) fn step(&mut self, now: Instant, batch: &mut Vec<Record>) -> Step {
        if !self.started {
            self.started = true;
            if let Err(error) = self.start() {
                self.shared.fatal.set(error);
                return Step::Done;
            }
            self.tends = self.running.folder.is_some() || self.transaction.is_some();
        }
        if self.stop.load(Ordering::Acquire) {
            if let Err(error) = self.finish() {
                tracing::warn!(
                    partition = %self.tp,
                    %error,
                    "Final checkpoint or transaction failed; the next owner re-reads from the \
                     last commit."
                );
            }
            self.outlet.release(self.shared.settings.drain_timeout);
            tracing::debug!(partition = %self.tp, "Lane stopped.");
            return Step::Done;
        }
        // The queue is read when the feed said something arrived, when more may be waiting,
        // and, as a safety net against a lost signal, every `TEND` regardless.
        let sweep = now.duration_since(self.polled) >= pool::TEND;
        let (read, more) = self.batcher.next(batch, sweep);
        if read {
            self.polled = now;
        }
        let result = if !batch.is_empty() {
            self.tended = now;
            self.process(batch).and_then(|()| self.tend(false))
        } else if self.tends && now.duration_since(self.tended) >= pool::TEND {
            self.tended = now;
            self.tend(true)
        } else {
            Ok(())
        };
        batch.clear();
        if let Err(error) = result {
            // A sink still unavailable when the lane was told to stop is no failure: what it
            // did not take is simply not committed.
            let stopped = matches!(
                error,
                LaneError::Sink {
                    source: SinkError::Stopped(_),
                    ..
                }
            );
            if stopped {
            } else if self.stop.load(Ordering::Acquire) {
                // The partition was revoked (or weir is stopping) while the step ran, such as
                // a transaction commit held up by a broker out of reach: nothing of it was
                // committed, and the partition's next owner re-reads it. Not this process's end.
                tracing::warn!(
                    partition = %self.tp,
                    %error,
                    "Lane failed while it was being stopped; the next owner re-reads from the \
                     last commit."
                );
            } else {
                self.shared.fatal.set(error);
            }
            return Step::Done;
        }
        if more { Step::Again } else { Step::Idle }
    }

    /// The flag to set once the lane, feed and instances included, is dropped.
    pub(super) fn done(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.done)
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
        running.chain.set_tap(self.shared.tap.attached());
        let Run {
            mut emits,
            mut spans,
            mut calls,
            elapsed,
            forwarded,
            counts,
            taps,
        } = running.chain.run(&self.tp.topic, self.tp.partition, batch);
        if let Some(privacy) = &self.shared.privacy {
            crate::privacy::scrub_failures(privacy, batch, &mut emits, &mut spans);
        }
        self.accounts.ran(&counts, &emits);
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
        if !taps.is_empty() {
            quality::offer_taps(&self.shared.tap, &taps, &traces, &self.tp, &stages);
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
        self.outlet.deliver(batch, emits, &traces, &acks, &stages)?;
        self.accounts.publish(&stages);
        Ok(())
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
