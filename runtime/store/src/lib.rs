//! Weir's cold store: records written as rows of Parquet files, through Arrow.
//!
//! [`ParquetSink`] is a [`weir_core::Sink`]: the engine writes a stage's outputs to it as it
//! writes them to Kafka, and an input's offset is committed only once every file holding its
//! rows is complete and durable. Each record's value is a JSON object decoded, in batches, into
//! the store's declared schema ([`encode`]); a value that does not fit is refused, and the engine
//! dead-letters it (error kind `sink-rejected`). Every row also holds its provenance: source
//! topic, partition and offset, the record's timestamp, and the trace id of its `traceparent`.
//!
//! Owns: the Arrow conversion, the Parquet files and their naming, on a local disk or S3. The only
//! crate that touches arrow, parquet and object_store.

pub mod encode;
mod error;
pub mod files;
pub mod letters;
mod observe;
mod segment;
mod sink;
mod target;

pub use error::StoreError;
pub use observe::{FileCommit, StoreObserver};
pub use segment::MAX_LINKS;
pub use sink::ParquetSink;

#[cfg(test)]
mod tests;
