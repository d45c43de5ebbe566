//! The seam between a lane and whatever runs a stage.

use crate::{Failure, Record};

/// The span a stage call runs under, for the stage's own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTrace {
    pub trace_id: crate::trace::TraceId,
    pub span_id: crate::trace::SpanId,
}

/// The fate of one input record in one stage: its outputs (none when filtered out) or why it
/// failed.
pub type StageOutcome = Result<Vec<Record>, Failure>;

/// Something that turns a batch of records into one outcome per record.
///
/// An implementation owns whatever per-lane state it needs (a wasm instance); a lane calls it from
/// one thread at a time.
pub trait Stage: Send {
    /// The trace context of the next call: the span of the stage call over the batch. A stage
    /// that can log (wasm modules through the host import) tags its log lines with it.
    fn set_context(&mut self, _context: &CallTrace) {}

    /// Processes `records`, all consumed from `topic` / `partition`, and returns exactly one
    /// outcome per record, in order. Output records whose `timestamp` is `None` keep their
    /// input's timestamp; the caller fills it in.
    fn process(&mut self, topic: &str, partition: i32, records: &[Record]) -> Vec<StageOutcome>;
}
