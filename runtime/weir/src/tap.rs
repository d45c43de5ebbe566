//! `weir tap`'s engine side: the records entering, leaving and dead-lettered at each stage,
//! offered by the lanes to the tap clients attached through `GET /admin/tap`.
//!
//! The data path never waits on a client. A lane asks [`TapHub::attached`] once per batch (one
//! atomic load: nothing else happens without a client); with clients attached, it offers the
//! batch's [`Tapped`] records, and each line a client's filter admits goes into that client's
//! bounded queue, or, when the queue is full, is dropped and counted. The client is told how
//! many lines it lost in a `{"dropped": N}` line. Lines are redacted with the pipeline's
//! `[privacy]` before they are queued.
//!
//! Owns: [`TapHub`], the clients' queues and the tap line's format.

mod filter;

pub use filter::{TapFilter, parse_trace_id, percent_encode};

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use weir_core::trace::{self, SpanId, TraceId};
use weir_core::{Failure, Record, Redactor};
use weir_telemetry::{LineStream, Next, Refusal};

use filter::Seen;

/// Tap clients attached at once; one more is refused (429).
pub const MAX_CLIENTS: usize = 4;
/// Lines queued for one client; beyond, lines are dropped and counted.
pub const QUEUE_LINES: usize = 4096;

/// Which of a stage's events a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    In,
    Out,
    Dead,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
            Self::Dead => "dead",
        }
    }
}

/// One record at one stage, as a lane offers it.
#[derive(Debug)]
pub struct Tapped<'a> {
    pub event: EventKind,
    pub stage: &'a str,
    pub module_version: &'a str,
    pub cohort: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub trace_id: &'a TraceId,
    pub span_id: &'a SpanId,
    pub record: &'a Record,
    /// Why the record failed (`Dead` only).
    pub failure: Option<&'a Failure>,
}

struct Client {
    id: u64,
    filter: TapFilter,
    queue: SyncSender<String>,
    /// Lines in `queue`: a full queue is seen before a line is formatted for it, so a stalled
    /// client costs the lanes a load and an increment per line, not a line's formatting.
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

/// The tap clients of one instance.
pub struct TapHub {
    clients: Mutex<Vec<Client>>,
    attached: AtomicUsize,
    next_id: AtomicU64,
    closed: Arc<AtomicBool>,
    privacy: Option<Arc<Redactor>>,
}

impl std::fmt::Debug for TapHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapHub")
            .field("attached", &self.attached.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TapHub {
    /// A hub whose lines are redacted by `privacy`.
    pub fn new(privacy: Option<Arc<Redactor>>) -> Arc<Self> {
        Arc::new(Self {
            clients: Mutex::new(Vec::new()),
            attached: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            closed: Arc::new(AtomicBool::new(false)),
            privacy,
        })
    }

    /// Whether any client is attached: lanes tap a batch only then.
    pub fn attached(&self) -> bool {
        self.attached.load(Ordering::Relaxed) > 0
    }

    /// Attaches a client that sees what `filter` admits.
    pub fn attach(self: &Arc<Self>, filter: TapFilter) -> Result<TapStream, Refusal> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS {
            return Err(Refusal::TooMany(format!(
                "{MAX_CLIENTS} tap clients are attached already; try again when one leaves"
            )));
        }
        let (queue, lines) = sync_channel(QUEUE_LINES);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        clients.push(Client {
            id,
            filter,
            queue,
            queued: Arc::clone(&queued),
            dropped: Arc::clone(&dropped),
        });
        self.attached.store(clients.len(), Ordering::Relaxed);
        tracing::info!(clients = clients.len(), "Tap client attached.");
        Ok(TapStream {
            hub: Arc::clone(self),
            id,
            lines,
            queued,
            dropped,
            told: 0,
        })
    }

    fn detach(&self, id: u64) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|c| c.id != id);
        self.attached.store(clients.len(), Ordering::Relaxed);
        tracing::info!(clients = clients.len(), "Tap client detached.");
    }

    /// Ends every client's stream: the instance is stopping.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Queues, for each client, the lines of `tapped` its filter admits. Never waits: a full
    /// queue drops the line and counts it.
    pub fn offer(&self, tapped: &[Tapped<'_>]) {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        for client in clients.iter() {
            for t in tapped {
                let seen = Seen {
                    stage: t.stage,
                    partition: t.partition,
                    key: t.record.key.as_deref(),
                    trace_id: t.trace_id,
                    event: t.event,
                };
                if !client.filter.admits(&seen) {
                    continue;
                }
                if client.queued.load(Ordering::Relaxed) >= QUEUE_LINES {
                    client.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // Counted before it is sent, so that the reader, which uncounts it, never
                // sees it uncounted.
                client.queued.fetch_add(1, Ordering::Relaxed);
                match client.queue.try_send(self.line(t)) {
                    Ok(()) => {}
                    Err(TrySendError::Disconnected(_)) => {
                        client.queued.fetch_sub(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Full(_)) => {
                        client.queued.fetch_sub(1, Ordering::Relaxed);
                        client.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// A tapped record as one JSON line, redacted.
    fn line(&self, t: &Tapped<'_>) -> String {
        let mut record = t.record.clone();
        let scrub = self.privacy.as_ref().map(|p| {
            let scrub = p.scrub_for(&record);
            p.redact_record(&mut record);
            scrub
        });
        let clean = |text: &str| match &scrub {
            Some(scrub) => scrub.apply(text).into_owned(),
            None => text.to_owned(),
        };
        let mut line = json!({
            "event": t.event.as_str(),
            "stage": t.stage,
            "module_version": t.module_version,
            "cohort": t.cohort,
            "topic": t.topic,
            "partition": t.partition,
            "offset": record.offset,
            "trace_id": trace::hex(t.trace_id),
            "span_id": trace::hex(t.span_id),
            "timestamp": record.timestamp,
            "key": record.key.as_deref().map(|k| Value::String(clean(&String::from_utf8_lossy(k)))),
            "value": record.value.as_deref().map(value_json),
            "headers": headers_json(&record, &clean),
        });
        if let Some(failure) = t.failure {
            line["error"] = json!({
                "kind": failure.kind.as_str(),
                "code": failure.code,
                "message": clean(&failure.message),
            });
        }
        line.to_string()
    }
}

/// A value as JSON when it is JSON, else as text (invalid UTF-8 replaced).
fn value_json(value: &[u8]) -> Value {
    serde_json::from_slice(value)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(value).into_owned()))
}

/// Headers as an object of texts (a null header as null; a repeated name keeps the last).
fn headers_json(record: &Record, clean: &dyn Fn(&str) -> String) -> Value {
    let mut map = Map::new();
    for h in record.headers.iter() {
        let value = h
            .value
            .map(|v| Value::String(clean(&String::from_utf8_lossy(v))));
        map.insert(h.name.to_owned(), value.unwrap_or(Value::Null));
    }
    Value::Object(map)
}

/// One client's lines, read by its admin connection; detaches the client when dropped.
#[derive(Debug)]
pub struct TapStream {
    hub: Arc<TapHub>,
    id: u64,
    lines: Receiver<String>,
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
    /// Dropped lines the client has been told of.
    told: u64,
}

impl LineStream for TapStream {
    fn next(&mut self, wait: Duration) -> Next {
        if self.hub.closed.load(Ordering::Acquire) {
            return Next::End;
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > self.told {
            self.told = dropped;
            return Next::Line(json!({ "dropped": dropped }).to_string());
        }
        match self.lines.recv_timeout(wait) {
            Ok(line) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Next::Line(line)
            }
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => Next::End,
        }
    }
}

impl Drop for TapStream {
    fn drop(&mut self) {
        self.hub.detach(self.id);
    }
}

#[cfg(test)]
mod tests;
