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
//! - `store`: files written by store sinks and their failures;
//! - `hot`: statements, connection pools and store health of the PostgreSQL and Redis sinks;
//! - `quality`: schema gates' results, filtered records and the conservation gauge;
//! - `export`: span export ([`DropReason`]);
//! - `guest`: the metrics stages' modules report ([`GuestSource`]).

mod export;
mod guest;
mod hot;
mod kafka;
mod quality;
mod rollout;
mod stage;
mod store;
#[cfg(test)]
mod tests;

pub use export::DropReason;
pub use guest::GuestSource;
pub use hot::READINGS as HOT_READINGS;
pub use kafka::PartitionMetrics;
pub use quality::QualityHandles;
pub use rollout::ReloadResult;
pub use stage::{StageLabels, StageMetrics};

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry, Unit};

use export::ReasonLabels;
use guest::{GuestCollector, GuestEntry};
use kafka::{
    ConsumeErrorLabels, PartitionLabels, TopicLabels, commit_histogram, latency_histogram,
};
use rollout::{ResultLabels, VerdictLabels, swap_histogram};
use stage::{DeadLabels, FailureLabels, RecordLabels, stage_histogram};
use store::{SinkFailureLabels, SinkLabels, file_histogram};

/// Labels of the families counted once per pipeline.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabels {
    pipeline: Arc<str>,
}

/// A family of counters, one per label set `L`.
type Counters<L> = Family<L, Counter>;
/// A family of gauges, one per label set `L`.
type Gauges<L> = Family<L, Gauge>;
/// A family of histograms, one per label set `L`, each with the buckets of its constructor.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of one pipeline, and the registry that serves them.
pub struct Metrics {
    pipeline: Arc<str>,
    registry: Registry,
    records_in: Counters<RecordLabels>,
    records_out: Counters<RecordLabels>,
    dead_lettered: Counters<DeadLabels>,
    wasm_failures: Counters<FailureLabels>,
    stage_duration: Histograms<StageLabels>,
    end_to_end: Histograms<TopicLabels>,
    produced: Counters<TopicLabels>,
    consumed: Counters<PartitionLabels>,
    consume_errors: Counters<ConsumeErrorLabels>,
    stalled: Gauges<PartitionLabels>,
    lag: Gauges<PartitionLabels>,
    fetch_queue: Gauges<PartitionLabels>,
    in_flight: Gauges<PipelineLabels>,
    saturated: Gauges<PipelineLabels>,
    assigned: Gauges<PipelineLabels>,
    commit_duration: Histograms<PipelineLabels>,
    commit_failures: Counters<PipelineLabels>,
    overdue_calls: Counters<PipelineLabels>,
    spans_exported: Counters<PipelineLabels>,
    spans_dropped: Counters<ReasonLabels>,
    trace_invalid: Counters<TopicLabels>,
    reloads: Counters<ResultLabels>,
    swap_pause: Histograms<PipelineLabels>,
    canary_verdicts: Counters<VerdictLabels>,
    windows_open: Gauges<RecordLabels>,
    late_records: Counters<RecordLabels>,
    checkpoints: Counters<RecordLabels>,
    checkpoint_bytes: Counters<RecordLabels>,
    store_files: Counters<SinkLabels>,
    store_rows: Counters<SinkLabels>,
    store_bytes: Counters<SinkLabels>,
    store_write: Histograms<SinkLabels>,
    store_failures: Counters<SinkFailureLabels>,
    store_held: Family<SinkLabels, Gauge<f64, AtomicU64>>,
    hot: hot::HotFamilies,
    quality: quality::QualityFamilies,
    guests: Arc<RwLock<Vec<GuestEntry>>>,
    /// The handles [`Metrics::delivered`] counts into, per output topic.
    delivered: RwLock<Vec<kafka::DeliveredHandles>>,
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
        let r = &mut registry;
        // Fields are evaluated in the order written, which is the order the families are
        // registered and encoded in.
        let mut metrics = Self {
            pipeline: pipeline.into(),
            records_in: counter(r, "weir_records_in", "Records that entered a stage"),
            records_out: counter(r, "weir_records_out", "Records a stage emitted"),
            dead_lettered: counter(
                r,
                "weir_records_dead_lettered",
                "Records that failed in a stage and went to the dead-letter topic, by failure kind",
            ),
            wasm_failures: counter(
                r,
                "weir_wasm_failures",
                "Records whose stage call trapped, timed out, hit the memory limit or went over a host cap",
            ),
            stage_duration: seconds(
                r,
                "weir_stage_duration",
                "Duration of one stage call (one batch)",
                stage_histogram,
            ),
            end_to_end: seconds(
                r,
                "weir_end_to_end_latency",
                "Time from an input record's timestamp to the broker's acknowledgement of an output",
                latency_histogram,
            ),
            produced: counter(
                r,
                "weir_produced",
                "Records acknowledged by the broker, per output topic (dead letters included)",
            ),
            consumed: counter(r, "weir_consumed", "Records read from Kafka"),
            consume_errors: counter(
                r,
                "weir_consume_errors",
                "Errors the Kafka client reported while consuming, by partition (-1: the client as a \
                 whole) and kind",
            ),
            stalled: gauge(
                r,
                "weir_partition_stalled",
                "1 while a partition's consumption keeps failing with no record read between errors",
            ),
            lag: gauge(
                r,
                "weir_consumer_lag",
                "Records between a partition's high watermark and the group's committed offset",
            ),
            fetch_queue: gauge(
                r,
                "weir_fetch_queue_records",
                "Records fetched ahead for a partition and not yet taken by its lane (bounded by \
                 queue_capacity plus one fetch)",
            ),
            in_flight: gauge(
                r,
                "weir_in_flight_records",
                "Records read from Kafka and not yet fully acknowledged",
            ),
            saturated: gauge(
                r,
                "weir_saturated_partitions",
                "Partitions whose lane took a full batch last time: records wait for it in the \
                 partition's bounded fetch queue (backpressure)",
            ),
            assigned: gauge(
                r,
                "weir_assigned_partitions",
                "Partitions assigned to this instance",
            ),
            commit_duration: seconds(
                r,
                "weir_commit_duration",
                "Round trip of an offset commit",
                commit_histogram,
            ),
            commit_failures: counter(r, "weir_commit_failures", "Offset commits that failed"),
            overdue_calls: counter(
                r,
                "weir_stage_calls_overdue",
                "Stage calls still running at twice their time limit (held in a host call)",
            ),
            spans_exported: counter(
                r,
                "weir_spans_exported",
                "Spans accepted by the OTLP collector",
            ),
            spans_dropped: counter(
                r,
                "weir_spans_dropped",
                "Spans that never reached the collector, by reason",
            ),
            trace_invalid: counter(
                r,
                "weir_trace_context_invalid",
                "Input records whose traceparent header was invalid (they start a new trace)",
            ),
            reloads: counter(
                r,
                "weir_reloads",
                "Reloads of the pipeline file or its modules, by result",
            ),
            swap_pause: seconds(
                r,
                "weir_swap_pause",
                "How long a lane paused between two batches to swap in a new stage version",
                swap_histogram,
            ),
            canary_verdicts: counter(
                r,
                "weir_canary_verdicts",
                "Canary verdicts (rollback, promote), automatic or by an operator",
            ),
            windows_open: gauge(
                r,
                "weir_windows_open",
                "Open (key, window) accumulators an aggregate stage holds on a partition",
            ),
            late_records: counter(
                r,
                "weir_late_records",
                "Records that reached an aggregate stage after all their windows closed",
            ),
            checkpoints: counter(
                r,
                "weir_checkpoints",
                "Checkpoints an aggregate stage wrote to its changelog",
            ),
            checkpoint_bytes: registered(
                r,
                "weir_checkpoint",
                "Changelog bytes an aggregate stage's checkpoints wrote (keys and values)",
                Some(Unit::Bytes),
                Family::default(),
            ),
            store_files: counter(
                r,
                "weir_store_files",
                "Files a store sink completed (durable and visible)",
            ),
            store_rows: counter(
                r,
                "weir_store_rows",
                "Rows in the files a store sink completed",
            ),
            store_bytes: registered(
                r,
                "weir_store_written",
                "Bytes of the files a store sink completed",
                Some(Unit::Bytes),
                Family::default(),
            ),
            store_write: seconds(
                r,
                "weir_store_file_write_duration",
                "Time to write one file of a store sink and make it durable",
                file_histogram,
            ),
            store_failures: counter(
                r,
                "weir_store_failures",
                "Store sink writes that failed and are retried, by reason",
            ),
            store_held: registered(
                r,
                "weir_store_open_segment_age",
                "How long a store sink has held its oldest row not yet in a complete file (0: none)",
                Some(Unit::Seconds),
                Family::default(),
            ),
            hot: hot::HotFamilies::register(r),
            quality: quality::QualityFamilies::register(r),
            guests: Arc::default(),
            delivered: RwLock::default(),
            registry,
        };
        let r = &mut metrics.registry;
        r.register(
            "weir_build",
            "Weir's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register_collector(Box::new(GuestCollector {
            guests: Arc::clone(&metrics.guests),
        }));
        Arc::new(metrics)
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

/// What a family's label set must be to be registered.
trait Labels: Clone + Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static {}

impl<L> Labels for L where
    L: Clone + Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static
{
}

/// Registers `metric` as `name`, with `unit` if it has one, and returns the handle to update it
/// through.
fn registered<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) -> M {
    let handle = metric.clone();
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric),
        None => registry.register(name, help, metric),
    }
    handle
}

/// A family of counters, registered as `name`.
fn counter<L: Labels>(registry: &mut Registry, name: &str, help: &str) -> Counters<L> {
    registered(registry, name, help, None, Family::default())
}

/// A family of gauges, registered as `name`.
fn gauge<L: Labels>(registry: &mut Registry, name: &str, help: &str) -> Gauges<L> {
    registered(registry, name, help, None, Family::default())
}

/// A family of histograms of seconds with the bucket layout of `buckets`, registered as `name`.
fn seconds<L: Labels>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    buckets: fn() -> Histogram,
) -> Histograms<L> {
    registered(
        registry,
        name,
        help,
        Some(Unit::Seconds),
        Family::new_with_constructor(buckets),
    )
}
