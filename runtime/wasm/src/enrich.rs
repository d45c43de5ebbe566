//! Enrich stages: a module resolved once, and per-lane instances that isolate failing records.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Store, Trap};
use weir_core::{CallTrace, Failure, FailureKind, Outputs, Record, Stage, StageOutcome};
use weir_wire::{BatchWriter, DecodeError, Entry, FORMAT_VERSION, ResultReader};

use crate::bindings::{Enricher, EnricherPre};
use crate::caps::{self, MAX_ERROR_MESSAGE, MAX_OUTPUTS_PER_INPUT, OutputBudget};
use crate::deadline::DeadlineExceeded;
use crate::host::{CompiledModule, EPOCH_TICK, WasmHost};
use crate::metrics::GuestMetrics;
use crate::state::{MemoryLimitExceeded, StoreState};
use crate::{CONTRACT_VERSION, WasmError};

/// The interface an enrich module must export.
fn enrich_export() -> String {
    format!("weir:stage/enrich@{CONTRACT_VERSION}")
}

/// Resource limits of one stage's instances.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub memory: u64,
    /// Wall-clock budget of one stage call (one batch), held in guest code and in the guest's
    /// WASI sleeps and polls alike.
    pub timeout: Duration,
    /// Replace the instance by a fresh one after this many records (guests that leak).
    pub recycle_after: Option<u64>,
    /// Replace the instance by a fresh one after a batch that leaves it holding this many bytes
    /// of linear memory or more (guests whose memory grows with every record, as Python's does).
    pub recycle_memory: Option<u64>,
}

/// An enrich stage's module, compiled, checked against the contract and pre-instantiated. Shared
/// by every lane; each lane makes its own [`EnrichInstance`].
pub struct EnrichModule {
    host: WasmHost,
    stage: Arc<str>,
    module: CompiledModule,
    pre: EnricherPre<StoreState>,
    config: String,
    limits: Limits,
    metrics: Arc<GuestMetrics>,
}

impl std::fmt::Debug for EnrichModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrichModule")
            .field("stage", &self.stage)
            .field("module", &self.module)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl EnrichModule {
    /// Resolves `module` as the enrich stage `stage`: checks it exports the enricher world of
    /// this contract version, needs nothing the runtime does not grant, speaks this batch
    /// format and accepts `config` (JSON). Fails with the reason otherwise.
    pub fn new(
        host: &WasmHost,
        stage: &str,
        module: CompiledModule,
        config: String,
        limits: Limits,
    ) -> Result<Arc<Self>, WasmError> {
        check_contract(host, &module, "enricher", enrich_export())?;
        let mut linker = base_linker(host)?;
        Enricher::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let pre = EnricherPre::new(instance_pre(&linker, &module)?).map_err(|e| {
            WasmError::WrongWorld {
                path: module.path.clone(),
                world: "enricher",
                expected: enrich_export(),
                exports: format!("{e:#}"),
            }
        })?;
        let this = Arc::new(Self {
            host: host.clone(),
            stage: stage.into(),
            module,
            pre,
            config,
            limits,
            metrics: Arc::new(GuestMetrics::new(Arc::clone(host.metric_kinds()))),
        });
        // Instantiating once proves the module starts, speaks our format and takes its config.
        this.instantiate()?;
        Ok(this)
    }

    /// The stage's name.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// SHA-256 of the module file: its version.
    pub fn sha256(&self) -> &str {
        self.module.sha256()
    }

    /// What the module reported through the host metrics import, across all instances.
    pub fn guest_metrics(&self) -> &Arc<GuestMetrics> {
        &self.metrics
    }

    /// A new instance for one lane.
    pub fn instance(self: &Arc<Self>) -> Result<EnrichInstance, WasmError> {
        let live = self.instantiate()?;
        Ok(EnrichInstance {
            module: Arc::clone(self),
            live: Some(live),
            since_recycle: 0,
            recycled: 0,
            buf: Vec::new(),
            context: None,
        })
    }

    fn instantiate(&self) -> Result<Live, WasmError> {
        let mut store = new_store(&self.host, &self.stage, &self.limits, &self.metrics);
        let fail = |what: &str, e: wasmtime::Error| WasmError::Instantiate {
            stage: self.stage.to_string(),
            message: format!("{what}: {e:#}"),
        };
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| fail("instantiation failed", e))?;
        let api = bindings.weir_stage_enrich();
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
        arm(&mut store, self.limits.timeout);
        let init = api.call_init(&mut store, &self.config);
        store.data_mut().end_call();
        match init {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(e)) => Err(init_error(&self.stage, e)),
            Err(e) => Err(fail("init() failed", e)),
        }
    }
}

/// A guest's refusal of its config, its code and message cut to their caps.
pub(crate) fn init_error(
    stage: &str,
    e: crate::bindings::weir::stage::types::StageError,
) -> WasmError {
    let f = caps::stage_error(e.code, e.message);
    WasmError::Init {
        stage: stage.to_owned(),
        code: f.code,
        message: f.message,
    }
}

/// Starts a call of at most `timeout` on `store`: the epoch deadline stops guest code, the
/// store's deadline ends host waits, the watchdog looks on. Every call ends with
/// [`StoreState::end_call`].
pub(crate) fn arm(store: &mut Store<StoreState>, timeout: Duration) {
    store.set_epoch_deadline(deadline_ticks(timeout));
    store.data_mut().begin_call(timeout);
}

/// Epoch ticks of a call's time budget.
pub(crate) fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    // One tick more than the budget: the clock may tick right after the deadline is set.
    u64::try_from(timeout.as_micros().div_ceil(tick))
        .unwrap_or(u64::MAX / 2)
        .saturating_add(1)
}

/// A linker with WASI (nothing granted, waits bound to the call's deadline) and nothing else
/// yet; the world adds the `host` imports.
pub(crate) fn base_linker(host: &WasmHost) -> Result<Linker<StoreState>, WasmError> {
    let mut linker = Linker::<StoreState>::new(host.engine());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .and_then(|()| crate::deadline::add_to_linker(&mut linker))
        .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
    Ok(linker)
}

/// `linker` resolved against `module` once, for fast instantiation; an import the runtime does
/// not grant is an error that names it.
pub(crate) fn instance_pre(
    linker: &Linker<StoreState>,
    module: &CompiledModule,
) -> Result<wasmtime::component::InstancePre<StoreState>, WasmError> {
    linker
        .instantiate_pre(&module.component)
        .map_err(|e| WasmError::Imports {
            path: module.path.clone(),
            message: format!("{e:#}"),
        })
}

/// A store for one instance of `stage`: memory capped by the limiter, calls by their deadline.
/// The store is armed for its instantiation (see [`arm`]).
pub(crate) fn new_store(
    host: &WasmHost,
    stage: &Arc<str>,
    limits: &Limits,
    metrics: &Arc<GuestMetrics>,
) -> Store<StoreState> {
    let memory = usize::try_from(limits.memory).unwrap_or(usize::MAX);
    let watch = host.watchdog().watch(Arc::clone(stage));
    let mut store = Store::new(
        host.engine(),
        StoreState::new(Arc::clone(stage), memory, Arc::clone(metrics), watch),
    );
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_trap();
    arm(&mut store, limits.timeout);
    store
}

/// Checks `module` exports `expected` (the interface of `world`); a module of another contract
/// version, or of another world, is refused with the reason.
pub(crate) fn check_contract(
    host: &WasmHost,
    module: &CompiledModule,
    world: &'static str,
    expected: String,
) -> Result<(), WasmError> {
    let ty = module.component.component_type();
    let exports: Vec<String> = ty
        .exports(host.engine())
        .map(|(name, _)| name.to_owned())
        .collect();
    if exports.contains(&expected) {
        return Ok(());
    }
    let path = module.path.clone();
    for name in ty
        .exports(host.engine())
        .map(|(n, _)| n)
        .chain(ty.imports(host.engine()).map(|(n, _)| n))
    {
        if let Some(version) = name
            .strip_prefix("weir:stage/")
            .and_then(|rest| rest.split_once('@'))
            .map(|(_, v)| v)
            .filter(|v| *v != CONTRACT_VERSION)
        {
            return Err(WasmError::ContractVersion {
                path,
                found: version.to_owned(),
                expected: CONTRACT_VERSION,
            });
        }
    }
    Err(WasmError::WrongWorld {
        path,
        world,
        expected,
        exports: if exports.is_empty() {
            "nothing".into()
        } else {
            exports.join(", ")
        },
    })
}

struct Live {
    store: Store<StoreState>,
    bindings: Enricher,
}

/// One lane's instance of an enrich stage.
///
/// A call that traps, times out, exhausts memory or answers garbage poisons the instance: it is
/// dropped, a fresh one takes its place, and the batch is re-run record by record so that only
/// the records that fail on their own are reported as failed.
pub struct EnrichInstance {
    module: Arc<EnrichModule>,
    live: Option<Live>,
    since_recycle: u64,
    /// Instances replaced at the record count or memory threshold (not after failures).
    recycled: u64,
    buf: Vec<u8>,
    /// The next call's trace and span ids (hex), for the guest's log lines.
    context: Option<(String, String)>,
}

impl std::fmt::Debug for EnrichInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrichInstance")
            .field("stage", &self.module.stage)
            .field("since_recycle", &self.since_recycle)
            .field("recycled", &self.recycled)
            .finish_non_exhaustive()
    }
}

impl EnrichInstance {
    /// The module this instance runs.
    pub fn module(&self) -> &Arc<EnrichModule> {
        &self.module
    }

    /// How many times the instance was replaced by a fresh one at its record count or memory
    /// threshold (`Limits::recycle_after`, `Limits::recycle_memory`).
    pub fn recycled(&self) -> u64 {
        self.recycled
    }

    fn live(&mut self) -> Result<&mut Live, Failure> {
        let limit = self.module.limits.recycle_after;
        if self.live.is_some() && limit.is_some_and(|n| self.since_recycle >= n) {
            self.live = None;
            self.recycled += 1;
        }
        if self.live.is_none() {
            self.since_recycle = 0;
            let live = self
                .module
                .instantiate()
                .map_err(|e| Failure::new(FailureKind::Trap, e.to_string()))?;
            self.live = Some(live);
        }
        Ok(self.live.as_mut().expect("instance was just created"))
    }

    /// One call to the guest with `records`; `Err` means the whole call failed.
    fn call(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[Record],
    ) -> Result<Vec<StageOutcome>, Failure> {
        let mut w = BatchWriter::with_buffer(std::mem::take(&mut self.buf), topic, partition);
        for r in records {
            w.push_record(r);
        }
        let batch = w.finish();
        let limits = self.module.limits;
        let context = self.context.clone();
        let live = self.live()?;
        {
            let s = live.store.data_mut();
            s.call.partition = partition;
            s.call.first_offset = records.first().map_or(-1, |r| r.offset);
            s.call.last_offset = records.last().map_or(-1, |r| r.offset);
            if let Some(t) = &context {
                s.call.trace_id.clone_from(&t.0);
                s.call.span_id.clone_from(&t.1);
            }
        }
        arm(&mut live.store, limits.timeout);
        let result = live
            .bindings
            .weir_stage_enrich()
            .call_process(&mut live.store, &batch)
            .map_err(|error| classify(&error, live.store.data_mut().panic.take(), &limits));
        live.store.data_mut().end_call();
        let grown = live.store.data().limiter.grown as u64;
        self.buf = batch;
        self.since_recycle += records.len() as u64;
        let out = result?;
        // At a batch boundary, so no record is lost: the result is already out of the guest.
        if limits.recycle_memory.is_some_and(|m| grown >= m) {
            tracing::debug!(
                stage = &*self.module.stage,
                memory = grown,
                "Instance recycled at its memory threshold."
            );
            self.live = None;
            self.recycled += 1;
        }
        decode_outcomes(out, records, caps::output_bytes_cap(limits.memory)).map_err(|e| {
            Failure::new(
                FailureKind::InvalidOutput,
                format!("the module's result does not decode: {e}"),
            )
        })
    }
}

/// One outcome per input record, read straight from the guest's result: outputs share the result
/// buffer, or the input's own fields where the guest passed them through. A record over the
/// output caps fails with kind `limit` (the batch may produce `output_cap` bytes).
fn decode_outcomes(
    result: Vec<u8>,
    records: &[Record],
    output_cap: u64,
) -> Result<Vec<StageOutcome>, DecodeError> {
    let mut outcomes = Vec::with_capacity(records.len());
    let mut budget = OutputBudget::new(output_cap);
    let mut reader = ResultReader::new(result.into(), records)?.max_outputs(MAX_OUTPUTS_PER_INPUT);
    loop {
        // Records a filter kept, one byte each: the commonest entries by far.
        let kept = reader.skip_unchanged();
        outcomes.extend(std::iter::repeat_with(|| Ok(Outputs::Input)).take(kept));
        let Some(entry) = reader.next() else {
            break;
        };
        outcomes.push(match entry? {
            Entry::Input => Ok(Outputs::Input),
            Entry::Ok(outputs) => budget.charge(outputs),
            Entry::Err { code, message } => Err(caps::stage_error(code, message)),
            Entry::TooMany { outputs } => Err(OutputBudget::too_many(outputs)),
        });
    }
    Ok(outcomes)
}

/// What a failed call means for its records: a memory overrun, a timeout (in guest code or in a
/// WASI wait), or a trap, whose message (it may quote the guest) is cut to its cap.
pub(crate) fn classify(error: &wasmtime::Error, panic: Option<String>, limits: &Limits) -> Failure {
    if let Some(m) = error.downcast_ref::<MemoryLimitExceeded>() {
        return Failure::new(FailureKind::Memory, m.to_string());
    }
    let waited = error.downcast_ref::<DeadlineExceeded>().is_some();
    if waited || matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        let mut message = format!(
            "the stage call exceeded its time limit of {}",
            humantime_ms(limits.timeout)
        );
        if waited {
            message.push_str(" while waiting in a WASI sleep or poll");
        }
        return Failure::new(FailureKind::Timeout, message);
    }
    let trap = match error.downcast_ref::<Trap>() {
        Some(t) => t.to_string(),
        None => format!("{error:#}"),
    };
    let mut message = match panic {
        Some(p) => format!("guest panicked: {p} ({trap})"),
        None => trap,
    };
    caps::truncate(&mut message, MAX_ERROR_MESSAGE);
    Failure::new(FailureKind::Trap, message)
}

fn humantime_ms(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl Stage for EnrichInstance {
    fn set_context(&mut self, context: &CallTrace) {
        self.context = Some((
            weir_core::trace::hex(&context.trace_id),
            weir_core::trace::hex(&context.span_id),
        ));
    }

    fn process(&mut self, topic: &str, partition: i32, records: &[Record]) -> Vec<StageOutcome> {
        if records.is_empty() {
            return Vec::new();
        }
        match self.call(topic, partition, records) {
            Ok(outcomes) => outcomes,
            Err(failure) if records.len() == 1 => {
                self.live = None;
                vec![Err(failure)]
            }
            Err(failure) => {
                self.live = None;
                tracing::debug!(
                    stage = &*self.module.stage,
                    partition,
                    records = records.len(),
                    %failure,
                    "Batch failed; isolating the failing records."
                );
                records
                    .iter()
                    .map(
                        |r| match self.call(topic, partition, std::slice::from_ref(r)) {
                            Ok(mut one) => one.pop().expect("one entry per record was checked"),
                            Err(f) => {
                                self.live = None;
                                Err(f)
                            }
                        },
                    )
                    .collect()
            }
        }
    }
}
