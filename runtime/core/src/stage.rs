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
pub type StageOutcome = Result<Outputs, Failure>;

/// What one input record became in one stage.
///
/// A record that goes on unchanged (a filter kept it) is [`Outputs::Input`]: returning it takes
/// no allocation and no copy of the record, which is what makes filters cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outputs {
    /// Exactly the input record, timestamp included.
    Input,
    /// These records, in order; none when the input was filtered out. An output whose
    /// `timestamp` is `None` keeps its input's.
    Records(Vec<Record>),
}

impl Outputs {
    /// No outputs: the input was filtered out.
    pub const fn none() -> Self {
        Self::Records(Vec::new())
    }

    /// How many records the input became.
    pub fn len(&self) -> usize {
        match self {
            Self::Input => 1,
            Self::Records(records) => records.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The output records of `input` (the record this outcome is for), in order.
    pub fn iter<'a>(&'a self, input: &'a Record) -> std::slice::Iter<'a, Record> {
        match self {
            Self::Input => std::slice::from_ref(input).iter(),
            Self::Records(records) => records.iter(),
        }
    }

    /// The output records of `input` (the record this outcome is for), owned: an
    /// [`Outputs::Input`] becomes a clone of `input` (which shares its bytes).
    pub fn into_records(self, input: &Record) -> IntoRecords {
        match self {
            Self::Input => IntoRecords::One(Some(input.clone())),
            Self::Records(records) => IntoRecords::Many(records.into_iter()),
        }
    }
}

impl From<Vec<Record>> for Outputs {
    fn from(records: Vec<Record>) -> Self {
        Self::Records(records)
    }
}

/// The owned output records of one outcome ([`Outputs::into_records`]).
#[derive(Debug)]
pub enum IntoRecords {
    One(Option<Record>),
    Many(std::vec::IntoIter<Record>),
}

impl Iterator for IntoRecords {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        match self {
            Self::One(one) => one.take(),
            Self::Many(many) => many.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self {
            Self::One(one) => usize::from(one.is_some()),
            Self::Many(many) => many.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for IntoRecords {}

/// Something that turns a batch of records into one outcome per record.
///
/// An implementation owns whatever per-lane state it needs (a wasm instance); a lane calls it from
/// one thread at a time.
pub trait Stage: Send {
    /// The trace context of the next call: the span of the stage call over the batch. A stage
    /// that can log (wasm modules through the host import) tags its log lines with it.
    fn set_context(&mut self, _context: &CallTrace) {}

    /// The pipeline's `[privacy]`: a stage that writes text about records (wasm modules' log
    /// lines) cleans it of their sensitive parts.
    fn set_privacy(&mut self, _privacy: &std::sync::Arc<crate::Redactor>) {}

    /// Processes `records`, all consumed from `topic` / `partition`, and returns exactly one
    /// outcome per record, in order. Output records whose `timestamp` is `None` keep their
    /// input's timestamp; the caller fills it in.
    fn process(&mut self, topic: &str, partition: i32, records: &[Record]) -> Vec<StageOutcome>;
}
