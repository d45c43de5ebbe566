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

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use weir_core::trace::{self, SpanId, TraceId};
use weir_core::{Failure, Record, Redactor, Scrub};
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
    /// Batches of lines, one per offer. The lines, not the batches, are bounded, by `queued`.
    queue: SyncSender<Vec<String>>,
    /// Lines queued and not yet handed on: a full queue is seen before a line is formatted for
    /// it, so a stalled client costs the lanes a comparison per line, not a line's formatting.
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
            pending: Vec::new().into_iter(),
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

    /// Queues, for each client, the lines of `tapped` its filter admits, as one batch. Never
    /// waits: a line beyond the client's queue is dropped and counted.
    pub fn offer(&self, tapped: &[Tapped<'_>]) {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        for client in clients.iter() {
            let room = QUEUE_LINES.saturating_sub(client.queued.load(Ordering::Relaxed));
            let mut lines = Vec::new();
            let mut dropped = 0;
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
                if lines.len() < room {
                    lines.push(self.line(t));
                } else {
                    dropped += 1;
                }
            }
            let count = lines.len();
            if count > 0 {
                // Counted before it is sent, so that the reader, which uncounts each line it
                // hands on, never sees one uncounted.
                client.queued.fetch_add(count, Ordering::Relaxed);
                if client.queue.try_send(lines).is_err() {
                    // Full (of batches: never, since lines are bounded first) or disconnected.
                    client.queued.fetch_sub(count, Ordering::Relaxed);
                    dropped += count as u64;
                }
            }
            if dropped > 0 {
                client.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
    }

    /// A tapped record as one JSON line, redacted.
    fn line(&self, t: &Tapped<'_>) -> String {
        // Cloning a record copies no bytes; only a redacted one needs its own.
        let (record, scrub) = match &self.privacy {
            Some(p) => {
                let scrub = p.scrub_for(t.record);
                let mut copy = t.record.clone();
                p.redact_record(&mut copy);
                (Cow::Owned(copy), Some(scrub))
            }
            None => (Cow::Borrowed(t.record), None),
        };
        let record: &Record = &record;
        let clean = |text| clean(scrub.as_ref(), text);
        let headers: Vec<(&str, Option<Cow<'_, str>>)> = record
            .headers
            .iter()
            .map(|h| (h.name, h.value.map(|v| clean(String::from_utf8_lossy(v)))))
            .collect();
        let line = Line {
            event: t.event.as_str(),
            stage: t.stage,
            module_version: t.module_version,
            cohort: t.cohort,
            topic: t.topic,
            partition: t.partition,
            offset: record.offset,
            trace_id: trace::hex(t.trace_id),
            span_id: trace::hex(t.span_id),
            timestamp: record.timestamp,
            key: record
                .key
                .as_deref()
                .map(|k| clean(String::from_utf8_lossy(k))),
            value: record.value.as_deref().map(LineValue::of),
            headers: LineHeaders(&headers),
            error: t.failure.map(|f| LineError {
                kind: f.kind.as_str(),
                code: &f.code,
                message: clean(Cow::Borrowed(&f.message)),
            }),
        };
        serde_json::to_string(&line)
            .unwrap_or_else(|e| json!({ "error": e.to_string() }).to_string())
    }
}

/// `text` with `scrub`'s sensitive texts replaced.
fn clean<'a>(scrub: Option<&Scrub>, text: Cow<'a, str>) -> Cow<'a, str> {
    match scrub {
        Some(scrub) => match scrub.apply(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(cleaned) => Cow::Owned(cleaned),
        },
        None => text,
    }
}

/// A tap line, written field by field (no JSON tree is built for it).
#[derive(Serialize)]
struct Line<'a> {
    event: &'static str,
    stage: &'a str,
    module_version: &'a str,
    cohort: &'a str,
    topic: &'a str,
    partition: i32,
    offset: i64,
    trace_id: String,
    span_id: String,
    timestamp: Option<i64>,
    key: Option<Cow<'a, str>>,
    value: Option<LineValue<'a>>,
    headers: LineHeaders<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<LineError<'a>>,
}

#[derive(Serialize)]
struct LineError<'a> {
    kind: &'static str,
    code: &'a str,
    message: Cow<'a, str>,
}

/// A value as JSON when it is JSON, else as text (invalid UTF-8 replaced).
#[derive(Serialize)]
#[serde(untagged)]
enum LineValue<'a> {
    /// JSON on one line, copied as it is.
    Raw(&'a RawValue),
    /// JSON over several lines, rewritten onto one.
    Json(Value),
    Text(Cow<'a, str>),
}

impl<'a> LineValue<'a> {
    fn of(value: &'a [u8]) -> Self {
        match serde_json::from_slice::<&RawValue>(value) {
            Ok(raw) if !raw.get().contains(['\n', '\r']) => Self::Raw(raw),
            Ok(_) => serde_json::from_slice(value)
                .map(Self::Json)
                .unwrap_or_else(|_| Self::Text(String::from_utf8_lossy(value))),
            Err(_) => Self::Text(String::from_utf8_lossy(value)),
        }
    }
}

/// Headers as an object of texts (a null header as null; a repeated name keeps the last).
struct LineHeaders<'a>(&'a [(&'a str, Option<Cow<'a, str>>)]);

impl Serialize for LineHeaders<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let last = |i: usize| !self.0[i + 1..].iter().any(|(n, _)| *n == self.0[i].0);
        let mut map = serializer.serialize_map(None)?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if last(i) {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

/// One client's lines, read by its admin connection; detaches the client when dropped.
#[derive(Debug)]
pub struct TapStream {
    hub: Arc<TapHub>,
    id: u64,
    lines: Receiver<Vec<String>>,
    /// The rest of the batch being handed on.
    pending: std::vec::IntoIter<String>,
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
        if self.pending.as_slice().is_empty() {
            match self.lines.recv_timeout(wait) {
                Ok(batch) => self.pending = batch.into_iter(),
                Err(RecvTimeoutError::Timeout) => return Next::Idle,
                Err(RecvTimeoutError::Disconnected) => return Next::End,
            }
        }
        match self.pending.next() {
            Some(line) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Next::Line(line)
            }
            None => Next::Idle,
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
