//! A stage module's custom metrics (reported through the `host` import) as a metrics source.

use std::sync::Arc;

use weir_telemetry::GuestSource;
use weir_wasm::{EnrichModule, GUEST_BUCKETS, GuestMetrics};

#[derive(Debug)]
struct Guest(Arc<GuestMetrics>);

impl GuestSource for Guest {
    fn counters(&self) -> Vec<(String, u64)> {
        self.0.counters().into_iter().collect()
    }

    fn histograms(&self) -> Vec<(String, f64, u64, Vec<u64>)> {
        self.0
            .histograms()
            .into_iter()
            .map(|(name, h)| (name, h.sum, h.count, h.buckets.to_vec()))
            .collect()
    }

    fn bounds(&self) -> &[f64] {
        &GUEST_BUCKETS
    }

    fn logs_dropped(&self) -> (u64, u64) {
        (self.0.log_lines_dropped(), self.0.log_fields_dropped())
    }
}

/// The custom metrics of every instance of `module`.
pub(crate) fn source(module: &EnrichModule) -> Arc<dyn GuestSource> {
    Arc::new(Guest(Arc::clone(module.guest_metrics())))
}
