//! How a record fails in a stage, and whose fault it is.

use std::fmt;

/// The kind of a per-record failure. Its name is what the `weir.error.kind` dead-letter header
/// carries and what metrics are labelled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The stage returned an error for the record.
    StageError,
    /// The module trapped (a panic, an `unreachable`, an out-of-bounds access...).
    Trap,
    /// The stage call exceeded the stage's `limits.timeout`.
    Timeout,
    /// The module tried to grow its memory past the stage's `limits.memory`.
    Memory,
    /// The module went past one of the host's fixed caps on what one record may cost it: too
    /// many outputs for one input, or too many output bytes in one batch.
    Limit,
    /// The module answered with a result that does not follow the batch encoding.
    InvalidOutput,
    /// An aggregate stage could not read the record's grouping key or event time.
    InvalidInput,
    /// The record reached an aggregate stage after every window it belongs to had closed.
    Late,
    /// An aggregate stage holds `max_windows` windows on the partition and the record would
    /// open another (with `on_full = "fail"`).
    StateFull,
    /// A sink refused the record's output for its shape: a store whose schema its value does
    /// not fit (a field of the wrong type, a required field missing, not JSON).
    SinkRejected,
    /// The record, or one of the stage's outputs for it, does not match the stage's
    /// `input_schema` or `output_schema`.
    SchemaInvalid,
}

impl FailureKind {
    /// The kind's stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::StageError => "stage-error",
            Self::Trap => "trap",
            Self::Timeout => "timeout",
            Self::Memory => "memory",
            Self::Limit => "limit",
            Self::InvalidOutput => "invalid-output",
            Self::InvalidInput => "invalid-input",
            Self::Late => "late",
            Self::StateFull => "state-full",
            Self::SinkRejected => "sink-rejected",
            Self::SchemaInvalid => "schema-invalid",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one record did not make it through a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// The stage's own code for a [`FailureKind::StageError`] (such as `bad-json`), or the
    /// store's for a [`FailureKind::SinkRejected`] (a SQLSTATE such as `23505`), else empty.
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: String::new(),
            message: message.into(),
        }
    }

    pub fn stage_error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::StageError,
            code: code.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            write!(f, "{}: {}", self.kind, self.message)
        } else {
            write!(f, "{} ({}): {}", self.kind, self.code, self.message)
        }
    }
}
