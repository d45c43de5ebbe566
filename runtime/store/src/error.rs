//! The store's errors.

use std::path::PathBuf;

/// Why the store could not complete a file or read its progress.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system call failed (disk full, permission denied, a folder missing...).
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Parquet writer failed.
    #[error("cannot write Parquet file {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Arrow refused to build a batch (a bug: the values were decoded against the schema).
    #[error("cannot build rows: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A progress file holds something other than an offset.
    #[error("progress file {} is corrupt: {text:?}", path.display())]
    Progress { path: PathBuf, text: String },
}

impl StoreError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}
