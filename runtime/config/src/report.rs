//! Where errors are collected, and how messages name the place of a value.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use crate::error::{ConfigError, ConfigErrors};
use crate::model::Location;

/// Byte range of a value or key in the file.
pub(crate) type Span = Range<usize>;

/// The errors found in one file so far, and the means to turn byte offsets into positions.
#[derive(Debug)]
pub(crate) struct Report<'s> {
    path: &'s Path,
    text: &'s str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

impl<'s> Report<'s> {
    pub(crate) fn new(text: &'s str, path: &'s Path) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Self {
            path,
            text,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// The line and column of a byte offset.
    pub(crate) fn location(&self, offset: usize) -> Location {
        // `line_starts[0]` is 0, so at least one line starts at or before any offset.
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = match self.text.get(start..offset) {
            Some(before) => before.chars().count() + 1,
            None => offset - start + 1,
        };
        Location { line, column }
    }

    /// Records that what is at `span`, called `place`, is wrong.
    pub(crate) fn error(&mut self, span: &Span, place: &Place, message: impl fmt::Display) {
        let Location { line, column } = self.location(span.start);
        let message = if place.is_empty() {
            message.to_string()
        } else {
            format!("{place}: {message}")
        };
        self.errors.push(ConfigError {
            path: self.path.to_owned(),
            line,
            column,
            message,
        });
    }

    /// `value` when no error was recorded, else every error in file order.
    pub(crate) fn finish<T>(mut self, value: Option<T>) -> Result<T, ConfigErrors> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => {
                debug_assert!(!self.errors.is_empty(), "a value is missing unreported");
                self.errors.sort_by_key(|error| (error.line, error.column));
                Err(ConfigErrors(self.errors))
            }
        }
    }
}

/// What a value is called in messages: the thing it belongs to, such as `stage "geo"`, and its
/// key path within that thing, such as `limits.memory`. Either may be empty.
#[derive(Debug, Clone, Default)]
pub(crate) struct Place {
    owner: String,
    path: String,
}

impl Place {
    /// The place of a thing with a name of its own, such as a stage.
    pub(crate) fn owner(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            path: String::new(),
        }
    }

    /// The place of the value under `key` in the table at this place.
    pub(crate) fn key(&self, key: &str) -> Self {
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let key = if bare {
            key.to_owned()
        } else {
            format!("{key:?}")
        };
        let path = if self.path.is_empty() {
            key
        } else {
            format!("{}.{key}", self.path)
        };
        Self {
            owner: self.owner.clone(),
            path,
        }
    }

    /// The place of item `index` of the array at this place.
    pub(crate) fn index(&self, index: usize) -> Self {
        Self {
            owner: self.owner.clone(),
            path: format!("{}[{index}]", self.path),
        }
    }

    /// The thing this place belongs to.
    pub(crate) fn owner_place(&self) -> Self {
        Self::owner(self.owner.clone())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.owner.is_empty() && self.path.is_empty()
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.owner)?;
        if !self.owner.is_empty() && !self.path.is_empty() {
            f.write_str(": ")?;
        }
        f.write_str(&self.path)
    }
}
