//! Why a module could not be loaded: the crate's one error type. Owns [`WasmError`] only.

use std::path::PathBuf;

/// A module that cannot serve as a stage. Every variant is the module's or its author's fault
/// except [`WasmError::Io`] and [`WasmError::Engine`].
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("cannot read module {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid WebAssembly component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error(
        "{path} was built against contract weir:stage@{found}, but this runtime implements \
         weir:stage@{expected}; rebuild the module against weir:stage@{expected}"
    )]
    ContractVersion {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
    #[error(
        "{path} does not export `{expected}`, so it is not a weir {world} stage \
         (it exports: {exports})"
    )]
    WrongWorld {
        path: PathBuf,
        world: &'static str,
        expected: String,
        exports: String,
    },
    #[error("{path} needs imports this runtime does not grant: {message}")]
    Imports { path: PathBuf, message: String },
    #[error(
        "{path} speaks batch format {found}, but this runtime speaks format {expected}; \
         rebuild it with a matching SDK"
    )]
    BatchFormat {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("stage {stage} refused its configuration: {code}: {message}")]
    Init {
        stage: String,
        code: String,
        message: String,
    },
    #[error(
        "{path} changed while it was being loaded (its content no longer has the hash it was \
         compiled with); load it again"
    )]
    Changed { path: PathBuf },
    #[error("stage {stage}: {message}")]
    Instantiate { stage: String, message: String },
    #[error(
        "stage {stage}: the new module keeps its accumulators in state version {found}, the \
         running one in version {running}, so the open windows cannot be carried over; restart \
         with a new `changelog` topic to start the windows afresh"
    )]
    StateVersion {
        stage: String,
        found: u32,
        running: u32,
    },
    #[error("wasm engine: {0}")]
    Engine(String),
}
