//! The pipeline's Prometheus metrics (prometheus-client, OpenMetrics text).
//!
//! Names and labels are a contract with the alert rules and the dashboard in `deploy/`; the
//! catalogue is in `deploy/README.md`. Labels are bounded: pipeline, stage, module version,
//! cohort, topic, partition, failure kind. Never a record key.
//!
//! The data path never looks a metric up by its labels per record: a lane resolves its
//! [`StageMetrics`] and [`PartitionMetrics`] handles once (atomic counters behind an `Arc`) and
//! increments them.

use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// Labels of a stage's per-call metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub pipeline: Arc<str>,
    pub stage: Arc<str>,
    pub module_version: Arc<str>,
    pub cohort: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecordLabels {
    pipeline: Arc<str>,
    stage: Arc<str>,
    module_version: Arc<str>,
    cohort: &'static str,
    topic: Arc<str>,
    partition: i32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadLabels {
    pipeline: Arc<str>,
    stage: Arc<str>,
    module_version: Arc<str>,
    cohort: &'static str,
    topic: Arc<str>,
    partition: i32,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    pipeline: Arc<str>,
    stage: Arc<str>,
    module_version: Arc<str>,
    cohort: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    pipeline: Arc<str>,
    topic: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    pipeline: Arc<str>,
    topic: Arc<str>,
    partition: i32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumeErrorLabels {
    pipeline: Arc<str>,
    topic: Arc<str>,
    /// -1 for an error of the client as a whole.
    partition: i32,
    kind: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabels {
    pipeline: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    pipeline: Arc<str>,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    pipeline: Arc<str>,
    stage: Arc<str>,
    verdict: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    pipeline: Arc<str>,
    reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Stage call durations: 50 µs to about 13 s.
fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

/// End-to-end latency: 1 ms to about 9 minutes.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// Lane pauses while a stage is swapped: 10 µs to about 160 ms.
fn swap_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 15))
}

/// What became of a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new version is serving.
    Applied,
    /// The new version failed validation; the running one keeps serving.
    Rejected,
    /// Nothing the running pipeline uses changed.
    Unchanged,
}

impl ReloadResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Commit round trips: 1 ms to about 16 s.
fn commit_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Why spans did not reach the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The export queue was full.
    QueueFull,
    /// The collector refused the spans, could not be reached, or did not answer in time.
    ExportFailed,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::ExportFailed => "export_failed",
        }
    }
}

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

    /// The handles of one stage running on one partition's lane.
    pub fn stage(
        self: &Arc<Self>,
        stage: &StageLabels,
        topic: &Arc<str>,
        partition: i32,
    ) -> StageMetrics {
        let labels = RecordLabels {
            pipeline: Arc::clone(&stage.pipeline),
            stage: Arc::clone(&stage.stage),
            module_version: Arc::clone(&stage.module_version),
            cohort: stage.cohort,
            topic: Arc::clone(topic),
            partition,
        };
        StageMetrics {
            records_in: self.records_in.get_or_create_owned(&labels),
            records_out: self.records_out.get_or_create_owned(&labels),
            duration: self.stage_duration.get_or_create_owned(stage),
            labels,
            metrics: Arc::clone(self),
        }
    }

    /// The handles of one partition's lane.
    pub fn partition(&self, topic: &Arc<str>, partition: i32) -> PartitionMetrics {
        let labels = PartitionLabels {
            pipeline: Arc::clone(&self.pipeline),
            topic: Arc::clone(topic),
            partition,
        };
        PartitionMetrics {
            consumed: self.consumed.get_or_create_owned(&labels),
            stalled: self.stalled.get_or_create_owned(&labels),
            trace_invalid: self.trace_invalid.get_or_create_owned(&TopicLabels {
                pipeline: Arc::clone(&self.pipeline),
                topic: Arc::clone(topic),
            }),
        }
    }

    /// The broker acknowledged a record produced to `topic`; `timestamp_ms` is the record's
    /// timestamp (its input's unless a stage set another), for end-to-end latency.
    pub fn delivered(&self, topic: &str, timestamp_ms: Option<i64>, now_ms: i64) {
        let labels = TopicLabels {
            pipeline: Arc::clone(&self.pipeline),
            topic: topic.into(),
        };
        // Latency first: whoever sees the count has the latency too.
        if let Some(ts) = timestamp_ms {
            let seconds = (now_ms - ts).max(0) as f64 / 1000.0;
            self.end_to_end.get_or_create(&labels).observe(seconds);
        }
        self.produced.get_or_create(&labels).inc();
    }

    /// The Kafka client reported an error of `kind` while consuming `partition` of `topic`
    /// (`None`: an error of the client as a whole).
    pub fn consume_error(&self, topic: &str, partition: Option<i32>, kind: &str) {
        self.consume_errors
            .get_or_create(&ConsumeErrorLabels {
                pipeline: Arc::clone(&self.pipeline),
                topic: topic.into(),
                partition: partition.unwrap_or(-1),
                kind: kind.into(),
            })
            .inc();
    }

    /// The consumer lag of a partition, as the client last reported it.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag
            .get_or_create(&PartitionLabels {
                pipeline: Arc::clone(&self.pipeline),
                topic: topic.into(),
                partition,
            })
            .set(lag);
    }

    /// The records fetched ahead for a partition, as the client last reported them.
    pub fn set_fetch_queue(&self, topic: &str, partition: i32, records: i64) {
        self.fetch_queue
            .get_or_create(&PartitionLabels {
                pipeline: Arc::clone(&self.pipeline),
                topic: topic.into(),
                partition,
            })
            .set(records);
    }

    /// Forgets the lag and fetch queue of a partition this instance no longer owns.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let labels = PartitionLabels {
            pipeline: Arc::clone(&self.pipeline),
            topic: topic.into(),
            partition,
        };
        self.lag.remove(&labels);
        self.fetch_queue.remove(&labels);
        self.stalled.remove(&labels);
    }

    /// Sets the backpressure and assignment gauges.
    pub fn set_lanes(&self, assigned: i64, saturated: i64, in_flight: i64) {
        let l = self.pipeline_labels();
        self.assigned.get_or_create(&l).set(assigned);
        self.saturated.get_or_create(&l).set(saturated);
        self.in_flight.get_or_create(&l).set(in_flight);
    }

    /// An offset commit finished.
    pub fn commit_done(&self, seconds: f64, ok: bool) {
        let l = self.pipeline_labels();
        self.commit_duration.get_or_create(&l).observe(seconds);
        if !ok {
            self.commit_failures.get_or_create(&l).inc();
        }
    }

    /// The wasm host's count of stage calls found running at twice their limit, so far.
    pub fn set_overdue_calls(&self, total: u64) {
        let counter = self.overdue_calls.get_or_create(&self.pipeline_labels());
        let seen = counter.get();
        if total > seen {
            counter.inc_by(total - seen);
        }
    }

    /// Spans accepted by the collector.
    pub fn spans_exported(&self, n: u64) {
        self.spans_exported
            .get_or_create(&self.pipeline_labels())
            .inc_by(n);
    }

    /// Spans that will never reach the collector.
    pub fn spans_dropped(&self, reason: DropReason, n: u64) {
        self.spans_dropped
            .get_or_create(&ReasonLabels {
                pipeline: Arc::clone(&self.pipeline),
                reason: reason.as_str(),
            })
            .inc_by(n);
    }

    /// Exports the custom metrics the stages' modules report, labelled with their stage,
    /// replacing those of modules no longer running.
    pub fn set_guests(&self, guests: Vec<(StageLabels, Arc<dyn GuestSource>)>) {
        *self.guests.write() = guests
            .into_iter()
            .map(|(stage, source)| GuestEntry { stage, source })
            .collect();
    }

    /// A reload finished with `result`.
    pub fn reloaded(&self, result: ReloadResult) {
        self.reloads
            .get_or_create(&ResultLabels {
                pipeline: Arc::clone(&self.pipeline),
                result: result.as_str(),
            })
            .inc();
    }

    /// A canary of stage `stage` was rolled back or promoted (`verdict`).
    pub fn canary_verdict(&self, stage: &str, verdict: &'static str) {
        self.canary_verdicts
            .get_or_create(&VerdictLabels {
                pipeline: Arc::clone(&self.pipeline),
                stage: stage.into(),
                verdict,
            })
            .inc();
    }

    /// A lane paused `seconds` to swap a stage.
    pub fn swapped(&self, seconds: f64) {
        self.swap_pause
            .get_or_create(&self.pipeline_labels())
            .observe(seconds);
    }
}

/// A stage's handles on one lane.
#[derive(Debug, Clone)]
pub struct StageMetrics {
    pub records_in: Counter,
    pub records_out: Counter,
    pub duration: Histogram,
    labels: RecordLabels,
    metrics: Arc<Metrics>,
}

impl StageMetrics {
    /// An aggregate stage holds `n` open windows on this lane.
    pub fn set_open_windows(&self, n: u64) {
        self.metrics
            .windows_open
            .get_or_create(&self.labels)
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A record reached this aggregate stage after all its windows closed.
    pub fn late(&self) {
        self.metrics.late_records.get_or_create(&self.labels).inc();
    }

    /// This aggregate stage wrote a checkpoint of `bytes` bytes to its changelog.
    pub fn checkpointed(&self, bytes: u64) {
        self.metrics.checkpoints.get_or_create(&self.labels).inc();
        self.metrics
            .checkpoint_bytes
            .get_or_create(&self.labels)
            .inc_by(bytes);
    }

    /// A record failed in this stage with failure `kind` (a `weir.error.kind` name); `wasm`
    /// says whether it was the sandbox that stopped it (trap, timeout, memory).
    pub fn failed(&self, kind: &'static str, wasm: bool) {
        let l = &self.labels;
        self.metrics
            .dead_lettered
            .get_or_create(&DeadLabels {
                pipeline: Arc::clone(&l.pipeline),
                stage: Arc::clone(&l.stage),
                module_version: Arc::clone(&l.module_version),
                cohort: l.cohort,
                topic: Arc::clone(&l.topic),
                partition: l.partition,
                kind,
            })
            .inc();
        if wasm {
            self.metrics
                .wasm_failures
                .get_or_create(&FailureLabels {
                    pipeline: Arc::clone(&l.pipeline),
                    stage: Arc::clone(&l.stage),
                    module_version: Arc::clone(&l.module_version),
                    cohort: l.cohort,
                    kind,
                })
                .inc();
        }
    }
}

/// A lane's per-partition handles.
#[derive(Debug, Clone)]
pub struct PartitionMetrics {
    pub consumed: Counter,
    /// 1 while the partition's consumption keeps failing.
    pub stalled: Gauge,
    pub trace_invalid: Counter,
}

/// Custom metrics reported by a stage's module through the host import.
pub trait GuestSource: Send + Sync + std::fmt::Debug + 'static {
    /// Counter values by name.
    fn counters(&self) -> Vec<(String, u64)>;
    /// Histograms by name: sum, count and per-bucket counts (not cumulative) for the upper
    /// bounds of [`GuestSource::bounds`].
    fn histograms(&self) -> Vec<(String, f64, u64, Vec<u64>)>;
    /// Upper bounds of the histogram buckets, the last one being `+Inf`.
    fn bounds(&self) -> &[f64];
    /// Log lines and log fields the host dropped from the module's calls for going over its
    /// caps.
    fn logs_dropped(&self) -> (u64, u64) {
        (0, 0)
    }
}

#[derive(Debug)]
struct GuestEntry {
    stage: StageLabels,
    source: Arc<dyn GuestSource>,
}

/// Encodes every stage's guest metrics at scrape time as `weir_guest_<name>`, one family per
/// name, labelled with the stage.
#[derive(Debug)]
struct GuestCollector {
    guests: Arc<RwLock<Vec<GuestEntry>>>,
}

impl Collector for GuestCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::collections::BTreeMap;
        let guests = self.guests.read();
        type Hist<'a> = (&'a StageLabels, f64, u64, Vec<(f64, u64)>);
        let mut counters: BTreeMap<String, Vec<(&StageLabels, u64)>> = BTreeMap::new();
        let mut histograms: BTreeMap<String, Vec<Hist<'_>>> = BTreeMap::new();
        for g in guests.iter() {
            for (name, v) in g.source.counters() {
                counters.entry(name).or_default().push((&g.stage, v));
            }
            let bounds = g.source.bounds();
            for (name, sum, count, buckets) in g.source.histograms() {
                let buckets = bounds.iter().copied().zip(buckets).collect();
                histograms
                    .entry(name)
                    .or_default()
                    .push((&g.stage, sum, count, buckets));
            }
        }
        for (name, help, pick) in [
            (
                "weir_stage_log_lines_dropped",
                "Log lines of a stage's calls the host dropped for going over its caps",
                0,
            ),
            (
                "weir_stage_log_fields_dropped",
                "Log fields of a stage's calls the host dropped for going over its caps",
                1,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for g in guests.iter() {
                let (lines, fields) = g.source.logs_dropped();
                let c: Counter<u64> = Counter::default();
                c.inc_by(if pick == 0 { lines } else { fields });
                c.encode(family.encode_family(&g.stage)?)?;
            }
        }
        for (name, series) in &counters {
            let name = format!("weir_guest_{name}");
            let mut family = encoder.encode_descriptor(
                &name,
                "Counter reported by the stage's module",
                None,
                MetricType::Counter,
            )?;
            for (labels, v) in series {
                let c: Counter<u64> = Counter::default();
                c.inc_by(*v);
                c.encode(family.encode_family(*labels)?)?;
            }
        }
        for (name, series) in &histograms {
            let name = format!("weir_guest_{name}");
            let mut family = encoder.encode_descriptor(
                &name,
                "Histogram reported by the stage's module",
                None,
                MetricType::Histogram,
            )?;
            for (labels, sum, count, buckets) in series {
                family
                    .encode_family(*labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        *sum, *count, buckets, None,
                    )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> StageLabels {
        StageLabels {
            pipeline: "p".into(),
            stage: "enrich".into(),
            module_version: "abc123".into(),
            cohort: "stable",
        }
    }

    #[derive(Debug)]
    struct Fixed;
    impl GuestSource for Fixed {
        fn counters(&self) -> Vec<(String, u64)> {
            vec![("hits".into(), 7)]
        }
        fn histograms(&self) -> Vec<(String, f64, u64, Vec<u64>)> {
            vec![("size".into(), 12.5, 3, vec![1, 2, 0])]
        }
        fn bounds(&self) -> &[f64] {
            &[1.0, 10.0, f64::INFINITY]
        }
        fn logs_dropped(&self) -> (u64, u64) {
            (3, 5)
        }
    }

    #[test]
    fn handles_count_into_the_labelled_series() {
        let m = Metrics::new("p");
        let topic: Arc<str> = "clicks".into();
        let s = m.stage(&stage(), &topic, 2);
        s.records_in.inc_by(5);
        s.records_out.inc_by(4);
        s.failed("trap", true);
        s.failed("stage-error", false);
        m.delivered("out", Some(1_000), 3_500);
        m.set_lanes(3, 1, 40);
        let text = m.encode();
        for line in [
            r#"weir_records_in_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",topic="clicks",partition="2"} 5"#,
            r#"weir_records_out_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",topic="clicks",partition="2"} 4"#,
            r#"weir_records_dead_lettered_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",topic="clicks",partition="2",kind="trap"} 1"#,
            r#"weir_wasm_failures_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",kind="trap"} 1"#,
            r#"weir_produced_total{pipeline="p",topic="out"} 1"#,
            r#"weir_end_to_end_latency_seconds_count{pipeline="p",topic="out"} 1"#,
            r#"weir_end_to_end_latency_seconds_sum{pipeline="p",topic="out"} 2.5"#,
            r#"weir_saturated_partitions{pipeline="p"} 1"#,
            r#"weir_build_info{version=""#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains(r#"weir_wasm_failures_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",kind="stage-error"}"#),
            "a stage error is not a wasm failure"
        );
    }

    #[test]
    fn guest_metrics_are_prefixed_and_labelled() {
        let m = Metrics::new("p");
        m.set_guests(vec![(stage(), Arc::new(Fixed))]);
        let text = m.encode();
        assert!(text.contains(r#"weir_guest_hits_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable"} 7"#), "{text}");
        assert!(text.contains(r#"weir_guest_size_bucket{le="10.0",pipeline="p",stage="enrich",module_version="abc123",cohort="stable"} 3"#) || text.contains(r#"weir_guest_size_bucket{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",le="10.0"} 3"#), "{text}");
        assert!(text.contains(r#"weir_guest_size_count{pipeline="p",stage="enrich",module_version="abc123",cohort="stable"} 3"#), "{text}");
    }

    #[test]
    fn dropped_logs_and_overdue_calls_are_counted() {
        let m = Metrics::new("p");
        m.set_guests(vec![(stage(), Arc::new(Fixed))]);
        m.set_overdue_calls(2);
        m.set_overdue_calls(5);
        m.set_overdue_calls(4);
        let text = m.encode();
        for line in [
            r#"weir_stage_log_lines_dropped_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable"} 3"#,
            r#"weir_stage_log_fields_dropped_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable"} 5"#,
            r#"weir_stage_calls_overdue_total{pipeline="p"} 5"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
