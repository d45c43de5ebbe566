//! What the hot-store sinks (PostgreSQL, Redis) report, turned into metrics and spans: one
//! `CLIENT` span per statement with the OpenTelemetry database attributes, linked to the sampled
//! traces of the records it wrote (or, with `statement = "record"`, a child of the record's own
//! span).
//!
//! Owns: [`HotObserver`]'s implementation. Touches telemetry only through `Metrics` and `Spans`.

use std::sync::Arc;
use std::time::Duration;

use weir_hot::{HotObserver, PoolState, Statement};
use weir_telemetry::{Attr, Metrics, SpanKind, SpanRecord, Spans};

/// Turns what the hot stores report into metrics and spans.
pub(crate) struct Observer {
    pub metrics: Arc<Metrics>,
    pub spans: Spans,
}

impl HotObserver for Observer {
    fn tracing(&self) -> bool {
        self.spans.enabled()
    }

    fn statement(&self, statement: &Statement<'_>) {
        let ok = statement.error.is_none();
        let seconds = statement.elapsed.as_secs_f64();
        self.metrics.hot_statement(
            statement.sink,
            statement.operation,
            statement.rows,
            seconds,
            ok,
        );
        if !self.spans.enabled() || !statement.sampled {
            return;
        }
        let text = |s: &str| Attr::Str(s.into());
        let int = |n: u64| Attr::Int(i64::try_from(n).unwrap_or(i64::MAX));
        let server = statement.server;
        self.spans.submit(SpanRecord {
            trace_id: statement.trace_id,
            span_id: statement.span_id,
            parent: statement.parent.map(|parent| (parent, false)),
            name: "weir.store.statement",
            kind: SpanKind::Client,
            start: statement.started,
            end: statement.started + statement.elapsed,
            attributes: vec![
                (
                    "weir.pipeline",
                    Attr::Str(Arc::clone(self.metrics.pipeline())),
                ),
                ("weir.sink", text(statement.sink)),
                ("db.system.name", Attr::Static(server.system)),
                ("db.namespace", text(&server.namespace)),
                ("db.collection.name", text(statement.collection)),
                ("db.operation.name", Attr::Static(statement.operation)),
                ("db.operation.batch.size", int(statement.rows)),
                ("server.address", text(&server.address)),
                ("server.port", Attr::Int(i64::from(server.port))),
            ],
            error: statement
                .error
                .map(|(kind, message)| format!("{kind}: {message}")),
            links: statement.links.to_vec(),
        });
    }

    fn failed(&self, sink: &str, kind: &'static str) {
        self.metrics.hot_failed(sink, kind);
    }

    fn pool(&self, sink: &str, waited: Option<Duration>, pool: PoolState) {
        self.metrics.hot_pool(
            sink,
            waited.map(|w| w.as_secs_f64()),
            pool.busy,
            pool.idle,
            pool.waiting,
            pool.max,
        );
    }

    fn health(&self, sink: &str, readings: &[(&'static str, f64)]) {
        self.metrics.hot_readings(sink, readings);
    }
}
