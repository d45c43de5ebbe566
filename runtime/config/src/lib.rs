//! Weir pipeline configuration: reads a pipeline TOML file into a [`Pipeline`] and validates it.
//!
//! Every problem in the file is reported at once, each with its line and column, so that a
//! pipeline can be fixed in one pass:
//!
//! ```text
//! pipelines/clicks.toml:12:1: stage "geo": unknown key `moduel` (allowed: name, kind, module, ...)
//! pipelines/clicks.toml:14:22: stage "geo": limits.memory: invalid size "64MX": unknown unit "MX" (...)
//! ```
//!
//! [`Pipeline`] and the structs it holds document every key of the file and its default.
//!
//! Rather than a serde derive, which stops at the first error, the file is parsed into a spanned
//! tree that `reader` walks, converting values and recording errors as it goes; `validate` then
//! checks what spans sections, such as topics that would loop back into the pipeline.

mod error;
mod formats;
mod hot;
mod model;
mod modules;
mod privacy;
mod read;
mod reader;
mod report;
mod security;
mod store;
mod units;
mod validate;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::Path;

use toml::de::DeTable;

pub use error::{ConfigError, ConfigErrors};
pub use hot::{
    ColumnMapping, KeyPart, POSTGRES_PROVENANCE, PostgresSink, RedisMode, RedisSink, StatementMode,
    TlsMode, WriteMode, key_template,
};
pub use model::{
    Aggregate, Canary, CanaryCohort, Control, DeadLetter, Delivery, Expectation, LatePolicy,
    Limits, Location, OnFull, Partitioning, Pipeline, Rollback, Sample, SchemaGate, Sink, Source,
    Stage, StageKind, StartFrom, Target, Telemetry, TestCase, TestRecord, WindowKind,
};
pub use privacy::{Privacy, PrivacyMethod};
pub use security::{Sasl, SaslMechanism, Secret, SecretError, Security, SecurityProtocol};
pub use store::{
    Column, ColumnType, Compression, DEAD_LETTER_COLUMNS, NamedSink, PROVENANCE_COLUMNS,
    ParquetSink, PartitionKey, SinkKind, StorePath, TimeUnit,
};
pub use units::{UnitError, parse_duration, parse_size};

use report::{Place, Report};

/// A static membership id given outside the pipeline file (`weir run --instance-id`) that is not
/// one: the same rules as the file's `source.instance_id`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid instance id {id:?}: {reason}")]
pub struct InvalidInstanceId {
    /// The id as given.
    pub id: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks a static membership id given outside the pipeline file, as `source.instance_id` is
/// checked inside it.
pub fn instance_id(text: &str) -> Result<String, InvalidInstanceId> {
    formats::instance_id(text).map_err(|error| InvalidInstanceId {
        id: text.to_owned(),
        reason: error.to_string(),
    })
}

/// Reads and validates the pipeline file at `path`. Relative module paths are resolved against
/// the file's directory. Module files are not opened; see [`Pipeline::check_modules`].
pub fn load(path: &Path) -> Result<Pipeline, ConfigErrors> {
    let text = fs::read_to_string(path).map_err(|error| ConfigError {
        path: path.to_owned(),
        line: 0,
        column: 0,
        message: format!("cannot read the pipeline file: {error}"),
    })?;
    parse(&text, path)
}

/// Reads and validates a pipeline file's `text`. `path` names the file in messages, and relative
/// module paths are resolved against its directory. Nothing is read from disk.
///
/// When the text is not valid TOML, only its first syntax error is reported: what follows it
/// cannot be read reliably.
pub fn parse(text: &str, path: &Path) -> Result<Pipeline, ConfigErrors> {
    let mut report = Report::new(text, path);
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(error) => {
            let span = error.span().unwrap_or_default();
            let message = match text.get(span.clone()) {
                Some(found) if !found.is_empty() && !found.contains('\n') => {
                    format!("invalid TOML at `{found}`: {}", error.message())
                }
                _ => format!("invalid TOML: {}", error.message()),
            };
            report.error(&span, &Place::default(), message);
            return report.finish(None);
        }
    };
    let pipeline = read::pipeline(&document, path, &mut report);
    report.finish(pipeline)
}
