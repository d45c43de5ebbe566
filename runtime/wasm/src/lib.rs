//! Weir's WebAssembly host: the only crate that touches wasmtime.
//!
//! - [`WasmHost`]: the one shared engine, its epoch clock (stage time limits) and the compiled
//!   module cache, keyed by the module's SHA-256 in memory and on disk.
//! - [`EnrichModule`]: an enrich stage's module checked against the `weir:stage` contract and
//!   pre-instantiated once.
//! - [`EnrichInstance`]: one lane's instance; a [`weir_core::Stage`] that reports traps,
//!   timeouts, memory overruns and stage errors per record and replaces a poisoned instance.
//! - [`AggregateModule`], [`AggregateInstance`]: the same for aggregate stages, whose
//!   accumulators (opaque bytes) the caller keeps.
//!
//! Guests get the `weir:stage/host` imports and WASI with nothing granted but clocks and
//! randomness: no filesystem, network, environment, arguments or stdio.

mod aggregate;
mod bindings;
mod enrich;
mod error;
mod host;
mod state;

pub use aggregate::{AggregateInstance, AggregateModule};
pub use enrich::{EnrichInstance, EnrichModule, Limits};
pub use error::WasmError;
pub use host::{CompiledModule, EPOCH_TICK, WasmHost};
pub use state::{GUEST_BUCKETS, GuestMetrics, HistogramSummary};

/// The version of the `weir:stage` WIT package this runtime implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
