//! What can go wrong in telemetry: setting it up, and reading an admin request.

use std::time::Duration;

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid WEIR_LOG filter: {0}")]
    Filter(String),
    #[error("a global logger is already installed")]
    AlreadyInstalled,
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        addr: std::net::SocketAddr,
        message: String,
    },
    #[error("cannot set up the OTLP span exporter: {0}")]
    Exporter(String),
    /// An admin token that no `Authorization` header could carry.
    #[error("invalid admin token: {0}")]
    Token(&'static str),
}

/// Why the admin listener did not read a whole request. [`RequestError::status`] is the answer
/// the client gets, when it gets one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("the request header is larger than {0} bytes")]
    HeaderTooLarge(usize),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("a request body needs a Content-Length (no Transfer-Encoding)")]
    LengthRequired,
    #[error("only HTTP/1.x is served")]
    Version,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("the request was not received within {0:?}")]
    Timeout(Duration),
    #[error("the client closed the connection before the end of its request")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl RequestError {
    /// The status to answer with, or `None` when no answer can reach the client.
    pub(crate) fn status(&self) -> Option<u16> {
        Some(match self {
            Self::HeaderTooLarge(_) => 431,
            Self::BodyTooLarge(_) => 413,
            Self::LengthRequired => 411,
            Self::Version => 505,
            Self::Malformed(_) => 400,
            Self::Timeout(_) => 408,
            Self::Closed | Self::Io(_) => return None,
        })
    }
}
