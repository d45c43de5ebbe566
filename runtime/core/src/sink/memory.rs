//! An in-memory [`Sink`], for tests of the delivery rule and of anything that writes outputs.
//!
//! It keeps what it accepted, settles outputs when told to (in any order) or at once, can be
//! made unavailable for a number of writes, refuses values over a size, and bounds how many
//! outputs it holds unsettled: a write blocks until there is room, as a full producer queue
//! does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{DeliveryFailure, Output, Refused, Sink, SinkError};
use crate::{InputAck, Record};

/// An output the sink holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub destination: String,
    pub partition: Option<i32>,
    pub record: Record,
    /// The source offset of the input it came from.
    pub source_offset: i64,
}

#[derive(Debug, Default)]
struct State {
    /// Accepted, not yet settled, in the order they were accepted.
    pending: Vec<(Stored, Arc<InputAck>)>,
    durable: Vec<Stored>,
    failure: Option<DeliveryFailure>,
    /// Writes still to answer with [`SinkError::Unavailable`].
    unavailable: u32,
    writes: u64,
    most_pending: usize,
}

/// See the module's description.
#[derive(Debug)]
pub struct MemorySink {
    state: Mutex<State>,
    room: Condvar,
    /// The most outputs held unsettled; a write blocks beyond it.
    capacity: usize,
    /// Whether an accepted output is durable at once.
    settle_at_once: bool,
    /// Values longer than this are refused.
    max_value: usize,
}

impl MemorySink {
    /// A sink that makes every output durable as soon as it takes it.
    pub fn durable() -> Self {
        Self::new(usize::MAX, true)
    }

    /// A sink that holds up to `capacity` outputs until [`MemorySink::ack`] or
    /// [`MemorySink::fail`] settles them.
    pub fn holding(capacity: usize) -> Self {
        Self::new(capacity, false)
    }

    fn new(capacity: usize, settle_at_once: bool) -> Self {
        Self {
            state: Mutex::default(),
            room: Condvar::new(),
            capacity: capacity.max(1),
            settle_at_once,
            max_value: usize::MAX,
        }
    }

    /// Refuses values longer than `bytes`.
    pub fn refusing_values_over(mut self, bytes: usize) -> Self {
        self.max_value = bytes;
        self
    }

    /// Answers the next `writes` writes with [`SinkError::Unavailable`].
    pub fn unavailable_for(&self, writes: u32) {
        self.state.lock().unavailable = writes;
    }

    /// Makes the `i`-th output still pending durable.
    pub fn ack(&self, i: usize) {
        let mut state = self.state.lock();
        let (stored, ack) = state.pending.remove(i);
        state.durable.push(stored);
        ack.ack();
        drop(state);
        self.room.notify_all();
    }

    /// Fails the `i`-th output still pending, for good.
    pub fn fail(&self, i: usize, reason: &str) {
        let mut state = self.state.lock();
        let (stored, ack) = state.pending.remove(i);
        state.failure.get_or_insert_with(|| DeliveryFailure {
            destination: stored.destination.clone(),
            partition: stored.partition,
            source_offset: stored.source_offset,
            reason: reason.to_owned(),
        });
        ack.fail();
        drop(state);
        self.room.notify_all();
    }

    /// Outputs accepted and not yet settled.
    pub fn pending(&self) -> usize {
        self.state.lock().pending.len()
    }

    /// The most outputs ever held unsettled at once.
    pub fn most_pending(&self) -> usize {
        self.state.lock().most_pending
    }

    /// What is durable, in the order it became so.
    pub fn stored(&self) -> Vec<Stored> {
        self.state.lock().durable.clone()
    }

    /// Writes answered so far, whatever the answer.
    pub fn writes(&self) -> u64 {
        self.state.lock().writes
    }
}

impl Sink for MemorySink {
    fn write(&self, outputs: &[Output<'_>]) -> Result<Vec<(usize, Refused)>, SinkError> {
        let mut state = self.state.lock();
        state.writes += 1;
        if state.unavailable > 0 {
            state.unavailable -= 1;
            return Err(SinkError::Unavailable("the store is down".into()));
        }
        let mut refused = Vec::new();
        for (i, out) in outputs.iter().enumerate() {
            let size = out.record.value.as_ref().map_or(0, |v| v.len());
            if size > self.max_value {
                let reason = format!("value of {size} bytes over {}", self.max_value);
                refused.push((i, Refused::new(reason)));
                continue;
            }
            // Full: wait for room, as a producer with a full queue does.
            while state.pending.len() >= self.capacity {
                self.room.wait(&mut state);
            }
            out.ack.add_pending(1);
            let stored = Stored {
                destination: out.destination.to_owned(),
                partition: out.partition,
                record: out.record.clone(),
                source_offset: out.ack.offset(),
            };
            if self.settle_at_once {
                state.durable.push(stored);
                out.ack.ack();
            } else {
                state.pending.push((stored, Arc::clone(out.ack)));
                state.most_pending = state.most_pending.max(state.pending.len());
            }
        }
        Ok(refused)
    }

    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        while !state.pending.is_empty() {
            if self.room.wait_until(&mut state, deadline).timed_out() {
                return Err(SinkError::Unavailable(format!(
                    "{} outputs still unsettled",
                    state.pending.len()
                )));
            }
        }
        Ok(())
    }

    fn failure(&self) -> Option<DeliveryFailure> {
        self.state.lock().failure.clone()
    }

    fn in_flight(&self) -> usize {
        self.pending()
    }
}
