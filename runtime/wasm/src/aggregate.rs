//! Aggregate stages: a module resolved once, and instances that fold groups of records into the
//! accumulators the caller keeps.
//!
//! Owns the aggregator world's side of the instance core (its bindings, as [`World`]) and the
//! encoding and decoding of its calls. Instantiation, limits and recycling are the instance
//! core's (`instance/`).
//!
//! Accumulators are opaque bytes to the host; the caller owns them. Every call can fail as a whole
//! (a trap, a timeout, a memory overrun, a result that does not decode): the instance is then
//! dropped and the next call runs on a fresh one. Within a successful call, `add` answers per
//! group, and `merge` and `emit` may answer with the stage's own error. Since no state lives in
//! the instance beyond what `init` made of the stage's config, an instance can be replaced
//! between any two calls: after `recycle_after` records handed to `add`, or after a call that
//! leaves it holding `recycle_memory` bytes, as for enrich stages.

use std::sync::Arc;

use wasmtime::Store;
use weir_core::{CallTrace, Failure, FailureKind, Record};
use weir_wire::{BatchWriter, Entry, ResultReader};

use crate::WasmError;
use crate::bindings::aggregator::{Aggregator, AggregatorPre};
use crate::bindings::weir::stage::types::{Group, StageError, Window};
use crate::caps::{self, MAX_OUTPUTS_PER_INPUT, OutputBudget};
use crate::host::WasmHost;
use crate::instance::{CallSource, InstanceCore, ModuleCore, ModuleSpec, World, world_bindings};
use crate::metrics::GuestMetrics;
use crate::state::StoreState;

/// The aggregator world, for the instance core. Its [`World::Info`] is the state version.
pub(crate) struct AggregateWorld;

impl World for AggregateWorld {
    const WORLD: &'static str = "aggregator";
    const INTERFACE: &'static str = "aggregate";
    const INFO_CALL: &'static str = "state-version()";
    type Info = u32;
    world_bindings!(Aggregator, AggregatorPre, weir_stage_aggregate);

    fn info(b: &Aggregator, store: &mut Store<StoreState>) -> wasmtime::Result<u32> {
        b.weir_stage_aggregate().call_state_version(store)
    }
}

/// An aggregate stage's module, compiled, checked against the contract and pre-instantiated.
/// Shared by every lane; each lane makes its own [`AggregateInstance`].
pub struct AggregateModule {
    core: Arc<ModuleCore<AggregateWorld>>,
    state_version: u32,
}

impl std::fmt::Debug for AggregateModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateModule")
            .field("stage", &self.core.stage)
            .field("module", &self.core.module)
            .field("limits", &self.core.limits)
            .field("state_version", &self.state_version)
            .finish_non_exhaustive()
    }
}

impl AggregateModule {
    /// Resolves `spec.module` as the aggregate stage `spec.stage`: checks it exports the
    /// aggregator world of this contract version, needs nothing the runtime does not grant,
    /// speaks this batch format and accepts `spec.config` (JSON); reads its state version. Fails
    /// with the reason otherwise.
    pub fn new(host: &WasmHost, spec: ModuleSpec<'_>) -> Result<Arc<Self>, WasmError> {
        let (core, state_version) = ModuleCore::new(host, spec)?;
        Ok(Arc::new(Self {
            core: Arc::new(core),
            state_version,
        }))
    }

    /// The stage's name.
    pub fn stage(&self) -> &str {
        &self.core.stage
    }

    /// SHA-256 of the module file: its version.
    pub fn sha256(&self) -> &str {
        self.core.module.sha256()
    }

    /// The version of the module's accumulator encoding (`state-version`): window state survives
    /// a reload only into a module reporting the same version.
    pub fn state_version(&self) -> u32 {
        self.state_version
    }

    /// What the module reported through the host metrics import, across all instances.
    pub fn guest_metrics(&self) -> &Arc<GuestMetrics> {
        &self.core.metrics
    }

    /// A new instance for one lane.
    pub fn instance(self: &Arc<Self>) -> Result<AggregateInstance, WasmError> {
        Ok(AggregateInstance {
            module: Arc::clone(self),
            core: InstanceCore::new(Arc::clone(&self.core))?,
            topic: String::new(),
            partition: -1,
        })
    }
}

/// One lane's instance of an aggregate stage.
///
/// Every method returns `Err` when the call failed as a whole (trap, timeout, memory, a result
/// that does not decode): the instance is dropped and the next call instantiates a fresh one. The
/// caller's accumulators are untouched by a failed call.
pub struct AggregateInstance {
    module: Arc<AggregateModule>,
    core: InstanceCore<AggregateWorld>,
    /// Source of the records handed to `add` (the batch header and the guest's log lines).
    topic: String,
    partition: i32,
}

impl std::fmt::Debug for AggregateInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateInstance")
            .field("partition", &self.partition)
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

fn stage_failure(e: StageError) -> Failure {
    caps::stage_error(e.code, e.message)
}

impl AggregateInstance {
    /// The module this instance runs.
    pub fn module(&self) -> &Arc<AggregateModule> {
        &self.module
    }

    /// Where the records of the next calls come from: written in the header of each group's batch
    /// and in the guest's log lines.
    pub fn set_source(&mut self, topic: &str, partition: i32) {
        topic.clone_into(&mut self.topic);
        self.partition = partition;
    }

    /// The trace context of the next calls, for the guest's log lines.
    pub fn set_context(&mut self, context: &CallTrace) {
        self.core.set_context(context);
    }

    /// How many times the instance was replaced by a fresh one at its record count or memory
    /// threshold (`Limits::recycle_after`, `Limits::recycle_memory`).
    pub fn recycled(&self) -> u64 {
        self.core.recycled()
    }

    /// How many instantiations this lane's instance has attempted, the first included: after
    /// recycling, and after calls that failed as a whole.
    pub fn instantiated(&self) -> u64 {
        self.core.instantiated()
    }

    /// A new, empty accumulator.
    pub fn create(&mut self) -> Result<Vec<u8>, Failure> {
        self.call(0, None, |api, store| {
            api.weir_stage_aggregate().call_create(store)
        })
    }

    /// Folds each group's records into its accumulator: one result per group, in order, either
    /// the new accumulator or the stage's error for that group (whose accumulator the caller
    /// keeps as it was).
    pub fn add(
        &mut self,
        groups: &[(Vec<u8>, &[Record])],
    ) -> Result<Vec<Result<Vec<u8>, Failure>>, Failure> {
        let mut wit_groups = Vec::with_capacity(groups.len());
        let mut records = 0u64;
        let mut offsets: Option<(i64, i64)> = None;
        for (acc, group) in groups {
            let mut w = BatchWriter::new(&self.topic, self.partition);
            for r in *group {
                w.push_record(r);
                offsets = Some(offsets.map_or((r.offset, r.offset), |(lo, hi)| {
                    (lo.min(r.offset), hi.max(r.offset))
                }));
            }
            records += group.len() as u64;
            wit_groups.push(Group {
                acc: acc.clone(),
                records: w.finish(),
            });
        }
        let results = self.call(records, offsets, |api, store| {
            api.weir_stage_aggregate().call_add(store, &wit_groups)
        })?;
        if results.len() != groups.len() {
            self.core.poison();
            return Err(Failure::new(
                FailureKind::InvalidOutput,
                format!(
                    "add() answered {} results for {} groups",
                    results.len(),
                    groups.len()
                ),
            ));
        }
        Ok(results
            .into_iter()
            .map(|r| r.map_err(stage_failure))
            .collect())
    }

    /// Merges two accumulators of one key: the merged accumulator, or the stage's error.
    pub fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Result<Vec<u8>, Failure>, Failure> {
        let merged = self.call(0, None, |api, store| {
            api.weir_stage_aggregate().call_merge(store, a, b)
        })?;
        Ok(merged.map_err(stage_failure))
    }

    /// Turns the accumulator of `key`'s window `[window_start_ms, window_end_ms)` into output
    /// records, or the stage's error. Outputs keep the timestamp the stage gave them (`None` if
    /// it gave none); their offsets are 0.
    pub fn emit(
        &mut self,
        key: &[u8],
        window_start_ms: i64,
        window_end_ms: i64,
        acc: &[u8],
    ) -> Result<Result<Vec<Record>, Failure>, Failure> {
        let window = Window {
            start_ms: window_start_ms,
            end_ms: window_end_ms,
        };
        let result = self.call(0, None, |api, store| {
            api.weir_stage_aggregate()
                .call_emit(store, key, window, acc)
        })?;
        // The result has one entry, for no input record: an output that marks a field as its
        // input's gets the field of an empty record.
        let input = [Record::default()];
        let entry = ResultReader::new(result.into(), &input).and_then(|entries| {
            let mut entries = entries.max_outputs(MAX_OUTPUTS_PER_INPUT);
            let entry = entries.next().expect("one entry per input was checked")?;
            match entries.next() {
                Some(Err(e)) => Err(e),
                _ => Ok(entry),
            }
        });
        let mut budget = OutputBudget::new(caps::output_bytes_cap(self.module.core.limits.memory));
        match entry {
            Ok(Entry::Ok(outputs)) => Ok(budget.charge(outputs).map(|o| match o {
                weir_core::Outputs::Records(records) => records,
                weir_core::Outputs::Input => vec![Record::EMPTY],
            })),
            // The empty record stands for the input.
            Ok(Entry::Input) => Ok(Ok(vec![Record::EMPTY])),
            Ok(Entry::Err { code, message }) => Ok(Err(caps::stage_error(code, message))),
            Ok(Entry::TooMany { outputs }) => Ok(Err(OutputBudget::too_many(outputs))),
            Err(e) => {
                self.core.poison();
                Err(Failure::new(
                    FailureKind::InvalidOutput,
                    format!("the module's emit() result does not decode: {e}"),
                ))
            }
        }
    }

    /// One call to the guest, under the stage's limits; a failed call drops the instance.
    fn call<T>(
        &mut self,
        records: u64,
        offsets: Option<(i64, i64)>,
        f: impl FnOnce(&Aggregator, &mut Store<StoreState>) -> wasmtime::Result<T>,
    ) -> Result<T, Failure> {
        let source = CallSource {
            partition: self.partition,
            inputs: &[],
            offsets,
            records,
        };
        self.core.call(source, f)
    }
}
