//! What a store carries: the WASI context (nothing granted), the memory limiter, the host imports
//! and the context, deadline and log budget of the call in progress.
//!
//! Owns the store's data and the host side of the `weir:stage/host` imports; it does not make
//! stores or arm calls (the instance core's `instance/call.rs` does).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::weir::stage::{host, types};
use crate::caps::{
    MAX_INSTANCES, MAX_LOG_BYTES_PER_CALL, MAX_LOG_FIELD_NAME, MAX_LOG_FIELD_VALUE, MAX_LOG_FIELDS,
    MAX_LOG_LINES_PER_CALL, MAX_LOG_MESSAGE, MAX_MEMORIES, MAX_TABLE_ELEMENTS, MAX_TABLES,
    TABLE_ELEMENT_BYTES, truncate,
};
use crate::deadline::{DeadlinePoll, deadline_after};
use crate::metrics::{GuestMetrics, Refused};
use crate::watchdog::CallWatch;

/// The error a memory or table grow past the stage's memory limit traps with.
#[derive(Debug, thiserror::Error)]
#[error(
    "memory limit of {limit} bytes exceeded (the module asked for {desired} bytes in all its \
     memories and tables)"
)]
pub(crate) struct MemoryLimitExceeded {
    pub limit: usize,
    pub desired: usize,
}

/// Caps the store's linear memories and tables together at the stage's `limits.memory`, and its
/// instances, tables and memories at the host's caps; keeps count of what it granted.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// Most bytes the store's linear memories and tables may hold together.
    pub memory: usize,
    /// Bytes of linear memory granted so far, over all the store's memories (a linear memory
    /// never shrinks): what an instance recycled at a memory threshold is measured by.
    pub grown: usize,
    /// Bytes of table elements granted so far ([`TABLE_ELEMENT_BYTES`] each).
    pub tables: usize,
}

impl Limiter {
    pub fn new(memory: usize) -> Self {
        Self {
            memory,
            grown: 0,
            tables: 0,
        }
    }

    /// Everything the store holds: its linear memories and its tables.
    pub fn total(&self) -> usize {
        self.grown.saturating_add(self.tables)
    }

    /// Whether `added` more bytes fit within the limit; the error to trap with if not.
    fn admit(&self, added: usize) -> wasmtime::Result<()> {
        let desired = self.total().saturating_add(added);
        if desired > self.memory {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.memory,
                desired,
            }));
        }
        Ok(())
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            // Past the memory's own declared maximum: the grow fails (`memory.grow` answers
            // -1) and nothing is granted.
            return Ok(false);
        }
        let added = desired.saturating_sub(current);
        self.admit(added)?;
        self.grown = self.grown.saturating_add(added);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS || maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let added = desired
            .saturating_sub(current)
            .saturating_mul(TABLE_ELEMENT_BYTES);
        self.admit(added)?;
        self.tables = self.tables.saturating_add(added);
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Where the call in progress comes from, for the guest's log lines.
#[derive(Debug, Default, Clone)]
pub(crate) struct CallContext {
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The stage call's span (hex), when the runtime traces it.
    pub trace_id: String,
    pub span_id: String,
}

/// What the call in progress has logged so far, against the per-call caps.
#[derive(Debug, Default)]
struct LogBudget {
    lines: u32,
    bytes: usize,
    dropped_lines: u64,
    dropped_fields: u64,
}

pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    pub stage: Arc<str>,
    pub call: CallContext,
    /// The message of a guest panic reported through `log` during the call in progress.
    pub panic: Option<String>,
    pub metrics: Arc<GuestMetrics>,
    /// When the call in progress must end: host waits give up then.
    deadline: Instant,
    watch: Arc<CallWatch>,
    logs: LogBudget,
    /// With `[privacy]`: the call's records, whose sensitive texts are removed from its log
    /// lines.
    pub redact: Option<LogRedaction>,
}

/// What a call's log lines are cleaned of: the sensitive texts of its records, read from them
/// only when the guest logs.
pub(crate) struct LogRedaction {
    privacy: Arc<weir_core::Redactor>,
    records: Vec<weir_core::Record>,
    scrub: Option<weir_core::Scrub>,
}

impl LogRedaction {
    pub fn new(privacy: Arc<weir_core::Redactor>, records: &[weir_core::Record]) -> Self {
        Self {
            privacy,
            // Cheap: a record's parts are shared buffers.
            records: records.to_vec(),
            scrub: None,
        }
    }

    fn clean(&mut self, text: &mut String) {
        let (privacy, records) = (&self.privacy, &self.records);
        let scrub = self.scrub.get_or_insert_with(|| {
            let mut scrub = weir_core::Scrub::default();
            for r in records {
                scrub.extend(privacy.scrub_for(r));
            }
            scrub
        });
        if let std::borrow::Cow::Owned(clean) = scrub.apply(text) {
            *text = clean;
        }
    }
}

impl StoreState {
    pub fn new(
        stage: Arc<str>,
        memory: usize,
        metrics: Arc<GuestMetrics>,
        watch: Arc<CallWatch>,
    ) -> Self {
        Self {
            // No preopened directories, environment, arguments, stdio or network: only clocks
            // and randomness, which std guests expect.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(memory),
            stage,
            call: CallContext::default(),
            panic: None,
            metrics,
            deadline: Instant::now(),
            watch,
            logs: LogBudget::default(),
            redact: None,
        }
    }

    /// A call with a budget of `timeout` starts: sets its deadline for host waits, shows it to
    /// the watchdog and opens its log budget. Every call ends with [`StoreState::end_call`].
    pub fn begin_call(&mut self, timeout: Duration) {
        let now = Instant::now();
        self.deadline = deadline_after(now, timeout);
        self.watch.begin(now, timeout);
        self.panic = None;
        self.logs = LogBudget::default();
    }

    /// The call in progress has returned: counts and reports what its log budget dropped.
    pub fn end_call(&mut self) {
        self.watch.end();
        let LogBudget {
            dropped_lines,
            dropped_fields,
            ..
        } = std::mem::take(&mut self.logs);
        if dropped_lines == 0 && dropped_fields == 0 {
            return;
        }
        self.metrics.dropped_logs(dropped_lines, dropped_fields);
        let stage = &*self.stage;
        if self.metrics.logs_dropped_told.swap(true, Ordering::Relaxed) {
            tracing::debug!(
                stage,
                dropped_lines,
                dropped_fields,
                "Guest log output dropped."
            );
        } else {
            tracing::warn!(
                stage,
                dropped_lines,
                dropped_fields,
                max_lines = MAX_LOG_LINES_PER_CALL,
                max_bytes = MAX_LOG_BYTES_PER_CALL,
                max_fields = MAX_LOG_FIELDS,
                "Guest log output over the per-call caps dropped; later drops are logged at debug."
            );
        }
    }

    /// What the deadline-bound `wasi:io/poll` functions work on.
    pub fn poll(&mut self) -> DeadlinePoll<'_> {
        DeadlinePoll {
            table: &mut self.table,
            deadline: self.deadline,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreState {}

/// A guest's log fields as one `name="value"` text within the caps, and how many fields were
/// dropped.
fn capped_fields(fields: Vec<(String, String)>) -> (String, u64) {
    let dropped = fields.len().saturating_sub(MAX_LOG_FIELDS) as u64;
    let mut text = String::new();
    for (mut name, mut value) in fields.into_iter().take(MAX_LOG_FIELDS) {
        truncate(&mut name, MAX_LOG_FIELD_NAME);
        truncate(&mut value, MAX_LOG_FIELD_VALUE);
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("{name}={value:?}"));
    }
    if dropped > 0 {
        text.push_str(&format!(" weir.dropped_fields={dropped}"));
    }
    (text, dropped)
}

impl host::Host for StoreState {
    fn log(&mut self, level: types::Level, message: String, fields: Vec<(String, String)>) {
        let mut message = message;
        let mut fields = fields;
        if let Some(redact) = &mut self.redact {
            redact.clean(&mut message);
            for (_, value) in &mut fields {
                redact.clean(value);
            }
        }
        truncate(&mut message, MAX_LOG_MESSAGE);
        if level == types::Level::Error && fields.iter().any(|(k, v)| k == "panic" && v == "true") {
            // Kept even when the line itself is over the budget: it explains the trap.
            self.panic = Some(message.clone());
        }
        let budget = &mut self.logs;
        if budget.lines >= MAX_LOG_LINES_PER_CALL {
            budget.dropped_lines += 1;
            return;
        }
        let (fields, dropped) = capped_fields(fields);
        let bytes = message.len() + fields.len();
        if budget.bytes + bytes > MAX_LOG_BYTES_PER_CALL {
            budget.dropped_lines += 1;
            return;
        }
        budget.lines += 1;
        budget.bytes += bytes;
        budget.dropped_fields += dropped;
        let stage = &*self.stage;
        let CallContext {
            partition,
            first_offset,
            last_offset,
            ref trace_id,
            ref span_id,
        } = self.call;
        macro_rules! emit {
            ($lvl:ident) => {
                tracing::$lvl!(
                    target: "weir::guest",
                    stage,
                    partition,
                    first_offset,
                    last_offset,
                    trace_id,
                    span_id,
                    fields,
                    "{message}"
                )
            };
        }
        match level {
            types::Level::Trace => emit!(trace),
            types::Level::Debug => emit!(debug),
            types::Level::Info => emit!(info),
            types::Level::Warn => emit!(warn),
            types::Level::Error => emit!(error),
        }
    }

    fn counter_add(&mut self, name: String, delta: u64) {
        if let Err(why) = self.metrics.counter_add(&name, delta) {
            refused(&self.stage, &name, "counter", why);
        }
    }

    fn histogram_record(&mut self, name: String, value: f64) {
        if let Err(why) = self.metrics.histogram_record(&name, value) {
            refused(&self.stage, &name, "histogram", why);
        }
    }
}

/// Logs a refused guest metric update: a kind clash once, at warning level; the rest at debug.
fn refused(stage: &str, name: &str, kind: &'static str, why: Refused) {
    let mut name = name.to_owned();
    truncate(&mut name, MAX_LOG_FIELD_NAME);
    match why {
        Refused::Clash { other, first: true } => tracing::warn!(
            stage,
            name,
            kind,
            registered_as = other.as_str(),
            "Guest metric refused: the name is registered as another kind."
        ),
        Refused::Clash { first: false, .. } => {}
        Refused::BadName | Refused::BadValue | Refused::TooMany => tracing::debug!(
            stage,
            name,
            kind,
            reason = ?why,
            "Guest metric refused (bad name, bad value or too many metrics)."
        ),
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::{Instance, Module};

    use super::*;
    use crate::caps::TRUNCATED;
    use crate::{Limits, WasmHost};

    #[test]
    fn a_store_holds_at_most_the_capped_instances_memories_and_tables() {
        // Core modules in the binary format: empty, one memory of one page, one empty table.
        const EMPTY: &[u8] = b"\0asm\x01\0\0\0";
        const ONE_MEMORY: &[u8] = b"\0asm\x01\0\0\0\x05\x03\x01\x00\x01";
        const ONE_TABLE: &[u8] = b"\0asm\x01\0\0\0\x04\x04\x01\x70\x00\x00";
        let host = WasmHost::new(None).unwrap();
        let limits = Limits {
            memory: 64 << 20,
            timeout: Duration::from_secs(10),
            recycle_after: None,
            recycle_memory: None,
            fuel: None,
        };
        let metrics = Arc::new(GuestMetrics::new(Arc::default()));
        for (bytes, cap, what) in [
            (EMPTY, MAX_INSTANCES, "instances"),
            (ONE_MEMORY, MAX_MEMORIES, "memories"),
            (ONE_TABLE, MAX_TABLES, "tables"),
        ] {
            let module = Module::new(host.engine(), bytes).unwrap();
            let mut store =
                crate::instance::new_store(&host, host.engine(), &"t".into(), &limits, &metrics);
            for i in 0..cap {
                Instance::new(&mut store, &module, &[])
                    .unwrap_or_else(|e| panic!("{what}: number {i} refused: {e:#}"));
            }
            let refused = Instance::new(&mut store, &module, &[]).unwrap_err();
            assert!(
                format!("{refused:#}").contains("limit"),
                "{what}: {refused:#}"
            );
        }
    }

    #[test]
    fn the_memory_limit_holds_for_a_stores_memories_and_tables_together() {
        // Core modules in the binary format: two memories of 16 pages (1MiB) each; one memory
        // of 16 pages; a table of 100,000 elements (800,000 bytes at TABLE_ELEMENT_BYTES).
        const TWO_MEMORIES: &[u8] = b"\0asm\x01\0\0\0\x05\x05\x02\x00\x10\x00\x10";
        const ONE_MEMORY: &[u8] = b"\0asm\x01\0\0\0\x05\x03\x01\x00\x10";
        const BIG_TABLE: &[u8] = b"\0asm\x01\0\0\0\x04\x06\x01\x70\x00\xa0\x8d\x06";
        const MIB: usize = 1 << 20;
        let host = WasmHost::new(None).unwrap();
        let metrics = Arc::new(GuestMetrics::new(Arc::default()));
        let module = |bytes| Module::new(host.engine(), bytes).unwrap();
        let store = |memory: usize| {
            let limits = Limits {
                memory: memory as u64,
                timeout: Duration::from_secs(10),
                recycle_after: None,
                recycle_memory: None,
                fuel: None,
            };
            crate::instance::new_store(&host, host.engine(), &"t".into(), &limits, &metrics)
        };
        let refused = |e: wasmtime::Error| {
            let m = e
                .downcast_ref::<MemoryLimitExceeded>()
                .unwrap_or_else(|| panic!("not the memory limit: {e:#}"));
            (m.limit, m.desired)
        };
        let limit = MIB + MIB / 2;

        // Each of the two memories fits alone; together they do not.
        let mut s = store(limit);
        let err = Instance::new(&mut s, &module(TWO_MEMORIES), &[]).unwrap_err();
        assert_eq!(refused(err), (limit, 2 * MIB));
        let mut s = store(2 * MIB + MIB / 2);
        Instance::new(&mut s, &module(TWO_MEMORIES), &[]).unwrap();
        assert_eq!(s.data().limiter.grown, 2 * MIB);

        // The memories of several instances in one store add up.
        let mut s = store(limit);
        Instance::new(&mut s, &module(ONE_MEMORY), &[]).unwrap();
        let err = Instance::new(&mut s, &module(ONE_MEMORY), &[]).unwrap_err();
        assert_eq!(refused(err), (limit, 2 * MIB));
        assert_eq!(s.data().limiter.total(), MIB);

        // Tables count too.
        let mut s = store(limit);
        Instance::new(&mut s, &module(BIG_TABLE), &[]).unwrap();
        assert_eq!(s.data().limiter.tables, 100_000 * TABLE_ELEMENT_BYTES);
        let err = Instance::new(&mut s, &module(ONE_MEMORY), &[]).unwrap_err();
        assert_eq!(refused(err), (limit, MIB + 800_000));
        assert_eq!(
            s.data().limiter.grown,
            0,
            "the refused memory was not counted"
        );
    }

    #[test]
    fn log_fields_are_capped_in_number_and_size() {
        let fields: Vec<(String, String)> = (0..MAX_LOG_FIELDS + 4)
            .map(|i| {
                (
                    format!("k{i}"),
                    "v".repeat(if i == 0 { 100_000 } else { 1 }),
                )
            })
            .collect();
        let (text, dropped) = capped_fields(fields);
        assert_eq!(dropped, 4);
        assert!(text.ends_with(" weir.dropped_fields=4"), "{text}");
        assert!(text.contains("k15=\"v\""), "{text}");
        assert!(!text.contains("k16="), "{text}");
        let first = text.split(' ').next().unwrap();
        assert!(first.len() < MAX_LOG_FIELD_VALUE + 32, "{}", first.len());
        assert!(first.ends_with(&format!("{TRUNCATED}\"")), "{first}");
        // k0 cut to the cap, k1..k9 and k10..k15 with one-byte values, each `name="value"` and
        // a space, then the count of dropped fields.
        let k0 = "k0=\"\"".len() + MAX_LOG_FIELD_VALUE + TRUNCATED.len();
        let rest = 9 * "k1=\"v\"".len() + 6 * "k10=\"v\"".len();
        assert_eq!(text.len(), k0 + 15 + rest + " weir.dropped_fields=4".len());
    }
}
