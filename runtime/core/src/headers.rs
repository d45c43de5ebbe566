//! Names of the headers Weir writes on dead letters.
//!
//! A dead letter is the record as it entered the failing stage (key, value, timestamp and headers
//! unchanged, except that headers of the input named `weir.*` are dropped: only Weir writes
//! provenance) plus these provenance headers, all UTF-8 text.

/// The pipeline's `name`.
pub const PIPELINE: &str = "weir.pipeline";
/// The failing stage's `name`.
pub const STAGE: &str = "weir.stage";
/// SHA-256 (hex) of the failing stage's module file: the module version.
pub const MODULE_SHA256: &str = "weir.module.sha256";
/// The [`FailureKind`](crate::FailureKind) name: `stage-error`, `trap`, `timeout`, `memory`,
/// `limit` or `invalid-output` (and, from aggregate stages, `invalid-input`, `late` or
/// `state-full`; from a store sink, `sink-rejected`).
pub const ERROR_KIND: &str = "weir.error.kind";
/// The stage's own error code, for `stage-error` only.
pub const ERROR_CODE: &str = "weir.error.code";
/// On a `sink-rejected` letter: the field of the value (the store's column) at fault, when the
/// store could tell.
pub const ERROR_FIELD: &str = "weir.error.field";
/// The human-readable error message.
pub const ERROR_MESSAGE: &str = "weir.error.message";
/// The topic the record was consumed from.
pub const SOURCE_TOPIC: &str = "weir.source.topic";
/// The partition the record was consumed from (decimal).
pub const SOURCE_PARTITION: &str = "weir.source.partition";
/// The offset the record was consumed at (decimal).
pub const SOURCE_OFFSET: &str = "weir.source.offset";
/// On a dead letter too large for the producer: the size in bytes of the key and value it was
/// sent without (decimal). Such a letter keeps only its provenance and trace-context headers.
pub const TRUNCATED: &str = "weir.truncated";

/// Whether `name` is a provenance header name, which only Weir may write.
pub fn is_provenance(name: &str) -> bool {
    name.starts_with("weir.")
}
