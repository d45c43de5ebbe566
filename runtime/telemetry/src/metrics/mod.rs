//! The pipeline's Prometheus metrics (prometheus-client, OpenMetrics text).
//!
//! Names and labels are a contract with the alert rules and the dashboard in `deploy/`; the
//! catalogue is in `deploy/README.md`. Labels are bounded: pipeline, stage, module version,
//! cohort, topic, partition, failure kind. Never a record key.
//!
//! The data path never looks a metric up by its labels per record: a lane resolves its
//! [`StageMetrics`] and [`PartitionMetrics`] handles once (atomic counters behind an `Arc`) and
//! increments them.
//!
//! This module owns [`Metrics`]: its families, their registration (names, help texts and units,
//! in the order they are encoded), the build info and the OpenMetrics encoding. The label sets,
//! the handles and the methods that update each family live with their subject:
//!
//! - `stage`: records in and out of a stage, call durations, failures, aggregate windows and
//!   checkpoints ([`StageLabels`], [`StageMetrics`]);
//! - `kafka`: consumption, production, lag, fetch queues, commits, backpressure and end-to-end
//!   latency ([`PartitionMetrics`]);
//! - `rollout`: reloads, swap pauses and canary verdicts ([`ReloadResult`]);
//! - `export`: span export ([`DropReason`]);
//! - `guest`: the metrics stages' modules report ([`GuestSource`]).

mod export;
mod guest;
mod kafka;
mod rollout;
mod stage;
#[cfg(test)]
mod tests;

pub use export::DropReason;
pub use guest::GuestSource;
pub use kafka::PartitionMetrics;
pub use rollout::ReloadResult;
pub use stage::{StageLabels, StageMetrics};

use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use export::ReasonLabels;
use guest::{GuestCollector, GuestEntry};
use kafka::{
    ConsumeErrorLabels, PartitionLabels, TopicLabels, commit_histogram, latency_histogram,
};
use rollout::{ResultLabels, VerdictLabels, swap_histogram};
use stage::{DeadLabels, FailureLabels, RecordLabels, stage_histogram};

/// Labels of the families counted once per pipeline.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabels {
    pipeline: Arc<str>,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of one pipeline, and the registry that serves them.
pub struct Metrics {
    pipeline: Arc<str>,
    registry: Registry,
    records_in: Family<RecordLabels, Counter>,
    records_out: Family<RecordLabels, Counter>,
    dead_lettered: Family<DeadLabels, Counter>,
    wasm_failures: Family<FailureLabels, Counter>,
    stage_duration: HistogramFamily<StageLabels>,
    end_to_end: HistogramFamily<TopicLabels>,
    produced: Family<TopicLabels, Counter>,
    consumed: Family<PartitionLabels, Counter>,
    consume_errors: Family<ConsumeErrorLabels, Counter>,
    stalled: Family<PartitionLabels, Gauge>,
    lag: Family<PartitionLabels, Gauge>,
    fetch_queue: Family<PartitionLabels, Gauge>,
    in_flight: Family<PipelineLabels, Gauge>,
    saturated: Family<PipelineLabels, Gauge>,
    assigned: Family<PipelineLabels, Gauge>,
    commit_duration: HistogramFamily<PipelineLabels>,
    commit_failures: Family<PipelineLabels, Counter>,
    overdue_calls: Family<PipelineLabels, Counter>,
    spans_exported: Family<PipelineLabels, Counter>,
    spans_dropped: Family<ReasonLabels, Counter>,
    trace_invalid: Family<TopicLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    swap_pause: HistogramFamily<PipelineLabels>,
    canary_verdicts: Family<VerdictLabels, Counter>,
    windows_open: Family<RecordLabels, Gauge>,
    late_records: Family<RecordLabels, Counter>,
    checkpoints: Family<RecordLabels, Counter>,
    checkpoint_bytes: Family<RecordLabels, Counter>,
    guests: Arc<RwLock<Vec<GuestEntry>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of pipeline `pipeline`, registered and ready to serve.
    pub fn new(pipeline: &str) -> Arc<Self> {
        let mut registry = Registry::default();
        let records_in = Family::default();
        let records_out = Family::default();
        let dead_lettered = Family::default();
        let wasm_failures = Family::default();
        let stage_duration: HistogramFamily<StageLabels> =
            Family::new_with_constructor(stage_histogram);
        let end_to_end: HistogramFamily<TopicLabels> =
            Family::new_with_constructor(latency_histogram);
        let produced = Family::default();
        let consumed = Family::default();
        let consume_errors = Family::default();
        let stalled = Family::default();
        let lag = Family::default();
        let fetch_queue = Family::default();
        let in_flight = Family::default();
        let saturated = Family::default();
        let assigned = Family::default();
        let commit_duration: HistogramFamily<PipelineLabels> =
            Family::new_with_constructor(commit_histogram);
        let commit_failures = Family::default();
        let overdue_calls = Family::default();
        let spans_exported = Family::default();
        let spans_dropped = Family::default();
        let trace_invalid = Family::default();
        let reloads = Family::default();
        let swap_pause: HistogramFamily<PipelineLabels> =
            Family::new_with_constructor(swap_histogram);
        let canary_verdicts = Family::default();
        let guests: Arc<RwLock<Vec<GuestEntry>>> = Arc::default();
        let windows_open = Family::default();
        let late_records = Family::default();
        let checkpoints = Family::default();
        let checkpoint_bytes = Family::default();

        let r = &mut registry;
        r.register(
            "weir_records_in",
            "Records that entered a stage",
            records_in.clone(),
        );
        r.register(
            "weir_records_out",
            "Records a stage emitted",
            records_out.clone(),
        );
        r.register(
            "weir_records_dead_lettered",
            "Records that failed in a stage and went to the dead-letter topic, by failure kind",
            dead_lettered.clone(),
        );
        r.register(
            "weir_wasm_failures",
            "Records whose stage call trapped, timed out, hit the memory limit or went over a host cap",
            wasm_failures.clone(),
        );
        r.register_with_unit(
            "weir_stage_duration",
            "Duration of one stage call (one batch)",
            Unit::Seconds,
            stage_duration.clone(),
        );
        r.register_with_unit(
            "weir_end_to_end_latency",
            "Time from an input record's timestamp to the broker's acknowledgement of an output",
            Unit::Seconds,
            end_to_end.clone(),
        );
        r.register(
            "weir_produced",
            "Records acknowledged by the broker, per output topic (dead letters included)",
            produced.clone(),
        );
        r.register("weir_consumed", "Records read from Kafka", consumed.clone());
        r.register(
            "weir_consume_errors",
            "Errors the Kafka client reported while consuming, by partition (-1: the client as a \
             whole) and kind",
            consume_errors.clone(),
        );
        r.register(
            "weir_partition_stalled",
            "1 while a partition's consumption keeps failing with no record read between errors",
            stalled.clone(),
        );
        r.register(
            "weir_consumer_lag",
            "Records between a partition's high watermark and the group's committed offset",
            lag.clone(),
        );
        r.register(
            "weir_fetch_queue_records",
            "Records fetched ahead for a partition and not yet taken by its lane (bounded by \
             queue_capacity plus one fetch)",
            fetch_queue.clone(),
        );
        r.register(
            "weir_in_flight_records",
            "Records read from Kafka and not yet fully acknowledged",
            in_flight.clone(),
        );
        r.register(
            "weir_saturated_partitions",
            "Partitions whose lane took a full batch last time: records wait for it in the \
             partition's bounded fetch queue (backpressure)",
            saturated.clone(),
        );
        r.register(
            "weir_assigned_partitions",
            "Partitions assigned to this instance",
            assigned.clone(),
        );
        r.register_with_unit(
            "weir_commit_duration",
            "Round trip of an offset commit",
            Unit::Seconds,
            commit_duration.clone(),
        );
        r.register(
            "weir_commit_failures",
            "Offset commits that failed",
            commit_failures.clone(),
        );
        r.register(
            "weir_stage_calls_overdue",
            "Stage calls still running at twice their time limit (held in a host call)",
            overdue_calls.clone(),
        );
        r.register(
            "weir_spans_exported",
            "Spans accepted by the OTLP collector",
            spans_exported.clone(),
        );
        r.register(
            "weir_spans_dropped",
            "Spans that never reached the collector, by reason",
            spans_dropped.clone(),
        );
        r.register(
            "weir_trace_context_invalid",
            "Input records whose traceparent header was invalid (they start a new trace)",
            trace_invalid.clone(),
        );
        r.register(
            "weir_reloads",
            "Reloads of the pipeline file or its modules, by result",
            reloads.clone(),
        );
        r.register_with_unit(
            "weir_swap_pause",
            "How long a lane paused between two batches to swap in a new stage version",
            Unit::Seconds,
            swap_pause.clone(),
        );
        r.register(
            "weir_canary_verdicts",
            "Canary verdicts (rollback, promote), automatic or by an operator",
            canary_verdicts.clone(),
        );
        r.register(
            "weir_windows_open",
            "Open (key, window) accumulators an aggregate stage holds on a partition",
            windows_open.clone(),
        );
        r.register(
            "weir_late_records",
            "Records that reached an aggregate stage after all their windows closed",
            late_records.clone(),
        );
        r.register(
            "weir_checkpoints",
            "Checkpoints an aggregate stage wrote to its changelog",
            checkpoints.clone(),
        );
        r.register_with_unit(
            "weir_checkpoint",
            "Changelog bytes an aggregate stage's checkpoints wrote (keys and values)",
            Unit::Bytes,
            checkpoint_bytes.clone(),
        );
        r.register(
            "weir_build",
            "Weir's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register_collector(Box::new(GuestCollector {
            guests: Arc::clone(&guests),
        }));

        Arc::new(Self {
            pipeline: pipeline.into(),
            registry,
            windows_open,
            late_records,
            checkpoints,
            checkpoint_bytes,
            records_in,
            records_out,
            dead_lettered,
            wasm_failures,
            stage_duration,
            end_to_end,
            produced,
            consumed,
            consume_errors,
            stalled,
            lag,
            fetch_queue,
            in_flight,
            saturated,
            assigned,
            commit_duration,
            commit_failures,
            overdue_calls,
            spans_exported,
            spans_dropped,
            trace_invalid,
            reloads,
            swap_pause,
            canary_verdicts,
            guests,
        })
    }

    /// The pipeline's name, as labelled.
    pub fn pipeline(&self) -> &Arc<str> {
        &self.pipeline
    }

    /// Everything in OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    fn pipeline_labels(&self) -> PipelineLabels {
        PipelineLabels {
            pipeline: Arc::clone(&self.pipeline),
        }
    }
}
