//! Weir's telemetry set-up: the only crate that configures tracing subscribers and exporters.
