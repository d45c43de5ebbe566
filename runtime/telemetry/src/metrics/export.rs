//! Span export metrics: the spans the OTLP collector accepted and those dropped on the way, by
//! [`DropReason`].
//!
//! It owns [`DropReason`] and its label set. The families themselves are fields of [`Metrics`],
//! registered in the parent module; the export queue and its client are in `crate::spans`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;

use super::Metrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabels {
    pipeline: Arc<str>,
    reason: &'static str,
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

impl Metrics {
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
}
