//! Weir's plain data types and the pieces of logic every other crate agrees on.
//!
//! Nothing here touches Kafka, wasm or telemetry: the records that flow, the ways a record can
//! fail, the provenance headers of a dead letter, the offset tracker that decides what is safe
//! to commit, and the seams a lane drives: [`Stage`] and [`Aggregator`] (with the windows and the
//! keyed fold an aggregate stage runs on), and the [`Sink`] seam every output goes through.

pub mod aggregate;
pub mod failure;
pub mod headers;
mod limits;
pub mod offsets;
pub mod redact;
pub mod sink;
pub mod stage;
mod throttle;
pub mod trace;
pub mod window;

pub use aggregate::Aggregator;
pub use failure::{Failure, FailureKind};
pub use limits::Limits;
pub use offsets::{InputAck, PartitionTracker};
pub use redact::{Method, RedactError, Redactor, Scrub};
pub use sink::{Backoff, DeliveryFailure, Output, Refused, Sink, SinkError, write_all};
pub use stage::{CallTrace, Outputs, Stage, StageOutcome};
pub use throttle::{LOG_EVERY, Throttle};
/// The record type that flows through a pipeline: the same owned record the batch encoding reads
/// and writes. `offset` is the source offset a record derives from.
pub use weir_wire::Record;
pub use weir_wire::{Bytes, Header, Headers};
