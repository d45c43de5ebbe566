//! Weir's telemetry: the only crate that configures log subscribers, metrics and span export.
//!
//! - Logs are structured: JSON lines when stderr (where they go) is not a terminal, a human
//!   format when it is. The filter comes from `WEIR_LOG` (same syntax as `RUST_LOG`), default
//!   `info`.
//! - [`metrics`]: the pipeline's Prometheus metrics, served by [`admin`] with `/healthz`,
//!   `/readyz` and the admin API, on a small HTTP/1.1 server with timeouts and size and
//!   connection limits ([`AdminLimits`]).
//! - [`spans`]: bounded, dropping export of the spans the engine keeps, over OTLP/gRPC.

pub mod admin;
mod error;
mod http;
pub mod metrics;
pub mod spans;
mod token;

pub use admin::{
    AdminApi, AdminLimits, AdminServer, AdminToken, Control, Health, LineStream, Next, Refusal,
    Unhealthy,
};
pub use error::TelemetryError;
pub use metrics::{
    GuestSource, Metrics, PartitionMetrics, ReloadResult, StageLabels, StageMetrics,
};
pub use spans::{Attr, SpanKind, SpanRecord, Spans, SpansGuard};

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, human otherwise.
    Auto,
    Json,
    Human,
}

/// Flushes telemetry when dropped. Keep it alive for the life of the process.
#[derive(Debug)]
#[must_use = "telemetry stops when the guard is dropped"]
pub struct TelemetryGuard(());

/// Installs the global log subscriber.
pub fn init(format: LogFormat) -> Result<TelemetryGuard, TelemetryError> {
    let filter = match std::env::var("WEIR_LOG") {
        Ok(s) if !s.is_empty() => {
            EnvFilter::try_new(&s).map_err(|e| TelemetryError::Filter(e.to_string()))?
        }
        _ => EnvFilter::new("info"),
    };
    let json = match format {
        LogFormat::Auto => !std::io::stderr().is_terminal(),
        LogFormat::Json => true,
        LogFormat::Human => false,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(TelemetryGuard(()))
}
