//! A lane's aggregate stage: the records the chain hands on, folded into the windows the host
//! keeps, and the results of the windows that close.
//!
//! Owns: the lane's [`Folder`] (its [`AggregateLane`] and that stage's metric handles), what a
//! fold's fates become (held acknowledgements, dead letters, spans), and the records of closed
//! windows. Touches the sink only through the checkpoint the aggregate lane writes; outputs go
//! through the lane's outlet.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use weir_core::trace::{IdGenerator, SpanId};
use weir_core::{FailureKind, Record};
use weir_kafka::{KafkaSink, TopicPartition};
use weir_telemetry::{Metrics, StageMetrics};

use super::Stages;
use super::deliver::{Outlet, WindowRecord};
use super::spans::{RecordTrace, Tracer, WindowSpan};
use crate::aggregate::{
    AggregateError, AggregateLane, Fate, WINDOW_END, WINDOW_START, WindowResult,
};
use crate::chain::{Emit, Emits, SpanOutcome, StageCall, StageRef, StageSpan};
use crate::error::LaneError;
use crate::loader::LoadedPipeline;
use crate::shared::Settings;

/// The aggregate stage that ends a lane's chain.
pub(super) struct Folder {
    pub lane: AggregateLane,
    pub metrics: Option<StageMetrics>,
}

/// What a batch became so far, which a fold adds to.
pub(super) struct Batch<'a> {
    pub emits: &'a mut [Emits],
    pub spans: &'a mut Vec<StageSpan>,
    pub calls: &'a mut Vec<StageCall>,
    pub traces: &'a mut [RecordTrace],
    /// Set for the inputs a window holds: their acknowledgement waits for the window.
    pub held: &'a mut [bool],
}

impl Folder {
    /// Restores the aggregate stage's state, when the pipeline ends with one.
    pub fn start(
        loaded: &LoadedPipeline,
        tp: &TopicPartition,
        settings: &Settings,
        metrics: &Arc<Metrics>,
    ) -> Result<Option<Self>, LaneError> {
        let Some(aggregate) = loaded.aggregate() else {
            return Ok(None);
        };
        let lane = AggregateLane::start(
            Arc::clone(aggregate),
            tp,
            &settings.cluster,
            &settings.source_properties,
            settings
                .drain_timeout
                .max(std::time::Duration::from_secs(30)),
        )
        .map_err(|e| aggregate_error(tp, e))?;
        let metrics = loaded
            .aggregate_labels(&settings.pipeline)
            .map(|labels| metrics.stage(&labels, &tp.topic, tp.partition));
        Ok(Some(Self { lane, metrics }))
    }

    /// Folds the records the chain handed on into the windows: their fates become held
    /// acknowledgements, dead letters and spans in `batch`.
    pub fn fold(
        &mut self,
        forwarded: Vec<(usize, Record, Option<SpanId>)>,
        ids: &mut IdGenerator,
        batch: Batch<'_>,
        keep_errors: bool,
        record_spans: bool,
    ) {
        if forwarded.is_empty() {
            return;
        }
        let call = weir_core::CallTrace {
            trace_id: ids.trace_id(),
            span_id: ids.span_id(),
        };
        let mut parents = Vec::with_capacity(forwarded.len());
        let mut records = Vec::with_capacity(forwarded.len());
        for (origin, record, parent) in forwarded {
            let span = ids.span_id();
            parents.push((origin, parent, span));
            records.push((record, (batch.traces[origin].trace_id, span)));
        }
        self.lane.instance().set_context(&call);
        let start = SystemTime::now();
        let timer = Instant::now();
        let fates = self.lane.fold(&records);
        let took = timer.elapsed();
        batch.calls.push(StageCall {
            start,
            end: start + took,
            records: records.len(),
            trace_id: call.trace_id,
            span_id: call.span_id,
        });
        let mut folded = 0u64;
        for (((origin, parent, span), (record, _)), fate) in
            parents.into_iter().zip(records).zip(fates)
        {
            let outcome = match fate {
                Fate::Held => {
                    batch.held[origin] = true;
                    folded += 1;
                    SpanOutcome::Outputs(0)
                }
                Fate::Covered => SpanOutcome::Outputs(0),
                Fate::Dropped => {
                    self.late();
                    SpanOutcome::Outputs(0)
                }
                Fate::Failed(failure) => {
                    if failure.kind == FailureKind::Late {
                        self.late();
                    }
                    batch.traces[origin].keep |= keep_errors;
                    let message = failure.to_string();
                    batch.emits[origin].push(Emit::DeadLetter {
                        stage: StageRef::Aggregate,
                        record,
                        failure,
                        span,
                    });
                    SpanOutcome::Failed(message)
                }
            };
            if record_spans {
                batch.spans.push(StageSpan {
                    origin,
                    stage: StageRef::Aggregate,
                    span_id: span,
                    parent,
                    outcome,
                });
            }
        }
        if let Some(m) = &self.metrics {
            m.records_in.inc_by(folded);
            m.duration.observe(took.as_secs_f64());
        }
    }

    fn late(&self) {
        if let Some(m) = &self.metrics {
            m.late();
        }
    }

    /// Writes a checkpoint of the windows through `sink`.
    pub fn checkpoint(
        &mut self,
        sink: &KafkaSink,
        tp: &TopicPartition,
        settings: &Settings,
    ) -> Result<(), LaneError> {
        let bytes = self
            .lane
            .checkpoint(sink, settings.drain_timeout)
            .map_err(|e| aggregate_error(tp, e))?;
        if let Some(m) = &self.metrics {
            m.checkpointed(bytes);
        }
        Ok(())
    }

    /// Releases the inputs whose checkpoint is acknowledged.
    pub fn poll(&mut self, tp: &TopicPartition) -> Result<(), LaneError> {
        let polled = self.lane.poll().map_err(|e| aggregate_error(tp, e));
        if let Some(m) = &self.metrics {
            m.set_open_windows(self.lane.open_windows());
        }
        polled
    }

    /// On stop: a last checkpoint of what was folded, and a wait (bounded by the drain
    /// timeout) for it, so the drain can commit the inputs it covers.
    pub fn finish(
        &mut self,
        sink: &KafkaSink,
        tp: &TopicPartition,
        settings: &Settings,
    ) -> Result<(), LaneError> {
        self.checkpoint(sink, tp, settings)?;
        let deadline = Instant::now() + settings.drain_timeout;
        while self.lane.pending() && Instant::now() < deadline {
            self.poll(tp)?;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.poll(tp)
    }
}

/// A closed window's result with the trace it is published under.
pub(super) struct Traced {
    pub result: WindowResult,
    pub trace: RecordTrace,
    pub span: SpanId,
}

/// The records of closed windows: their outputs (stamped with the window's trace), or for a
/// window whose `emit` failed its accumulator as a dead letter, so the result can be
/// recomputed (keyed by the window key, with the window in headers). Exports the spans of the
/// kept windows.
pub(super) fn window_records(
    windows: Vec<Traced>,
    tracer: &Tracer,
    outlet: &Outlet,
    stages: &Stages<'_>,
) -> Vec<WindowRecord> {
    let info = stages.info(StageRef::Aggregate);
    let mut records = Vec::new();
    for Traced {
        result,
        trace,
        span,
    } in windows
    {
        tracer.window_span(
            &trace,
            span,
            WindowSpan {
                info,
                start_ms: result.window.start_ms,
                end_ms: result.window.end_ms,
                links: &result.links,
                error: result.outputs.as_ref().err().map(ToString::to_string),
            },
        );
        match result.outputs {
            Ok(outputs) => {
                if let Some(m) = stages.metrics(StageRef::Aggregate) {
                    m.records_out.inc_by(outputs.len() as u64);
                }
                records.extend(outputs.into_iter().map(|mut record| {
                    trace.stamp(&mut record, &span);
                    WindowRecord::Output(record)
                }));
            }
            Err(failure) => {
                let mut record = Record {
                    offset: -1,
                    key: Some(weir_core::Bytes::copy_from_slice(&result.key)),
                    value: Some(weir_core::Bytes::from(result.acc)),
                    timestamp: Some(result.window.end_ms.saturating_sub(1)),
                    ..Record::default()
                };
                let window = [
                    (WINDOW_START, result.window.start_ms),
                    (WINDOW_END, result.window.end_ms),
                ];
                for (name, ms) in window {
                    record.headers.push(name, Some(ms.to_string().as_bytes()));
                }
                trace.stamp(&mut record, &span);
                let letter = outlet.letter_record(
                    StageRef::Aggregate,
                    record,
                    &failure,
                    &trace,
                    &span,
                    stages,
                );
                records.push(WindowRecord::Letter(letter));
            }
        }
    }
    records
}

fn aggregate_error(tp: &TopicPartition, source: AggregateError) -> LaneError {
    LaneError::Aggregate {
        partition: tp.clone(),
        source,
    }
}
