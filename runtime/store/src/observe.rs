//! What a store sink reports about its work, for the engine to turn into metrics and spans.
//!
//! Owns: the [`StoreObserver`] seam and [`FileCommit`]. Knows nothing of Prometheus or OTLP.

use std::time::{Duration, SystemTime};

use weir_core::trace::{SpanId, TraceId};

/// One file made durable and visible.
#[derive(Debug)]
pub struct FileCommit<'a> {
    /// The sink's name (`[sinks.<name>]`).
    pub sink: &'a str,
    /// The file, relative to the sink's path: `dt=2026-12-05/clicks-0-42.parquet`.
    pub file: &'a str,
    /// The source partition whose records its rows come from, and their first and last offsets.
    pub topic: &'a str,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub rows: u64,
    pub bytes: u64,
    /// When writing the file started, and how long it took to make it durable.
    pub started: SystemTime,
    pub elapsed: Duration,
    /// Distinct sampled traces of its rows (bounded: `segment::MAX_LINKS`).
    pub links: &'a [(TraceId, SpanId)],
    /// Rows of sampled traces left out of `links`.
    pub unlinked: u64,
}

/// What a store sink reports about its writes.
pub trait StoreObserver: Send + Sync {
    /// A file was completed.
    fn file_written(&self, commit: &FileCommit<'_>);
    /// A write of sink `sink` failed for `reason` ([`crate::StoreError::reason`]); it is
    /// retried.
    fn failed(&self, sink: &str, reason: &'static str);
    /// How long sink `sink` has held its oldest row that is not yet in a complete file
    /// (`Duration::ZERO` when it holds none). Reported whenever the sink checks its rolls.
    fn held(&self, sink: &str, oldest: Duration);
}
