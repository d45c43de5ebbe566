//! What one instance of a stage's module may use, as the pipeline file's `limits` sets it and
//! the wasm host enforces it.
//!
//! Owns the [`Limits`] value, its bounds and defaults; may not enforce them (the wasm host's
//! instance core and store limiter do) or read them from a file (weir-config does).

use std::time::Duration;

const MIB: u64 = 1 << 20;

/// `limits` of a stage: what one instance of its module may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `memory`: the most bytes one instance's store may hold in all its linear memories and
    /// tables together, written with a unit such as `"64MiB"` or `"512KiB"`. A grow past it traps
    /// the call with error kind `memory`. From 1MiB to 4GiB. Default 64MiB.
    pub memory: u64,
    /// `timeout`: the wall-clock budget of one stage call, that is one batch, such as `"50ms"`,
    /// held in guest code and in the guest's WASI sleeps and polls alike. Must be more than zero.
    /// Default 100ms.
    pub timeout: Duration,
    /// `recycle_after`: replace the instance with a fresh one after it has processed this many
    /// records, to bound leaks in the module. More than zero. Default: never.
    pub recycle_after: Option<u64>,
    /// `recycle_memory`: replace the instance with a fresh one after a batch that leaves it
    /// holding this much linear memory or more, such as `"192MiB"`, for modules whose memory
    /// grows with the records they see (Python's does). Checked between batches, so no record is
    /// lost. At least 1MiB and less than `memory`. Default: never.
    pub recycle_memory: Option<u64>,
    /// `fuel`: a deterministic CPU budget for each call into the module, in units of fuel
    /// (about one per WebAssembly instruction executed), such as `1_000_000_000`. The budget is
    /// given afresh before every call: instantiation, `init`, each batch of an enrich stage,
    /// each `create`, `add`, `merge` and `emit` of an aggregate stage. A call that runs out
    /// fails with error kind `timeout` (the message says it ran out of fuel), like a call over
    /// `timeout`, which still holds as well. Unlike `timeout`, the bound does not move with the
    /// machine's load or speed: the same batch runs out at the same instruction everywhere.
    /// Metered code runs several percent slower, so stages with `fuel` run on an engine of
    /// their own and the others pay nothing. At least 1. Default: no fuel metering.
    pub fuel: Option<u64>,
}

impl Limits {
    /// Smallest accepted [`Limits::memory`].
    pub const MIN_MEMORY: u64 = MIB;
    /// Largest accepted [`Limits::memory`]: all a 32-bit WebAssembly memory can address.
    pub const MAX_MEMORY: u64 = 4096 * MIB;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: 64 * MIB,
            timeout: Duration::from_millis(100),
            recycle_after: None,
            recycle_memory: None,
            fuel: None,
        }
    }
}
