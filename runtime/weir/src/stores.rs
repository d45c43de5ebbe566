//! The pipeline's stores (every `[sinks.<name>]` that is not Kafka), opened at start, and what
//! the file stores report turned into metrics and spans (the hot stores': `crate::hot`): one `CLIENT` span per file made durable, linked to
//! (at most `weir_store::MAX_LINKS` of) the sampled traces whose rows it holds.
//!
//! Owns: opening the stores and [`Observer`]. Touches telemetry only through `Metrics` and
//! `Spans`; the stores themselves are `weir-store`'s.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use weir_config::{Pipeline, SinkKind};
use weir_core::trace::IdGenerator;
use weir_store::{FileCommit, ParquetSink, StoreObserver};
use weir_telemetry::{Attr, Metrics, SpanKind, SpanRecord, Spans};

use crate::error::EngineError;
use crate::shared::Stores;

/// Opens every store sink of `pipeline`.
pub(crate) fn open(
    pipeline: &Pipeline,
    metrics: &Arc<Metrics>,
    spans: &Spans,
) -> Result<Stores, EngineError> {
    let observer: Arc<dyn StoreObserver> = Arc::new(Observer {
        metrics: Arc::clone(metrics),
        spans: spans.clone(),
        ids: Mutex::new(IdGenerator::default()),
    });
    let hot: Arc<dyn weir_hot::HotObserver> = Arc::new(crate::hot::Observer {
        metrics: Arc::clone(metrics),
        spans: spans.clone(),
    });
    let mut stores: Vec<(Arc<str>, Arc<dyn weir_core::Sink>)> = Vec::new();
    for named in &pipeline.sinks {
        if let SinkKind::Postgres(settings) = &named.kind {
            let store = weir_hot::PostgresSink::open(&named.name, settings, Arc::clone(&hot))
                .map_err(|source| EngineError::HotStore {
                    name: named.name.clone(),
                    source: Box::new(source),
                })?;
            stores.push((named.name.as_str().into(), Arc::new(store)));
        }
        if let SinkKind::Redis(settings) = &named.kind {
            let store = weir_hot::RedisSink::open(&named.name, settings, Arc::clone(&hot))
                .map_err(|source| EngineError::HotStore {
                    name: named.name.clone(),
                    source: Box::new(source),
                })?;
            stores.push((named.name.as_str().into(), Arc::new(store)));
        }
        if let SinkKind::Parquet(settings) = &named.kind {
            let store = ParquetSink::observed(&named.name, settings, Some(Arc::clone(&observer)))
                .map_err(|source| EngineError::Store {
                name: named.name.clone(),
                source: Box::new(source),
            })?;
            stores.push((named.name.as_str().into(), Arc::new(store)));
        }
    }
    Ok(stores.into())
}

/// Turns what the stores report into metrics and spans.
struct Observer {
    metrics: Arc<Metrics>,
    spans: Spans,
    ids: Mutex<IdGenerator>,
}

impl StoreObserver for Observer {
    fn file_written(&self, commit: &FileCommit<'_>) {
        let seconds = commit.elapsed.as_secs_f64();
        self.metrics
            .store_file(commit.sink, commit.rows, commit.bytes, seconds);
        if !self.spans.enabled() {
            return;
        }
        let (trace_id, span_id) = {
            let mut ids = self.ids.lock();
            (ids.trace_id(), ids.span_id())
        };
        let text = |s: &str| Attr::Str(s.into());
        let int = |n: u64| Attr::Int(i64::try_from(n).unwrap_or(i64::MAX));
        self.spans.submit(SpanRecord {
            trace_id,
            span_id,
            parent: None,
            name: "weir.store.file",
            kind: SpanKind::Client,
            start: commit.started,
            end: commit.started + commit.elapsed,
            attributes: vec![
                (
                    "weir.pipeline",
                    Attr::Str(Arc::clone(self.metrics.pipeline())),
                ),
                ("weir.sink", text(commit.sink)),
                ("weir.store.file", text(commit.file)),
                ("messaging.destination.name", text(commit.topic)),
                (
                    "messaging.destination.partition.id",
                    text(&commit.partition.to_string()),
                ),
                ("weir.store.first_offset", Attr::Int(commit.first_offset)),
                ("weir.store.last_offset", Attr::Int(commit.last_offset)),
                ("weir.store.rows", int(commit.rows)),
                ("weir.store.bytes", int(commit.bytes)),
                ("weir.store.unlinked_rows", int(commit.unlinked)),
            ],
            error: None,
            links: commit.links.to_vec(),
        });
    }

    fn failed(&self, sink: &str, reason: &'static str) {
        self.metrics.store_failed(sink, reason);
    }

    fn held(&self, sink: &str, oldest: Duration) {
        self.metrics.store_held(sink, oldest.as_secs_f64());
    }
}
