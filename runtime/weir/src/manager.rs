//! The lanes of a running pipeline: started when partitions are assigned, drained when they
//! are revoked or the pipeline stops, and the offsets they make committable.
//!
//! Owns: [`Manager`], the consumer's [`PartitionHandler`] and the admin listener's [`Health`].
//! Touches the lanes only through their handles (stop flag, tracker, done flag) and the pool
//! of workers that runs them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use weir_kafka::{PartitionFeed, PartitionHandler, SourceStats, TopicPartition};
use weir_telemetry::{Health, Metrics, Unhealthy};

use crate::error::FatalError;
use crate::lane::Lane;
use crate::lane::pool::Pool;
use crate::shared::Shared;

/// Owns the lanes; the consumer's [`PartitionHandler`].
pub(crate) struct Manager {
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    pub drain_timeout: Duration,
    pub lanes: Mutex<BTreeMap<TopicPartition, Lane>>,
    /// The workers that run the lanes.
    pub pool: Pool,
    /// Partitions assigned, for `/readyz`.
    pub assigned: AtomicUsize,
    /// Whether the brokers answered lately, for `/readyz`.
    pub reachable: AtomicBool,
    /// The wasm host, for the watchdog's count of overdue calls.
    pub host: Option<weir_wasm::WasmHost>,
}

impl Health for Manager {
    fn live(&self) -> Result<(), Unhealthy> {
        match self.shared.fatal.get() {
            Some(fatal) => Err(Unhealthy(format!("pipeline failing: {fatal}"))),
            None => Ok(()),
        }
    }

    fn ready(&self) -> Result<(), Unhealthy> {
        self.live()?;
        if !self.reachable.load(Ordering::Relaxed) {
            return Err("brokers unreachable".into());
        }
        if self.assigned.load(Ordering::Relaxed) == 0 {
            return Err("no partition assigned".into());
        }
        for (name, store) in self.shared.stores.iter() {
            if let Some(why) = store.unavailable() {
                return Err(Unhealthy(format!("sink {name:?} unavailable: {why}")));
            }
        }
        match self.shared.stalls.describe() {
            Some(stalled) => Err(Unhealthy(stalled)),
            None => Ok(()),
        }
    }
}

impl Manager {
    /// Refreshes the assignment and backpressure gauges.
    pub fn update_gauges(&self) {
        let lanes = self.lanes.lock();
        let saturated = lanes
            .values()
            .filter(|l| l.saturated.load(Ordering::Relaxed))
            .count();
        let in_flight: usize = lanes.values().map(|l| l.tracker.in_flight()).sum();
        self.assigned.store(lanes.len(), Ordering::Relaxed);
        self.shared
            .versions
            .set_assigned(lanes.keys().cloned().collect());
        self.metrics
            .set_lanes(lanes.len() as i64, saturated as i64, in_flight as i64);
        if let Some(host) = &self.host {
            self.metrics.set_overdue_calls(host.overdue_calls());
        }
    }

    /// Offsets that advanced since the last call, for a periodic commit. None with exactly-once
    /// delivery: each lane commits its offsets in its transactions.
    pub fn committable(&self) -> Vec<(TopicPartition, i64)> {
        if self.shared.transactions.is_some() {
            return Vec::new();
        }
        let mut lanes = self.lanes.lock();
        let mut changed = false;
        let mut offsets = Vec::with_capacity(lanes.len());
        for (tp, lane) in lanes.iter_mut() {
            if let Some(o) = lane.tracker.committable() {
                changed |= lane.committed != Some(o);
                lane.committed = Some(o);
                offsets.push((tp.clone(), o));
            }
        }
        if changed { offsets } else { Vec::new() }
    }

    pub fn drain_all(&self) -> Vec<(TopicPartition, i64)> {
        let lanes = std::mem::take(&mut *self.lanes.lock());
        self.drain(lanes.into_iter().collect())
    }

    /// Stops `lanes` after their current batch (queued records are abandoned: they were never
    /// committed), waits up to the drain timeout for their outputs to be acknowledged, and
    /// returns the offsets safe to commit.
    fn drain(&self, lanes: Vec<(TopicPartition, Lane)>) -> Vec<(TopicPartition, i64)> {
        let deadline = Instant::now() + self.drain_timeout;
        let mut waiting = Vec::with_capacity(lanes.len());
        for (tp, lane) in lanes {
            lane.stop();
            waiting.push((tp, lane.done, lane.tracker));
        }
        let poll = Duration::from_millis(2);
        let finished = |done: &AtomicBool| done.load(Ordering::Acquire);
        while Instant::now() < deadline
            && waiting
                .iter()
                .any(|(_, done, tracker)| !finished(done) || tracker.in_flight() > 0)
        {
            std::thread::sleep(poll);
        }
        let mut offsets = Vec::new();
        for (tp, done, tracker) in waiting {
            if !finished(&done) || tracker.in_flight() > 0 {
                tracing::warn!(
                    partition = %tp,
                    in_flight = tracker.in_flight(),
                    "Lane did not drain in time; its unacknowledged records will be re-read."
                );
            }
            if let Some(o) = tracker.committable() {
                offsets.push((tp, o));
            }
        }
        if self.shared.transactions.is_some() {
            // The lanes committed their offsets in their last transactions.
            offsets.clear();
        }
        offsets
    }
}

impl PartitionHandler for Manager {
    fn assigned(&self, feeds: Vec<PartitionFeed>) {
        let mut lanes = self.lanes.lock();
        // The generation first: should a reload land in between, the lane sees a newer version
        // than its generation says and swaps (to the same version) once, rather than never.
        let generation = self.shared.versions.generation();
        let loaded = self.shared.versions.current();
        for feed in feeds {
            let tp = feed.partition().clone();
            match loaded.chain_for(tp.partition) {
                Ok(chain) => {
                    let stage_metrics = (0..loaded.infos().len())
                        .map(|i| {
                            let labels =
                                loaded.labels(&self.shared.settings.pipeline, i, tp.partition);
                            self.metrics.stage(&labels, &tp.topic, tp.partition)
                        })
                        .collect();
                    let chain = chain
                        .with_metrics(stage_metrics)
                        .with_spans(self.shared.tracing.spans.enabled())
                        .with_forward(loaded.aggregate().is_some())
                        .with_privacy(self.shared.privacy.clone());
                    let lane = Lane::start(
                        feed,
                        chain,
                        Arc::clone(&loaded),
                        generation,
                        Arc::clone(&self.shared),
                        self.metrics.partition(&tp.topic, tp.partition),
                        &self.pool,
                    );
                    match lane {
                        Some(lane) => {
                            if let Some(old) = lanes.insert(tp.clone(), lane) {
                                // Assigned twice without a revoke in between: retire the old
                                // lane.
                                old.stop();
                            }
                        }
                        None => self
                            .shared
                            .fatal
                            .set(FatalError::LaneWorkerGone { partition: tp }),
                    }
                }
                Err(source) => self.shared.fatal.set(FatalError::LaneStart {
                    partition: tp,
                    source,
                }),
            }
        }
        drop(lanes);
        self.update_gauges();
    }

    fn revoking(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        let taken: Vec<_> = {
            let mut lanes = self.lanes.lock();
            partitions
                .iter()
                .filter_map(|tp| lanes.remove(tp).map(|l| (tp.clone(), l)))
                .collect()
        };
        self.update_gauges();
        for tp in partitions {
            self.metrics.forget_partition(&tp.topic, tp.partition);
            // Instances prepared for a lane that is going away are dropped off this thread.
            self.shared.versions.forget(tp);
        }
        self.drain(taken)
    }

    fn group_changed(&self, metadata: weir_kafka::GroupMetadata) {
        if let Some(t) = &self.shared.transactions {
            *t.group_metadata.lock() = Some(Arc::new(metadata));
        }
    }

    fn statistics(&self, stats: &SourceStats) {
        let lanes = self.lanes.lock();
        for p in &stats.partitions {
            let owned = lanes
                .keys()
                .any(|tp| tp.partition == p.partition && *tp.topic == p.topic);
            if !owned {
                continue;
            }
            if p.lag >= 0 {
                self.metrics.set_lag(&p.topic, p.partition, p.lag);
            }
            self.metrics
                .set_fetch_queue(&p.topic, p.partition, p.fetch_queue.max(0));
        }
        self.reachable
            .store(stats.brokers_up > 0, Ordering::Relaxed);
    }

    fn commit_finished(&self, elapsed: Duration, ok: bool) {
        self.metrics.commit_done(elapsed.as_secs_f64(), ok);
    }

    fn brokers_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::Relaxed);
    }
}
