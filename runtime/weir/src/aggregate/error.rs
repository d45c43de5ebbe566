//! Why an aggregate lane could not start, restore, swap its module or checkpoint.
//!
//! Owns the error types of this folder and their messages; may not decide what a lane does
//! about them (the lane stops, or keeps the running module on a failed swap).

use weir_core::window::WindowError;
use weir_kafka::{KafkaError, TopicPartition};
use weir_wasm::WasmError;

/// An aggregate lane's failure. Every one ends the lane but [`AggregateError::Instance`] from a
/// module swap, which keeps the running module.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// The module could not be instantiated.
    #[error(transparent)]
    Instance(#[from] WasmError),
    /// The stage's window configuration was refused.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// The changelog could not be read.
    #[error("cannot restore {tp}'s windows: {source}")]
    ReadChangelog {
        tp: TopicPartition,
        source: Box<KafkaError>,
    },
    /// The changelog was read but its content cannot become the lane's state.
    #[error("cannot restore {tp}'s windows from changelog {changelog}: {source}")]
    Restore {
        tp: TopicPartition,
        changelog: String,
        source: RestoreError,
    },
    /// The outputs of closed windows were not acknowledged in time (or failed), so the
    /// checkpoint that forgets those windows cannot be written.
    #[error(
        "{tp}: window results were not acknowledged, so the checkpoint cannot forget their \
         windows"
    )]
    Unacknowledged { tp: TopicPartition },
    /// A checkpoint record could not be handed to the producer.
    #[error("cannot checkpoint {tp} to {changelog}: {source}")]
    Send {
        tp: TopicPartition,
        changelog: String,
        source: Box<KafkaError>,
    },
    /// The changelog refused a checkpoint: the inputs it covers must never be committed.
    #[error("{tp}: a checkpoint to {changelog} failed")]
    CheckpointFailed {
        tp: TopicPartition,
        changelog: String,
    },
}

/// Why a changelog's records do not make a window state.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("its checkpoint does not decode")]
    Meta,
    #[error("a key's record does not decode")]
    Key,
    #[error(
        "it holds accumulators of state version {found}, but the module speaks version \
         {expected}: use a new `changelog` topic to start the windows afresh"
    )]
    StateVersion { found: u32, expected: u32 },
    /// The window state refused the stored windows; a snapshot error gets a hint.
    #[error("{source}{}", if matches!(source, WindowError::Snapshot(_)) {
        " (did the `window` change? use a new `changelog` topic)"
    } else {
        ""
    })]
    Window { source: WindowError },
}
