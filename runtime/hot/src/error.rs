//! Why a hot-store sink could not start. Messages never hold a connection string.

/// Why a hot-store sink could not be opened. A write that fails later is a
/// [`weir_core::SinkError`] instead.
#[derive(Debug, thiserror::Error)]
pub enum HotError {
    #[error("cannot read its url: {0}")]
    Secret(#[from] weir_config::SecretError),
    /// The connection string does not parse; the message names the problem, not the string.
    #[error("its url is not a valid connection string: {0}")]
    Url(String),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot connect to {server}: {reason}")]
    Connect { server: String, reason: String },
    /// The table, a column, a key or an index the sink needs is not there.
    #[error("{0}")]
    Schema(String),
    #[error("cannot start its I/O thread: {0}")]
    Runtime(#[source] std::io::Error),
}
