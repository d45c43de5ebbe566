//! The one shared wasm engine, its epoch clock and its compiled-module cache.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::WasmError;
use crate::cache::DiskCache;
use crate::metrics::MetricKinds;
use crate::watchdog::Watchdog;

/// How often the epoch advances: the granularity of stage time limits.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// A module compiled by the engine, with the SHA-256 of its bytes: the module's version.
#[derive(Clone)]
pub struct CompiledModule {
    pub(crate) component: Component,
    pub(crate) sha256: Arc<str>,
    pub(crate) path: PathBuf,
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule")
            .field("sha256", &self.sha256)
            .field("path", &self.path)
            .finish()
    }
}

impl CompiledModule {
    /// SHA-256 of the module file, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

struct Inner {
    engine: Engine,
    /// Compiled components by content hash: a module named by several stages, or reloaded
    /// unchanged, is compiled once.
    compiled: Mutex<HashMap<String, Component>>,
    /// Where precompiled artefacts are kept across restarts; `None`: no disk cache (disabled,
    /// or its folder is not trusted).
    cache: Option<DiskCache>,
    /// Distinguishes artefacts of engines with other settings or versions.
    compat: String,
    stop_clock: Arc<AtomicBool>,
    /// Reports calls that overrun their time limit in spite of the epoch and host deadlines.
    watchdog: Arc<Watchdog>,
    /// The kind of every guest metric name, across all modules.
    metric_kinds: Arc<MetricKinds>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_clock.store(true, Ordering::Relaxed);
    }
}

/// The shared wasm engine. Cheap to clone.
#[derive(Clone)]
pub struct WasmHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmHost")
            .field("cache", &self.inner.cache)
            .finish()
    }
}

impl WasmHost {
    /// Creates the engine and starts its epoch clock. `cache_dir` keeps compiled modules across
    /// restarts (a module is compiled once per content hash and engine version).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, WasmError> {
        let mut config = Config::new();
        config
            // Synchronous calls only: makes every component call about 3x cheaper.
            .concurrency_support(false)
            .epoch_interruption(true)
            .wasm_component_model(true)
            .max_wasm_stack(1 << 20);
        if std::env::var_os("WEIR_PERF_MAP").is_some_and(|v| v == "1") {
            // `perf` then names the guests' compiled functions.
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| WasmError::Engine(format!("{e:#}")))?;

        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let compat = format!("{:016x}", h.finish());

        let stop_clock = Arc::new(AtomicBool::new(false));
        let watchdog = Arc::<Watchdog>::default();
        Watchdog::start(&watchdog, Arc::clone(&stop_clock))
            .map_err(|e| WasmError::Engine(format!("cannot start the watchdog: {e}")))?;
        // The epoch clock ticks only while a stage call is in progress: epoch deadlines are
        // relative to the epoch when the call starts, so a clock that sleeps between calls
        // changes no deadline, and an idle process does not wake a thousand times a second.
        let clock_engine = engine.weak();
        watchdog
            .activity()
            .start_clock(
                "weir-epoch",
                EPOCH_TICK,
                Arc::clone(&stop_clock),
                move || {
                    clock_engine
                        .upgrade()
                        .map(|engine| engine.increment_epoch())
                        .is_some()
                },
            )
            .map_err(|e| WasmError::Engine(format!("cannot start the epoch clock: {e}")))?;

        let cache = cache_dir.as_deref().and_then(DiskCache::open);

        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                compiled: Mutex::default(),
                cache,
                compat,
                stop_clock,
                watchdog,
                metric_kinds: Arc::default(),
            }),
        })
    }

    /// The default on-disk cache: `$WEIR_CACHE_DIR`, else `$XDG_CACHE_HOME/weir`, else
    /// `$HOME/.cache/weir`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        let env = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("WEIR_CACHE_DIR")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("weir")))
            .or_else(|| env("HOME").map(|d| d.join(".cache").join("weir")))
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn watchdog(&self) -> &Watchdog {
        &self.inner.watchdog
    }

    pub(crate) fn metric_kinds(&self) -> &Arc<MetricKinds> {
        &self.inner.metric_kinds
    }

    /// Stage calls the watchdog found still running at twice their time limit, since the host
    /// started: each is a call that a host function held past its deadline (logged once each).
    /// Should stay zero.
    pub fn overdue_calls(&self) -> u64 {
        self.inner.watchdog.overdue()
    }

    /// Reads and compiles the module at `path`, from the in-memory or on-disk cache when its
    /// content was compiled before.
    pub fn compile_file(&self, path: &Path) -> Result<CompiledModule, WasmError> {
        let bytes = std::fs::read(path).map_err(|source| WasmError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.compile(path, &bytes)
    }

    /// Compiles module `bytes` (read from `path`, used in messages).
    pub fn compile(&self, path: &Path, bytes: &[u8]) -> Result<CompiledModule, WasmError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let cached = self.inner.compiled.lock().get(&sha256).cloned();
        let component = match cached {
            Some(c) => c,
            None => {
                let c = self.load_or_compile(path, bytes, &sha256)?;
                self.inner.compiled.lock().insert(sha256.clone(), c.clone());
                c
            }
        };
        Ok(CompiledModule {
            component,
            sha256: sha256.into(),
            path: path.to_owned(),
        })
    }

    fn load_or_compile(
        &self,
        path: &Path,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<Component, WasmError> {
        let engine = self.engine();
        let key = format!("{sha256}-{}", self.inner.compat);
        if let Some(artefact) = self.inner.cache.as_ref().and_then(|c| c.load(&key)) {
            // SAFETY: the artefact was written by `DiskCache::store` into a folder only this
            // user may write, its checksum matches, and it was made by `precompile_component` of
            // an engine with the same compatibility hash (part of its key).
            match unsafe { Component::deserialize(engine, &artefact) } {
                Ok(c) => return Ok(c),
                Err(error) => tracing::warn!(
                    error = %format!("{error:#}"),
                    module = %path.display(),
                    "Cached module unusable; compiling again."
                ),
            }
        }
        let compile_err = |e: wasmtime::Error| WasmError::Compile {
            path: path.to_owned(),
            message: format!("{e:#}"),
        };
        let Some(cache) = &self.inner.cache else {
            return Component::new(engine, bytes).map_err(compile_err);
        };
        let serialized = engine.precompile_component(bytes).map_err(compile_err)?;
        if let Err(error) = cache.store(&key, &serialized) {
            tracing::warn!(%error, module = %path.display(), "Cannot cache the compiled module.");
        }
        // SAFETY: `serialized` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &serialized) }.map_err(compile_err)
    }
}
