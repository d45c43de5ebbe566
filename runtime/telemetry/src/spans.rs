//! Span export: a bounded queue in front of the OTLP/gRPC exporter of `opentelemetry-otlp`.
//!
//! Lanes decide which records are traced (tail sampling happens in the engine, when a record has
//! gone through every stage) and hand the kept spans to [`Spans::submit`], which never blocks:
//! when the queue is full the span is dropped and counted. One exporter thread drains the queue
//! in batches; an export that fails or takes longer than the timeout counts its spans as dropped.
//! A collector that is down, slow or black-holed therefore costs the data path nothing but the
//! spans themselves, and memory stays bounded by the queue.

use std::borrow::Cow;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use opentelemetry::trace::{
    Link, SpanContext, SpanId as OtelSpanId, SpanKind as OtelKind, Status, TraceFlags,
    TraceId as OtelTraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use weir_core::trace::{SpanId, TraceId};

use crate::TelemetryError;
use crate::metrics::{DropReason, Metrics};

/// The most spans sent in one export call.
const EXPORT_BATCH: usize = 512;
/// How long the exporter waits for more spans before sending a partial batch.
const EXPORT_LINGER: Duration = Duration::from_millis(200);

/// What kind of work a span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Processing of a consumed record (OTel `CONSUMER`).
    Consumer,
    /// Work inside the runtime, such as one stage call over a batch.
    Internal,
    /// The making of new records, such as an aggregate's window result (OTel `PRODUCER`).
    Producer,
    /// A call to an outside service, such as a file written to a store (OTel `CLIENT`).
    Client,
}

/// An attribute value.
#[derive(Debug, Clone)]
pub enum Attr {
    Str(Arc<str>),
    Static(&'static str),
    Int(i64),
}

/// A finished span the engine decided to keep. Converted to OTLP on the exporter thread, so the
/// data path pays only for building this.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The parent span, and whether it lives outside this process (an upstream producer).
    pub parent: Option<(SpanId, bool)>,
    pub name: &'static str,
    pub kind: SpanKind,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Attr)>,
    /// The error that failed the record, if it failed.
    pub error: Option<String>,
    /// Spans this one is linked to (trace id, span id).
    pub links: Vec<(TraceId, SpanId)>,
}

/// The handle lanes submit spans through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Spans {
    tx: Option<Sender<SpanRecord>>,
    metrics: Arc<Metrics>,
}

/// Stops the exporter when dropped, after it sent what it could within its timeout.
#[derive(Debug)]
#[must_use = "span export stops when the guard is dropped"]
pub struct SpansGuard {
    thread: Option<JoinHandle<()>>,
    deadline: Duration,
}

impl Drop for SpansGuard {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // The exporter ends once every `Spans` handle is gone and the queue is empty; wait for
        // it, but never longer than one export may take.
        let until = Instant::now() + self.deadline;
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

impl Spans {
    /// No export: spans are not built at all.
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Self { tx: None, metrics }
    }

    /// Starts exporting to the OTLP/gRPC collector at `endpoint`, queueing at most `queue` spans
    /// and giving each export call `timeout`. `resource` names this process (service name,
    /// pipeline, instance).
    pub fn start(
        endpoint: &str,
        queue: usize,
        timeout: Duration,
        resource: Vec<(&'static str, String)>,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, SpansGuard), TelemetryError> {
        let (tx, rx) = crossbeam_channel::bounded(queue);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TelemetryError::Exporter(format!("cannot start its runtime: {e}")))?;
        let mut exporter = {
            let _entered = runtime.enter();
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?
        };
        exporter.set_resource(
            &Resource::builder_empty()
                .with_attributes(resource.into_iter().map(|(k, v)| KeyValue::new(k, v)))
                .build(),
        );
        let scope = InstrumentationScope::builder("weir")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let worker = Exporter {
            rx,
            exporter,
            runtime,
            timeout,
            scope,
            metrics: Arc::clone(&metrics),
        };
        let thread = std::thread::Builder::new()
            .name("weir-span-export".into())
            .spawn(move || worker.run())
            .map_err(|e| TelemetryError::Exporter(format!("cannot start its thread: {e}")))?;
        Ok((
            Self {
                tx: Some(tx),
                metrics,
            },
            SpansGuard {
                thread: Some(thread),
                deadline: timeout + Duration::from_secs(1),
            },
        ))
    }

    /// Whether spans are exported; when not, the engine does not build them.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues `span` for export, or drops and counts it when the queue is full. Never blocks.
    pub fn submit(&self, span: SpanRecord) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.spans_dropped(DropReason::QueueFull, 1);
            }
        }
    }
}

struct Exporter {
    rx: Receiver<SpanRecord>,
    exporter: opentelemetry_otlp::SpanExporter,
    runtime: tokio::runtime::Runtime,
    timeout: Duration,
    scope: InstrumentationScope,
    metrics: Arc<Metrics>,
}

impl Exporter {
    fn run(self) {
        let mut batch: Vec<SpanData> = Vec::with_capacity(EXPORT_BATCH);
        let mut open = true;
        while open {
            match self.rx.recv_timeout(EXPORT_LINGER) {
                Ok(span) => batch.push(self.convert(span)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            while batch.len() < EXPORT_BATCH {
                match self.rx.try_recv() {
                    Ok(span) => batch.push(self.convert(span)),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            let spans = std::mem::replace(&mut batch, Vec::with_capacity(EXPORT_BATCH));
            let result = self.runtime.block_on(async {
                tokio::time::timeout(self.timeout, self.exporter.export(spans)).await
            });
            match result {
                Ok(Ok(())) => self.metrics.spans_exported(n),
                Ok(Err(error)) => {
                    tracing::debug!(%error, spans = n, "Span export failed; spans dropped.");
                    self.metrics.spans_dropped(DropReason::ExportFailed, n);
                }
                Err(_) => {
                    tracing::debug!(spans = n, "Span export timed out; spans dropped.");
                    self.metrics.spans_dropped(DropReason::ExportFailed, n);
                }
            }
        }
        let _ = self
            .exporter
            .shutdown_with_timeout(Duration::from_millis(100));
    }

    fn convert(&self, s: SpanRecord) -> SpanData {
        let trace_id = OtelTraceId::from_bytes(s.trace_id);
        let context = SpanContext::new(
            trace_id,
            OtelSpanId::from_bytes(s.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let (parent, remote) = s
            .parent
            .map_or((OtelSpanId::INVALID, false), |(p, remote)| {
                (OtelSpanId::from_bytes(p), remote)
            });
        let attributes = s
            .attributes
            .into_iter()
            .map(|(k, v)| {
                let v: Value = match v {
                    Attr::Str(s) => Value::from(s.to_string()),
                    Attr::Static(s) => Value::from(s),
                    Attr::Int(i) => Value::from(i),
                };
                KeyValue::new(k, v)
            })
            .collect();
        let links = s
            .links
            .into_iter()
            .map(|(t, sp)| {
                Link::with_context(SpanContext::new(
                    OtelTraceId::from_bytes(t),
                    OtelSpanId::from_bytes(sp),
                    TraceFlags::SAMPLED,
                    false,
                    TraceState::NONE,
                ))
            })
            .collect();
        let mut span_links = SpanLinks::default();
        span_links.links = links;
        SpanData {
            span_context: context,
            parent_span_id: parent,
            parent_span_is_remote: remote,
            span_kind: match s.kind {
                SpanKind::Consumer => OtelKind::Consumer,
                SpanKind::Internal => OtelKind::Internal,
                SpanKind::Producer => OtelKind::Producer,
                SpanKind::Client => OtelKind::Client,
            },
            name: Cow::Borrowed(s.name),
            start_time: s.start,
            end_time: s.end,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: span_links,
            status: match s.error {
                Some(message) => Status::Error {
                    description: message.into(),
                },
                None => Status::Unset,
            },
            instrumentation_scope: self.scope.clone(),
        }
    }
}
