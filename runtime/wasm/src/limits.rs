//! The resource limits of one stage's instances, as the pipeline file sets them.
//!
//! Owns the [`Limits`] value only; how they are enforced lives in the instance core
//! (`instance/`) and the store's limiter (`state.rs`). Touches no wasmtime type.

use std::time::Duration;

/// Resource limits of one stage's instances.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most bytes one instance's store may hold in all its linear memories and tables together
    /// (a table element counts as [`crate::caps::TABLE_ELEMENT_BYTES`]). A grow past it traps
    /// the call with kind `memory`.
    pub memory: u64,
    /// Wall-clock budget of one stage call (one batch), held in guest code and in the guest's
    /// WASI sleeps and polls alike.
    pub timeout: Duration,
    /// Replace the instance by a fresh one after this many records (guests that leak).
    pub recycle_after: Option<u64>,
    /// Replace the instance by a fresh one after a call that leaves it holding this many bytes
    /// of linear memory or more (guests whose memory grows with every record, as Python's does).
    pub recycle_memory: Option<u64>,
    /// Fuel of one call into the guest: a deterministic CPU budget, about one unit per
    /// WebAssembly instruction executed, given afresh before every call (instantiation, `init`,
    /// each batch of an enrich stage, each `create`, `add`, `merge` and `emit` of an aggregate
    /// stage). A call that runs out traps and fails with kind `timeout`, its message naming the
    /// fuel. `None` (the default): no fuel metering, and the stage runs on the shared engine,
    /// whose compiled code carries no fuel checks; stages with fuel run on a second engine.
    pub fuel: Option<u64>,
}
