//! Weir's WebAssembly host: the only crate that touches wasmtime.
//!
//! - [`WasmHost`]: the one shared engine, its epoch clock (stage time limits) and the compiled
//!   module cache, keyed by the module's SHA-256 in memory and on disk.
//! - [`ModuleSpec`]: what a stage is resolved from: its name, compiled module, config and limits.
//! - [`EnrichModule`]: an enrich stage's module checked against the `weir:stage` contract and
//!   pre-instantiated once.
//! - [`EnrichInstance`]: one lane's instance; a [`weir_core::Stage`] that reports traps,
//!   timeouts, memory overruns and stage errors per record and replaces a poisoned instance.
//! - [`AggregateModule`], [`AggregateInstance`]: the same for aggregate stages, whose
//!   accumulators (opaque bytes) the caller keeps.
//! - [`Limits`] (weir-core's): what one instance may use (memory, time, fuel) and when it is
//!   recycled; both kinds of stage share one instance core (`instance/`) that enforces them. A
//!   stage with `fuel` runs on a second engine whose compiled code carries fuel checks; the
//!   others run on the shared engine, which has none.
//!
//! Guests get the `weir:stage/host` imports and WASI with nothing granted but clocks and
//! randomness: no filesystem, network, environment, arguments or stdio. A call's time limit
//! holds in guest code (epoch interruption) and in WASI waits (a sleep or poll ends at the
//! call's deadline); a watchdog reports a call that overruns anyway. What a guest may make the
//! host keep (log lines, outputs, error texts, store sizes) is capped: see [`caps`].

mod aggregate;
mod bindings;
mod cache;
pub mod caps;
mod deadline;
mod enrich;
mod error;
mod host;
mod instance;
mod metrics;
mod state;
mod watchdog;

pub use aggregate::{AggregateInstance, AggregateModule};
pub use enrich::{EnrichInstance, EnrichModule, RERUN_BREAKER};
pub use error::WasmError;
pub use host::{CompiledModule, EPOCH_TICK, WasmHost};
pub use instance::ModuleSpec;
pub use metrics::{GUEST_BUCKETS, GuestMetrics, HistogramSummary, MetricKind};
pub use watchdog::WATCHDOG_TICK;
pub use weir_core::Limits;

/// The version of the `weir:stage` WIT package this runtime implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
