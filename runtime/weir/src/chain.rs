//! A lane's chain of stages: one batch in, for every input record what it becomes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use weir_core::trace::{IdGenerator, SpanId, TraceId};
use weir_core::{CallTrace, Failure, Record, Stage};
use weir_telemetry::StageMetrics;

/// How a stage's output records are spread over the output topic's partitions: the pipeline
/// file's own type, used as is.
pub use weir_config::Partitioning;

/// Which stage of a pipeline: one of the chain's enrich stages, or the aggregate stage that
/// ends the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageRef {
    /// The chain's stage at this index.
    Enrich(usize),
    /// The aggregate stage after the chain.
    Aggregate,
}

impl StageRef {
    /// The stage's place in the pipeline file's list of stages, whose chain has `chain_len`
    /// enrich stages (the aggregate stage, when there is one, is the last).
    pub fn position(self, chain_len: usize) -> usize {
        match self {
            Self::Enrich(i) => i,
            Self::Aggregate => chain_len,
        }
    }
}

/// What every lane needs to know about one stage.
#[derive(Debug, Clone)]
pub struct StageInfo {
    pub name: Arc<str>,
    /// The module's SHA-256: its version.
    pub module_sha256: Arc<str>,
    /// The topic the stage's results are published to, if any.
    pub output: Option<Arc<str>>,
    /// The store (a `[sinks.<name>]` other than Kafka) the stage's results are written to, if
    /// any: they have an `output` topic or a store, never both.
    pub store: Option<Arc<str>>,
    pub partitioning: Partitioning,
    /// The stage's schema gates, if it has any.
    pub gates: Option<Arc<crate::gate::Gates>>,
}

/// What becomes of an input record: outputs to publish and records to dead-letter. `span` is the
/// id of the span of the stage that produced the output or failed the record: the parent an
/// output's `traceparent` names.
#[derive(Debug)]
pub enum Emit {
    /// `record` is a result of stage `stage`, to publish to that stage's output topic (or, in
    /// test mode, to check against expectations).
    Output {
        stage: StageRef,
        record: Record,
        span: SpanId,
    },
    /// `record` entered stage `stage` and failed there.
    DeadLetter {
        stage: StageRef,
        record: Record,
        failure: Failure,
        span: SpanId,
    },
}

/// What became of one input record. Almost always one emit (an output or a dead letter), kept
/// inline: a batch then allocates one vector of these, not one per record.
pub type Emits = smallvec::SmallVec<[Emit; 1]>;

/// One record's pass through one stage: a span of its trace, should the record be kept.
#[derive(Debug, Clone)]
pub struct StageSpan {
    /// Index of the input record (in the batch) the record descends from.
    pub origin: usize,
    pub stage: StageRef,
    pub span_id: SpanId,
    /// The span of the stage that produced this record; `None` for the first stage, whose
    /// parent is the input record's own trace context.
    pub parent: Option<SpanId>,
    pub outcome: SpanOutcome,
}

/// What a record became in one stage, as its span tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanOutcome {
    /// This many outputs (none: filtered out, or held by an aggregate).
    Outputs(usize),
    /// It failed, for this reason.
    Failed(String),
}

/// What became of the records that entered one stage in one batch, for the conservation check:
/// every record that entered is `passed` (it had outputs), `filtered` (none) or failed (its dead
/// letter is counted where it is delivered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageCount {
    pub entered: u64,
    pub passed: u64,
    pub filtered: u64,
}

/// A record seen at a stage, for `weir tap`: reported only while a tap client is attached.
#[derive(Debug, Clone)]
pub struct TapStep {
    /// Index of the input record (in the batch) the record descends from.
    pub origin: usize,
    /// The enrich stage, by index.
    pub stage: usize,
    pub event: TapEvent,
    /// The record as it entered (`In`, `Dead`) or left (`Out`) the stage.
    pub record: Record,
    /// The record's span in that stage.
    pub span: SpanId,
}

/// Where a tapped record was seen.
#[derive(Debug, Clone)]
pub enum TapEvent {
    In,
    Out,
    Dead(Failure),
}

/// One stage call over a batch.
#[derive(Debug, Clone)]
pub struct StageCall {
    pub start: SystemTime,
    pub end: SystemTime,
    /// Records that entered the stage.
    pub records: usize,
    /// The call's own span, in a trace of its own; record spans link to it.
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// What a batch became.
#[derive(Debug)]
pub struct Run {
    /// For every input record in order, its emits in the order they were produced.
    pub emits: Vec<Emits>,
    /// Every record's pass through every stage (only when spans are recorded).
    pub spans: Vec<StageSpan>,
    /// One entry per stage that was called, in stage order.
    pub calls: Vec<StageCall>,
    /// Wall time of the whole chain.
    pub elapsed: Duration,
    /// With [`Chain::with_forward`]: the last stage's results (or the batch itself when the
    /// chain is empty), each with the index of its input and the span that produced it, for
    /// the aggregate stage that follows the chain.
    pub forwarded: Vec<(usize, Record, Option<SpanId>)>,
    /// Per enrich stage, what became of the records that entered it.
    pub counts: Vec<StageCount>,
    /// With [`Chain::set_tap`]: every record in, out of and failed at every stage.
    pub taps: Vec<TapStep>,
}

/// One lane's instances of the pipeline's stages, in order.
pub struct Chain {
    infos: Arc<[StageInfo]>,
    stages: Vec<Box<dyn Stage>>,
    /// Emit every stage's results, even of stages without an output topic (for `weir test`).
    emit_all: bool,
    /// Per-stage metric handles of this lane; none in test mode.
    metrics: Vec<StageMetrics>,
    /// Whether to report each record's pass through each stage (when spans are exported).
    record_spans: bool,
    /// Whether to hand the last stage's results on in [`Run::forwarded`].
    forward: bool,
    /// Whether to report the next runs' records in [`Run::taps`].
    tap: bool,
    /// The pipeline's `[privacy]`, handed to every stage instance.
    privacy: Option<Arc<weir_core::Redactor>>,
    ids: IdGenerator,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("stages", &self.infos)
            .field("emit_all", &self.emit_all)
            .finish()
    }
}

impl Chain {
    pub fn new(infos: Arc<[StageInfo]>, stages: Vec<Box<dyn Stage>>, emit_all: bool) -> Self {
        assert_eq!(infos.len(), stages.len(), "one instance per stage");
        Self {
            infos,
            stages,
            emit_all,
            metrics: Vec::new(),
            record_spans: false,
            forward: false,
            tap: false,
            privacy: None,
            ids: IdGenerator::default(),
        }
    }

    /// Hands the last stage's results on in [`Run::forwarded`] (for an aggregate stage).
    pub fn with_forward(mut self, forward: bool) -> Self {
        self.forward = forward;
        self
    }

    /// Has every stage instance, and every later replacement, clean the text it writes about
    /// records (guest log lines) with `privacy`.
    pub fn with_privacy(mut self, privacy: Option<Arc<weir_core::Redactor>>) -> Self {
        if let Some(p) = &privacy {
            for stage in &mut self.stages {
                stage.set_privacy(p);
            }
        }
        self.privacy = privacy;
        self
    }

    /// Counts records and times calls into `metrics`, one entry per stage.
    pub fn with_metrics(mut self, metrics: Vec<StageMetrics>) -> Self {
        assert_eq!(metrics.len(), self.stages.len(), "one handle per stage");
        self.metrics = metrics;
        self
    }

    /// Reports every record's pass through every stage in [`Run::spans`].
    pub fn with_spans(mut self, record: bool) -> Self {
        self.record_spans = record;
        self
    }

    /// Reports every record in, out of and failed at every stage in [`Run::taps`] from the next
    /// run on (while a tap client is attached: it costs a copy of each record).
    pub fn set_tap(&mut self, tap: bool) {
        self.tap = tap;
    }

    pub fn infos(&self) -> &Arc<[StageInfo]> {
        &self.infos
    }

    /// Replaces stage `stage`'s instance (and its metric handles, when the chain has any) by
    /// one of another module version, between two batches.
    /// Returns the instance it replaced, for the caller to drop where a pause does not matter.
    pub fn replace_stage(
        &mut self,
        stage: usize,
        instance: Box<dyn Stage>,
        metrics: Option<StageMetrics>,
    ) -> Box<dyn Stage> {
        let mut instance = instance;
        if let Some(p) = &self.privacy {
            instance.set_privacy(p);
        }
        if let (Some(slot), Some(m)) = (self.metrics.get_mut(stage), metrics) {
            *slot = m;
        }
        std::mem::replace(&mut self.stages[stage], instance)
    }

    /// Takes the stage descriptions of a reloaded pipeline (same stages, in the same order).
    pub fn set_infos(&mut self, infos: Arc<[StageInfo]>) {
        assert_eq!(infos.len(), self.stages.len(), "a reload keeps the stages");
        self.infos = infos;
    }

    /// This lane's metric handles of stage `stage`, if it has any.
    pub fn stage_metrics(&self, stage: usize) -> Option<&StageMetrics> {
        self.metrics.get(stage)
    }

    /// The lane's id generator, for trace ids of new traces.
    pub fn ids(&mut self) -> &mut IdGenerator {
        &mut self.ids
    }

    /// Runs `batch` (records of `topic` / `partition`) through every stage. Output records carry
    /// the source offset of their input and inherit its timestamp unless the stage set one.
    pub fn run(&mut self, topic: &str, partition: i32, batch: &[Record]) -> Run {
        let started = Instant::now();
        let mut emits: Vec<Emits> = batch.iter().map(|_| Emits::new()).collect();
        let mut spans = Vec::new();
        let mut calls = Vec::with_capacity(self.stages.len());
        let mut inputs: Cow<'_, [Record]> = Cow::Borrowed(batch);
        let mut origins: Vec<usize> = (0..batch.len()).collect();
        let mut parents: Vec<Option<SpanId>> = vec![None; batch.len()];
        let mut forwarded = Vec::new();
        let mut counts = vec![StageCount::default(); self.stages.len()];
        let mut taps = Vec::new();
        if self.stages.is_empty() && self.forward {
            forwarded = batch
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, r)| (i, r, None))
                .collect();
        }
        let last = self.stages.len().saturating_sub(1);
        for (si, stage) in self.stages.iter_mut().enumerate() {
            if inputs.is_empty() {
                break;
            }
            let info = &self.infos[si];
            let publish = self.emit_all || info.output.is_some() || info.store.is_some();
            let call = CallTrace {
                trace_id: self.ids.trace_id(),
                span_id: self.ids.span_id(),
            };
            stage.set_context(&call);
            let start = SystemTime::now();
            let timer = Instant::now();
            let outcomes = match &info.gates {
                Some(gates) => {
                    let (outcomes, checked) = crate::gate::gated(gates, &inputs, |passed| {
                        stage.process(topic, partition, passed)
                    });
                    if let Some(m) = self.metrics.get(si) {
                        count_gates(m, &checked);
                    }
                    outcomes
                }
                None => stage.process(topic, partition, &inputs),
            };
            let took = timer.elapsed();
            calls.push(StageCall {
                start,
                end: start + took,
                records: inputs.len(),
                trace_id: call.trace_id,
                span_id: call.span_id,
            });
            debug_assert_eq!(outcomes.len(), inputs.len());
            let mut next = Vec::with_capacity(inputs.len());
            let mut next_origins = Vec::with_capacity(inputs.len());
            let mut next_parents = Vec::with_capacity(inputs.len());
            let mut produced = 0u64;
            let count = &mut counts[si];
            count.entered = inputs.len() as u64;
            for (((input, &origin), &parent), outcome) in
                inputs.iter().zip(&origins).zip(&parents).zip(outcomes)
            {
                let span = self.ids.span_id();
                if self.tap {
                    let step = |event| TapStep {
                        origin,
                        stage: si,
                        event,
                        record: input.clone(),
                        span,
                    };
                    taps.push(step(TapEvent::In));
                    if let Err(failure) = &outcome {
                        taps.push(step(TapEvent::Dead(failure.clone())));
                    }
                }
                if self.record_spans {
                    spans.push(StageSpan {
                        origin,
                        stage: StageRef::Enrich(si),
                        span_id: span,
                        parent,
                        outcome: match &outcome {
                            Ok(outputs) => SpanOutcome::Outputs(outputs.len()),
                            Err(failure) => SpanOutcome::Failed(failure.to_string()),
                        },
                    });
                }
                match outcome {
                    Ok(outputs) => {
                        produced += outputs.len() as u64;
                        if outputs.is_empty() {
                            count.filtered += 1;
                        } else {
                            count.passed += 1;
                        }
                        for mut out in outputs.into_records(input) {
                            out.offset = input.offset;
                            out.timestamp = out.timestamp.or(input.timestamp);
                            if self.tap {
                                taps.push(TapStep {
                                    origin,
                                    stage: si,
                                    event: TapEvent::Out,
                                    record: out.clone(),
                                    span,
                                });
                            }
                            if si == last {
                                if self.forward {
                                    if publish {
                                        emits[origin].push(Emit::Output {
                                            stage: StageRef::Enrich(si),
                                            record: out.clone(),
                                            span,
                                        });
                                    }
                                    forwarded.push((origin, out, Some(span)));
                                } else if publish {
                                    emits[origin].push(Emit::Output {
                                        stage: StageRef::Enrich(si),
                                        record: out,
                                        span,
                                    });
                                }
                                continue;
                            }
                            if publish {
                                emits[origin].push(Emit::Output {
                                    stage: StageRef::Enrich(si),
                                    record: out.clone(),
                                    span,
                                });
                            }
                            next.push(out);
                            next_origins.push(origin);
                            next_parents.push(Some(span));
                        }
                    }
                    Err(failure) => emits[origin].push(Emit::DeadLetter {
                        stage: StageRef::Enrich(si),
                        record: input.clone(),
                        failure,
                        span,
                    }),
                }
            }
            if let Some(m) = self.metrics.get(si) {
                m.records_in.inc_by(inputs.len() as u64);
                m.records_out.inc_by(produced);
                m.quality.filtered.inc_by(count.filtered);
                m.duration.observe(took.as_secs_f64());
            }
            inputs = Cow::Owned(next);
            origins = next_origins;
            parents = next_parents;
        }
        Run {
            emits,
            spans,
            calls,
            elapsed: started.elapsed(),
            forwarded,
            counts,
            taps,
        }
    }
}

/// Counts what a stage's gates found into its metrics.
fn count_gates(metrics: &StageMetrics, checked: &crate::gate::Checked) {
    for (gate, valid, invalid) in [
        ("input", checked.input_valid, &checked.input_invalid),
        ("output", checked.output_valid, &checked.output_invalid),
    ] {
        let invalid: Vec<&str> = invalid.iter().map(String::as_str).collect();
        metrics.gate_checked(gate, valid, &invalid);
    }
}

#[cfg(test)]
mod tests;
