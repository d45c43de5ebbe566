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

/// Where a lane's batches come from.
pub(super) struct Batcher {
    feed: PartitionFeed,
    errors: FeedErrors,
    batch_size: usize,
    /// Set by the feed's arrival callback when the queue goes from empty to holding something;
    /// cleared when the batcher reads the queue.
    ready: Arc<AtomicBool>,
    /// Whether the queue may hold more than the last read took.
    more: bool,
    /// Set when the last batch was full: records are waiting for the lane (backpressure).
    saturated: Arc<AtomicBool>,
}

impl Batcher {
    pub fn new(
        feed: PartitionFeed,
        errors: FeedErrors,
        batch_size: usize,
        ready: Arc<AtomicBool>,
        saturated: Arc<AtomicBool>,
    ) -> Self {
        Self {
            feed,
            errors,
            batch_size: batch_size.max(1),
            ready,
            more: false,
            saturated,
        }
    }

    /// Fills `batch` (cleared first) with up to a batch of the records already there, without
    /// waiting. Answers whether it read the queue, and whether more may be waiting (the batch
    /// is full, or the feed's error cut it short). The queue is read only when something
    /// arrived since it was last found empty, more may be waiting, or `anyway`. An empty batch
    /// means nothing was there, or the feed failed (the error is counted, and the partition
    /// marked stalled when errors keep coming).
    pub fn next(&mut self, batch: &mut Vec<Record>, anyway: bool) -> (bool, bool) {
        batch.clear();
        if !self.ready.swap(false, Ordering::AcqRel) && !self.more && !anyway {
            return (false, false);
        }
        self.more = false;
        while batch.len() < self.batch_size {
            match self.feed.poll(Duration::ZERO) {
                Ok(Some(record)) => {
                    self.errors.record();
                    batch.push(record);
                }
                Ok(None) => break,
                Err(error) => {
                    self.errors.error(&error);
                    // Records may follow the error, and the feed says nothing of them until
                    // its queue has been empty once.
                    self.more = true;
                    break;
                }
            }
        }
        let full = batch.len() == self.batch_size;
        self.more |= full;
        self.saturated.store(full, Ordering::Relaxed);
        (true, self.more)
    }
}
