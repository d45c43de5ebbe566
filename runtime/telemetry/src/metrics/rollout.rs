//! Rollout metrics: reloads of the pipeline file or its modules by result, the pauses of a lane
//! while a stage version is swapped in, and canary verdicts.
//!
//! It owns [`ReloadResult`] and the label sets of these families. The families themselves are
//! fields of [`Metrics`], registered in the parent module; deciding a reload or a verdict is
//! the engine's business, not this module's.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::Metrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabels {
    pipeline: Arc<str>,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct VerdictLabels {
    pipeline: Arc<str>,
    stage: Arc<str>,
    verdict: &'static str,
}

/// Lane pauses while a stage is swapped: 10 µs to about 160 ms.
pub(super) fn swap_histogram() -> Histogram {
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

impl Metrics {
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
