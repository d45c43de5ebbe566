//! The instance core shared by enrich and aggregate stages.
//!
//! Owns everything between a compiled module and a call into one of its instances: the contract
//! check and the linker (`contract.rs`), the module resolved once ([`ModuleCore`]: `InstancePre`,
//! the engine chosen by `limits.fuel`, the stage's guest metrics), the store of one instance with
//! its limiter, epoch deadline and fuel, and what a failed call means (`call.rs`), and one lane's
//! instance slot ([`InstanceCore`]: instantiation, recycling, poisoning, the call's log context).
//!
//! It knows the two worlds only through [`World`], whose binding calls [`world_bindings!`]
//! writes for each world from its generated bindings; it never encodes or decodes records (the
//! batch format is the enrich and aggregate modules' own) and never decides what to do with the
//! records of a failed call. [`ModuleSpec`] is what a stage asks of it: one module, its config
//! and its limits.

mod call;
mod contract;
mod lane;

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};
use weir_wire::FORMAT_VERSION;

use crate::bindings::weir::stage::types::StageError;
use crate::host::{CompiledModule, WasmHost};
use crate::metrics::GuestMetrics;
use crate::state::StoreState;
use crate::{Limits, WasmError};

pub(crate) use call::new_store;
pub(crate) use lane::{CallSource, InstanceCore};

/// What the instance core needs of a `weir:stage` world (enricher or aggregator): its bindings
/// and the calls every instance answers before its first stage call.
pub(crate) trait World: 'static {
    /// The world's name, in messages: `enricher`, `aggregator`.
    const WORLD: &'static str;
    /// The interface the module must export, without its version: `enrich`, `aggregate`.
    const INTERFACE: &'static str;
    /// The name, in messages, of the call that reads [`World::Info`].
    const INFO_CALL: &'static str;
    /// The world's pre-instantiated bindings.
    type Pre: Send + Sync;
    /// One instance's bindings.
    type Bindings: Send;
    /// What an instance reports before `init`, besides its batch format (the aggregator's state
    /// version).
    type Info: Copy;

    fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()>;
    fn pre(pre: InstancePre<StoreState>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(
        pre: &Self::Pre,
        store: &mut Store<StoreState>,
    ) -> wasmtime::Result<Self::Bindings>;
    fn batch_format(b: &Self::Bindings, store: &mut Store<StoreState>) -> wasmtime::Result<u32>;
    fn info(b: &Self::Bindings, store: &mut Store<StoreState>) -> wasmtime::Result<Self::Info>;
    fn init(
        b: &Self::Bindings,
        store: &mut Store<StoreState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), StageError>>;
}

/// Writes the [`World`] items that only forward to a world's generated bindings: `Pre`,
/// `Bindings`, `add_to_linker`, `pre`, `instantiate`, `batch_format` and `init`. Takes the
/// bindings type, its pre-instantiated type and the accessor of its exported interface; the
/// world's names, its [`World::Info`] and `info` stay with the world.
macro_rules! world_bindings {
    ($bindings:ident, $pre:ident, $api:ident) => {
        type Pre = $pre<$crate::state::StoreState>;
        type Bindings = $bindings;

        fn add_to_linker(
            linker: &mut ::wasmtime::component::Linker<$crate::state::StoreState>,
        ) -> ::wasmtime::Result<()> {
            $bindings::add_to_linker::<_, ::wasmtime::component::HasSelf<_>>(linker, |s| s)
        }

        fn pre(
            pre: ::wasmtime::component::InstancePre<$crate::state::StoreState>,
        ) -> ::wasmtime::Result<Self::Pre> {
            $pre::new(pre)
        }

        fn instantiate(
            pre: &Self::Pre,
            store: &mut ::wasmtime::Store<$crate::state::StoreState>,
        ) -> ::wasmtime::Result<$bindings> {
            pre.instantiate(store)
        }

        fn batch_format(
            b: &$bindings,
            store: &mut ::wasmtime::Store<$crate::state::StoreState>,
        ) -> ::wasmtime::Result<u32> {
            b.$api().call_batch_format(store)
        }

        fn init(
            b: &$bindings,
            store: &mut ::wasmtime::Store<$crate::state::StoreState>,
            config: &str,
        ) -> ::wasmtime::Result<Result<(), $crate::bindings::weir::stage::types::StageError>> {
            b.$api().call_init(store, config)
        }
    };
}
pub(crate) use world_bindings;

/// What a stage resolves: its module and what it runs it with. One value per module to resolve;
/// [`crate::EnrichModule::new`] and [`crate::AggregateModule::new`] take it.
#[derive(Debug, Clone)]
pub struct ModuleSpec<'a> {
    /// The stage's name, in errors, the guest's log lines and the watchdog's reports.
    pub stage: &'a str,
    /// The module, as [`WasmHost::compile_file`] or [`WasmHost::compile`] made it; when
    /// `limits.fuel` is set, the stage runs it as compiled by the fuel-metering engine instead.
    pub module: CompiledModule,
    /// The stage's config (JSON), handed to the module's `init`.
    pub config: String,
    /// What one instance may use, and when it is recycled.
    pub limits: Limits,
}

/// The interface a module of world `W` must export, with this runtime's contract version.
pub(crate) fn export<W: World>() -> String {
    format!("weir:stage/{}@{}", W::INTERFACE, crate::CONTRACT_VERSION)
}

/// A stage's module, checked against world `W` and pre-instantiated once; shared by every lane.
pub(crate) struct ModuleCore<W: World> {
    host: WasmHost,
    pub stage: Arc<str>,
    /// The module as its engine runs it: compiled by the fuel-metering engine when
    /// `limits.fuel` is set, else by the shared one.
    pub module: CompiledModule,
    pre: W::Pre,
    config: String,
    pub limits: Limits,
    pub metrics: Arc<GuestMetrics>,
}

impl<W: World> std::fmt::Debug for ModuleCore<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleCore")
            .field("stage", &self.stage)
            .field("module", &self.module)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// One instance: its store and its bindings.
pub(crate) struct Live<W: World> {
    pub store: Store<StoreState>,
    pub bindings: W::Bindings,
}

impl<W: World> ModuleCore<W> {
    /// Resolves `spec.module` as the stage `spec.stage` of world `W`: checks it exports the
    /// world's interface of this contract version and needs nothing the runtime does not grant,
    /// then instantiates it once, which proves it starts, speaks this batch format and accepts
    /// `spec.config`. Returns what that instance reported ([`World::Info`]).
    pub fn new(host: &WasmHost, spec: ModuleSpec<'_>) -> Result<(Self, W::Info), WasmError> {
        let ModuleSpec {
            stage,
            module,
            config,
            limits,
        } = spec;
        contract::check_contract(&module, W::WORLD, export::<W>())?;
        let module = match limits.fuel {
            Some(_) => host.with_fuel(&module)?,
            None => module,
        };
        let mut linker = contract::base_linker(module.component.engine())?;
        W::add_to_linker(&mut linker).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let pre = W::pre(contract::instance_pre(&linker, &module)?).map_err(|e| {
            WasmError::WrongWorld {
                path: module.path.clone(),
                world: W::WORLD,
                expected: export::<W>(),
                exports: format!("{e:#}"),
            }
        })?;
        let this = Self {
            host: host.clone(),
            stage: stage.into(),
            module,
            pre,
            config,
            limits,
            metrics: Arc::new(GuestMetrics::new(Arc::clone(host.metric_kinds()))),
        };
        let (_, info) = this.instantiate()?;
        Ok((this, info))
    }

    /// A fresh instance after `init`, and what it reported before it.
    pub fn instantiate(&self) -> Result<(Live<W>, W::Info), WasmError> {
        let mut store = new_store(
            &self.host,
            self.module.component.engine(),
            &self.stage,
            &self.limits,
            &self.metrics,
        );
        let fail = |what: &str, e: wasmtime::Error| WasmError::Instantiate {
            stage: self.stage.to_string(),
            message: format!("{what}: {e:#}"),
        };
        let bindings =
            W::instantiate(&self.pre, &mut store).map_err(|e| fail("instantiation failed", e))?;
        let format =
            W::batch_format(&bindings, &mut store).map_err(|e| fail("batch-format() failed", e))?;
        if format != FORMAT_VERSION {
            return Err(WasmError::BatchFormat {
                path: self.module.path.clone(),
                found: format,
                expected: FORMAT_VERSION,
            });
        }
        let info = W::info(&bindings, &mut store)
            .map_err(|e| fail(&format!("{} failed", W::INFO_CALL), e))?;
        call::arm(&mut store, &self.limits);
        let init = W::init(&bindings, &mut store, &self.config);
        store.data_mut().end_call();
        match init {
            Ok(Ok(())) => Ok((Live { store, bindings }, info)),
            Ok(Err(e)) => Err(contract::init_error(&self.stage, e)),
            Err(e) => Err(fail("init() failed", e)),
        }
    }
}
