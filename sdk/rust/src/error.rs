//! The error a stage returns for a record it refuses, or for a configuration it refuses.

use std::fmt;

/// Why a stage refused a record (or, from [`Enricher::init`](crate::Enricher::init), its
/// configuration).
///
/// A record whose stage returns an error goes to the pipeline's dead-letter topic with `code` and
/// `message` in its headers; the rest of the batch is unaffected. `code` is short and
/// machine-readable (`bad-json`, `missing-field`); `message` is for humans.
///
/// ```
/// use weir_sdk::Error;
///
/// let e = Error::new("missing-field", "no `url` in the click");
/// assert_eq!(e.code(), "missing-field");
/// assert_eq!(e.to_string(), "missing-field: no `url` in the click");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: String,
    message: String,
}

impl Error {
    /// An error with a machine-readable `code` and a human-readable `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The machine-readable code, such as `bad-json`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human-readable explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// A JSON (de)serialisation failure is a `bad-json` error.
#[cfg(feature = "serde")]
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::new("bad-json", e.to_string())
    }
}
