//! Whether a compiled module can serve as a stage: the `weir:stage` contract check, the linker
//! (what a guest is granted), the imports resolved once, and a guest's refusal of its config.
//!
//! Owns what is decided once per module, before any store exists; it makes no store and calls
//! no guest.

use wasmtime::Engine;
use wasmtime::component::{InstancePre, Linker};

use crate::bindings::weir::stage::types::StageError;
use crate::caps;
use crate::host::CompiledModule;
use crate::state::StoreState;
use crate::{CONTRACT_VERSION, WasmError};

/// A guest's refusal of its config, its code and message cut to their caps.
pub(crate) fn init_error(stage: &str, e: StageError) -> WasmError {
    let f = caps::stage_error(e.code, e.message);
    WasmError::Init {
        stage: stage.to_owned(),
        code: f.code,
        message: f.message,
    }
}

/// A linker on `engine` with WASI (nothing granted, waits bound to the call's deadline) and
/// nothing else yet; the world adds the `host` imports.
pub(crate) fn base_linker(engine: &Engine) -> Result<Linker<StoreState>, WasmError> {
    let mut linker = Linker::<StoreState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .and_then(|()| crate::deadline::add_to_linker(&mut linker, StoreState::poll))
        .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
    Ok(linker)
}

/// `linker` resolved against `module` once, for fast instantiation; an import the runtime does
/// not grant is an error that names it.
pub(crate) fn instance_pre(
    linker: &Linker<StoreState>,
    module: &CompiledModule,
) -> Result<InstancePre<StoreState>, WasmError> {
    linker
        .instantiate_pre(&module.component)
        .map_err(|e| WasmError::Imports {
            path: module.path.clone(),
            message: format!("{e:#}"),
        })
}

/// Checks `module` exports `expected` (the interface of `world`); a module of another contract
/// version, or of another world, is refused with the reason.
pub(crate) fn check_contract(
    module: &CompiledModule,
    world: &'static str,
    expected: String,
) -> Result<(), WasmError> {
    let engine = module.component.engine();
    let ty = module.component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if exports.contains(&expected) {
        return Ok(());
    }
    let path = module.path.clone();
    for name in ty
        .exports(engine)
        .map(|(n, _)| n)
        .chain(ty.imports(engine).map(|(n, _)| n))
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
