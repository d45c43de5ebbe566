//! One lane's instance slot: the live instance (or none, until the next call makes one), when it
//! is replaced, and every call into it.
//!
//! Owns instantiation on demand, recycling (`recycle_after`, `recycle_memory`), dropping an
//! instance after a failed call, the counters that show both, and the log context of a call.
//! It does not look at what a call returns: a result the caller cannot use is the caller's to
//! report, by [`InstanceCore::poison`].

use std::sync::Arc;

use wasmtime::Store;
use weir_core::{CallTrace, Failure, FailureKind};

use super::{Live, ModuleCore, World, call};
use crate::state::StoreState;

/// Where the records of a call come from, for the guest's log lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallSource<'a> {
    pub partition: i32,
    /// The call's records, whose sensitive texts `[privacy]` removes from the guest's log
    /// lines (empty where the host does not hand records).
    pub inputs: &'a [weir_core::Record],
    /// The lowest and highest offsets of the call's records, if it has any.
    pub offsets: Option<(i64, i64)>,
    /// Records the call hands the guest: what `recycle_after` counts.
    pub records: u64,
}

/// One lane's instance of a stage of world `W`.
pub(crate) struct InstanceCore<W: World> {
    module: Arc<ModuleCore<W>>,
    live: Option<Live<W>>,
    /// Records handed to the live instance.
    since_recycle: u64,
    /// Instances replaced at the record count or memory threshold (not after failures).
    recycled: u64,
    /// Instantiations this slot has attempted, the first included.
    instantiated: u64,
    /// The next calls' trace and span ids (hex), for the guest's log lines.
    context: Option<(String, String)>,
    /// The pipeline's `[privacy]`, for the guest's log lines.
    privacy: Option<Arc<weir_core::Redactor>>,
}

impl<W: World> std::fmt::Debug for InstanceCore<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceCore")
            .field("stage", &self.module.stage)
            .field("live", &self.live.is_some())
            .field("since_recycle", &self.since_recycle)
            .field("recycled", &self.recycled)
            .field("instantiated", &self.instantiated)
            .finish_non_exhaustive()
    }
}

impl<W: World> InstanceCore<W> {
    /// A slot holding a fresh instance of `module`.
    pub fn new(module: Arc<ModuleCore<W>>) -> Result<Self, crate::WasmError> {
        let (live, _) = module.instantiate()?;
        Ok(Self {
            module,
            live: Some(live),
            since_recycle: 0,
            recycled: 0,
            instantiated: 1,
            context: None,
            privacy: None,
        })
    }

    pub fn module(&self) -> &Arc<ModuleCore<W>> {
        &self.module
    }

    /// How many times the instance was replaced at its record count or memory threshold.
    pub fn recycled(&self) -> u64 {
        self.recycled
    }

    /// How many instantiations this slot has attempted, the first included: one more after
    /// every recycling and after every failed call that is followed by another call.
    pub fn instantiated(&self) -> u64 {
        self.instantiated
    }

    /// The trace context of the next calls, for the guest's log lines.
    pub fn set_context(&mut self, context: &CallTrace) {
        self.context = Some((
            weir_core::trace::hex(&context.trace_id),
            weir_core::trace::hex(&context.span_id),
        ));
    }

    /// Redacts the guest's log lines with `privacy` from the next call on.
    pub fn set_privacy(&mut self, privacy: &Arc<weir_core::Redactor>) {
        self.privacy = Some(Arc::clone(privacy));
    }

    /// Drops the instance (a call failed, or answered something unusable): the next call runs
    /// on a fresh one.
    pub fn poison(&mut self) {
        self.live = None;
    }

    /// The live instance, replaced first if it has seen `recycle_after` records, made if there
    /// is none.
    fn live(&mut self) -> Result<&mut Live<W>, Failure> {
        let limit = self.module.limits.recycle_after;
        if self.live.is_some() && limit.is_some_and(|n| self.since_recycle >= n) {
            self.live = None;
            self.recycled += 1;
        }
        if self.live.is_none() {
            self.since_recycle = 0;
            self.instantiated += 1;
            let (live, _) = self
                .module
                .instantiate()
                .map_err(|e| Failure::new(FailureKind::Trap, e.to_string()))?;
            self.live = Some(live);
        }
        Ok(self.live.as_mut().expect("instance was just created"))
    }

    /// One call `f` into the instance within the stage's limits. A call that fails as a whole
    /// (trap, timeout, fuel, memory) drops the instance; a call that leaves it holding
    /// `recycle_memory` bytes or more replaces it, after the call, when its result has left
    /// the guest, so nothing is lost.
    pub fn call<T>(
        &mut self,
        source: CallSource<'_>,
        f: impl FnOnce(&W::Bindings, &mut Store<StoreState>) -> wasmtime::Result<T>,
    ) -> Result<T, Failure> {
        let limits = self.module.limits;
        let context = self.context.clone();
        let privacy = self.privacy.clone();
        let live = self.live()?;
        {
            let s = live.store.data_mut();
            s.call.partition = source.partition;
            let (first, last) = source.offsets.unwrap_or((-1, -1));
            s.call.first_offset = first;
            s.call.last_offset = last;
            if let Some(t) = &context {
                s.call.trace_id.clone_from(&t.0);
                s.call.span_id.clone_from(&t.1);
            }
            s.redact = privacy.map(|p| crate::state::LogRedaction::new(p, source.inputs));
        }
        call::arm(&mut live.store, &limits);
        let result = f(&live.bindings, &mut live.store)
            .map_err(|error| call::classify(&error, live.store.data_mut().panic.take(), &limits));
        live.store.data_mut().end_call();
        let grown = live.store.data().limiter.grown as u64;
        self.since_recycle += source.records;
        if result.is_err() {
            self.live = None;
        } else if limits.recycle_memory.is_some_and(|m| grown >= m) {
            tracing::debug!(
                stage = &*self.module.stage,
                memory = grown,
                "Instance recycled at its memory threshold."
            );
            self.live = None;
            self.recycled += 1;
        }
        result
    }
}
