//! The seam between an aggregate stage's lane and whatever folds its records: the
//! [`Aggregator`] trait (`create`, `add`, `merge`, `emit` over opaque accumulator bytes), and
//! [`WindowFold`], the fold logic generic over it.
//!
//! [`WindowFold`] owns what is neither wasm nor Kafka: which records are already in a restored
//! state (covered), grouping a batch by (key, window) in a [`WindowState`](crate::window::WindowState),
//! each group's starting accumulator, one `add` call for the batch and, when that call fails as a
//! whole, the re-run of each group alone (with a per-batch breaker), the fate of late records,
//! closing windows under the watermark, the idle rule, and the keys a checkpoint must write.
//!
//! This module may not touch a clock (callers pass the wall time), a changelog or its encoding,
//! Kafka or wasm, nor read a record's key and event time (the caller says how: see
//! [`WindowFold::fold`]).

mod breaker;
mod fold;

pub use breaker::BREAKER_FAILURES;
pub use fold::WindowFold;

use std::sync::Arc;

use crate::trace::{SpanId, TraceId};
use crate::window::Window;
use crate::{CallTrace, Failure, Record};

/// Header of every window result: the window's start, in milliseconds since the Unix epoch.
pub const WINDOW_START: &str = "weir.window.start";
/// Header of every window result: the window's end (exclusive), in milliseconds.
pub const WINDOW_END: &str = "weir.window.end";
/// Most input spans a window result's span links to.
pub const MAX_LINKS: usize = 128;

/// A span a window result links to: an input's pass through the aggregate stage.
pub type SpanLink = (TraceId, SpanId);

/// One group's answer to [`Aggregator::add`]: its new accumulator, or the stage's error for it
/// (the group's accumulator stays as it was).
pub type GroupOutcome = Result<Vec<u8>, Failure>;

/// Something that folds keyed groups of records into accumulators it does not keep: the caller
/// owns the accumulators (opaque bytes), so it can checkpoint and restore them.
///
/// An implementation owns whatever per-lane state it needs (a wasm instance); a lane calls it
/// from one thread at a time. An `Err` from any method means the call failed as a whole (a trap,
/// a timeout, an answer that does not decode); the caller's accumulators are untouched, and the
/// next call must still be answerable (a wasm implementation replaces its instance).
pub trait Aggregator: Send {
    /// The trace context of the next calls, for the stage's own log lines.
    fn set_context(&mut self, _context: &CallTrace) {}

    /// A new, empty accumulator.
    fn create(&mut self) -> Result<Vec<u8>, Failure>;

    /// Folds each group's records (one key, one window, in offset order) into the group's
    /// accumulator, and answers one [`GroupOutcome`] per group, in order. `Err`: the call failed
    /// as a whole and no group was folded.
    fn add(&mut self, groups: &[(Vec<u8>, &[Record])]) -> Result<Vec<GroupOutcome>, Failure>;

    /// The accumulator of one key's two windows merged into one (sessions a batch bridges).
    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, Failure>;

    /// The output records of `key`'s closed `window`. An output without a key, or without a
    /// timestamp, gets the window's (see [`WindowFold::closed`]).
    fn emit(&mut self, key: &[u8], window: Window, acc: &[u8]) -> Result<Vec<Record>, Failure>;
}

/// What becomes of a record that arrives after every window it belongs to closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatePolicy {
    /// Dead-lettered with [`FailureKind::Late`](crate::FailureKind::Late).
    #[default]
    DeadLetter,
    /// Dropped (and counted by the caller).
    Drop,
}

/// What became of a record handed to the aggregate stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Folded into its windows: its offset waits for the checkpoint.
    Held,
    /// Already in the restored state (below the checkpoint's offset): nothing to wait for.
    Covered,
    /// Late and dropped by configuration.
    Dropped,
    /// Sent to the dead-letter topic.
    Failed(Failure),
}

/// A closed window turned into output records (or the stage's error for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowResult {
    pub key: Arc<[u8]>,
    pub window: Window,
    pub outputs: Result<Vec<Record>, Failure>,
    /// The accumulator, for a dead letter when `outputs` failed.
    pub acc: Vec<u8>,
    /// Spans of the records that went into the window (capped at [`MAX_LINKS`]).
    pub links: Vec<SpanLink>,
}

#[cfg(test)]
mod tests;
