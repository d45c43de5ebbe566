//! The shared wasm engines, their epoch clock and the compiled-module cache.
//!
//! Owns the engines (the shared one, and the fuel-metering one made when the first stage with
//! `limits.fuel` loads), the epoch clock that ticks both, the watchdog and the compiled-module
//! cache (in memory and on disk, `cache.rs`). It makes no store and calls no guest: that is the
//! instance core's (`instance/`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
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

/// An engine and the compatibility hash its compiled artefacts are keyed by.
struct Flavour {
    engine: Engine,
    /// Distinguishes artefacts of engines with other settings or versions.
    compat: String,
}

impl Flavour {
    fn new(fuel: bool) -> Result<Self, WasmError> {
        let engine =
            Engine::new(&engine_config(fuel)).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(Self {
            engine,
            compat: format!("{:016x}", h.finish()),
        })
    }
}

/// The configuration of every engine: the shared one, and with `fuel` the fuel-metering one.
fn engine_config(fuel: bool) -> Config {
    let mut config = Config::new();
    config
        // Synchronous calls only: makes every component call about 3x cheaper.
        .concurrency_support(false)
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .wasm_component_model(true)
        .max_wasm_stack(1 << 20);
    if std::env::var_os("WEIR_PERF_MAP").is_some_and(|v| v == "1") {
        // `perf` then names the guests' compiled functions.
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

struct Inner {
    /// The engine of every stage without `limits.fuel`.
    plain: Flavour,
    /// The engine of stages with `limits.fuel`: its compiled code counts fuel, which costs
    /// every call, so it is made only when the first such stage loads.
    fuel: OnceLock<Flavour>,
    /// Compiled components by content hash and engine (`{sha256}-{compat}`): a module named by
    /// several stages, or reloaded unchanged, is compiled once per engine.
    compiled: Mutex<HashMap<String, Component>>,
    /// Where precompiled artefacts are kept across restarts; `None`: no disk cache (disabled,
    /// or its folder is not trusted).
    cache: Option<DiskCache>,
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
        let inner = Arc::new(Inner {
            plain: Flavour::new(false)?,
            fuel: OnceLock::new(),
            compiled: Mutex::default(),
            cache: cache_dir.as_deref().and_then(DiskCache::open),
            stop_clock: Arc::new(AtomicBool::new(false)),
            watchdog: Arc::default(),
            metric_kinds: Arc::default(),
        });
        Watchdog::start(&inner.watchdog, Arc::clone(&inner.stop_clock))
            .map_err(|e| WasmError::Engine(format!("cannot start the watchdog: {e}")))?;
        // The epoch clock ticks only while a stage call is in progress: epoch deadlines are
        // relative to the epoch when the call starts, so a clock that sleeps between calls
        // changes no deadline, and an idle process does not wake a thousand times a second.
        let clock: Weak<Inner> = Arc::downgrade(&inner);
        inner
            .watchdog
            .activity()
            .start_clock(
                "weir-epoch",
                EPOCH_TICK,
                Arc::clone(&inner.stop_clock),
                move || {
                    clock
                        .upgrade()
                        .map(|inner| {
                            inner.plain.engine.increment_epoch();
                            if let Some(fuel) = inner.fuel.get() {
                                fuel.engine.increment_epoch();
                            }
                        })
                        .is_some()
                },
            )
            .map_err(|e| WasmError::Engine(format!("cannot start the epoch clock: {e}")))?;
        Ok(Self { inner })
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

    /// The shared engine, of every stage without `limits.fuel`.
    #[cfg(test)]
    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.plain.engine
    }

    /// The fuel-metering engine, made on first use.
    fn fuel_flavour(&self) -> Result<&Flavour, WasmError> {
        if let Some(flavour) = self.inner.fuel.get() {
            return Ok(flavour);
        }
        // Two threads may race here: one engine wins, the other is dropped unused.
        let _ = self.inner.fuel.set(Flavour::new(true)?);
        Ok(self.inner.fuel.get().expect("the fuel engine was just set"))
    }

    /// The disk cache keys of a module with SHA-256 `sha256` compiled by the shared engine and
    /// by the fuel-metering one (made if need be). They differ: the engines' configurations do.
    #[cfg(test)]
    pub(crate) fn cache_keys(&self, sha256: &str) -> (String, String) {
        let fuel = self.fuel_flavour().expect("fuel engine");
        (
            format!("{sha256}-{}", self.inner.plain.compat),
            format!("{sha256}-{}", fuel.compat),
        )
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
        let component = self.component(&self.inner.plain, path, &sha256, || {
            Ok(Cow::Borrowed(bytes))
        })?;
        Ok(CompiledModule {
            component,
            sha256: sha256.into(),
            path: path.to_owned(),
        })
    }

    /// `module` compiled by the fuel-metering engine, from the in-memory or on-disk cache when
    /// it was compiled so before (its disk cache key names that engine's compatibility hash), or
    /// from its file, which must still hold the bytes `module` was compiled from.
    pub(crate) fn with_fuel(&self, module: &CompiledModule) -> Result<CompiledModule, WasmError> {
        let flavour = self.fuel_flavour()?;
        let path = &module.path;
        let component = self.component(flavour, path, &module.sha256, || {
            let bytes = std::fs::read(path).map_err(|source| WasmError::Io {
                path: path.clone(),
                source,
            })?;
            if hex::encode(Sha256::digest(&bytes)) != *module.sha256 {
                return Err(WasmError::Changed { path: path.clone() });
            }
            Ok(Cow::Owned(bytes))
        })?;
        Ok(CompiledModule {
            component,
            sha256: Arc::clone(&module.sha256),
            path: path.clone(),
        })
    }

    /// The module with content hash `sha256` compiled by `flavour`'s engine: from memory, from
    /// disk, or compiled from `bytes()`.
    fn component<'b>(
        &self,
        flavour: &Flavour,
        path: &Path,
        sha256: &str,
        bytes: impl FnOnce() -> Result<Cow<'b, [u8]>, WasmError>,
    ) -> Result<Component, WasmError> {
        let key = format!("{sha256}-{}", flavour.compat);
        if let Some(c) = self.inner.compiled.lock().get(&key).cloned() {
            return Ok(c);
        }
        let c = self.load_or_compile(flavour, path, &key, bytes)?;
        self.inner.compiled.lock().insert(key, c.clone());
        Ok(c)
    }

    fn load_or_compile<'b>(
        &self,
        flavour: &Flavour,
        path: &Path,
        key: &str,
        bytes: impl FnOnce() -> Result<Cow<'b, [u8]>, WasmError>,
    ) -> Result<Component, WasmError> {
        let engine = &flavour.engine;
        if let Some(artefact) = self.inner.cache.as_ref().and_then(|c| c.load(key)) {
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
        let bytes = bytes()?;
        let Some(cache) = &self.inner.cache else {
            return Component::new(engine, &bytes).map_err(compile_err);
        };
        let serialized = engine.precompile_component(&bytes).map_err(compile_err)?;
        if let Err(error) = cache.store(key, &serialized) {
            tracing::warn!(%error, module = %path.display(), "Cannot cache the compiled module.");
        }
        // SAFETY: `serialized` was produced just now by this engine.
        unsafe { Component::deserialize(engine, &serialized) }.map_err(compile_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuel_engine_has_its_own_cache_key() {
        let host = WasmHost::new(None).unwrap();
        let (plain, fuel) = host.cache_keys("abc");
        assert!(plain.starts_with("abc-") && fuel.starts_with("abc-"));
        assert_ne!(plain, fuel, "fuel metering changes the compiled code");
    }
}
