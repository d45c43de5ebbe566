//! Enrich stages: a module resolved once, and per-lane instances that isolate failing records.
//!
//! Owns the enricher world's side of the instance core (its bindings, as [`World`]), the batch
//! encoding of a call and the decoding of its result, and what becomes of the records of a batch
//! whose call failed as a whole: the record-by-record re-run and its breaker. Instantiation,
//! limits and recycling are the instance core's (`instance/`).

use std::sync::Arc;

use wasmtime::Store;
use weir_core::{CallTrace, Failure, FailureKind, Outputs, Record, Stage, StageOutcome};
use weir_wire::{BatchWriter, DecodeError, Entry, ResultReader};

use crate::WasmError;
use crate::bindings::{Enricher, EnricherPre};
use crate::caps::{self, MAX_ERROR_MESSAGE, MAX_OUTPUTS_PER_INPUT, OutputBudget};
use crate::host::WasmHost;
use crate::instance::{CallSource, InstanceCore, ModuleCore, ModuleSpec, World, world_bindings};
use crate::metrics::GuestMetrics;
use crate::state::StoreState;

/// Records of one batch that may fail in a row, each as a whole call, while the batch is re-run
/// record by record, before the rest of the batch is failed without being run (the breaker
/// trips). Each such failure costs a fresh instance (milliseconds, and a 12-19 MB component, for
/// Python and JavaScript guests) and may cost a whole time limit: a batch of 256 records that
/// each time out at 1s would hold its partition for minutes. Three in a row tells a stage that
/// fails everything from a few bad records, which are still isolated exactly when fewer than
/// three of them come in a row.
pub const RERUN_BREAKER: u32 = 3;

/// The enricher world, for the instance core.
pub(crate) struct EnrichWorld;

impl World for EnrichWorld {
    const WORLD: &'static str = "enricher";
    const INTERFACE: &'static str = "enrich";
    const INFO_CALL: &'static str = "nothing";
    type Info = ();
    world_bindings!(Enricher, EnricherPre, weir_stage_enrich);

    fn info(_: &Enricher, _: &mut Store<StoreState>) -> wasmtime::Result<()> {
        Ok(())
    }
}

/// An enrich stage's module, compiled, checked against the contract and pre-instantiated. Shared
/// by every lane; each lane makes its own [`EnrichInstance`].
pub struct EnrichModule {
    core: Arc<ModuleCore<EnrichWorld>>,
}

impl std::fmt::Debug for EnrichModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrichModule")
            .field("stage", &self.core.stage)
            .field("module", &self.core.module)
            .field("limits", &self.core.limits)
            .finish_non_exhaustive()
    }
}

impl EnrichModule {
    /// Resolves `spec.module` as the enrich stage `spec.stage`: checks it exports the enricher
    /// world of this contract version, needs nothing the runtime does not grant, speaks this
    /// batch format and accepts `spec.config` (JSON). Fails with the reason otherwise.
    pub fn new(host: &WasmHost, spec: ModuleSpec<'_>) -> Result<Arc<Self>, WasmError> {
        let (core, ()) = ModuleCore::new(host, spec)?;
        Ok(Arc::new(Self {
            core: Arc::new(core),
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

    /// What the module reported through the host metrics import, across all instances.
    pub fn guest_metrics(&self) -> &Arc<GuestMetrics> {
        &self.core.metrics
    }

    /// A new instance for one lane.
    pub fn instance(self: &Arc<Self>) -> Result<EnrichInstance, WasmError> {
        Ok(EnrichInstance {
            module: Arc::clone(self),
            core: InstanceCore::new(Arc::clone(&self.core))?,
            buf: Vec::new(),
        })
    }
}

/// One lane's instance of an enrich stage.
///
/// A call that traps, times out, exhausts memory or answers garbage poisons the instance: it is
/// dropped, a fresh one takes its place, and the batch is re-run record by record so that only
/// the records that fail on their own are reported as failed; after [`RERUN_BREAKER`] records
/// in a row fail so, the rest of the batch fails with them, unrun.
pub struct EnrichInstance {
    module: Arc<EnrichModule>,
    core: InstanceCore<EnrichWorld>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for EnrichInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrichInstance")
            .field("core", &self.core)
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
        self.core.recycled()
    }

    /// How many instantiations this lane's instance has attempted, the first included: after
    /// recycling, and after calls that failed as a whole.
    pub fn instantiated(&self) -> u64 {
        self.core.instantiated()
    }

    /// One call to the guest with `records`; `Err` means the whole call failed (and the
    /// instance was dropped, or is to be).
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
        let source = CallSource {
            partition,
            inputs: records,
            offsets: records
                .first()
                .zip(records.last())
                .map(|(f, l)| (f.offset, l.offset)),
            records: records.len() as u64,
        };
        let result = self.core.call(source, |api, store| {
            api.weir_stage_enrich().call_process(store, &batch)
        });
        self.buf = batch;
        let out = result?;
        let cap = caps::output_bytes_cap(self.core.module().limits.memory);
        decode_outcomes(out, records, cap).map_err(|e| {
            Failure::new(
                FailureKind::InvalidOutput,
                format!("the module's result does not decode: {e}"),
            )
        })
    }

    /// The batch `records`, whose call failed as a whole with `failure`, re-run record by record
    /// on fresh instances, until [`RERUN_BREAKER`] records in a row fail as whole calls: the
    /// rest then fail unrun, with the last failure's kind and a message that says so.
    fn rerun(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[Record],
        failure: &Failure,
    ) -> Vec<StageOutcome> {
        tracing::debug!(
            stage = self.module.stage(),
            partition,
            records = records.len(),
            %failure,
            "Batch failed; isolating the failing records."
        );
        let mut in_a_row = 0;
        let mut tripped: Option<Failure> = None;
        let mut outcomes = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            if let Some(f) = &tripped {
                outcomes.push(Err(f.clone()));
                continue;
            }
            match self.call(topic, partition, std::slice::from_ref(r)) {
                Ok(mut one) => {
                    in_a_row = 0;
                    outcomes.push(one.pop().expect("one entry per record was checked"));
                }
                Err(f) => {
                    self.core.poison();
                    in_a_row += 1;
                    if in_a_row >= RERUN_BREAKER && i + 1 < records.len() {
                        tracing::warn!(
                            stage = self.module.stage(),
                            partition,
                            offset = r.offset,
                            kind = f.kind.as_str(),
                            unrun = records.len() - i - 1,
                            "Breaker tripped: records failed in a row; failing the rest of the                              batch unrun."
                        );
                        tripped = Some(breaker_failure(&f, r.offset));
                    }
                    outcomes.push(Err(f));
                }
            }
        }
        outcomes
    }
}

/// The failure of a record left unrun because the breaker tripped at the record at `offset`,
/// which failed with `last`.
fn breaker_failure(last: &Failure, offset: i64) -> Failure {
    let mut message = format!(
        "not run: the stage's breaker tripped after {RERUN_BREAKER} records of this batch failed          in a row, the last at offset {offset} with: {}",
        last.message
    );
    caps::truncate(&mut message, MAX_ERROR_MESSAGE);
    Failure::new(last.kind, message)
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

impl Stage for EnrichInstance {
    fn set_context(&mut self, context: &CallTrace) {
        self.core.set_context(context);
    }

    fn set_privacy(&mut self, privacy: &Arc<weir_core::Redactor>) {
        self.core.set_privacy(privacy);
    }

    fn process(&mut self, topic: &str, partition: i32, records: &[Record]) -> Vec<StageOutcome> {
        if records.is_empty() {
            return Vec::new();
        }
        match self.call(topic, partition, records) {
            Ok(outcomes) => outcomes,
            Err(failure) => {
                self.core.poison();
                if records.len() == 1 {
                    vec![Err(failure)]
                } else {
                    self.rerun(topic, partition, records, &failure)
                }
            }
        }
    }
}
