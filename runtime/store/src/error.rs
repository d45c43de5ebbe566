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

impl StoreError {
    /// A short, bounded name of the failure, for metrics: `permission-denied`, `disk-full`,
    /// `not-found`, `not-a-folder`, `io`, `object-store`, `parquet`, `arrow`, `client` or
    /// `corrupt-progress`.
    pub fn reason(&self) -> &'static str {
        use std::io::ErrorKind;
        match self {
            Self::Io { source, .. } => match source.kind() {
                ErrorKind::PermissionDenied => "permission-denied",
                ErrorKind::StorageFull => "disk-full",
                ErrorKind::NotFound => "not-found",
                ErrorKind::NotADirectory => "not-a-folder",
                _ => "io",
            },
            Self::Object { source, .. } => match source {
                object_store::Error::NotFound { .. } => "not-found",
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. } => "permission-denied",
                _ => "object-store",
            },
            Self::Parquet { .. } => "parquet",
            Self::Arrow(_) => "arrow",
            Self::Client(_) => "client",
            Self::Progress { .. } => "corrupt-progress",
        }
    }
}
