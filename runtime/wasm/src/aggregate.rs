//! Aggregate stages: a module resolved once, and instances that fold groups of records into the
//! accumulators the caller keeps.
//!
//! Accumulators are opaque bytes to the host; the caller owns them. Every call can fail as a whole
//! (a trap, a timeout, a memory overrun, a result that does not decode): the instance is then
//! dropped and the next call runs on a fresh one. Within a successful call, `add` answers per
//! group, and `merge` and `emit` may answer with the stage's own error.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::HasSelf;
use weir_core::{CallTrace, Failure, FailureKind, Record};
use weir_wire::{BatchWriter, Entry, FORMAT_VERSION, ResultReader};

use crate::bindings::aggregator::{Aggregator, AggregatorPre};
use crate::bindings::weir::stage::types::{Group, StageError, Window};
use crate::caps::{self, MAX_OUTPUTS_PER_INPUT, OutputBudget};
use crate::enrich::{
    Limits, arm, base_linker, check_contract, classify, init_error, instance_pre, new_store,
};
use crate::host::{CompiledModule, WasmHost};
use crate::metrics::GuestMetrics;
use crate::state::StoreState;
use crate::{CONTRACT_VERSION, WasmError};

/// The interface an aggregate module must export.
fn aggregate_export() -> String {
    format!("weir:stage/aggregate@{CONTRACT_VERSION}")
}

/// An aggregate stage's module, compiled, checked against the contract and pre-instantiated.
/// Shared by every lane; each lane makes its own [`AggregateInstance`].
pub struct AggregateModule {
    host: WasmHost,
    stage: Arc<str>,
    module: CompiledModule,
    pre: AggregatorPre<StoreState>,
    config: String,
    limits: Limits,
    metrics: Arc<GuestMetrics>,
    state_version: u32,
}

impl std::fmt::Debug for AggregateModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateModule")
            .field("stage", &self.stage)
            .field("module", &self.module)
            .field("limits", &self.limits)
            .field("state_version", &self.state_version)
            .finish_non_exhaustive()
    }
}

impl AggregateModule {
    /// Resolves `module` as the aggregate stage `stage`: checks it exports the aggregator world of
    /// this contract version, needs nothing the runtime does not grant, speaks this batch format
    /// and accepts `config` (JSON); reads its state version. Fails with the reason otherwise.
    pub fn new(
        host: &WasmHost,
        stage: &str,
        module: CompiledModule,
        config: String,
        limits: Limits,
    ) -> Result<Arc<Self>, WasmError> {
        check_contract(host, &module, "aggregator", aggregate_export())?;
        let mut linker = base_linker(host)?;
        Aggregator::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let pre = AggregatorPre::new(instance_pre(&linker, &module)?).map_err(|e| {
            WasmError::WrongWorld {
                path: module.path.clone(),
                world: "aggregator",
                expected: aggregate_export(),
                exports: format!("{e:#}"),
            }
        })?;
        let mut this = Self {
            host: host.clone(),
            stage: stage.into(),
            module,
            pre,
            config,
            limits,
            metrics: Arc::new(GuestMetrics::new(Arc::clone(host.metric_kinds()))),
            state_version: 0,
        };
        // Instantiating once proves the module starts, speaks our format and takes its config.
        let (_, state_version) = this.instantiate()?;
        this.state_version = state_version;
        Ok(Arc::new(this))
    }

    /// The stage's name.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// SHA-256 of the module file: its version.
    pub fn sha256(&self) -> &str {
        self.module.sha256()
    }

    /// The version of the module's accumulator encoding (`state-version`): window state survives
    /// a reload only into a module reporting the same version.
    pub fn state_version(&self) -> u32 {
        self.state_version
    }

    /// What the module reported through the host metrics import, across all instances.
    pub fn guest_metrics(&self) -> &Arc<GuestMetrics> {
        &self.metrics
    }

    /// A new instance for one lane.
    pub fn instance(self: &Arc<Self>) -> Result<AggregateInstance, WasmError> {
        let (live, _) = self.instantiate()?;
        Ok(AggregateInstance {
            module: Arc::clone(self),
            live: Some(live),
            since_recycle: 0,
            topic: String::new(),
            partition: -1,
            context: None,
        })
    }

    /// A fresh instance after `init`, and the state version it reports.
    fn instantiate(&self) -> Result<(Live, u32), WasmError> {
        let mut store = new_store(&self.host, &self.stage, &self.limits, &self.metrics);
        let fail = |what: &str, e: wasmtime::Error| WasmError::Instantiate {
            stage: self.stage.to_string(),
            message: format!("{what}: {e:#}"),
        };
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| fail("instantiation failed", e))?;
        let api = bindings.weir_stage_aggregate();
        let format = api
            .call_batch_format(&mut store)
            .map_err(|e| fail("batch-format() failed", e))?;
        if format != FORMAT_VERSION {
            return Err(WasmError::BatchFormat {
                path: self.module.path.clone(),
                found: format,
                expected: FORMAT_VERSION,
            });
        }
        let state_version = api
            .call_state_version(&mut store)
            .map_err(|e| fail("state-version() failed", e))?;
        arm(&mut store, self.limits.timeout);
        let init = api.call_init(&mut store, &self.config);
        store.data_mut().end_call();
        match init {
            Ok(Ok(())) => Ok((Live { store, bindings }, state_version)),
            Ok(Err(e)) => Err(init_error(&self.stage, e)),
            Err(e) => Err(fail("init() failed", e)),
        }
    }
}

struct Live {
    store: Store<StoreState>,
    bindings: Aggregator,
}

/// One lane's instance of an aggregate stage.
///
/// Every method returns `Err` when the call failed as a whole (trap, timeout, memory, a result
/// that does not decode): the instance is dropped and the next call instantiates a fresh one. The
/// caller's accumulators are untouched by a failed call.
pub struct AggregateInstance {
    module: Arc<AggregateModule>,
    live: Option<Live>,
    since_recycle: u64,
    /// Source of the records handed to `add` (the batch header and the guest's log lines).
    topic: String,
    partition: i32,
    /// The next call's trace and span ids (hex), for the guest's log lines.
    context: Option<(String, String)>,
}

impl std::fmt::Debug for AggregateInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateInstance")
            .field("stage", &self.module.stage)
            .field("partition", &self.partition)
            .field("since_recycle", &self.since_recycle)
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
        self.context = Some((
            weir_core::trace::hex(&context.trace_id),
            weir_core::trace::hex(&context.span_id),
        ));
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
            self.live = None;
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
        let mut budget = OutputBudget::new(caps::output_bytes_cap(self.module.limits.memory));
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
                self.live = None;
                Err(Failure::new(
                    FailureKind::InvalidOutput,
                    format!("the module's emit() result does not decode: {e}"),
                ))
            }
        }
    }

    fn live(&mut self) -> Result<&mut Live, Failure> {
        let limit = self.module.limits.recycle_after;
        if limit.is_some_and(|n| self.since_recycle >= n) {
            self.live = None;
        }
        if self.live.is_none() {
            self.since_recycle = 0;
            let (live, _) = self
                .module
                .instantiate()
                .map_err(|e| Failure::new(FailureKind::Trap, e.to_string()))?;
            self.live = Some(live);
        }
        Ok(self.live.as_mut().expect("instance was just created"))
    }

    /// One call to the guest, under the stage's time limit; a failed call drops the instance.
    fn call<T>(
        &mut self,
        records: u64,
        offsets: Option<(i64, i64)>,
        f: impl FnOnce(&Aggregator, &mut Store<StoreState>) -> wasmtime::Result<T>,
    ) -> Result<T, Failure> {
        let limits = self.module.limits;
        let partition = self.partition;
        let context = self.context.clone();
        let live = self.live()?;
        {
            let s = live.store.data_mut();
            s.call.partition = partition;
            let (first, last) = offsets.unwrap_or((-1, -1));
            s.call.first_offset = first;
            s.call.last_offset = last;
            if let Some(t) = &context {
                s.call.trace_id.clone_from(&t.0);
                s.call.span_id.clone_from(&t.1);
            }
        }
        arm(&mut live.store, limits.timeout);
        let result = f(&live.bindings, &mut live.store)
            .map_err(|error| classify(&error, live.store.data_mut().panic.take(), &limits));
        live.store.data_mut().end_call();
        self.since_recycle += records;
        if result.is_err() {
            self.live = None;
        }
        result
    }
}
