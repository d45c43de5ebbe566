//! The seam between a lane and whatever runs a stage.

use crate::{Failure, Record};

/// The fate of one input record in one stage: its outputs (none when filtered out) or why it
/// failed.
pub type StageOutcome = Result<Vec<Record>, Failure>;

/// Something that turns a batch of records into one outcome per record.
///
/// An implementation owns whatever per-lane state it needs (a wasm instance); a lane calls it from
/// one thread at a time.
pub trait Stage: Send {
    /// Processes `records`, all consumed from `topic` / `partition`, and returns exactly one
    /// outcome per record, in order. Output records whose `timestamp` is `None` keep their
    /// input's timestamp; the caller fills it in.
    fn process(&mut self, topic: &str, partition: i32, records: &[Record]) -> Vec<StageOutcome>;
}
