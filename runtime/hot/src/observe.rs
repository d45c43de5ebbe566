//! What a hot-store sink reports about its work, for the engine to turn into metrics and spans.
//!
//! Owns: the [`HotObserver`] seam and what it carries. Knows nothing of Prometheus or OTLP.

use std::time::{Duration, SystemTime};

use weir_core::trace::{SpanId, TraceId};

/// The most record traces one statement's span links to; the rest are counted.
pub const MAX_LINKS: usize = 32;

/// Where a sink writes, as the OpenTelemetry database attributes name it.
#[derive(Debug, Clone)]
pub struct Server {
    /// `db.system.name`: `postgresql` or `redis`.
    pub system: &'static str,
    /// `db.namespace`: the database (PostgreSQL) or its index (Redis).
    pub namespace: String,
    /// `server.address` and `server.port`.
    pub address: String,
    pub port: u16,
}

/// One statement (PostgreSQL) or pipeline of commands (Redis), done or failed.
#[derive(Debug)]
pub struct Statement<'a> {
    /// The sink's name (`[sinks.<name>]`).
    pub sink: &'a str,
    pub server: &'a Server,
    /// `db.operation.name`: `INSERT`, `SET`, `HSET`, `XADD`.
    pub operation: &'static str,
    /// `db.collection.name`: the table, or the Redis mode's key space.
    pub collection: &'a str,
    /// The span the statement ran under, whose `traceparent` its SQL comment carries.
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The record's own span, with `statement = "record"`: the statement's span is its child.
    pub parent: Option<SpanId>,
    /// Whether the span is to be exported: always for a batch's span (a trace of its own), the
    /// record's sampling decision for a record's.
    pub sampled: bool,
    /// Rows written (or refused, on error).
    pub rows: u64,
    pub started: SystemTime,
    pub elapsed: Duration,
    /// Distinct sampled traces of its records, at most [`MAX_LINKS`].
    pub links: &'a [(TraceId, SpanId)],
    /// Why it failed: `Some((kind, message))`, kind as in [`HotObserver::failed`].
    pub error: Option<(&'static str, &'a str)>,
}

/// How a sink's connection pool stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolState {
    /// Connections lent to a write now.
    pub busy: usize,
    /// Connections open and free.
    pub idle: usize,
    /// Writes waiting for a connection.
    pub waiting: usize,
    /// The most connections the pool opens.
    pub max: usize,
}

/// What a hot-store sink reports.
pub trait HotObserver: Send + Sync {
    /// Whether statement spans are exported: a statement's `traceparent` comment is marked
    /// sampled only then.
    fn tracing(&self) -> bool;
    /// A statement finished (or failed: `statement.error`).
    fn statement(&self, statement: &Statement<'_>);
    /// A write of sink `sink` failed: `kind` is `rejected` (rows the store refused), `unavailable`
    /// (the store is down or restarting: retried), `pool` (no connection within the timeout:
    /// retried) or `serialization` (a transaction conflict: retried).
    fn failed(&self, sink: &str, kind: &'static str);
    /// The pool stands at `pool`: after a write waited `Some(waited)` for a connection (or gave
    /// up waiting), or `None` when sampled by the sink's watcher (about every second), so the
    /// gauges stay live while no write gets a connection.
    fn pool(&self, sink: &str, waited: Option<Duration>, pool: PoolState);
    /// What the watcher read from the store itself, as `(gauge, value)` pairs (see
    /// `weir_telemetry`'s hot-store metrics for their names).
    fn health(&self, sink: &str, readings: &[(&'static str, f64)]);
}
