//! Turns a pipeline's stages into loaded modules, and loaded modules into lane chains.

use std::sync::Arc;

use weir_config::{Pipeline, StageKind};
use weir_wasm::{EnrichModule, Limits, WasmError, WasmHost};

use crate::chain::{Chain, Partitioning, StageInfo};

/// Every stage's module compiled, checked and pre-instantiated.
#[derive(Debug)]
pub struct LoadedPipeline {
    infos: Arc<[StageInfo]>,
    modules: Vec<Arc<EnrichModule>>,
}

impl LoadedPipeline {
    /// Loads every stage of `pipeline`, reporting every stage that fails (not just the first).
    pub fn load(host: &WasmHost, pipeline: &Pipeline) -> Result<Self, Vec<WasmError>> {
        let mut infos = Vec::new();
        let mut modules = Vec::new();
        let mut errors = Vec::new();
        for stage in &pipeline.stages {
            let StageKind::Enrich = stage.kind;
            let loaded = host.compile_file(&stage.module).and_then(|compiled| {
                EnrichModule::new(
                    host,
                    &stage.name,
                    compiled,
                    stage.config.to_string(),
                    Limits {
                        memory: stage.limits.memory,
                        timeout: stage.limits.timeout,
                        recycle_after: stage.limits.recycle_after,
                    },
                )
            });
            match loaded {
                Ok(module) => {
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
            Ok(Self {
                infos: infos.into(),
                modules,
            })
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
