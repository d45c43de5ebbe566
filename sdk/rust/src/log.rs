//! Log lines, written through the host.
//!
//! A line lands in the runtime's structured logs with the stage's name and the trace context,
//! partition and offset of the batch being processed. Outside a wasm host (native tests) lines go
//! to standard error.
//!
//! ```
//! weir_sdk::log::info("geo database loaded");
//! weir_sdk::log::log(weir_sdk::log::Level::Warn, "unknown country", &[("ip", "10.0.0.1")]);
//! ```

use std::fmt;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// Writes a log line with structured `fields` (name, value).
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    crate::host::log(level, message, fields);
}

/// Writes a log line at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message, &[]);
}

/// Writes a log line at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message, &[]);
}

/// Writes a log line at info level.
pub fn info(message: &str) {
    log(Level::Info, message, &[]);
}

/// Writes a log line at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message, &[]);
}

/// Writes a log line at error level.
pub fn error(message: &str) {
    log(Level::Error, message, &[]);
}
