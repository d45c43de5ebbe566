//! Which offsets of a partition are safe to commit.
//!
//! Weir's delivery rule: a partition's committed offset never passes a record whose outputs
//! (including dead letters) are not all acknowledged by the broker. A lane registers every input
//! record it processes, in offset order, with [`PartitionTracker::track`]; the [`InputAck`] it gets
//! back counts the record's unacknowledged outputs. The committer asks
//! [`PartitionTracker::committable`] for the contiguous acknowledged prefix.
//!
//! ```
//! use weir_core::PartitionTracker;
//!
//! let t = PartitionTracker::new();
//! let a = t.track(10);
//! let b = t.track(11);
//! a.add_pending(2); // record 10 produced two outputs
//! a.settle();       // ...and all of them have been handed to the producer
//! b.settle();       // record 11 was filtered out: nothing to wait for
//! assert_eq!(t.committable(), None); // 10 still has two outputs in flight
//! a.ack();
//! a.ack();
//! assert_eq!(t.committable(), Some(12)); // Kafka commits the next offset to read
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use parking_lot::Mutex;

/// The outstanding outputs of one input record.
///
/// It starts with one pending unit, the *settle guard*, held while the lane is still producing the
/// record's outputs, so that an early acknowledgement cannot complete the record before all its
/// outputs are registered.
#[derive(Debug)]
pub struct InputAck {
    offset: i64,
    remaining: AtomicU32,
    failed: AtomicBool,
}

impl InputAck {
    /// The source offset of the record.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Registers `n` more outputs to wait for.
    pub fn add_pending(&self, n: u32) {
        self.remaining.fetch_add(n, Ordering::AcqRel);
    }

    /// One output was acknowledged by the broker.
    pub fn ack(&self) {
        let before = self.remaining.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before > 0, "more acknowledgements than outputs");
    }

    /// All outputs are registered: releases the settle guard.
    pub fn settle(&self) {
        self.ack();
    }

    /// An output could not be delivered: the record, and every record after it, must never be
    /// committed by this process.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Release);
        self.ack();
    }

    /// Whether every output was acknowledged and the guard released.
    pub fn is_complete(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    /// Whether an output of this record failed delivery.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Tracked records not yet known complete, in offset order.
    pending: VecDeque<Arc<InputAck>>,
    /// The next offset to read after the contiguous completed prefix.
    committable: Option<i64>,
    /// The offset of the first record whose delivery failed.
    failed_at: Option<i64>,
}

/// The delivery state of one partition's records.
#[derive(Debug, Default)]
pub struct PartitionTracker {
    inner: Mutex<Inner>,
}

impl PartitionTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts tracking the record at `offset`. Offsets must be tracked in increasing order.
    pub fn track(&self, offset: i64) -> Arc<InputAck> {
        let ack = Arc::new(InputAck {
            offset,
            remaining: AtomicU32::new(1),
            failed: AtomicBool::new(false),
        });
        let mut inner = self.inner.lock();
        debug_assert!(
            inner.pending.back().is_none_or(|b| b.offset < offset)
                && inner.committable.is_none_or(|c| c <= offset),
            "offset {offset} tracked out of order"
        );
        inner.pending.push_back(Arc::clone(&ack));
        ack
    }

    /// The offset to commit: one past the longest prefix of tracked records that are complete.
    /// `None` until the first record completes. Never moves past a record whose delivery failed.
    pub fn committable(&self) -> Option<i64> {
        let mut inner = self.inner.lock();
        while let Some(front) = inner.pending.front() {
            let (offset, failed, complete) =
                (front.offset, front.has_failed(), front.is_complete());
            if failed {
                inner.failed_at.get_or_insert(offset);
                break;
            }
            if !complete {
                break;
            }
            let next = offset + 1;
            inner.pending.pop_front();
            inner.committable = Some(next);
        }
        inner.committable
    }

    /// Records tracked but not yet complete.
    pub fn in_flight(&self) -> usize {
        self.committable();
        self.inner.lock().pending.len()
    }

    /// The offset of the first record whose delivery failed, if any.
    pub fn failed_at(&self) -> Option<i64> {
        self.committable();
        let inner = self.inner.lock();
        inner.failed_at.or_else(|| {
            inner
                .pending
                .iter()
                .find(|a| a.has_failed())
                .map(|a| a.offset)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_committable_before_the_first_completion() {
        let t = PartitionTracker::new();
        assert_eq!(t.committable(), None);
        let a = t.track(5);
        assert_eq!(t.committable(), None);
        a.settle();
        assert_eq!(t.committable(), Some(6));
    }

    #[test]
    fn an_early_ack_cannot_complete_a_record_still_being_produced() {
        let t = PartitionTracker::new();
        let a = t.track(0);
        a.add_pending(1);
        a.ack(); // first output acknowledged before the second is registered
        assert_eq!(t.committable(), None);
        a.add_pending(1);
        a.settle();
        assert_eq!(t.committable(), None);
        a.ack();
        assert_eq!(t.committable(), Some(1));
    }

    #[test]
    fn a_slow_record_holds_back_every_later_one() {
        let t = PartitionTracker::new();
        let acks: Vec<_> = (100..110).map(|o| t.track(o)).collect();
        for a in &acks {
            a.add_pending(1);
            a.settle();
        }
        for a in acks.iter().rev().take(9) {
            a.ack(); // 101..=109 acknowledged, 100 not
        }
        assert_eq!(t.committable(), None);
        assert_eq!(t.in_flight(), 10);
        acks[0].ack();
        assert_eq!(t.committable(), Some(110));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn gaps_in_offsets_are_fine() {
        // Compaction and transaction markers leave gaps between consumed offsets.
        let t = PartitionTracker::new();
        let a = t.track(3);
        let b = t.track(7);
        b.settle();
        assert_eq!(t.committable(), None);
        a.settle();
        assert_eq!(t.committable(), Some(8));
    }

    #[test]
    fn a_failed_delivery_pins_the_commit_point_forever() {
        let t = PartitionTracker::new();
        let a = t.track(0);
        let b = t.track(1);
        let c = t.track(2);
        a.settle();
        b.add_pending(1);
        b.settle();
        b.fail();
        c.settle();
        assert_eq!(t.committable(), Some(1));
        assert_eq!(t.failed_at(), Some(1));
        let d = t.track(3);
        d.settle();
        assert_eq!(t.committable(), Some(1));
    }

    #[test]
    fn acks_from_other_threads_are_counted() {
        let t = Arc::new(PartitionTracker::new());
        let acks: Vec<_> = (0..1000).map(|o| t.track(o)).collect();
        for a in &acks {
            a.add_pending(4);
            a.settle();
        }
        std::thread::scope(|s| {
            for chunk in acks.chunks(250) {
                s.spawn(move || {
                    for a in chunk {
                        for _ in 0..4 {
                            a.ack();
                        }
                    }
                });
            }
        });
        assert_eq!(t.committable(), Some(1000));
    }
}
