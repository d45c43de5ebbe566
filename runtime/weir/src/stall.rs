//! No silent stall: consume errors that repeat are counted by kind, logged once per kind per
//! interval, and a partition whose errors repeat with no record read between them is reported
//! stalled (in `/readyz` and `weir_partition_stalled`) until a record arrives again. A lane that
//! panics stops the pipeline instead of leaving a live process with a dead partition.
//!
//! Owns: the stall registry and the per-lane error count. Touches nothing of the data path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use weir_core::Throttle;
use weir_kafka::{KafkaError, TopicPartition};
use weir_telemetry::{Metrics, PartitionMetrics};

/// Errors in a row, with no record read between them, that make a partition stalled. A single
/// error the client recovers from (an offset reset, a leader change) does not.
pub(crate) const STALL_AFTER: u32 = 3;

/// The stalled partitions, with why, for `/readyz`.
#[derive(Debug, Default)]
pub(crate) struct Stalls(Mutex<BTreeMap<TopicPartition, String>>);

impl Stalls {
    fn set(&self, tp: &TopicPartition, why: String) {
        self.0.lock().insert(tp.clone(), why);
    }

    fn clear(&self, tp: &TopicPartition) {
        self.0.lock().remove(tp);
    }

    /// `None` when no partition is stalled; else every stalled partition and why.
    pub fn describe(&self) -> Option<String> {
        let stalls = self.0.lock();
        if stalls.is_empty() {
            return None;
        }
        let list: Vec<String> = stalls
            .iter()
            .map(|(tp, why)| format!("{tp} ({why})"))
            .collect();
        Some(format!("partition stalled: {}", list.join("; ")))
    }
}

/// One lane's consume errors.
pub(crate) struct FeedErrors {
    tp: TopicPartition,
    /// Errors since the last record read; the partition is stalled from [`STALL_AFTER`] on.
    in_a_row: u32,
    throttle: Throttle,
    /// The partition's handles (its `stalled` gauge).
    partition: PartitionMetrics,
    metrics: Arc<Metrics>,
    stalls: Arc<Stalls>,
}

impl FeedErrors {
    pub fn new(
        tp: TopicPartition,
        partition: PartitionMetrics,
        metrics: Arc<Metrics>,
        stalls: Arc<Stalls>,
    ) -> Self {
        Self {
            tp,
            in_a_row: 0,
            throttle: Throttle::default(),
            partition,
            metrics,
            stalls,
        }
    }

    /// A record was read: the partition moves.
    #[inline]
    pub fn record(&mut self) {
        if self.in_a_row != 0 {
            self.recovered();
        }
    }

    fn stalled(&self) -> bool {
        self.in_a_row >= STALL_AFTER
    }

    #[cold]
    fn recovered(&mut self) {
        let was_stalled = self.stalled();
        self.in_a_row = 0;
        if was_stalled {
            self.partition.stalled.set(0);
            self.stalls.clear(&self.tp);
            tracing::info!(partition = %self.tp, "Partition consuming again.");
        }
    }

    /// The client reported `error` for this partition.
    #[cold]
    pub fn error(&mut self, error: &KafkaError) {
        self.failed(&error.kind(), error);
    }

    /// An error of `kind` (see [`KafkaError::kind`]) for this partition.
    fn failed(&mut self, kind: &str, error: &dyn std::fmt::Display) {
        self.metrics
            .consume_error(&self.tp.topic, Some(self.tp.partition), kind);
        self.in_a_row = self.in_a_row.saturating_add(1);
        if let Some(repeats) = self.throttle.admit(kind, Instant::now()) {
            tracing::warn!(
                partition = %self.tp,
                %error,
                kind,
                repeats,
                "Consume error."
            );
        }
        if self.in_a_row == STALL_AFTER {
            self.partition.stalled.set(1);
            self.stalls.set(&self.tp, format!("{kind}: {error}"));
            tracing::error!(
                partition = %self.tp,
                %error,
                kind,
                "Partition stalled: every read fails and no record gets past this offset. \
                 /readyz reports it until a record is read again."
            );
        }
    }
}

impl Drop for FeedErrors {
    /// A lane that stops no longer holds its partition stalled: the partition is someone
    /// else's, or the process is stopping.
    fn drop(&mut self) {
        if self.stalled() {
            self.stalls.clear(&self.tp);
        }
    }
}

/// Runs `work`, a thread's body; a panic in it becomes `fatal(message)` instead of a thread that
/// is silently gone.
pub(crate) fn guarded(what: &str, fatal: impl FnOnce(String), work: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        fatal(format!("{what} panicked: {message}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_fatal_message() {
        let mut fatal = None;
        guarded(
            "lane clicks/0",
            |m| fatal = Some(m),
            || panic!("header key is not UTF-8"),
        );
        assert_eq!(
            fatal.as_deref(),
            Some("lane clicks/0 panicked: header key is not UTF-8")
        );
        let mut fatal = None;
        guarded("lane clicks/0", |m| fatal = Some(m), || {});
        assert_eq!(fatal, None);
    }

    #[test]
    fn stalled_after_errors_in_a_row_and_free_again_after_a_record() {
        let metrics = Metrics::new("p");
        let stalls = Arc::new(Stalls::default());
        let tp = TopicPartition {
            topic: "clicks".into(),
            partition: 3,
        };
        let pm = metrics.partition(&tp.topic, tp.partition);
        let mut errors = FeedErrors::new(
            tp.clone(),
            pm.clone(),
            Arc::clone(&metrics),
            Arc::clone(&stalls),
        );
        let error = "Decompression (codec 0x1) of message at 0 of 78 bytes failed";
        for _ in 1..STALL_AFTER {
            errors.failed("bad_compression", &error);
            assert!(stalls.describe().is_none(), "not stalled yet");
        }
        // A record between errors resets the count.
        errors.record();
        for _ in 1..STALL_AFTER {
            errors.failed("bad_compression", &error);
        }
        assert!(stalls.describe().is_none());
        errors.failed("bad_compression", &error);
        let why = stalls.describe().expect("stalled");
        assert!(
            why.contains("clicks/3") && why.contains("bad_compression"),
            "{why}"
        );
        assert_eq!(pm.stalled.get(), 1);
        let text = metrics.encode();
        assert!(
            text.contains(
                "weir_consume_errors_total{pipeline=\"p\",topic=\"clicks\",partition=\"3\",\
                 kind=\"bad_compression\"} 5"
            ),
            "{text}"
        );
        errors.record();
        assert!(stalls.describe().is_none());
        assert_eq!(pm.stalled.get(), 0);
        // Stalled again, then the lane stops: the partition is not held stalled.
        for _ in 0..STALL_AFTER {
            errors.failed("bad_compression", &error);
        }
        assert!(stalls.describe().is_some());
        drop(errors);
        assert!(stalls.describe().is_none());
    }
}
