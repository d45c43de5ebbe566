//! Hot-store metrics: the statements a PostgreSQL or Redis sink runs (latency, rows, failures
//! by kind), its connection pool (busy, idle, waiting, wait time), and what its watcher reads
//! from the store itself (connections against `max_connections`, dead tuples, memory
//! fragmentation, evictions).
//!
//! It owns these families, their label sets and registration; [`Metrics`] holds them as one
//! field. Writing to the stores is `weir-hot`'s business.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::store::{SinkFailureLabels, SinkLabels};
use super::{Counters, Gauges, Histograms, Metrics, counter, gauge, seconds};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OperationLabels {
    pipeline: Arc<str>,
    sink: Arc<str>,
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PoolLabels {
    pipeline: Arc<str>,
    sink: Arc<str>,
    state: &'static str,
}

type Readings = Family<SinkLabels, Gauge<f64, AtomicU64>>;

/// What the watchers report, by reading name: the gauge `weir_hot_<name>` holds it.
pub const READINGS: [(&str, &str); 7] = [
    (
        "postgres_connections",
        "Client connections open on the PostgreSQL server a sink writes to (all clients)",
    ),
    (
        "postgres_max_connections",
        "The PostgreSQL server's max_connections",
    ),
    (
        "postgres_dead_tuples",
        "Dead tuples of a PostgreSQL sink's table, waiting for vacuum",
    ),
    (
        "redis_mem_fragmentation_ratio",
        "The Redis server's memory fragmentation ratio (RSS over used memory)",
    ),
    ("redis_used_memory_bytes", "Memory the Redis server uses"),
    (
        "redis_maxmemory_bytes",
        "The Redis server's maxmemory (0: no limit)",
    ),
    (
        "redis_evicted_keys",
        "Keys the Redis server has evicted since it started (a counter of the server's)",
    ),
];

/// Time one statement takes: 0.25 ms to about 16 s.
fn statement_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 17))
}

/// The hot-store families.
#[derive(Debug)]
pub(super) struct HotFamilies {
    statements: Histograms<OperationLabels>,
    rows: Counters<SinkLabels>,
    failures: Counters<SinkFailureLabels>,
    pool: Gauges<PoolLabels>,
    pool_max: Gauges<SinkLabels>,
    pool_wait: Histograms<SinkLabels>,
    readings: Vec<(&'static str, Readings)>,
}

impl HotFamilies {
    pub(super) fn register(r: &mut Registry) -> Self {
        Self {
            statements: seconds(
                r,
                "weir_hot_statement_duration",
                "Time a hot-store statement (or pipeline of commands) took, by operation",
                statement_histogram,
            ),
            rows: counter(r, "weir_hot_rows", "Rows a hot-store sink wrote"),
            failures: counter(
                r,
                "weir_hot_failures",
                "Hot-store writes that failed, by kind: rejected (rows dead-lettered), \
                 unavailable, pool, serialization (retried)",
            ),
            pool: gauge(
                r,
                "weir_hot_pool_connections",
                "A hot-store sink's pooled connections by state (busy, idle) and writes waiting \
                 for one (waiting)",
            ),
            pool_max: gauge(
                r,
                "weir_hot_pool_max_connections",
                "The most connections a hot-store sink's pool opens",
            ),
            pool_wait: seconds(
                r,
                "weir_hot_pool_wait",
                "Time a write waited for a pooled connection",
                statement_histogram,
            ),
            readings: READINGS
                .iter()
                .map(|(name, help)| {
                    let family = Readings::default();
                    r.register(format!("weir_hot_{name}"), *help, family.clone());
                    (*name, family)
                })
                .collect(),
        }
    }
}

impl Metrics {
    fn hot_labels(&self, sink: &str) -> SinkLabels {
        SinkLabels::new(&self.pipeline, sink)
    }

    /// Hot-store sink `sink` ran an `operation` statement over `rows` rows in `seconds`; `ok`
    /// says whether it succeeded (only the rows of statements that succeeded are counted).
    pub fn hot_statement(
        &self,
        sink: &str,
        operation: &'static str,
        rows: u64,
        seconds: f64,
        ok: bool,
    ) {
        self.hot
            .statements
            .get_or_create(&OperationLabels {
                pipeline: Arc::clone(&self.pipeline),
                sink: sink.into(),
                operation,
            })
            .observe(seconds);
        if ok {
            self.hot
                .rows
                .get_or_create(&self.hot_labels(sink))
                .inc_by(rows);
        }
    }

    /// A write of hot-store sink `sink` failed, of `kind`.
    pub fn hot_failed(&self, sink: &str, kind: &'static str) {
        self.hot
            .failures
            .get_or_create(&SinkFailureLabels::new(&self.pipeline, sink, kind))
            .inc();
    }

    /// The pool of hot-store sink `sink` stands at `busy`, `idle` and `waiting` of at most `max`
    /// connections, after a write waited `Some(seconds)` for a connection (or a sample: `None`).
    pub fn hot_pool(
        &self,
        sink: &str,
        seconds: Option<f64>,
        busy: usize,
        idle: usize,
        waiting: usize,
        max: usize,
    ) {
        let labels = self.hot_labels(sink);
        if let Some(seconds) = seconds {
            self.hot.pool_wait.get_or_create(&labels).observe(seconds);
        }
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.hot.pool_max.get_or_create(&labels).set(gauge(max));
        for (state, n) in [("busy", busy), ("idle", idle), ("waiting", waiting)] {
            self.hot
                .pool
                .get_or_create(&PoolLabels {
                    pipeline: Arc::clone(&self.pipeline),
                    sink: sink.into(),
                    state,
                })
                .set(gauge(n));
        }
    }

    /// What the watcher of hot-store sink `sink` read from its store ([`READINGS`] names);
    /// readings of other names are ignored.
    pub fn hot_readings(&self, sink: &str, readings: &[(&str, f64)]) {
        let labels = self.hot_labels(sink);
        for (name, value) in readings {
            if let Some((_, family)) = self.hot.readings.iter().find(|(n, _)| n == name) {
                family.get_or_create(&labels).set(*value);
            }
        }
    }
}
