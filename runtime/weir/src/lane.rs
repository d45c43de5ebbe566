//! A lane: one assigned partition, processed in order on its own thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use weir_core::trace::{self, Incoming, SpanId, TraceId};
use weir_core::{Failure, FailureKind, Header, InputAck, PartitionTracker, Record, headers};
use weir_kafka::{KafkaSink, PartitionFeed, TopicPartition};
use weir_telemetry::{Attr, Metrics, PartitionMetrics, SpanKind, SpanRecord, Spans, StageMetrics};

use crate::aggregate::{AggregateLane, Fate, WindowResult};

use crate::chain::{Chain, Emit, Partitioning, Run, StageCall, StageInfo};
use crate::loader::LoadedPipeline;
use crate::stall::FeedErrors;

/// Counters shared by every lane, for progress logs and the final summary.
#[derive(Debug, Default)]
pub struct Stats {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub dead_letters: AtomicU64,
}

/// What lanes share with the engine.
pub(crate) struct Shared {
    pub pipeline: Arc<str>,
    pub dead_letter: Arc<str>,
    pub batch_size: usize,
    /// Where aggregate lanes read their changelog from, and with which client properties.
    pub cluster: weir_kafka::Cluster,
    pub source_properties: std::collections::BTreeMap<String, String>,
    /// How often aggregate lanes checkpoint.
    pub commit_interval: Duration,
    /// The longest an aggregate lane waits for its window results or checkpoint.
    pub drain_timeout: Duration,
    pub sink: Arc<KafkaSink>,
    /// Whether lanes write in transactions, each with its own producer made from
    /// `sink_settings`, under the group's latest `group_metadata`.
    pub exactly_once: bool,
    pub sink_settings: weir_kafka::SinkSettings,
    pub group_metadata: Mutex<Option<Arc<weir_kafka::GroupMetadata>>>,
    pub stats: Arc<Stats>,
    /// The first error that makes the pipeline stop.
    pub fatal: Mutex<Option<String>>,
    /// Partitions whose consumption keeps failing, for `/readyz`.
    pub stalls: Arc<crate::stall::Stalls>,
    /// The stages' modules every lane should run; replaced by a reload.
    pub loaded: RwLock<Arc<LoadedPipeline>>,
    /// Bumped after `loaded` is replaced: lanes compare it at every batch boundary.
    pub generation: AtomicU64,
    pub metrics: Arc<Metrics>,
    /// Span export and sampling.
    pub tracing: Tracing,
    /// Every canary's status, refreshed by the analyser.
    pub canary_board: Mutex<Vec<crate::canary::CanaryStatus>>,
    /// Canary actions asked through the admin API, for the reload thread.
    pub canary_requests: Mutex<Vec<(String, crate::canary::Action)>>,
    /// The partitions with a running lane, so a publish can prepare their new instances.
    pub assigned: Mutex<Vec<TopicPartition>>,
    /// Instances lanes swapped out, dropped by the reload thread.
    pub retired: Mutex<Vec<Box<dyn weir_core::Stage>>>,
    /// New stage instances made ready for each lane by the publisher, so that a lane's swap
    /// costs a few pointer moves rather than instantiations.
    pub prepared: Mutex<std::collections::BTreeMap<TopicPartition, Prepared>>,
}

/// Instances prepared for one lane: the stages that change between two generations.
pub(crate) struct Prepared {
    /// The generation the lane must be at for these to apply, and the one they lead to.
    from: u64,
    to: u64,
    stages: Vec<crate::loader::StageInstance>,
}

impl Prepared {
    /// The instances, unused.
    pub fn into_stages(self) -> impl Iterator<Item = Box<dyn weir_core::Stage>> {
        self.stages.into_iter().map(|(_, s)| s)
    }
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

impl Shared {
    /// The stages' modules now in force.
    pub fn current(&self) -> Arc<LoadedPipeline> {
        Arc::clone(&self.loaded.read())
    }

    /// Puts `loaded` in force: every lane swaps to it before its next batch. The new instances
    /// of the changed stages are made here, on the publisher's thread, so lanes barely pause.
    pub fn publish(&self, loaded: Arc<LoadedPipeline>) {
        let previous = self.current();
        let from = self.generation.load(Ordering::Acquire);
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
                prepared.insert(
                    tp,
                    Prepared {
                        from,
                        to: from + 1,
                        stages,
                    },
                );
            }
        }
        *self.loaded.write() = loaded;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn set_fatal(&self, message: String) {
        tracing::error!(error = %message, "Pipeline failing.");
        self.fatal.lock().get_or_insert(message);
    }

    /// Runs `work`, the body of thread `what`; a panic in it makes the pipeline fail.
    pub fn guarded(&self, what: &str, work: impl FnOnce()) {
        crate::stall::guarded(what, |message| self.set_fatal(message), work);
    }
}

/// How long a lane waits for its partition's next record before it looks at its stop flag (and,
/// in aggregate and transactional lanes, tends windows, checkpoints and transactions).
const WAIT: Duration = Duration::from_millis(100);

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
    ) -> Self {
        let tp = feed.partition().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let saturated = Arc::new(AtomicBool::new(false));
        let tracker = Arc::new(PartitionTracker::new());
        let shared_sink = Arc::clone(&shared.sink);
        let feed_errors = FeedErrors::new(
            tp.clone(),
            metrics.clone(),
            Arc::clone(&shared.metrics),
            Arc::clone(&shared.stalls),
        );
        let worker = Worker {
            generation,
            tp: tp.clone(),
            chain,
            loaded,
            shared,
            feed,
            stop: Arc::clone(&stop),
            saturated: Arc::clone(&saturated),
            tracker: Arc::clone(&tracker),
            metrics,
            feed_errors,
            aggregate: None,
            aggregate_metrics: None,
            sink: Arc::clone(&shared_sink),
            transaction: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("weir-lane-{}-{}", tp.topic, tp.partition))
            .spawn(move || {
                // A lane that panics must not leave a live process with a dead partition.
                let shared = Arc::clone(&worker.shared);
                shared.guarded(&format!("lane {}", worker.tp), || worker.run());
            })
            .expect("cannot spawn a lane thread");
        Self {
            stop,
            tracker,
            thread,
            saturated,
            committed: None,
        }
    }
}

struct Worker {
    tp: TopicPartition,
    chain: Chain,
    /// The modules `chain` runs instances of, and the generation they were published at.
    loaded: Arc<LoadedPipeline>,
    generation: u64,
    shared: Arc<Shared>,
    feed: PartitionFeed,
    stop: Arc<AtomicBool>,
    saturated: Arc<AtomicBool>,
    tracker: Arc<PartitionTracker>,
    metrics: PartitionMetrics,
    /// Consume errors of the partition, and whether it is stalled.
    feed_errors: FeedErrors,
    /// The aggregate stage that ends the chain, if any: its state, and its metric handles.
    aggregate: Option<AggregateLane>,
    aggregate_metrics: Option<StageMetrics>,
    /// Where this lane's records go: the pipeline's producer, or with exactly-once delivery
    /// the lane's own transactional one.
    sink: Arc<KafkaSink>,
    /// The open transaction, with exactly-once delivery.
    transaction: Option<Transaction>,
}

/// A lane's open transaction: what it holds and when it began.
struct Transaction {
    /// One past the last input offset processed in it.
    next: Option<i64>,
    /// Whether anything was written in it.
    written: bool,
    began: Instant,
}

impl Transaction {
    fn due(&self, interval: Duration) -> bool {
        (self.written || self.next.is_some()) && self.began.elapsed() >= interval
    }
}

/// An input record's trace: where its spans and its outputs' `traceparent` belong.
struct RecordTrace {
    trace_id: TraceId,
    /// The upstream span (from the input's `traceparent`); `None` for a new root.
    parent: Option<SpanId>,
    tracestate: Option<weir_core::Bytes>,
    /// Whether this record's spans are kept (tail sampling decision).
    keep: bool,
}

impl Worker {
    fn run(mut self) {
        if let Err(message) = self
            .start_transactions()
            .and_then(|()| self.start_aggregate())
        {
            self.shared.set_fatal(message);
            return;
        }
        // An aggregate lane tends its state without records too: idle partitions still close
        // their windows, and checkpoints still go out. A transactional lane commits on time.
        let tends = self.aggregate.is_some() || self.transaction.is_some();
        let batch_size = self.shared.batch_size;
        let mut batch = Vec::with_capacity(batch_size);
        while !self.stop.load(Ordering::Acquire) {
            batch.clear();
            let mut wait = WAIT;
            while batch.len() < batch_size {
                match self.feed.poll(wait) {
                    Ok(Some(r)) => {
                        self.feed_errors.record();
                        batch.push(r);
                    }
                    Ok(None) => break,
                    Err(error) => {
                        self.feed_errors.error(&error);
                        break;
                    }
                }
                wait = Duration::ZERO;
            }
            self.saturated
                .store(batch.len() == batch_size, Ordering::Relaxed);
            if !batch.is_empty() {
                if self.stop.load(Ordering::Acquire) {
                    break;
                }
                if self.shared.generation.load(Ordering::Acquire) != self.generation {
                    self.swap();
                }
                if let Err(message) = self.process(&batch) {
                    self.shared.set_fatal(message);
                    return;
                }
            } else if !tends {
                continue;
            }
            if let Err(message) = self.tend(batch.is_empty()) {
                self.shared.set_fatal(message);
                return;
            }
        }
        if let Err(message) = self.finish() {
            tracing::warn!(
                partition = %self.tp,
                error = %message,
                "Final checkpoint or transaction failed; the next owner re-reads from the last \
                 commit."
            );
        }
        tracing::debug!(partition = %self.tp, "Lane stopped.");
    }

    /// One batch through the chain (and the aggregate stage), then to the producer.
    fn process(&mut self, batch: &[Record]) -> Result<(), String> {
        self.shared
            .stats
            .records_in
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.metrics.consumed.inc_by(batch.len() as u64);
        let run = self.chain.run(&self.tp.topic, self.tp.partition, batch);
        let Run {
            mut emits,
            mut spans,
            mut calls,
            elapsed,
            forwarded,
        } = run;
        let mut traces: Vec<RecordTrace> = batch
            .iter()
            .zip(&emits)
            .map(|(input, emits)| self.trace(input, emits, elapsed))
            .collect();
        let mut held = vec![false; batch.len()];
        if self.aggregate.is_some() {
            self.fold(
                forwarded,
                &mut emits,
                &mut spans,
                &mut calls,
                &mut traces,
                &mut held,
            );
        }
        if self.shared.tracing.spans.enabled() {
            self.export_spans(batch, &traces, &spans, &calls);
        }
        if let (Some(t), Some(last)) = (self.transaction.as_mut(), batch.last()) {
            t.next = Some(last.offset + 1);
        }
        let mut aggregate = self.aggregate.take();
        let delivered = batch
            .iter()
            .zip(emits)
            .zip(&traces)
            .zip(&held)
            .try_for_each(|(((input, emits), trace), &hold)| {
                let hold = if hold { aggregate.as_mut() } else { None };
                self.deliver(input, emits, trace, hold)
            });
        self.aggregate = aggregate;
        delivered
    }

    /// Restores the aggregate stage's state, when the pipeline ends with one.
    fn start_aggregate(&mut self) -> Result<(), String> {
        let Some(loaded) = self.loaded.aggregate() else {
            return Ok(());
        };
        let lane = AggregateLane::start(
            Arc::clone(loaded),
            &self.tp,
            &self.shared.cluster,
            &self.shared.source_properties,
            self.shared.drain_timeout.max(Duration::from_secs(30)),
        )
        .map_err(|e| e.to_string())?;
        if let Some(labels) = self.loaded.aggregate_labels(&self.shared.pipeline) {
            self.aggregate_metrics = Some(self.shared.metrics.stage(
                &labels,
                &self.tp.topic,
                self.tp.partition,
            ));
        }
        self.aggregate = Some(lane);
        Ok(())
    }

    /// Folds the records the chain handed on into the aggregate stage's windows: their fate
    /// becomes dead letters (added to `emits`), held acknowledgements (`held`) and spans.
    fn fold(
        &mut self,
        forwarded: Vec<(usize, Record, Option<SpanId>)>,
        emits: &mut [Vec<Emit>],
        spans: &mut Vec<crate::chain::StageSpan>,
        calls: &mut Vec<StageCall>,
        traces: &mut [RecordTrace],
        held: &mut [bool],
    ) {
        let Some(agg) = self.aggregate.as_mut() else {
            return;
        };
        if forwarded.is_empty() {
            return;
        }
        let stage = self.chain.infos().len();
        let ids = self.chain.ids();
        let call = weir_core::CallTrace {
            trace_id: ids.trace_id(),
            span_id: ids.span_id(),
        };
        let mut parents = Vec::with_capacity(forwarded.len());
        let mut records = Vec::with_capacity(forwarded.len());
        for (origin, record, parent) in forwarded {
            let span = ids.span_id();
            parents.push((origin, parent, span));
            records.push((record, (traces[origin].trace_id, span)));
        }
        agg.instance().set_context(&call);
        let start = std::time::SystemTime::now();
        let timer = Instant::now();
        let fates = agg.fold(&records);
        let took = timer.elapsed();
        calls.push(StageCall {
            start,
            end: start + took,
            records: records.len(),
            trace_id: call.trace_id,
            span_id: call.span_id,
        });
        let keep_errors = self.shared.tracing.keep_errors;
        let mut folded = 0u64;
        for (((origin, parent, span), (record, _)), fate) in
            parents.into_iter().zip(records).zip(fates)
        {
            let outcome = match fate {
                Fate::Held => {
                    held[origin] = true;
                    folded += 1;
                    Ok(0)
                }
                Fate::Covered => Ok(0),
                Fate::Dropped => {
                    if let Some(m) = &self.aggregate_metrics {
                        m.late();
                    }
                    Ok(0)
                }
                Fate::Failed(failure) => {
                    if failure.kind == weir_core::FailureKind::Late
                        && let Some(m) = &self.aggregate_metrics
                    {
                        m.late();
                    }
                    traces[origin].keep |= keep_errors;
                    let message = failure.to_string();
                    emits[origin].push(Emit::DeadLetter {
                        stage,
                        record,
                        failure,
                        span,
                    });
                    Err(message)
                }
            };
            if self.chain_records_spans() {
                spans.push(crate::chain::StageSpan {
                    origin,
                    stage,
                    span_id: span,
                    parent,
                    outcome,
                });
            }
        }
        if let Some(m) = &self.aggregate_metrics {
            m.records_in.inc_by(folded);
            m.duration.observe(took.as_secs_f64());
        }
    }

    fn chain_records_spans(&self) -> bool {
        self.shared.tracing.spans.enabled()
    }

    /// With exactly-once delivery: the lane's own transactional producer, fencing the
    /// partition's previous owner.
    fn start_transactions(&mut self) -> Result<(), String> {
        if !self.shared.exactly_once {
            return Ok(());
        }
        let id = format!(
            "{}.{}.{}",
            self.shared.tracing.group, self.tp.topic, self.tp.partition
        );
        let sink = KafkaSink::new(&weir_kafka::SinkSettings {
            transactional_id: Some(id.clone()),
            ..self.shared.sink_settings.clone()
        })
        .map_err(|e| format!("{}: {e}", self.tp))?;
        tracing::debug!(partition = %self.tp, transactional_id = %id, "Transactions started.");
        self.sink = Arc::new(sink);
        self.transaction = Some(Transaction {
            next: None,
            written: false,
            began: Instant::now(),
        });
        Ok(())
    }

    /// Between batches: the idle rule, closed windows to the output topic, checkpoints, the
    /// release of inputs whose checkpoint is acknowledged, and the transaction's commit.
    fn tend(&mut self, idle: bool) -> Result<(), String> {
        let interval = self.shared.commit_interval;
        let commit = self.transaction.as_ref().is_some_and(|t| t.due(interval));
        if let Some(mut agg) = self.aggregate.take() {
            let result = (|| {
                if idle {
                    agg.on_idle();
                }
                let results = agg.closed();
                if !results.is_empty() {
                    self.publish_windows(&agg, results)?;
                }
                // Transactional lanes checkpoint in every transaction, others on their own
                // schedule.
                let due = match &self.transaction {
                    Some(t) => commit || (t.written && t.began.elapsed() >= interval),
                    None => agg.checkpoint_due(interval),
                };
                if due {
                    let bytes = agg
                        .checkpoint(&self.sink, self.shared.drain_timeout)
                        .map_err(|e| e.to_string())?;
                    if let Some(m) = &self.aggregate_metrics {
                        m.checkpointed(bytes);
                    }
                }
                agg.poll().map_err(|e| e.to_string())
            })();
            self.metrics_open_windows(&agg);
            self.aggregate = Some(agg);
            result?;
        }
        if self.transaction.as_ref().is_some_and(|t| t.due(interval)) {
            self.commit_transaction()?;
        }
        Ok(())
    }

    /// Commits the lane's transaction with its consumed offset, and begins the next.
    fn commit_transaction(&mut self) -> Result<(), String> {
        let Some(t) = self.transaction.as_mut() else {
            return Ok(());
        };
        let group = self.shared.group_metadata.lock().clone();
        let Some(group) = group else {
            return Err("no consumer group metadata for the transaction".into());
        };
        let offsets: Vec<_> = t.next.map(|n| (self.tp.clone(), n)).into_iter().collect();
        self.sink
            .commit_transaction(&offsets, &group)
            .map_err(|e| format!("{}: {e}", self.tp))?;
        t.next = None;
        t.written = false;
        t.began = Instant::now();
        Ok(())
    }

    fn metrics_open_windows(&self, agg: &AggregateLane) {
        if let Some(m) = &self.aggregate_metrics {
            m.set_open_windows(agg.open_windows());
        }
    }

    /// On stop: a last checkpoint of what was folded, and a wait (bounded by the drain timeout)
    /// for it, so the drain can commit the inputs it covers; with transactions, the last commit.
    fn finish(&mut self) -> Result<(), String> {
        if let Some(agg) = self.aggregate.as_mut() {
            agg.checkpoint(&self.sink, self.shared.drain_timeout)
                .map_err(|e| e.to_string())?;
            let deadline = Instant::now() + self.shared.drain_timeout;
            while agg.pending() && Instant::now() < deadline {
                agg.poll().map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(1));
            }
            agg.poll().map_err(|e| e.to_string())?;
        }
        if self.transaction.is_some() {
            self.commit_transaction()?;
        }
        Ok(())
    }

    /// Publishes the results of closed windows, each under a new trace whose span links to the
    /// records that went into the window.
    fn publish_windows(
        &mut self,
        agg: &AggregateLane,
        results: Vec<WindowResult>,
    ) -> Result<(), String> {
        if let Some(t) = self.transaction.as_mut() {
            t.written = true;
        }
        let info = agg.loaded.info.clone();
        let stage = self.chain.infos().len();
        let ack = Arc::clone(agg.emitted());
        let t = self.shared.tracing.clone();
        for result in results {
            let ids = self.chain.ids();
            let trace_id = ids.trace_id();
            let span = ids.span_id();
            let failed = result.outputs.is_err();
            let keep = (t.keep_errors && failed) || (t.ratio > 0.0 && ids.unit() < t.ratio);
            let trace = RecordTrace {
                trace_id,
                parent: None,
                tracestate: None,
                keep,
            };
            if keep && t.spans.enabled() {
                let now = std::time::SystemTime::now();
                t.spans.submit(SpanRecord {
                    trace_id,
                    span_id: span,
                    parent: None,
                    name: "weir.window",
                    kind: SpanKind::Producer,
                    start: now,
                    end: now,
                    attributes: vec![
                        (
                            "weir.pipeline",
                            Attr::Str(Arc::clone(&self.shared.pipeline)),
                        ),
                        ("weir.stage", Attr::Str(Arc::clone(&info.name))),
                        (
                            "weir.module.version",
                            Attr::Str(Arc::clone(&info.module_sha256)),
                        ),
                        (
                            "messaging.destination.partition.id",
                            Attr::Str(self.tp.partition.to_string().into()),
                        ),
                        ("weir.window.start", Attr::Int(result.window.start_ms)),
                        ("weir.window.end", Attr::Int(result.window.end_ms)),
                        ("weir.window.links", Attr::Int(result.links.len() as i64)),
                    ],
                    error: result.outputs.as_ref().err().map(ToString::to_string),
                    links: result.links.clone(),
                });
            }
            match result.outputs {
                Ok(outputs) => {
                    let topic = info
                        .output
                        .as_deref()
                        .expect("aggregate stages have an output");
                    let partition = match info.partitioning {
                        Partitioning::Source => Some(self.tp.partition),
                        Partitioning::Key => None,
                    };
                    if let Some(m) = &self.aggregate_metrics {
                        m.records_out.inc_by(outputs.len() as u64);
                    }
                    for mut record in outputs {
                        trace.stamp(&mut record, &span);
                        self.sink
                            .send(topic, partition, &record, &ack)
                            .map_err(|e| {
                                format!("cannot publish a window result of {}: {e}", self.tp)
                            })?;
                        self.shared
                            .stats
                            .records_out
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(failure) => {
                    // The window's accumulator goes to the dead-letter topic, so the result
                    // can be recomputed: keyed by the window key, with the window in headers.
                    let mut record = Record {
                        offset: -1,
                        key: Some(weir_core::Bytes::copy_from_slice(&result.key)),
                        value: Some(weir_core::Bytes::from(result.acc)),
                        timestamp: Some(result.window.end_ms.saturating_sub(1)),
                        ..Record::default()
                    };
                    record.headers.push(
                        crate::aggregate::WINDOW_START,
                        Some(result.window.start_ms.to_string().as_bytes()),
                    );
                    record.headers.push(
                        crate::aggregate::WINDOW_END,
                        Some(result.window.end_ms.to_string().as_bytes()),
                    );
                    trace.stamp(&mut record, &span);
                    self.dead_letter(stage, record, &failure, &ack, &trace, &span)?;
                }
            }
        }
        Ok(())
    }

    /// Hands every emit of `input` to the producer under one acknowledgement. An error means the
    /// record can be neither delivered nor dead-lettered: the lane must stop, and the record's
    /// acknowledgement is never settled so its offset is never committed.
    fn deliver(
        &self,
        input: &Record,
        emits: Vec<Emit>,
        trace: &RecordTrace,
        hold: Option<&mut AggregateLane>,
    ) -> Result<(), String> {
        let ack = self.tracker.track(input.offset);
        if let Some(agg) = hold {
            agg.hold(&ack);
        }
        let infos = self.chain.infos();
        for emit in emits {
            match emit {
                Emit::Output {
                    stage,
                    mut record,
                    span,
                } => {
                    trace.stamp(&mut record, &span);
                    let info = self.info(stage, infos);
                    let topic = info
                        .output
                        .as_deref()
                        .expect("published stages have an output");
                    let partition = match info.partitioning {
                        Partitioning::Source => Some(self.tp.partition),
                        Partitioning::Key => None,
                    };
                    match self.sink.send(topic, partition, &record, &ack) {
                        Ok(()) => {
                            self.shared
                                .stats
                                .records_out
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            // The broker will not take this output (too large, say): the input
                            // is dead-lettered instead.
                            let failure = Failure::new(
                                FailureKind::InvalidOutput,
                                format!("the producer refused an output: {error}"),
                            );
                            let mut letter = input.clone();
                            trace.stamp(&mut letter, &span);
                            self.dead_letter(stage, letter, &failure, &ack, trace, &span)?;
                        }
                    }
                }
                Emit::DeadLetter {
                    stage,
                    mut record,
                    failure,
                    span,
                } => {
                    trace.stamp(&mut record, &span);
                    self.dead_letter(stage, record, &failure, &ack, trace, &span)?;
                }
            }
        }
        ack.settle();
        Ok(())
    }

    fn dead_letter(
        &self,
        stage_index: usize,
        record: Record,
        failure: &Failure,
        ack: &Arc<InputAck>,
        trace: &RecordTrace,
        span: &SpanId,
    ) -> Result<(), String> {
        let stage = self.info(stage_index, self.chain.infos());
        tracing::warn!(
            stage = &*stage.name,
            partition = self.tp.partition,
            offset = record.offset,
            trace_id = %trace::hex(&trace.trace_id),
            span_id = %trace::hex(span),
            kind = failure.kind.as_str(),
            error = %failure.message,
            "Record dead-lettered."
        );
        let metrics = self
            .chain
            .stage_metrics(stage_index)
            .or(self.aggregate_metrics.as_ref());
        if let Some(m) = metrics {
            let wasm = matches!(
                failure.kind,
                FailureKind::Trap | FailureKind::Timeout | FailureKind::Memory | FailureKind::Limit
            );
            m.failed(failure.kind.as_str(), wasm);
        }
        let letter = dead_letter_record(&self.shared.pipeline, stage, &self.tp, record, failure);
        if let Err(error) = self.sink.send(&self.shared.dead_letter, None, &letter, ack) {
            // Too large for the producer (the usual reason it refuses at once): the letter goes
            // without its key and value, saying how large they were, so its provenance is kept
            // and the partition moves on instead of stopping on the same record at every start.
            let offset = letter.offset;
            let truncated = truncated_letter(letter);
            self.sink
                .send(&self.shared.dead_letter, None, &truncated, ack)
                .map_err(|e| {
                    format!(
                        "cannot dead-letter {}@{offset}: {e} (in full: {error})",
                        self.tp
                    )
                })?;
            tracing::warn!(
                partition = self.tp.partition,
                offset,
                %error,
                "Dead letter refused by the producer; sent without its key and value."
            );
        }
        self.shared
            .stats
            .dead_letters
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Stage `stage`'s description: one of the chain's, or the aggregate stage after them.
    fn info<'a>(&'a self, stage: usize, infos: &'a [StageInfo]) -> &'a StageInfo {
        match infos.get(stage) {
            Some(info) => info,
            None => {
                &self
                    .loaded
                    .aggregate()
                    .expect("a stage past the chain is the aggregate")
                    .info
            }
        }
    }

    /// Whether this lane runs stage `stage`'s canary or its stable version.
    fn cohort(&self, stage: usize) -> &'static str {
        if stage < self.loaded.canaries().len()
            && self.loaded.canary_on(stage, self.tp.partition).is_some()
        {
            crate::loader::CANARY
        } else {
            crate::loader::STABLE
        }
    }

    /// Between two batches: replaces the instances of every stage whose module changed with
    /// instances of the version now in force.
    fn swap(&mut self) {
        let started = Instant::now();
        let generation = self.shared.generation.load(Ordering::Acquire);
        let next = self.shared.current();
        let partition = self.tp.partition;
        let prepared = self
            .shared
            .prepared
            .lock()
            .remove(&self.tp)
            .filter(|p| p.from == self.generation && p.to == generation);
        let instances: Vec<crate::loader::StageInstance> = match prepared {
            Some(p) => p.stages,
            None => {
                match next.changed_instances(&self.loaded, partition) {
                    Ok(made) => made,
                    Err(error) => {
                        // Validated before it was published, so this is the environment
                        // (memory); keep the running version rather than stop the lane.
                        tracing::error!(
                            %error,
                            partition = %self.tp,
                            "Cannot instantiate the new stage versions; keeping the running ones."
                        );
                        return;
                    }
                }
            }
        };
        let mut swapped = Vec::new();
        let mut retired = Vec::new();
        for (i, instance) in instances {
            let metrics = self.chain.stage_metrics(i).map(|_| {
                let labels = next.labels(&self.shared.pipeline, i, partition);
                self.shared
                    .metrics
                    .stage(&labels, &self.tp.topic, partition)
            });
            retired.push(self.chain.replace_stage(i, instance, metrics));
            swapped.push(next.modules()[i].stage().to_owned());
        }
        if let (Some(agg), Some(next_agg)) = (self.aggregate.as_mut(), next.aggregate())
            && !Arc::ptr_eq(&agg.loaded, next_agg)
        {
            // The windows stay: only the module that folds into them changes (the loader
            // refused a version whose accumulators would not read the running ones').
            match agg.replace(Arc::clone(next_agg)) {
                Ok(()) => {
                    swapped.push(next_agg.info.name.to_string());
                    if let Some(labels) = next.aggregate_labels(&self.shared.pipeline) {
                        self.aggregate_metrics = Some(self.shared.metrics.stage(
                            &labels,
                            &self.tp.topic,
                            partition,
                        ));
                    }
                }
                Err(error) => tracing::error!(
                    %error,
                    partition = %self.tp,
                    "Cannot instantiate the new aggregate version; keeping the running one."
                ),
            }
        }
        // Dropping an instance unmaps its memory: the reload thread does it, not the lane.
        self.shared.retired.lock().extend(retired);
        self.chain.set_infos(next.infos_for(partition));
        self.loaded = next;
        self.generation = generation;
        let pause = started.elapsed();
        self.shared.metrics.swapped(pause.as_secs_f64());
        tracing::info!(
            partition = %self.tp,
            stages = %swapped.join(","),
            pause_us = pause.as_micros() as u64,
            "Stages swapped."
        );
    }

    /// Reads `input`'s trace context and decides whether its spans are kept: every failed record
    /// (with `keep_errors`), every slow one, every one whose upstream trace is sampled (with
    /// `keep_sampled_parents`), else the configured ratio.
    fn trace(&mut self, input: &Record, emits: &[Emit], elapsed: Duration) -> RecordTrace {
        let t = &self.shared.tracing;
        let (trace_id, parent, tracestate, upstream_sampled) =
            match Incoming::from_headers(&input.headers) {
                Incoming::Continue(c) => (c.trace_id, Some(c.span_id), c.tracestate, c.sampled),
                Incoming::Absent => (self.chain.ids().trace_id(), None, None, false),
                Incoming::Invalid => {
                    self.metrics.trace_invalid.inc();
                    tracing::debug!(
                        partition = self.tp.partition,
                        offset = input.offset,
                        "Invalid traceparent header; the record starts a new trace."
                    );
                    (self.chain.ids().trace_id(), None, None, false)
                }
            };
        let failed = emits.iter().any(|e| matches!(e, Emit::DeadLetter { .. }));
        let keep = (t.keep_errors && failed)
            || elapsed >= t.slow
            || (t.keep_sampled_parents && upstream_sampled)
            || (t.ratio > 0.0 && self.chain.ids().unit() < t.ratio);
        RecordTrace {
            trace_id,
            parent,
            tracestate,
            keep,
        }
    }

    /// Hands the spans of the kept records, and of the stage calls they went through, to the
    /// exporter.
    fn export_spans(
        &self,
        batch: &[Record],
        traces: &[RecordTrace],
        spans: &[crate::chain::StageSpan],
        calls: &[StageCall],
    ) {
        if !traces.iter().any(|t| t.keep) {
            return;
        }
        let t = &self.shared.tracing;
        let infos = self.chain.infos();
        let pipeline = &self.shared.pipeline;
        let partition = Attr::Str(self.tp.partition.to_string().into());
        let mut calls_kept = vec![false; calls.len()];
        for s in spans {
            let trace = &traces[s.origin];
            if !trace.keep {
                continue;
            }
            let info = self.info(s.stage, infos);
            let call = &calls[s.stage];
            calls_kept[s.stage] = true;
            let (outcome, outputs, error) = match &s.outcome {
                Ok(0) => ("filtered", 0, None),
                Ok(n) => ("ok", *n, None),
                Err(message) => ("error", 0, Some(message.clone())),
            };
            let parent = match s.parent {
                Some(p) => Some((p, false)),
                None => trace.parent.map(|p| (p, true)),
            };
            t.spans.submit(SpanRecord {
                trace_id: trace.trace_id,
                span_id: s.span_id,
                parent,
                name: "weir.stage",
                kind: SpanKind::Consumer,
                start: call.start,
                end: call.end,
                attributes: vec![
                    ("messaging.system", Attr::Static("kafka")),
                    ("messaging.operation.type", Attr::Static("process")),
                    (
                        "messaging.destination.name",
                        Attr::Str(Arc::clone(&self.tp.topic)),
                    ),
                    ("messaging.destination.partition.id", partition.clone()),
                    ("messaging.kafka.offset", Attr::Int(batch[s.origin].offset)),
                    (
                        "messaging.consumer.group.name",
                        Attr::Str(Arc::clone(&t.group)),
                    ),
                    ("weir.pipeline", Attr::Str(Arc::clone(pipeline))),
                    ("weir.stage", Attr::Str(Arc::clone(&info.name))),
                    (
                        "weir.module.version",
                        Attr::Str(Arc::clone(&info.module_sha256)),
                    ),
                    ("weir.cohort", Attr::Static(self.cohort(s.stage))),
                    ("weir.outcome", Attr::Static(outcome)),
                    ("weir.outputs", Attr::Int(outputs as i64)),
                ],
                error,
                links: vec![(call.trace_id, call.span_id)],
            });
        }
        for (si, call) in calls.iter().enumerate() {
            if !calls_kept[si] {
                continue;
            }
            let info = self.info(si, infos);
            t.spans.submit(SpanRecord {
                trace_id: call.trace_id,
                span_id: call.span_id,
                parent: None,
                name: "weir.stage.batch",
                kind: SpanKind::Internal,
                start: call.start,
                end: call.end,
                attributes: vec![
                    ("messaging.system", Attr::Static("kafka")),
                    (
                        "messaging.destination.name",
                        Attr::Str(Arc::clone(&self.tp.topic)),
                    ),
                    ("messaging.destination.partition.id", partition.clone()),
                    (
                        "messaging.batch.message_count",
                        Attr::Int(call.records as i64),
                    ),
                    ("weir.pipeline", Attr::Str(Arc::clone(pipeline))),
                    ("weir.stage", Attr::Str(Arc::clone(&info.name))),
                    (
                        "weir.module.version",
                        Attr::Str(Arc::clone(&info.module_sha256)),
                    ),
                    ("weir.cohort", Attr::Static(self.cohort(si))),
                ],
                error: None,
                links: Vec::new(),
            });
        }
    }
}

impl RecordTrace {
    /// Writes the `traceparent` of an output (or dead letter) produced under span `span`.
    fn stamp(&self, record: &mut Record, span: &SpanId) {
        let value = trace::format_traceparent(&self.trace_id, span, self.keep);
        trace::set_headers(&mut record.headers, &value, self.tracestate.as_deref());
    }
}

/// The record as it entered the failing stage, plus provenance headers (see
/// [`weir_core::headers`]).
/// `letter` without its key, value and headers of its own (provenance and trace context kept),
/// with a header saying how many bytes its key and value held.
fn truncated_letter(mut letter: Record) -> Record {
    let size =
        letter.key.as_ref().map_or(0, |k| k.len()) + letter.value.as_ref().map_or(0, |v| v.len());
    letter.key = None;
    letter.value = None;
    letter.headers.retain(|h| {
        headers::is_provenance(h.name) || h.name == "traceparent" || h.name == "tracestate"
    });
    letter
        .headers
        .push(headers::TRUNCATED, Some(size.to_string().as_bytes()));
    letter
}

pub(crate) fn dead_letter_record(
    pipeline: &str,
    stage: &StageInfo,
    source: &TopicPartition,
    mut record: Record,
    failure: &Failure,
) -> Record {
    let (partition, offset) = (source.partition.to_string(), record.offset.to_string());
    let provenance = [
        (headers::PIPELINE, pipeline),
        (headers::STAGE, &stage.name),
        (headers::MODULE_SHA256, &stage.module_sha256),
        (headers::ERROR_KIND, failure.kind.as_str()),
        (headers::ERROR_CODE, &failure.code),
        (headers::ERROR_MESSAGE, &failure.message),
        (headers::SOURCE_TOPIC, &source.topic),
        (headers::SOURCE_PARTITION, &partition),
        (headers::SOURCE_OFFSET, &offset),
    ];
    // An input's own `weir.*` headers are not provenance: whoever produced it could forge them.
    record.headers.retain(|h| !headers::is_provenance(h.name));
    record.headers.extend(
        provenance
            .iter()
            // The code is a stage error's own; other kinds have none.
            .filter(|(name, value)| *name != headers::ERROR_CODE || !value.is_empty())
            .map(|(name, value)| Header::new(name, Some(value.as_bytes()))),
    );
    record
}
