//! What a store carries: the WASI context (nothing granted), the memory limiter, the host imports
//! and the context of the call in progress.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::weir::stage::{host, types};

/// The error a memory grow past the stage's limit traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (the module asked for {desired} bytes)")]
pub(crate) struct MemoryLimitExceeded {
    pub limit: usize,
    pub desired: usize,
}

/// Caps linear memory and tables at the stage's `limits`, and keeps count of the linear memory
/// the store's instance holds.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub memory: usize,
    /// Bytes of linear memory granted so far, over all the instance's memories (a linear memory
    /// never shrinks): what an instance recycled at a memory threshold is measured by.
    pub grown: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.memory,
                desired,
            }));
        }
        self.grown = self.grown.saturating_add(desired.saturating_sub(current));
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Counters and histograms a stage reports through the `host` import.
#[derive(Debug, Default)]
pub struct GuestMetrics {
    counters: Mutex<BTreeMap<String, u64>>,
    histograms: Mutex<BTreeMap<String, HistogramSummary>>,
}

/// Upper bounds of the buckets of guest histograms (the last is `+Inf`). Guests report values
/// in units of their choosing, so the buckets span many orders of magnitude.
pub const GUEST_BUCKETS: [f64; 16] = [
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    50.0,
    100.0,
    500.0,
    1000.0,
    5000.0,
    10000.0,
    f64::INFINITY,
];

/// Count, sum and bucket counts of a guest histogram's observations.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct HistogramSummary {
    pub count: u64,
    pub sum: f64,
    /// Observations per bucket of [`GUEST_BUCKETS`] (not cumulative).
    pub buckets: [u64; GUEST_BUCKETS.len()],
}

/// The longest metric name a guest may use.
const MAX_METRIC_NAME: usize = 64;
/// The most distinct metric names one stage may create (so a guest cannot blow up the registry).
const MAX_METRICS: usize = 64;

fn valid_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_METRIC_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl GuestMetrics {
    /// Current counter values.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.counters.lock().clone()
    }

    /// Current histogram summaries.
    pub fn histograms(&self) -> BTreeMap<String, HistogramSummary> {
        self.histograms.lock().clone()
    }

    fn counter_add(&self, name: String, delta: u64) -> bool {
        let mut c = self.counters.lock();
        if !valid_metric_name(&name) || (c.len() >= MAX_METRICS && !c.contains_key(&name)) {
            return false;
        }
        let v = c.entry(name).or_default();
        *v = v.saturating_add(delta);
        true
    }

    fn histogram_record(&self, name: String, value: f64) -> bool {
        let mut h = self.histograms.lock();
        if !valid_metric_name(&name)
            || !value.is_finite()
            || (h.len() >= MAX_METRICS && !h.contains_key(&name))
        {
            return false;
        }
        let s = h.entry(name).or_default();
        s.count += 1;
        s.sum += value;
        let bucket = GUEST_BUCKETS
            .iter()
            .position(|&le| value <= le)
            .unwrap_or(GUEST_BUCKETS.len() - 1);
        s.buckets[bucket] += 1;
        true
    }
}

/// Where the call in progress comes from, for the guest's log lines.
#[derive(Debug, Default, Clone)]
pub(crate) struct CallContext {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The stage call's span (hex), when the runtime traces it.
    pub trace_id: String,
    pub span_id: String,
}

pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    pub stage: Arc<str>,
    pub call: CallContext,
    /// The message of a guest panic reported through `log` during the call in progress.
    pub panic: Option<String>,
    pub metrics: Arc<GuestMetrics>,
}

impl StoreState {
    pub fn new(stage: Arc<str>, memory: usize, metrics: Arc<GuestMetrics>) -> Self {
        Self {
            // No preopened directories, environment, arguments, stdio or network: only clocks
            // and randomness, which std guests expect.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: Limiter { memory, grown: 0 },
            stage,
            call: CallContext::default(),
            panic: None,
            metrics,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreState {}

/// Log lines longer than this are cut, so a guest cannot flood the logs with one call.
const MAX_LOG_LINE: usize = 8 * 1024;

impl host::Host for StoreState {
    fn log(&mut self, level: types::Level, message: String, fields: Vec<(String, String)>) {
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        if level == types::Level::Error && fields.iter().any(|(k, v)| k == "panic" && v == "true") {
            self.panic = Some(message.clone());
        }
        let fields = fields
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(" ");
        let stage = &*self.stage;
        let CallContext {
            partition,
            first_offset,
            last_offset,
            ref trace_id,
            ref span_id,
        } = self.call;
        macro_rules! emit {
            ($lvl:ident) => {
                tracing::$lvl!(
                    target: "weir::guest",
                    stage,
                    partition,
                    first_offset,
                    last_offset,
                    trace_id,
                    span_id,
                    fields,
                    "{message}"
                )
            };
        }
        match level {
            types::Level::Trace => emit!(trace),
            types::Level::Debug => emit!(debug),
            types::Level::Info => emit!(info),
            types::Level::Warn => emit!(warn),
            types::Level::Error => emit!(error),
        }
    }

    fn counter_add(&mut self, name: String, delta: u64) {
        if !self.metrics.counter_add(name, delta) {
            tracing::debug!(
                stage = &*self.stage,
                "Guest counter refused (bad name or too many metrics)."
            );
        }
    }

    fn histogram_record(&mut self, name: String, value: f64) {
        if !self.metrics.histogram_record(name, value) {
            tracing::debug!(
                stage = &*self.stage,
                "Guest histogram refused (bad name, value or too many metrics)."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_metric_names_are_checked_and_bounded() {
        let m = GuestMetrics::default();
        assert!(m.counter_add("hits".into(), 2));
        assert!(m.counter_add("hits".into(), 3));
        assert!(!m.counter_add("Bad-Name".into(), 1));
        assert!(!m.counter_add(String::new(), 1));
        assert_eq!(m.counters().get("hits"), Some(&5));
        for i in 0..MAX_METRICS {
            m.counter_add(format!("c{i}"), 1);
        }
        assert!(!m.counter_add("one_too_many".into(), 1));
        assert!(
            m.counter_add("hits".into(), 1),
            "existing names keep working"
        );
        assert!(!m.histogram_record("lat".into(), f64::NAN));
        assert!(m.histogram_record("lat".into(), 1.5));
        let lat = m.histograms()["lat"];
        assert_eq!((lat.count, lat.sum), (1, 1.5));
        assert_eq!(
            lat.buckets[GUEST_BUCKETS.iter().position(|&b| b == 5.0).unwrap()],
            1
        );
        assert_eq!(lat.buckets.iter().sum::<u64>(), 1);
    }
}
