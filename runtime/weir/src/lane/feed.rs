//! A lane's input: its partition's records, gathered into batches.
//!
//! Owns: reading the partition feed, the lane's consume-error accounting (through
//! [`FeedErrors`]) and its backpressure flag. Touches nothing downstream of a batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weir_core::Record;
use weir_kafka::PartitionFeed;

use crate::stall::FeedErrors;

/// How long a lane waits for its partition's next record before it looks at its stop flag (and,
/// in aggregate and transactional lanes, tends windows, checkpoints and transactions).
pub(super) const WAIT: Duration = Duration::from_millis(100);

/// Where a lane's batches come from.
pub(super) struct Batcher {
    feed: PartitionFeed,
    errors: FeedErrors,
    batch_size: usize,
    /// Set when the last batch was full: records are waiting for the lane (backpressure).
    saturated: Arc<AtomicBool>,
}

impl Batcher {
    pub fn new(
        feed: PartitionFeed,
        errors: FeedErrors,
        batch_size: usize,
        saturated: Arc<AtomicBool>,
    ) -> Self {
        Self {
            feed,
            errors,
            batch_size: batch_size.max(1),
            saturated,
        }
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Fills `batch` (cleared first) with up to a batch of records: waits up to [`WAIT`] for the
    /// first, then takes only what is already there. An empty batch means none came in time,
    /// or the feed failed (the error is counted, and the partition marked stalled when errors
    /// keep coming).
    pub fn next(&mut self, batch: &mut Vec<Record>) {
        batch.clear();
        let mut wait = WAIT;
        while batch.len() < self.batch_size {
            match self.feed.poll(wait) {
                Ok(Some(record)) => {
                    self.errors.record();
                    batch.push(record);
                }
                Ok(None) => break,
                Err(error) => {
                    self.errors.error(&error);
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        self.saturated
            .store(batch.len() == self.batch_size, Ordering::Relaxed);
    }
}
