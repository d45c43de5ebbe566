//! Stage metrics: the records that enter and leave each stage, its call durations, its failures
//! (dead-lettered records, sandbox failures, calls overdue) and an aggregate stage's windows,
//! late records and checkpoints.
//!
//! It owns [`StageLabels`], the per-lane [`StageMetrics`] handles and the label sets they count
//! into. The families themselves are fields of [`Metrics`], registered in the parent module;
//! metrics a stage's module reports itself are in `guest`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::Metrics;

/// Labels of a stage's per-call metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub pipeline: Arc<str>,
    pub stage: Arc<str>,
    pub module_version: Arc<str>,
    pub cohort: &'static str,
}

/// A stage's labels on one partition's lane.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RecordLabels {
    #[prometheus(flatten)]
    pub(super) stage: StageLabels,
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
}

/// A lane's labels and the kind of failure that sent a record to the dead-letter topic.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DeadLabels {
    #[prometheus(flatten)]
    record: RecordLabels,
    kind: &'static str,
}

/// A stage's labels and the kind of sandbox failure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FailureLabels {
    #[prometheus(flatten)]
    stage: StageLabels,
    kind: &'static str,
}

/// Stage call durations: 50 µs to about 13 s.
pub(super) fn stage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

impl Metrics {
    /// The handles of one stage running on one partition's lane.
    pub fn stage(
        self: &Arc<Self>,
        stage: &StageLabels,
        topic: &Arc<str>,
        partition: i32,
    ) -> StageMetrics {
        let labels = RecordLabels {
            stage: stage.clone(),
            topic: Arc::clone(topic),
            partition,
        };
        StageMetrics {
            records_in: self.records_in.get_or_create_owned(&labels),
            records_out: self.records_out.get_or_create_owned(&labels),
            duration: self.stage_duration.get_or_create_owned(stage),
            quality: self.quality_handles(&labels),
            labels,
            metrics: Arc::clone(self),
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
}

/// A stage's handles on one lane.
#[derive(Debug, Clone)]
pub struct StageMetrics {
    pub records_in: Counter,
    pub records_out: Counter,
    pub duration: Histogram,
    /// Records filtered out, and the conservation gauge.
    pub quality: super::quality::QualityHandles,
    labels: RecordLabels,
    metrics: Arc<Metrics>,
}

impl StageMetrics {
    /// This stage's `gate` (`input` or `output`) passed `valid` records and refused one for
    /// each keyword of `invalid`.
    pub fn gate_checked(&self, gate: &'static str, valid: u64, invalid: &[&str]) {
        self.metrics
            .gate_checked(&self.labels.stage, gate, valid, invalid);
    }

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
        self.metrics
            .dead_lettered
            .get_or_create(&DeadLabels {
                record: self.labels.clone(),
                kind,
            })
            .inc();
        if wasm {
            self.metrics
                .wasm_failures
                .get_or_create(&FailureLabels {
                    stage: self.labels.stage.clone(),
                    kind,
                })
                .inc();
        }
    }
}
