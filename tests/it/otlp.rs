//! A real OTLP/gRPC trace receiver for tests: the collector end of `weir`'s span export.
//!
//! [`OtlpReceiver::start`] serves the OTLP `TraceService` on a free loopback port, on a tokio
//! runtime of its own thread, and keeps every span of every export request, flattened into
//! [`ReceivedSpan`]s in arrival order. Exporters batch as they like, so a test should wait for
//! what it needs with [`OtlpReceiver::wait_for`] rather than count requests.
//!
//! For failure tests: [`OtlpReceiver::black_hole`] accepts connections and never answers, and
//! [`OtlpReceiver::refused_endpoint`] is a loopback address where nothing listens.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

/// One span as the collector received it, with ids in lowercase hex and attribute values as
/// strings.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// `None` for a root span.
    pub parent_span_id: Option<String>,
    pub name: String,
    /// The OTLP `SpanKind`: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    /// Values stringified: ints in decimal, bools as `true`/`false`, arrays as `[a, b]`.
    pub attributes: BTreeMap<String, String>,
    /// The attributes of the span's resource (`service.name`, ...), stringified alike.
    pub resource: BTreeMap<String, String>,
    /// The name of the instrumentation scope that produced the span.
    pub scope: String,
    pub status_error: bool,
    pub status_message: String,
    /// Linked spans: (trace_id, span_id) in hex.
    pub links: Vec<(String, String)>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

impl ReceivedSpan {
    /// One line for failure messages.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:?} trace={} span={} parent={}",
            self.name,
            self.trace_id,
            self.span_id,
            self.parent_span_id.as_deref().unwrap_or("-"),
        );
        if self.status_error {
            let _ = write!(s, " ERROR({:?})", self.status_message);
        }
        if !self.links.is_empty() {
            let _ = write!(s, " links={:?}", self.links);
        }
        let _ = write!(s, " attrs={:?}", self.attributes);
        s
    }
}

/// The receiver's state, shared with the gRPC service.
#[derive(Default)]
struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
    requests: AtomicUsize,
}

struct Collector(Arc<Received>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = flatten(request.into_inner());
        self.0.spans.lock().unwrap().extend(spans);
        self.0.requests.fetch_add(1, Ordering::SeqCst);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC trace collector on a free loopback port, stopped when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Received>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Starts a receiver on `127.0.0.1:0`; it is serving when this returns.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Received::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = TraceServiceServer::new(Collector(Arc::clone(&received)));
        let thread = std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the OTLP receiver");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let incoming = tonic::transport::server::TcpIncoming::from(listener);
                    let server = tonic::transport::Server::builder()
                        .add_service(service)
                        .serve_with_incoming(incoming);
                    // A hard stop: dropping the runtime below drops every open connection, so
                    // a client that keeps its channel open cannot hold the receiver up.
                    tokio::select! {
                        result = server => result.expect("the OTLP receiver failed"),
                        _ = stopped => {}
                    }
                });
            })
            .expect("spawn the OTLP receiver thread");
        // The socket is bound and listening already, so connections queue until the runtime
        // accepts them: nothing to wait for.
        Self {
            addr,
            received,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT` or a pipeline's config.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().unwrap().clone()
    }

    /// How many export requests arrived (an exporter may split spans over several).
    pub fn export_requests(&self) -> usize {
        self.received.requests.load(Ordering::SeqCst)
    }

    /// Polls until `pred(all spans so far)` holds and returns those spans; panics after
    /// `timeout` with the count and the first spans received.
    pub fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if pred(&spans) {
                return spans;
            }
            if Instant::now() >= deadline {
                const SHOWN: usize = 20;
                let mut msg = format!(
                    "the OTLP receiver at {} did not get the expected spans within {timeout:?}: \
                     {} spans in {} export requests",
                    self.endpoint(),
                    spans.len(),
                    self.export_requests(),
                );
                for s in spans.iter().take(SHOWN) {
                    let _ = write!(msg, "\n  {}", s.summary());
                }
                if spans.len() > SHOWN {
                    let _ = write!(msg, "\n  ... and {} more", spans.len() - SHOWN);
                }
                panic!("{msg}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An endpoint that accepts TCP connections and never answers (a black-holed collector),
    /// open as long as the guard lives.
    pub fn black_hole() -> (String, BlackHole) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (s, a) = (Arc::clone(&stop), Arc::clone(&accepted));
        let thread = std::thread::spawn(move || {
            // Held, never read nor written, until the guard is dropped.
            let mut held: Vec<TcpStream> = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        held.push(stream);
                        a.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        (
            endpoint,
            BlackHole {
                stop,
                accepted,
                thread: Some(thread),
            },
        )
    }

    /// `http://127.0.0.1:PORT` where nothing listens: connections are refused. (The port was
    /// free a moment ago; another process could take it, which is unlikely in a test run.)
    pub fn refused_endpoint() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Don't turn a test's panic into an abort by panicking again here.
            let _ = thread.join();
        }
    }
}

/// Keeps a [`OtlpReceiver::black_hole`] open; closes it and its connections when dropped.
pub struct BlackHole {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl BlackHole {
    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Flattening an export request

fn flatten(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for rs in request.resource_spans {
        let resource = rs
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            let scope = ss.scope.map(|s| s.name).unwrap_or_default();
            for span in ss.spans {
                let status = span.status.unwrap_or_default();
                out.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty()
                        && span.parent_span_id.iter().any(|b| *b != 0))
                    .then(|| hex(&span.parent_span_id)),
                    name: span.name,
                    kind: span.kind,
                    attributes: attributes(&span.attributes),
                    resource: resource.clone(),
                    scope: scope.clone(),
                    status_error: status.code == StatusCode::Error as i32,
                    status_message: status.message,
                    links: span
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    start_unix_nanos: span.start_time_unix_nano,
                    end_unix_nanos: span.end_time_unix_nano,
                });
            }
        }
    }
    out
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(value).unwrap_or_default(),
            )
        })
        .collect()
}

fn value(v: &AnyValue) -> String {
    use any_value::Value;
    match &v.value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => hex(b),
        Some(Value::ArrayValue(a)) => format!(
            "[{}]",
            a.values.iter().map(value).collect::<Vec<_>>().join(", ")
        ),
        Some(Value::KvlistValue(l)) => format!(
            "{{{}}}",
            l.values
                .iter()
                .map(|kv| format!(
                    "{}={}",
                    kv.key,
                    kv.value.as_ref().map(value).unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Value::StringValueStrindex(i)) => format!("strindex:{i}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Self-tests: the real OTLP exporter against the receiver, no broker.

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::{Duration, Instant, SystemTime};

    use opentelemetry::trace::{
        Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};

    use super::OtlpReceiver;

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const ROOT: &str = "b7ad6b7169203331";
    const CHILD: &str = "00f067aa0ba902b7";
    const LINKED_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const LINKED_SPAN: &str = "53995c3f42cd8ad8";

    fn context(trace: &str, span: &str) -> SpanContext {
        SpanContext::new(
            TraceId::from_hex(trace).unwrap(),
            SpanId::from_hex(span).unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    }

    fn span(
        name: &'static str,
        id: &str,
        parent: SpanId,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> SpanData {
        let start = SystemTime::now();
        SpanData {
            span_context: context(TRACE, id),
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: kind,
            name: Cow::Borrowed(name),
            start_time: start,
            end_time: start + Duration::from_millis(3),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("weir-selftest").build(),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn exporter(endpoint: &str, timeout: Duration) -> opentelemetry_otlp::SpanExporter {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .build()
            .expect("build the OTLP exporter")
    }

    #[test]
    fn otlp_receiver_gets_spans_from_the_real_exporter() {
        let receiver = OtlpReceiver::start();
        assert!(receiver.endpoint().starts_with("http://127.0.0.1:"));
        let rt = runtime();
        // The tonic channel needs a runtime to be built in.
        let mut exporter =
            rt.block_on(async { exporter(&receiver.endpoint(), Duration::from_secs(10)) });
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name("weir-selftest")
                .with_attribute(KeyValue::new("weir.pipeline", "demo"))
                .build(),
        );

        let root = span(
            "poll",
            ROOT,
            SpanId::INVALID,
            SpanKind::Consumer,
            vec![
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.batch.message_count", 64_i64),
                KeyValue::new("weir.retry", false),
            ],
        );
        let mut child = span(
            "stage enrich",
            CHILD,
            SpanId::from_hex(ROOT).unwrap(),
            SpanKind::Internal,
            vec![KeyValue::new("weir.stage", "enrich")],
        );
        child.status = Status::error("guest trapped");
        let mut links = SpanLinks::default();
        links
            .links
            .push(Link::with_context(context(LINKED_TRACE, LINKED_SPAN)));
        child.links = links;

        // Two requests: the receiver accumulates across them.
        rt.block_on(exporter.export(vec![root])).expect("export 1");
        rt.block_on(exporter.export(vec![child])).expect("export 2");

        let spans = receiver.wait_for(Duration::from_secs(10), |s| s.len() >= 2);
        assert_eq!(spans.len(), 2, "{spans:#?}");
        assert_eq!(receiver.export_requests(), 2);

        let root = spans.iter().find(|s| s.name == "poll").unwrap();
        assert_eq!(root.trace_id, TRACE);
        assert_eq!(root.span_id, ROOT);
        assert_eq!(root.parent_span_id, None);
        assert_eq!(root.kind, 5, "SPAN_KIND_CONSUMER");
        assert_eq!(root.attributes["messaging.system"], "kafka");
        assert_eq!(root.attributes["messaging.batch.message_count"], "64");
        assert_eq!(root.attributes["weir.retry"], "false");
        assert_eq!(root.resource["service.name"], "weir-selftest");
        assert_eq!(root.resource["weir.pipeline"], "demo");
        assert_eq!(root.scope, "weir-selftest");
        assert!(!root.status_error);
        assert!(root.links.is_empty());
        assert_eq!(root.end_unix_nanos - root.start_unix_nanos, 3_000_000);

        let child = spans.iter().find(|s| s.name == "stage enrich").unwrap();
        assert_eq!(child.trace_id, TRACE);
        assert_eq!(child.span_id, CHILD);
        assert_eq!(child.parent_span_id.as_deref(), Some(ROOT));
        assert_eq!(child.kind, 1, "SPAN_KIND_INTERNAL");
        assert_eq!(child.attributes["weir.stage"], "enrich");
        assert!(child.status_error);
        assert_eq!(child.status_message, "guest trapped");
        assert_eq!(
            child.links,
            vec![(LINKED_TRACE.to_owned(), LINKED_SPAN.to_owned())]
        );
    }

    #[test]
    fn otlp_black_hole_and_refused_endpoints_fail_exports() {
        let rt = runtime();
        let (endpoint, hole) = OtlpReceiver::black_hole();
        let refused = OtlpReceiver::refused_endpoint();
        for (what, endpoint) in [("black hole", endpoint), ("refused", refused)] {
            let exporter = rt.block_on(async { exporter(&endpoint, Duration::from_millis(500)) });
            let started = Instant::now();
            let result = rt.block_on(exporter.export(vec![span(
                "lost",
                ROOT,
                SpanId::INVALID,
                SpanKind::Internal,
                vec![],
            )]));
            assert!(result.is_err(), "{what}: export to {endpoint} succeeded");
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{what}: export took {:?}",
                started.elapsed()
            );
        }
        assert!(hole.connections() >= 1, "the black hole accepted nothing");
    }

    #[test]
    #[should_panic(expected = "0 spans in 0 export requests")]
    fn otlp_wait_for_reports_what_arrived() {
        let receiver = OtlpReceiver::start();
        receiver.wait_for(Duration::from_millis(50), |s| !s.is_empty());
    }
}
