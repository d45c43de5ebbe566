//! A lane's tracing: each input record's trace context, the tail-sampling decision, the spans of
//! kept records and of the stage calls they went through, and the `traceparent` written into
//! every output.
//!
//! Owns: [`RecordTrace`] and [`Tracer`]. Touches only the span exporter (through
//! [`weir_telemetry::Spans`]) and record headers; never the sink or the offsets.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use weir_core::Record;
use weir_core::trace::{self, IdGenerator, Incoming, SpanId, TraceId};
use weir_kafka::TopicPartition;
use weir_telemetry::{Attr, PartitionMetrics, SpanKind, SpanRecord};

use super::Stages;
use crate::chain::{Emit, SpanOutcome, StageCall, StageInfo, StageSpan};
use crate::shared::Tracing;

/// An input record's trace: where its spans and its outputs' `traceparent` belong.
#[derive(Debug, Clone)]
pub(super) struct RecordTrace {
    pub trace_id: TraceId,
    /// The upstream span (from the input's `traceparent`); `None` for a new root.
    pub parent: Option<SpanId>,
    pub tracestate: Option<weir_core::Bytes>,
    /// Whether this record's spans are kept (tail sampling decision).
    pub keep: bool,
}

impl RecordTrace {
    /// Writes the `traceparent` of an output (or dead letter) produced under span `span`.
    pub fn stamp(&self, record: &mut Record, span: &SpanId) {
        let value = trace::write_traceparent(&self.trace_id, span, self.keep);
        trace::set_headers(&mut record.headers, value, self.tracestate.as_deref());
    }
}

/// How one lane traces.
pub(super) struct Tracer {
    tracing: Tracing,
    tp: TopicPartition,
    pipeline: Arc<str>,
}

impl Tracer {
    pub fn new(tracing: Tracing, tp: TopicPartition, pipeline: Arc<str>) -> Self {
        Self {
            tracing,
            tp,
            pipeline,
        }
    }

    /// Whether spans are exported at all.
    pub fn enabled(&self) -> bool {
        self.tracing.spans.enabled()
    }

    pub fn keep_errors(&self) -> bool {
        self.tracing.keep_errors
    }

    /// Reads `input`'s trace context and decides whether its spans are kept: every failed
    /// record (with `keep_errors`), every slow one, every one whose upstream trace is sampled
    /// (with `keep_sampled_parents`), else the configured ratio.
    pub fn trace(
        &self,
        input: &Record,
        emits: &[Emit],
        elapsed: Duration,
        ids: &mut IdGenerator,
        metrics: &PartitionMetrics,
    ) -> RecordTrace {
        let t = &self.tracing;
        let (trace_id, parent, tracestate, upstream_sampled) =
            match Incoming::from_headers(&input.headers) {
                Incoming::Continue(c) => (c.trace_id, Some(c.span_id), c.tracestate, c.sampled),
                Incoming::Absent => (ids.trace_id(), None, None, false),
                Incoming::Invalid => {
                    metrics.trace_invalid.inc();
                    tracing::debug!(
                        partition = self.tp.partition,
                        offset = input.offset,
                        "Invalid traceparent header; the record starts a new trace."
                    );
                    (ids.trace_id(), None, None, false)
                }
            };
        let failed = emits.iter().any(|e| matches!(e, Emit::DeadLetter { .. }));
        let keep = (t.keep_errors && failed)
            || elapsed >= t.slow
            || (t.keep_sampled_parents && upstream_sampled)
            || (t.ratio > 0.0 && ids.unit() < t.ratio);
        RecordTrace {
            trace_id,
            parent,
            tracestate,
            keep,
        }
    }

    /// A new trace for a window result, and whether it is kept.
    pub fn window_trace(&self, failed: bool, ids: &mut IdGenerator) -> RecordTrace {
        let t = &self.tracing;
        let trace_id = ids.trace_id();
        let keep = (t.keep_errors && failed) || (t.ratio > 0.0 && ids.unit() < t.ratio);
        RecordTrace {
            trace_id,
            parent: None,
            tracestate: None,
            keep,
        }
    }

    /// Exports the span of a window result (kept ones only), linked to the records that went
    /// into the window.
    pub fn window_span(&self, trace: &RecordTrace, span: SpanId, window: WindowSpan<'_>) {
        if !trace.keep || !self.enabled() {
            return;
        }
        let now = SystemTime::now();
        self.tracing.spans.submit(SpanRecord {
            trace_id: trace.trace_id,
            span_id: span,
            parent: None,
            name: "weir.window",
            kind: SpanKind::Producer,
            start: now,
            end: now,
            attributes: vec![
                ("weir.pipeline", Attr::Str(Arc::clone(&self.pipeline))),
                ("weir.stage", Attr::Str(Arc::clone(&window.info.name))),
                (
                    "weir.module.version",
                    Attr::Str(Arc::clone(&window.info.module_sha256)),
                ),
                (
                    "messaging.destination.partition.id",
                    Attr::Str(self.tp.partition.to_string().into()),
                ),
                ("weir.window.start", Attr::Int(window.start_ms)),
                ("weir.window.end", Attr::Int(window.end_ms)),
                ("weir.window.links", Attr::Int(window.links.len() as i64)),
            ],
            error: window.error,
            links: window.links.to_vec(),
        });
    }

    /// Hands the spans of the kept records, and of the stage calls they went through, to the
    /// exporter.
    pub fn export(
        &self,
        batch: &[Record],
        traces: &[RecordTrace],
        spans: &[StageSpan],
        calls: &[StageCall],
        stages: &Stages<'_>,
    ) {
        if !traces.iter().any(|t| t.keep) {
            return;
        }
        let t = &self.tracing;
        let partition = Attr::Str(self.tp.partition.to_string().into());
        let mut calls_kept = vec![false; calls.len()];
        for s in spans {
            let trace = &traces[s.origin];
            if !trace.keep {
                continue;
            }
            let info = stages.info(s.stage);
            let index = s.stage.position(stages.chain_len());
            let call = &calls[index];
            calls_kept[index] = true;
            let (outcome, outputs, error) = match &s.outcome {
                SpanOutcome::Outputs(0) => ("filtered", 0, None),
                SpanOutcome::Outputs(n) => ("ok", *n, None),
                SpanOutcome::Failed(message) => ("error", 0, Some(message.clone())),
            };
            let parent = match s.parent {
                Some(p) => Some((p, false)),
                None => trace.parent.map(|p| (p, true)),
            };
            let mut attributes = self.common(info, stages.cohort(s.stage), &partition);
            attributes.extend([
                ("messaging.operation.type", Attr::Static("process")),
                ("messaging.kafka.offset", Attr::Int(batch[s.origin].offset)),
                (
                    "messaging.consumer.group.name",
                    Attr::Str(Arc::clone(&t.group)),
                ),
                ("weir.outcome", Attr::Static(outcome)),
                ("weir.outputs", Attr::Int(outputs as i64)),
            ]);
            t.spans.submit(SpanRecord {
                trace_id: trace.trace_id,
                span_id: s.span_id,
                parent,
                name: "weir.stage",
                kind: SpanKind::Consumer,
                start: call.start,
                end: call.end,
                attributes,
                error,
                links: vec![(call.trace_id, call.span_id)],
            });
        }
        for (i, call) in calls.iter().enumerate() {
            if !calls_kept[i] {
                continue;
            }
            let stage = stages.at(i);
            let mut attributes = self.common(stages.info(stage), stages.cohort(stage), &partition);
            attributes.push((
                "messaging.batch.message_count",
                Attr::Int(call.records as i64),
            ));
            t.spans.submit(SpanRecord {
                trace_id: call.trace_id,
                span_id: call.span_id,
                parent: None,
                name: "weir.stage.batch",
                kind: SpanKind::Internal,
                start: call.start,
                end: call.end,
                attributes,
                error: None,
                links: Vec::new(),
            });
        }
    }

    /// The attributes every stage span carries.
    fn common(
        &self,
        info: &StageInfo,
        cohort: &'static str,
        partition: &Attr,
    ) -> Vec<(&'static str, Attr)> {
        vec![
            ("messaging.system", Attr::Static("kafka")),
            (
                "messaging.destination.name",
                Attr::Str(Arc::clone(&self.tp.topic)),
            ),
            ("messaging.destination.partition.id", partition.clone()),
            ("weir.pipeline", Attr::Str(Arc::clone(&self.pipeline))),
            ("weir.stage", Attr::Str(Arc::clone(&info.name))),
            (
                "weir.module.version",
                Attr::Str(Arc::clone(&info.module_sha256)),
            ),
            ("weir.cohort", Attr::Static(cohort)),
        ]
    }
}

/// What a window result's span says.
pub(super) struct WindowSpan<'a> {
    pub info: &'a StageInfo,
    pub start_ms: i64,
    pub end_ms: i64,
    pub links: &'a [(TraceId, SpanId)],
    pub error: Option<String>,
}
