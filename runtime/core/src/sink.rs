//! The Sink seam: where a lane's outputs and dead letters go.
//!
//! A [`Sink`] takes a batch of [`Output`]s, each with the [`InputAck`] of the input record it
//! came from. It answers at once which outputs it refuses (it will never take them as they are:
//! too large, of the wrong shape); every output it accepts settles exactly one unit of its
//! acknowledgement later, with [`InputAck::ack`] once the output is durable or
//! [`InputAck::fail`] once it never can be. The delivery rule stays here, in core, and is the
//! same for every sink: [`crate::PartitionTracker`] commits only the prefix of input records
//! whose every output is durable.
//!
//! [`write_all`] is how the engine writes: it retries while the sink is unavailable (with
//! backoff, until told to stop), so a store that is down turns into backpressure rather than
//! loss. A sink that is full simply blocks in [`Sink::write`]: that is backpressure too, and it
//! bounds the memory outputs in flight can hold.
//!
//! Owns: the trait, the write-and-retry loop, and [`memory::MemorySink`] (an in-memory sink for
//! tests). Touches no client library: Kafka's implementation lives in `weir-kafka`.

pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use crate::{InputAck, Record};

/// One record for a sink, and the input record it settles.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    /// The destination inside the sink: a topic, for Kafka.
    pub destination: &'a str,
    /// The partition of the destination, when the sink has partitions and the pipeline chose
    /// one; `None` lets the sink choose (Kafka hashes the key).
    pub partition: Option<i32>,
    pub record: &'a Record,
    /// The topic the input record this output came from was read from.
    pub source_topic: &'a str,
    /// The partition of `source_topic` the input record was read from.
    pub source_partition: i32,
    /// The acknowledgement of the input record this output came from (it knows the source
    /// offset): one unit of it is settled when the output is durable, or failed for good.
    pub ack: &'a Arc<InputAck>,
}

/// Why a sink will not take one output as it is. The output's acknowledgement is untouched: the
/// caller decides what becomes of the record (the engine dead-letters it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refused {
    pub reason: String,
    /// The field of the record's value at fault, when the sink can tell (a column of a store).
    pub field: Option<String>,
    /// The store's own code for the refusal, when it has one (a PostgreSQL SQLSTATE such as
    /// `23505`): it becomes the dead letter's `weir.error.code`.
    pub code: Option<String>,
}

impl Refused {
    /// A refusal for `reason`, naming no field and no code.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            field: None,
            code: None,
        }
    }
}

/// Why a whole write failed. With either error, no output of the write was accepted (no
/// acknowledgement was touched), so the write can be made again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The sink cannot take writes now (a store that is down, a connection being remade);
    /// [`write_all`] retries after a backoff.
    #[error("sink unavailable: {0}")]
    Unavailable(String),
    /// The sink cannot go on: the pipeline must stop.
    #[error("sink failed: {0}")]
    Fatal(String),
    /// [`write_all`] gave up retrying because the caller is stopping.
    #[error("stopped while the sink was unavailable: {0}")]
    Stopped(String),
}

/// An accepted output that failed for good: the pipeline cannot go on, and the inputs it came
/// from are never committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "delivery to {destination}{} failed for the output of source offset {source_offset}: {reason}",
    partition.map(|p| format!("/{p}")).unwrap_or_default()
)]
pub struct DeliveryFailure {
    /// Where the output was going (a topic, a table...).
    pub destination: String,
    /// The destination's partition, where it has partitions.
    pub partition: Option<i32>,
    /// The offset of the input the output came from.
    pub source_offset: i64,
    /// Why, in the sink's words.
    pub reason: String,
}

/// Where outputs go. Implementations are shared by every lane of a process (or owned by one
/// lane, with transactions), so they take `&self`.
pub trait Sink: Send + Sync {
    /// Hands `outputs` to the sink, in order. Blocks while the sink is full. Returns the outputs
    /// refused, by index into `outputs`; every other output settles one unit of its `ack`
    /// later (see the module's description). On error nothing was accepted.
    fn write(&self, outputs: &[Output<'_>]) -> Result<Vec<(usize, Refused)>, SinkError>;

    /// Waits up to `timeout` for every accepted output to be settled.
    fn flush(&self, timeout: Duration) -> Result<(), SinkError>;

    /// Called when the lane of source partition `partition` of `topic` stops (a revoke, a
    /// shutdown): a sink that holds outputs back until some later point (a file it completes
    /// later) completes what holds that partition's outputs now, so the lane can drain and its
    /// offsets be committed. Default: nothing to do.
    fn release(&self, topic: &str, partition: i32, timeout: Duration) -> Result<(), SinkError> {
        let _ = (topic, partition, timeout);
        Ok(())
    }

    /// Flushes, then releases what the sink holds; it takes no writes afterwards.
    fn close(&self, timeout: Duration) -> Result<(), SinkError> {
        self.flush(timeout)
    }

    /// The first accepted output that failed for good, if any: the engine stops on it.
    fn failure(&self) -> Option<DeliveryFailure>;

    /// Outputs accepted but not yet settled.
    fn in_flight(&self) -> usize;

    /// Why the sink cannot take writes now, if it cannot (a store that is down): the engine
    /// reports it on its readiness probe. Default: always able.
    fn unavailable(&self) -> Option<String> {
        None
    }
}

/// How [`write_all`] waits between attempts while a sink is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(10),
            max: Duration::from_secs(1),
        }
    }
}

/// Writes `outputs` to `sink`, again and again while it is unavailable, waiting `backoff`
/// between attempts (doubling up to its maximum), until it takes them or `stopping` says so.
/// Returns the refused outputs, as [`Sink::write`] does.
pub fn write_all(
    sink: &dyn Sink,
    outputs: &[Output<'_>],
    backoff: Backoff,
    stopping: &dyn Fn() -> bool,
) -> Result<Vec<(usize, Refused)>, SinkError> {
    if outputs.is_empty() {
        return Ok(Vec::new());
    }
    let mut wait = backoff.first;
    loop {
        match sink.write(outputs) {
            Err(SinkError::Unavailable(why)) => {
                if stopping() {
                    return Err(SinkError::Stopped(why));
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(backoff.max);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests;
