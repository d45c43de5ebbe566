//! Turns a pipeline's stages into loaded modules, and loaded modules into lane chains.

use std::sync::Arc;

use weir_config::{Pipeline, StageKind};
use weir_telemetry::{GuestSource, StageLabels};
use weir_wasm::{EnrichModule, Limits, WasmError, WasmHost};

/// How many hex digits of a module's SHA-256 label its metrics (`module_version`).
const VERSION_DIGITS: usize = 12;
/// The cohort label of stages running their configured module.
pub(crate) const STABLE: &str = "stable";

use crate::chain::{Chain, Partitioning, StageInfo};

/// Every stage's module compiled, checked and pre-instantiated.
#[derive(Debug)]
pub struct LoadedPipeline {
    infos: Arc<[StageInfo]>,
    modules: Vec<Arc<EnrichModule>>,
    /// What each module was loaded from, to tell on reload whether it changed.
    keys: Vec<ModuleKey>,
}

/// A stage's module version, configuration and limits: a reload rebuilds a stage only when
/// one of them changed.
#[derive(Debug, Clone, PartialEq)]
struct ModuleKey {
    sha256: String,
    config: String,
    limits: weir_config::Limits,
}

impl LoadedPipeline {
    /// Loads every stage of `pipeline`, reporting every stage that fails (not just the first).
    pub fn load(host: &WasmHost, pipeline: &Pipeline) -> Result<Self, Vec<WasmError>> {
        Self::load_reusing(host, pipeline, None).map(|(loaded, _)| loaded)
    }

    /// Loads `pipeline` again after its file changed, reusing every stage of `previous` whose
    /// module content, configuration and limits are unchanged. Returns the new pipeline and the
    /// names of the stages that changed.
    pub fn reload(
        host: &WasmHost,
        pipeline: &Pipeline,
        previous: &LoadedPipeline,
    ) -> Result<(Self, Vec<String>), Vec<WasmError>> {
        Self::load_reusing(host, pipeline, Some(previous))
    }

    fn load_reusing(
        host: &WasmHost,
        pipeline: &Pipeline,
        previous: Option<&LoadedPipeline>,
    ) -> Result<(Self, Vec<String>), Vec<WasmError>> {
        let mut infos = Vec::new();
        let mut modules = Vec::new();
        let mut keys = Vec::new();
        let mut changed = Vec::new();
        let mut errors = Vec::new();
        for (i, stage) in pipeline.stages.iter().enumerate() {
            let StageKind::Enrich = stage.kind;
            let compiled = match host.compile_file(&stage.module) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let key = ModuleKey {
                sha256: compiled.sha256().to_owned(),
                config: stage.config.to_string(),
                limits: stage.limits,
            };
            if let Some(prev) = previous
                && prev.keys.get(i) == Some(&key)
                && prev
                    .infos
                    .get(i)
                    .is_some_and(|info| *info.name == stage.name)
            {
                infos.push(StageInfo {
                    output: stage.output.as_deref().map(Into::into),
                    ..prev.infos[i].clone()
                });
                modules.push(Arc::clone(&prev.modules[i]));
                keys.push(key);
                continue;
            }
            let loaded = EnrichModule::new(
                host,
                &stage.name,
                compiled,
                key.config.clone(),
                Limits {
                    memory: stage.limits.memory,
                    timeout: stage.limits.timeout,
                    recycle_after: stage.limits.recycle_after,
                },
            );
            match loaded {
                Ok(module) => {
                    changed.push(stage.name.clone());
                    keys.push(key);
                    infos.push(StageInfo {
                        name: stage.name.as_str().into(),
                        module_sha256: module.sha256().into(),
                        output: stage.output.as_deref().map(Into::into),
                        partitioning: match stage.partitioning {
                            weir_config::Partitioning::Source => Partitioning::Source,
                            weir_config::Partitioning::Key => Partitioning::Key,
                        },
                    });
                    modules.push(module);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            let loaded = Self {
                infos: infos.into(),
                modules,
                keys,
            };
            Ok((loaded, changed))
        } else {
            Err(errors)
        }
    }

    pub fn infos(&self) -> &Arc<[StageInfo]> {
        &self.infos
    }

    pub fn modules(&self) -> &[Arc<EnrichModule>] {
        &self.modules
    }

    /// The metric labels of each stage of pipeline `pipeline`, in stage order.
    pub fn stage_labels(&self, pipeline: &Arc<str>) -> Vec<StageLabels> {
        self.infos
            .iter()
            .map(|info| StageLabels {
                pipeline: Arc::clone(pipeline),
                stage: Arc::clone(&info.name),
                module_version: info.module_sha256[..VERSION_DIGITS.min(info.module_sha256.len())]
                    .into(),
                cohort: STABLE,
            })
            .collect()
    }

    /// The custom metrics of every stage's module, labelled.
    pub fn guest_sources(&self, pipeline: &Arc<str>) -> Vec<(StageLabels, Arc<dyn GuestSource>)> {
        self.stage_labels(pipeline)
            .into_iter()
            .zip(&self.modules)
            .map(|(labels, module)| (labels, crate::guest::source(module)))
            .collect()
    }

    /// A fresh instance of stage `stage`'s module.
    pub fn instance(&self, stage: usize) -> Result<Box<dyn weir_core::Stage>, WasmError> {
        self.modules[stage]
            .instance()
            .map(|i| Box::new(i) as Box<dyn weir_core::Stage>)
    }

    /// Fresh instances of every stage for one lane.
    pub fn chain(&self, emit_all: bool) -> Result<Chain, WasmError> {
        let stages = self
            .modules
            .iter()
            .map(|m| {
                m.instance()
                    .map(|i| Box::new(i) as Box<dyn weir_core::Stage>)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Chain::new(Arc::clone(&self.infos), stages, emit_all))
    }
}
