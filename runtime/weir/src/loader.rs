//! Turns a pipeline's stages into loaded modules, and loaded modules into lane chains.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use weir_config::{Pipeline, Stage, StageKind, Target};
use weir_telemetry::{GuestSource, StageLabels};
use weir_wasm::{AggregateModule, EnrichModule, ModuleSpec, WasmError, WasmHost};

use crate::chain::{Chain, StageInfo};
use crate::rollout::canary::{CanaryPlan, CanaryStats, Observed, Rescue};

/// How many hex digits of a module's SHA-256 label its metrics (`module_version`).
const VERSION_DIGITS: usize = 12;
/// The cohort label of stages running their configured module.
pub(crate) const STABLE: &str = "stable";
/// The cohort label of stages running their canary module.
pub(crate) const CANARY: &str = "canary";

/// Every stage's module compiled, checked and pre-instantiated.
#[derive(Debug)]
pub struct LoadedPipeline {
    infos: Arc<[StageInfo]>,
    modules: Vec<Arc<EnrichModule>>,
    /// Each stage's canary, while one runs.
    canaries: Vec<Option<Arc<CanaryModule>>>,
    /// What each stage was loaded from, to tell on reload whether it changed.
    keys: Vec<ModuleKey>,
    /// The last stage, when it is an aggregate (the stages above are then the enrich stages
    /// before it).
    aggregate: Option<Arc<LoadedAggregate>>,
}

/// An aggregate stage's module and windowing.
#[derive(Debug)]
pub struct LoadedAggregate {
    pub module: Arc<AggregateModule>,
    pub info: StageInfo,
    pub spec: weir_config::Aggregate,
    /// What it was loaded from, to tell on reload whether it changed.
    key: ModuleKey,
}

/// A stage's index and a fresh instance of it.
pub type StageInstance = (usize, Box<dyn weir_core::Stage>);

/// A stage's canary: the next module version, where it runs, and what it did so far.
#[derive(Debug)]
pub struct CanaryModule {
    pub module: Arc<EnrichModule>,
    /// The stage as the canary's partitions see it (its module version).
    pub info: StageInfo,
    pub plan: CanaryPlan,
    pub stats: Arc<CanaryStats>,
    /// Records the canary failed that the stable version then handled.
    pub rescued: Arc<AtomicU64>,
}

/// A stage's module version, configuration and limits (and its canary's): a reload rebuilds a
/// stage only when one of them changed.
#[derive(Debug, Clone, PartialEq)]
struct ModuleKey {
    sha256: String,
    config: String,
    limits: weir_config::Limits,
    canary: Option<(String, String, CanaryPlan)>,
}

/// Loads an aggregate stage, or reuses `previous` when its module, configuration and limits
/// are unchanged. The flag says whether it was loaded afresh.
fn load_aggregate(
    host: &WasmHost,
    pipeline: &Pipeline,
    stage: &Stage,
    previous: Option<&Arc<LoadedAggregate>>,
) -> Result<(Arc<LoadedAggregate>, bool), WasmError> {
    let spec = stage
        .aggregate
        .clone()
        .expect("aggregate stages have their windowing");
    let compiled = host.compile_file(&stage.module)?;
    let key = ModuleKey {
        sha256: compiled.sha256().to_owned(),
        config: stage.config.to_string(),
        limits: stage.limits,
        canary: None,
    };
    if let Some(prev) = previous
        && prev.key == key
        && prev.spec == spec
    {
        return Ok((Arc::clone(prev), false));
    }
    let module = AggregateModule::new(
        host,
        ModuleSpec {
            stage: &stage.name,
            module: compiled,
            config: key.config.clone(),
            limits: stage.limits,
        },
    )?;
    if let Some(prev) = previous
        && prev.module.state_version() != module.state_version()
    {
        return Err(WasmError::StateVersion {
            stage: stage.name.clone(),
            found: module.state_version(),
            running: prev.module.state_version(),
        });
    }
    let loaded = LoadedAggregate {
        info: info(pipeline, stage, module.sha256()),
        module,
        spec,
        key,
    };
    Ok((Arc::new(loaded), true))
}

fn info(pipeline: &Pipeline, stage: &Stage, sha256: &str) -> StageInfo {
    StageInfo {
        name: stage.name.as_str().into(),
        module_sha256: sha256.into(),
        output: output_topic(pipeline, stage),
        store: store_of(pipeline, stage),
        partitioning: stage.partitioning,
        gates: crate::gate::Gates::new(
            stage.input_schema.as_ref(),
            stage.output_schema.as_ref(),
            &stage.name,
        ),
    }
}

/// The topic `stage` publishes to: its `output`, or its `kind = "kafka"` sink's topic.
fn output_topic(pipeline: &Pipeline, stage: &Stage) -> Option<Arc<str>> {
    match pipeline.stage_target(stage)? {
        Target::Topic(topic) => Some(topic.into()),
        Target::Store(_) => None,
    }
}

/// The store `stage` writes to: its `sink`, when that is not a Kafka one.
fn store_of(pipeline: &Pipeline, stage: &Stage) -> Option<Arc<str>> {
    match pipeline.stage_target(stage)? {
        Target::Topic(_) => None,
        Target::Store(sink) => Some(sink.name.as_str().into()),
    }
}

impl LoadedPipeline {
    /// Loads every stage of `pipeline`, reporting every stage that fails (not just the first).
    pub fn load(host: &WasmHost, pipeline: &Pipeline) -> Result<Self, Vec<WasmError>> {
        Self::load_reusing(host, pipeline, None).map(|(loaded, _)| loaded)
    }

    /// Loads `pipeline` again after its file changed, reusing every stage of `previous` whose
    /// modules, configuration and limits are unchanged (a canary rolled back stays so). Returns
    /// the new pipeline and the names of the stages that changed.
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
        let mut canaries = Vec::new();
        let mut keys = Vec::new();
        let mut changed = Vec::new();
        let mut errors = Vec::new();
        let mut aggregate = None;
        for (i, stage) in pipeline.stages.iter().enumerate() {
            if stage.kind == StageKind::Aggregate {
                let previous = previous.and_then(|p| p.aggregate.as_ref());
                match load_aggregate(host, pipeline, stage, previous) {
                    Ok((loaded, fresh)) => {
                        if fresh {
                            changed.push(stage.name.clone());
                        }
                        aggregate = Some(loaded);
                    }
                    Err(e) => errors.push(e),
                }
                continue;
            }
            let compiled = match host.compile_file(&stage.module) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let canary_compiled = match &stage.canary {
                Some(c) => match host.compile_file(&c.module) {
                    Ok(compiled) => Some((c, compiled)),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
                None => None,
            };
            let config = stage.config.to_string();
            let key = ModuleKey {
                sha256: compiled.sha256().to_owned(),
                config: config.clone(),
                limits: stage.limits,
                canary: canary_compiled.as_ref().map(|(c, compiled)| {
                    let config = c.config.as_ref().map_or(config.clone(), |v| v.to_string());
                    let plan = CanaryPlan {
                        cohort: c.cohort.clone(),
                        rollback: c.rollback,
                        promote_after: c.promote_after,
                        rescue: c.rescue,
                    };
                    (compiled.sha256().to_owned(), config, plan)
                }),
            };
            if let Some(prev) = previous
                && prev.keys.get(i) == Some(&key)
                && prev
                    .infos
                    .get(i)
                    .is_some_and(|info| *info.name == stage.name)
            {
                infos.push(StageInfo {
                    output: output_topic(pipeline, stage),
                    store: store_of(pipeline, stage),
                    gates: crate::gate::Gates::new(
                        stage.input_schema.as_ref(),
                        stage.output_schema.as_ref(),
                        &stage.name,
                    ),
                    ..prev.infos[i].clone()
                });
                modules.push(Arc::clone(&prev.modules[i]));
                canaries.push(prev.canaries[i].clone());
                keys.push(key);
                continue;
            }
            let stable = EnrichModule::new(
                host,
                ModuleSpec {
                    stage: &stage.name,
                    module: compiled,
                    config,
                    limits: stage.limits,
                },
            );
            let canary = match (canary_compiled, &key.canary) {
                (Some((_, compiled)), Some((sha, config, plan))) => {
                    match EnrichModule::new(
                        host,
                        ModuleSpec {
                            stage: &stage.name,
                            module: compiled,
                            config: config.clone(),
                            limits: stage.limits,
                        },
                    ) {
                        Ok(module) => Some(Arc::new(CanaryModule {
                            module,
                            info: info(pipeline, stage, sha),
                            plan: plan.clone(),
                            stats: Arc::default(),
                            rescued: Arc::default(),
                        })),
                        Err(e) => {
                            errors.push(e);
                            continue;
                        }
                    }
                }
                _ => None,
            };
            match stable {
                Ok(module) => {
                    changed.push(stage.name.clone());
                    infos.push(info(pipeline, stage, module.sha256()));
                    modules.push(module);
                    canaries.push(canary);
                    keys.push(key);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            let loaded = Self {
                infos: infos.into(),
                modules,
                canaries,
                keys,
                aggregate,
            };
            Ok((loaded, changed))
        } else {
            Err(errors)
        }
    }

    /// The aggregate stage that ends the pipeline, if it has one.
    pub fn aggregate(&self) -> Option<&Arc<LoadedAggregate>> {
        self.aggregate.as_ref()
    }

    /// The metric labels of the aggregate stage, if there is one.
    pub fn aggregate_labels(&self, pipeline: &Arc<str>) -> Option<StageLabels> {
        self.aggregate
            .as_ref()
            .map(|a| labels(pipeline, &a.info, STABLE))
    }

    pub fn infos(&self) -> &Arc<[StageInfo]> {
        &self.infos
    }

    pub fn modules(&self) -> &[Arc<EnrichModule>] {
        &self.modules
    }

    /// Each stage's canary, while one runs.
    pub fn canaries(&self) -> &[Option<Arc<CanaryModule>>] {
        &self.canaries
    }

    /// The canary of stage `stage` if it runs on `partition`.
    pub fn canary_on(&self, stage: usize, partition: i32) -> Option<&Arc<CanaryModule>> {
        self.canaries[stage]
            .as_ref()
            .filter(|c| c.plan.covers(partition))
    }

    /// The same pipeline with stage `stage`'s canary stopped: every partition runs the stable
    /// version. A reload of an unchanged file keeps it stopped.
    pub fn without_canary(&self, stage: usize) -> Self {
        let mut canaries = self.canaries.clone();
        canaries[stage] = None;
        Self {
            infos: Arc::clone(&self.infos),
            modules: self.modules.clone(),
            canaries,
            keys: self.keys.clone(),
            aggregate: self.aggregate.clone(),
        }
    }

    /// The same pipeline, with stage `stage` marked as changed: a reload rebuilds it from the
    /// file (restarting a canary that was rolled back).
    pub fn forgetting(&self, stage: usize) -> Self {
        let mut keys = self.keys.clone();
        keys[stage].sha256.clear();
        Self {
            infos: Arc::clone(&self.infos),
            modules: self.modules.clone(),
            canaries: self.canaries.clone(),
            keys,
            aggregate: self.aggregate.clone(),
        }
    }

    /// The same pipeline with stage `stage`'s canary made the stable version everywhere.
    pub fn promoted(&self, stage: usize) -> Self {
        let mut next = self.without_canary(stage);
        if let Some(c) = &self.canaries[stage] {
            next.modules[stage] = Arc::clone(&c.module);
            let mut infos = self.infos.to_vec();
            infos[stage] = c.info.clone();
            next.infos = infos.into();
        }
        next
    }

    /// The stages whose instances on `partition` differ between `self` and `next`: another
    /// module, another canary, or a canary gained or lost elsewhere (which changes how the
    /// stage is observed).
    pub fn changed_on(&self, next: &LoadedPipeline, partition: i32) -> Vec<usize> {
        (0..next.modules.len())
            .filter(|&i| {
                let same_canary = match (next.canary_on(i, partition), self.canary_on(i, partition))
                {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                };
                let same_plan = next.canaries[i].is_some() == self.canaries[i].is_some();
                !(Arc::ptr_eq(&next.modules[i], &self.modules[i]) && same_canary && same_plan)
            })
            .collect()
    }

    /// Fresh instances, for `partition`, of the stages that differ from `previous` there.
    pub fn changed_instances(
        &self,
        previous: &LoadedPipeline,
        partition: i32,
    ) -> Result<Vec<StageInstance>, WasmError> {
        previous
            .changed_on(self, partition)
            .into_iter()
            .map(|i| self.instance_for(i, partition).map(|s| (i, s)))
            .collect()
    }

    /// The metric labels of stage `stage` on `partition` of pipeline `pipeline`.
    pub fn labels(&self, pipeline: &Arc<str>, stage: usize, partition: i32) -> StageLabels {
        let (info, cohort) = match self.canary_on(stage, partition) {
            Some(c) => (&c.info, CANARY),
            None => (&self.infos[stage], STABLE),
        };
        labels(pipeline, info, cohort)
    }

    /// The stage descriptions a lane on `partition` sees (canaries' module versions included).
    pub fn infos_for(&self, partition: i32) -> Arc<[StageInfo]> {
        if (0..self.infos.len()).all(|i| self.canary_on(i, partition).is_none()) {
            return Arc::clone(&self.infos);
        }
        (0..self.infos.len())
            .map(|i| match self.canary_on(i, partition) {
                Some(c) => c.info.clone(),
                None => self.infos[i].clone(),
            })
            .collect()
    }

    /// The custom metrics of every stage's modules, labelled.
    pub fn guest_sources(&self, pipeline: &Arc<str>) -> Vec<(StageLabels, Arc<dyn GuestSource>)> {
        let stable =
            self.infos.iter().zip(&self.modules).map(|(info, module)| {
                (labels(pipeline, info, STABLE), crate::guest::source(module))
            });
        let canaries = self.canaries.iter().flatten().map(|c| {
            (
                labels(pipeline, &c.info, CANARY),
                crate::guest::source(&c.module),
            )
        });
        stable.chain(canaries).collect()
    }

    /// A fresh instance of stage `stage` as it runs on `partition`: the canary (with the stable
    /// version behind it to rescue failures, unless the canary says not to) where one covers
    /// the partition, else the stable version. Instances of a canaried stage report to its
    /// analyser.
    pub fn instance_for(
        &self,
        stage: usize,
        partition: i32,
    ) -> Result<Box<dyn weir_core::Stage>, WasmError> {
        let stable = || {
            self.modules[stage]
                .instance()
                .map(|i| Box::new(i) as Box<dyn weir_core::Stage>)
        };
        let Some(canary) = &self.canaries[stage] else {
            return stable();
        };
        if !canary.plan.covers(partition) {
            return Ok(Box::new(Observed {
                inner: stable()?,
                stats: Arc::clone(&canary.stats),
                canary: false,
            }));
        }
        let observed = Box::new(Observed {
            inner: Box::new(canary.module.instance()?),
            stats: Arc::clone(&canary.stats),
            canary: true,
        });
        if !canary.plan.rescue {
            return Ok(observed);
        }
        Ok(Box::new(Rescue {
            canary: observed,
            stable: stable()?,
            rescued: Arc::clone(&canary.rescued),
        }))
    }

    /// Fresh instances of every stage for the lane of `partition`.
    pub fn chain_for(&self, partition: i32) -> Result<Chain, WasmError> {
        let stages = (0..self.modules.len())
            .map(|i| self.instance_for(i, partition))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Chain::new(self.infos_for(partition), stages, false))
    }

    /// Fresh instances of every stage's stable version, for `weir test` (`emit_all`: report
    /// every stage's results).
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

    /// Like [`Self::chain`] but with every canary in place of its stable version, so a reload
    /// can run the pipeline's test cases against the canaries too.
    pub fn canary_chain(&self) -> Option<Result<Chain, WasmError>> {
        self.canaries.iter().any(Option::is_some).then(|| {
            let stages = (0..self.modules.len())
                .map(|i| match &self.canaries[i] {
                    Some(c) => c
                        .module
                        .instance()
                        .map(|i| Box::new(i) as Box<dyn weir_core::Stage>),
                    None => self.modules[i]
                        .instance()
                        .map(|i| Box::new(i) as Box<dyn weir_core::Stage>),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let infos: Arc<[StageInfo]> = (0..self.infos.len())
                .map(|i| match &self.canaries[i] {
                    Some(c) => c.info.clone(),
                    None => self.infos[i].clone(),
                })
                .collect();
            Ok(Chain::new(infos, stages, true))
        })
    }
}

fn labels(pipeline: &Arc<str>, info: &StageInfo, cohort: &'static str) -> StageLabels {
    StageLabels {
        pipeline: Arc::clone(pipeline),
        stage: Arc::clone(&info.name),
        module_version: info.module_sha256[..VERSION_DIGITS.min(info.module_sha256.len())].into(),
        cohort,
    }
}
