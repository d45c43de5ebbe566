//! What is wrong with a pipeline file, and where.

use std::fmt;
use std::path::PathBuf;

/// One problem in a pipeline file.
///
/// Displays as `path:line:column: message`, or `path: message` when the problem is not at a
/// particular place (`line` is then 0), such as a file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", .path.display(), LineColumn(*.line, *.column))]
pub struct ConfigError {
    /// The pipeline file, as given to [`crate::load`] or [`crate::parse`].
    pub path: PathBuf,
    /// Line, from 1; 0 when the problem concerns the whole file.
    pub line: usize,
    /// Column in characters, from 1; 0 when the problem concerns the whole file.
    pub column: usize,
    /// What is wrong, for a person.
    pub message: String,
}

/// `:line:column`, or nothing for line 0.
struct LineColumn(usize, usize);

impl fmt::Display for LineColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self(0, _) => Ok(()),
            Self(line, column) => write!(f, ":{line}:{column}"),
        }
    }
}

/// Every problem found in a pipeline file, in file order. Never empty.
///
/// Displays one error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}
