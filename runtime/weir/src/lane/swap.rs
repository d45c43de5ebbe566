//! What a lane runs, and its swap to a new version between two batches.
//!
//! Owns: [`Running`] (the lane's chain, its aggregate stage and the version they come from) and
//! the swap. Touches [`Versions`] to take the instances the publisher prepared and to retire
//! the old ones; never a record.

use std::sync::Arc;
use std::time::Instant;

use weir_kafka::TopicPartition;
use weir_telemetry::Metrics;

use super::Stages;
use super::fold::Folder;
use crate::chain::Chain;
use crate::loader::{LoadedPipeline, StageInstance};
use crate::shared::Versions;

/// A lane's stages.
pub(super) struct Running {
    pub chain: Chain,
    /// The aggregate stage that ends the chain, if any.
    pub folder: Option<Folder>,
    /// The modules `chain` runs instances of, and the generation they were published at.
    pub loaded: Arc<LoadedPipeline>,
    pub generation: u64,
}

impl Running {
    /// The stages as delivery and tracing see them.
    pub fn stages(&self, partition: i32) -> Stages<'_> {
        Stages {
            chain: &self.chain,
            loaded: &self.loaded,
            aggregate_metrics: self.folder.as_ref().and_then(|f| f.metrics.as_ref()),
            partition,
        }
    }

    /// Whether a newer version is in force.
    pub fn stale(&self, versions: &Versions) -> bool {
        versions.generation() != self.generation
    }

    /// Replaces the instances of every stage whose module changed with instances of the version
    /// now in force.
    pub fn swap(
        &mut self,
        tp: &TopicPartition,
        versions: &Versions,
        pipeline: &Arc<str>,
        metrics: &Arc<Metrics>,
    ) {
        let started = Instant::now();
        let generation = versions.generation();
        let next = versions.current();
        let partition = tp.partition;
        let instances: Vec<StageInstance> =
            match versions.take_prepared(tp, self.generation, generation) {
                Some(stages) => stages,
                None => match next.changed_instances(&self.loaded, partition) {
                    Ok(made) => made,
                    Err(error) => {
                        // Validated before it was published, so this is the environment
                        // (memory); keep the running version rather than stop the lane.
                        tracing::error!(
                            %error,
                            partition = %tp,
                            "Cannot instantiate the new stage versions; keeping the running ones."
                        );
                        return;
                    }
                },
            };
        let mut swapped = Vec::new();
        let mut retired = Vec::new();
        for (i, instance) in instances {
            let stage_metrics = self.chain.stage_metrics(i).map(|_| {
                let labels = next.labels(pipeline, i, partition);
                metrics.stage(&labels, &tp.topic, partition)
            });
            retired.push(self.chain.replace_stage(i, instance, stage_metrics));
            swapped.push(next.modules()[i].stage().to_owned());
        }
        if let (Some(folder), Some(next_agg)) = (self.folder.as_mut(), next.aggregate())
            && !Arc::ptr_eq(&folder.lane.loaded, next_agg)
        {
            // The windows stay: only the module that folds into them changes (the loader
            // refused a version whose accumulators would not read the running ones').
            match folder.lane.replace(Arc::clone(next_agg)) {
                Ok(()) => {
                    swapped.push(next_agg.info.name.to_string());
                    if let Some(labels) = next.aggregate_labels(pipeline) {
                        folder.metrics = Some(metrics.stage(&labels, &tp.topic, partition));
                    }
                }
                Err(error) => tracing::error!(
                    %error,
                    partition = %tp,
                    "Cannot instantiate the new aggregate version; keeping the running one."
                ),
            }
        }
        // Dropping an instance unmaps its memory: the reload thread does it, not the lane.
        versions.retire(retired);
        self.chain.set_infos(next.infos_for(partition));
        self.loaded = next;
        self.generation = generation;
        let pause = started.elapsed();
        metrics.swapped(pause.as_secs_f64());
        tracing::info!(
            partition = %tp,
            stages = %swapped.join(","),
            pause_us = pause.as_micros() as u64,
            "Stages swapped."
        );
    }
}
