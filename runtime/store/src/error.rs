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
    /// An object store call failed (the store down, the bucket missing, access denied...).
    #[error("{what} {path}: {source}")]
    Object {
        what: &'static str,
        path: String,
        #[source]
        source: object_store::Error,
    },
    /// The object store client could not be made (a bad endpoint, say).
    #[error("cannot reach the object store: {0}")]
    Client(#[source] object_store::Error),
    /// A progress file holds something other than an offset.
    #[error("progress file {path} is corrupt: {text:?}")]
    Progress { path: String, text: String },
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
