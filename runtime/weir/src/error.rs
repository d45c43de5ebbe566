//! The engine's errors, and the exit status each one ends `weir run` with.
//!
//! Owns: [`EngineError`] (why a run could not start or had to stop), [`FatalError`] (what stops
//! a running pipeline), [`LaneError`] (what stops one lane, and with it the pipeline),
//! [`ReloadError`] (why a new version was refused) and [`Exit`]. Touches nothing else: every
//! other module of the crate imports from here, and this module imports none of them.

use std::path::PathBuf;
use std::sync::Arc;

use weir_kafka::{KafkaError, TopicPartition};

/// Why a pipeline could not start, or stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Telemetry(#[from] weir_telemetry::TelemetryError),
    #[error(transparent)]
    Secret(#[from] crate::cluster::SecretUnavailable),
    /// `[privacy]` cannot be put in force: its key cannot be read, or is empty.
    #[error("privacy: {0}")]
    Privacy(String),
    #[error("sink {name:?}: {source}")]
    Store {
        name: String,
        #[source]
        source: Box<weir_store::StoreError>,
    },
    /// A hot-store sink (PostgreSQL, Redis) that cannot start: a bad url, a server out of
    /// reach, a table or column missing.
    #[error("sink {name:?}: {source}")]
    HotStore {
        name: String,
        #[source]
        source: Box<weir_hot::HotError>,
    },
    #[error("cannot watch {} for changes: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: WatchError,
    },
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Delivery or processing failed in a way that forbids going on; offsets were committed only
    /// up to the last fully delivered record.
    #[error("pipeline stopped: {0}")]
    Fatal(Arc<FatalError>),
}

/// Why a file or folder cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Notify(#[from] notify::Error),
}

/// What stops a running pipeline. The first one is kept (see `shared::Fatal`); it
/// fails `/healthz` and ends `weir run` with [`Exit::Fatal`].
#[derive(Debug, thiserror::Error)]
pub enum FatalError {
    #[error("cannot start a lane for {partition}: {source}")]
    LaneStart {
        partition: TopicPartition,
        #[source]
        source: weir_wasm::WasmError,
    },
    #[error("cannot start lane {partition}: its lane worker has stopped")]
    LaneWorkerGone { partition: TopicPartition },
    #[error(transparent)]
    Lane(#[from] LaneError),
    /// An output the sink accepted failed for good.
    #[error(transparent)]
    Delivery(weir_core::DeliveryFailure),
    /// A partition's records could not be split off to its lane.
    #[error(transparent)]
    Consumer(KafkaError),
    #[error("{what} panicked: {message}")]
    Panic { what: String, message: String },
}

/// What stops a lane. Its records from the failing one on are never committed, so a restart
/// re-reads them.
#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    /// A record can be neither delivered nor dead-lettered.
    #[error("{partition}: cannot dead-letter offset {offset}: {refused} (in full: {first})")]
    DeadLetter {
        partition: TopicPartition,
        offset: i64,
        first: Box<weir_core::Refused>,
        refused: Box<weir_core::Refused>,
    },
    #[error("{partition}: cannot publish a window result: {refused}")]
    WindowResult {
        partition: TopicPartition,
        refused: weir_core::Refused,
    },
    #[error("{partition}: {source}")]
    Sink {
        partition: TopicPartition,
        #[source]
        source: weir_core::SinkError,
    },
    #[error("{partition}: {source}")]
    Transaction {
        partition: TopicPartition,
        #[source]
        source: Box<KafkaError>,
    },
    #[error("{partition}: no consumer group metadata for the transaction")]
    NoGroupMetadata { partition: TopicPartition },
    #[error("{partition}: the aggregate stage: {source}")]
    Aggregate {
        partition: TopicPartition,
        source: crate::aggregate::AggregateError,
    },
}

/// Why a reload was refused; the running version keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The pipeline file (or a module it names) does not validate.
    #[error("{}", .0.to_string().trim_end().replace('\n', "; "))]
    Config(weir_config::ConfigErrors),
    #[error("{0}: that needs a restart")]
    RestartNeeded(String),
    #[error("{}", join(.0))]
    Modules(Vec<weir_wasm::WasmError>),
    #[error("the new version fails the pipeline's tests: {}", .0.join("; "))]
    Tests(Vec<String>),
}

fn join(errors: &[weir_wasm::WasmError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How `weir run` ends, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: stopped by SIGINT or SIGTERM, after draining and committing.
    Stopped = 0,
    /// 1: a fatal error while running (a record that can be neither delivered nor
    /// dead-lettered, a lane that panicked); offsets are committed up to the last record fully
    /// delivered.
    Fatal = 1,
    /// 2: the configuration: the pipeline file, a secret it names, a Kafka client property, the
    /// admin listener's address.
    Config = 2,
    /// 3: a module: missing, not a component, of another world or contract version, or
    /// refusing its config.
    Module = 3,
    /// 4: the cluster at start: unreachable, refusing the connection (TLS, SASL) or lacking a
    /// topic the pipeline writes to; or a hot store (PostgreSQL, Redis) out of reach.
    Cluster = 4,
}

impl EngineError {
    /// The exit status this error ends `weir run` with.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Kafka(KafkaError::Config(_))
            | Self::Secret(_)
            | Self::Privacy(_)
            | Self::Telemetry(_) => Exit::Config,
            Self::HotStore { source, .. } => match **source {
                weir_hot::HotError::Connect { .. } | weir_hot::HotError::Runtime(_) => {
                    Exit::Cluster
                }
                _ => Exit::Config,
            },
            // Every other Kafka error reaches the caller before the pipeline runs.
            Self::Kafka(_) => Exit::Cluster,
            Self::Watch { .. } | Self::Thread { .. } | Self::Store { .. } | Self::Fatal(_) => {
                Exit::Fatal
            }
        }
    }
}
