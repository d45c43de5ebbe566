//! The host imports: the `weir:stage/host` interface on wasm, a stand-in natively.

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::*;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use crate::__private::bindings::weir::stage::{host, types};
    use crate::log::Level;

    pub(crate) fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let level = match level {
            Level::Trace => types::Level::Trace,
            Level::Debug => types::Level::Debug,
            Level::Info => types::Level::Info,
            Level::Warn => types::Level::Warn,
            Level::Error => types::Level::Error,
        };
        host::log(level, message, fields);
    }

    pub(crate) fn counter_add(name: &str, delta: u64) {
        host::counter_add(name, delta);
    }

    pub(crate) fn histogram_record(name: &str, value: f64) {
        host::histogram_record(name, value);
    }
}

/// Natively (unit tests, benchmarks) logs go to standard error and metrics are dropped.
#[cfg(not(target_arch = "wasm32"))]
mod native {
    use crate::log::Level;

    pub(crate) fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
        let mut line = format!("[weir-stage {level}] {message}");
        for (name, value) in fields {
            line.push_str(&format!(" {name}={value:?}"));
        }
        // `eprintln!`, not a raw write, so the test harness captures it.
        eprintln!("{line}");
    }

    pub(crate) fn counter_add(_name: &str, _delta: u64) {}

    pub(crate) fn histogram_record(_name: &str, _value: f64) {}
}
