//! Weir's Kafka source and sink: the only crate that touches rdkafka.
//!
//! - [`KafkaSource`]: a consumer-group member. Each assigned partition's records arrive on its own
//!   [`PartitionFeed`], read at the pace of the one lane that owns it (that pace is the
//!   backpressure); a [`PartitionHandler`] hears of every assignment change so that in-flight
//!   work is drained and committed before a partition is given up.
//! - [`KafkaSink`]: an idempotent producer; every delivery report settles the
//!   [`weir_core::InputAck`] of the record the output came from.

mod changelog;
mod cluster;
mod context;
mod control;
mod error;
pub mod headers;
mod limits;
mod poller;
mod sink;
mod source;

pub use changelog::{ensure_changelog, read_changelog};
pub use cluster::{Cluster, Protocol, Sasl, Security};
pub use control::ControlChannel;
pub use error::KafkaError;
pub use limits::{
    FETCH_BYTES_BUDGET, FETCH_BYTES_MAX, FETCH_BYTES_MIN, fetch_bytes_per_partition,
    max_message_bytes,
};
pub use sink::{DeliveryObserver, GroupMetadata, KafkaSink, SinkSettings};
pub use source::{
    KafkaSource, PartitionFeed, PartitionHandler, PartitionStats, SourceSettings, SourceStats,
    StartFrom, TopicPartition,
};
