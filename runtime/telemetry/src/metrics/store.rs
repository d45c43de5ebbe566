//! Cold-store metrics: the files a store sink completed (rows, bytes, write latency) and its
//! failed writes by reason.
//!
//! It owns the label sets of these families; the families are fields of [`Metrics`],
//! registered in the parent module. Writing files is `weir-store`'s business.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::Metrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SinkLabels {
    pipeline: Arc<str>,
    sink: Arc<str>,
}

impl SinkLabels {
    pub(super) fn new(pipeline: &Arc<str>, sink: &str) -> Self {
        Self {
            pipeline: Arc::clone(pipeline),
            sink: sink.into(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SinkFailureLabels {
    pipeline: Arc<str>,
    sink: Arc<str>,
    reason: &'static str,
}

impl SinkFailureLabels {
    pub(super) fn new(pipeline: &Arc<str>, sink: &str, reason: &'static str) -> Self {
        Self {
            pipeline: Arc::clone(pipeline),
            sink: sink.into(),
            reason,
        }
    }
}

/// Time to write and make durable one file: 1 ms to about 65 s.
pub(super) fn file_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    fn sink_labels(&self, sink: &str) -> SinkLabels {
        SinkLabels {
            pipeline: Arc::clone(&self.pipeline),
            sink: sink.into(),
        }
    }

    /// Store sink `sink` has held its oldest row not yet in a complete file for `seconds`.
    pub fn store_held(&self, sink: &str, seconds: f64) {
        self.store_held
            .get_or_create(&self.sink_labels(sink))
            .set(seconds);
    }

    /// Store sink `sink` completed a file of `rows` rows and `bytes` bytes in `seconds`.
    pub fn store_file(&self, sink: &str, rows: u64, bytes: u64, seconds: f64) {
        let labels = self.sink_labels(sink);
        self.store_files.get_or_create(&labels).inc();
        self.store_rows.get_or_create(&labels).inc_by(rows);
        self.store_bytes.get_or_create(&labels).inc_by(bytes);
        self.store_write.get_or_create(&labels).observe(seconds);
    }

    /// A write of store sink `sink` failed for `reason` (such as `permission-denied`); it is
    /// retried.
    pub fn store_failed(&self, sink: &str, reason: &'static str) {
        self.store_failures
            .get_or_create(&SinkFailureLabels {
                pipeline: Arc::clone(&self.pipeline),
                sink: sink.into(),
                reason,
            })
            .inc();
    }
}
