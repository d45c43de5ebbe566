//! The running pipeline: consumer loop, lanes, commits, rebalances and shutdown.
//!
//! ```text
//! consumer ──> lane per partition ──> stage chain ──> producer ──> topics + dead letters
//!    ^          (reads its partition's        (wasm)         (idempotent)
//!    │           bounded fetch queue)                            │ delivery reports
//!    └──── commit = end of the acknowledged prefix <─────────────┘
//! ```
//! The consumer runs on the caller's thread, serving rebalances, errors and commits. Each
//! assigned partition's fetch queue is split off to its lane, which reads it at its own pace:
//! that is the backpressure (librdkafka stops fetching a partition whose queue is full, and
//! nothing fetched is dropped and fetched again). Rebalance callbacks run inside
//! [`KafkaSource::poll`] on the caller's thread: on revoke, the affected lanes stop after their
//! current batch, their outputs are awaited, and the safe offsets are committed before the
//! partitions are released.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use weir_config::Pipeline;
use weir_kafka::{
    DeliveryObserver, KafkaError, KafkaSink, KafkaSource, PartitionFeed, PartitionHandler,
    SinkSettings, SourceSettings, SourceStats, StartFrom, TopicPartition,
};
use weir_telemetry::{
    AdminApi, AdminServer, AdminToken, Control, Health, Metrics, Spans, SpansGuard,
};

use crate::lane::{Lane, Shared, Stats, Tracing};
use crate::loader::LoadedPipeline;
pub use crate::reload::ReloadOptions;
use crate::reload::Reloader;

/// Why a pipeline stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Telemetry(#[from] weir_telemetry::TelemetryError),
    #[error(transparent)]
    Secret(#[from] crate::cluster::SecretUnavailable),
    #[error("cannot watch the pipeline for changes: {0}")]
    Watch(String),
    /// Delivery or processing failed in a way that forbids going on; offsets were committed only
    /// up to the last fully delivered record.
    #[error("pipeline stopped: {0}")]
    Fatal(String),
}

/// How `weir run` ends, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: stopped by SIGINT or SIGTERM, after draining and committing.
    Stopped = 0,
    /// 1: a fatal error while running (a record that can be neither delivered nor
    /// dead-lettered, a lane that panicked); offsets are committed up to the last record fully
    /// delivered.
    Fatal = 1,
    /// 2: the configuration: the pipeline file, a secret it names, a Kafka client property, the
    /// admin listener's address.
    Config = 2,
    /// 3: a module: missing, not a component, of another world or contract version, or
    /// refusing its config.
    Module = 3,
    /// 4: the cluster at start: unreachable, refusing the connection (TLS, SASL) or lacking a
    /// topic the pipeline writes to.
    Cluster = 4,
}

impl EngineError {
    /// The exit status this error ends `weir run` with.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Kafka(KafkaError::Config(_)) | Self::Secret(_) | Self::Telemetry(_) => {
                Exit::Config
            }
            // Every other Kafka error reaches the caller before the pipeline runs.
            Self::Kafka(_) => Exit::Cluster,
            Self::Watch(_) | Self::Fatal(_) => Exit::Fatal,
        }
    }
}

/// How a pipeline runs beyond its file.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Hot reload; `None` runs the versions loaded at start until the process stops.
    pub reload: Option<ReloadOptions>,
    /// The bearer token the admin API's calls must carry; without one the API refuses them.
    pub admin_token: Option<AdminToken>,
}

/// The admin API's requests: reloads (the same request SIGHUP makes) and canary actions, both
/// carried out by the reload thread.
struct ReloadControl {
    requested: Option<Arc<AtomicBool>>,
    shared: Arc<Shared>,
}

impl Control for ReloadControl {
    fn reload(&self) -> Result<(), String> {
        match &self.requested {
            Some(flag) => {
                flag.store(true, Ordering::Release);
                Ok(())
            }
            None => Err("hot reload is off in this process".into()),
        }
    }

    fn canary_status(&self) -> String {
        serde_json::to_string_pretty(&*self.shared.canary_board.lock())
            .unwrap_or_else(|_| "[]".into())
    }

    fn canary(&self, stage: &str, action: &str) -> Result<String, String> {
        if self.requested.is_none() {
            return Err("hot reload is off in this process, and canaries with it".into());
        }
        let Some(action) = crate::canary::Action::parse(action) else {
            return Err(format!(
                "unknown canary action {action:?} (start, promote or rollback)"
            ));
        };
        if !self
            .shared
            .current()
            .infos()
            .iter()
            .any(|i| &*i.name == stage)
        {
            return Err(format!("no stage named {stage:?}"));
        }
        self.shared
            .canary_requests
            .lock()
            .push((stage.to_owned(), action));
        Ok(format!(
            "{} of the canary of stage {stage:?} requested; see `weir canary status`",
            action.as_str()
        ))
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub records_in: u64,
    pub records_out: u64,
    pub dead_letters: u64,
}

/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How often the backpressure and assignment gauges are refreshed.
const GAUGES_EVERY: Duration = Duration::from_millis(500);

/// Runs `pipeline` until `shutdown` is set or a fatal error occurs.
pub fn run(
    pipeline: &Pipeline,
    loaded: LoadedPipeline,
    brokers: &str,
    shutdown: Arc<AtomicBool>,
    options: RunOptions,
) -> Result<Summary, EngineError> {
    let RunOptions {
        reload,
        admin_token,
    } = options;
    let loaded = Arc::new(loaded);
    let metrics = Metrics::new(&pipeline.name);
    let (spans, _spans_guard) = start_spans(pipeline, &metrics)?;
    let cluster = crate::cluster::cluster(brokers, &pipeline.security)?;
    let sink_settings = SinkSettings {
        cluster: cluster.clone(),
        properties: crate::cluster::producer_properties(pipeline, &cluster),
        observer: Some(Arc::new(Delivered(Arc::clone(&metrics)))),
        transactional_id: None,
    };
    let sink = Arc::new(KafkaSink::new(&sink_settings)?);
    let exactly_once = pipeline.sink.delivery == weir_config::Delivery::ExactlyOnce;

    let stats = Arc::new(Stats::default());
    let shared = Arc::new(Shared {
        pipeline: pipeline.name.as_str().into(),
        dead_letter: pipeline.dead_letter.topic.as_str().into(),
        batch_size: pipeline.source.batch_size,
        cluster: cluster.clone(),
        source_properties: pipeline.source.kafka.clone(),
        commit_interval: pipeline.source.commit_interval,
        drain_timeout: pipeline.source.drain_timeout,
        sink: Arc::clone(&sink),
        exactly_once,
        sink_settings,
        group_metadata: Mutex::new(None),
        stats: Arc::clone(&stats),
        fatal: Mutex::new(None),
        stalls: Arc::default(),
        loaded: RwLock::new(Arc::clone(&loaded)),
        canary_board: Mutex::default(),
        canary_requests: Mutex::default(),
        assigned: Mutex::default(),
        prepared: Mutex::default(),
        retired: Mutex::default(),
        generation: AtomicU64::new(0),
        metrics: Arc::clone(&metrics),
        tracing: Tracing {
            spans,
            group: pipeline.source.group.as_str().into(),
            ratio: pipeline.telemetry.sample.ratio,
            keep_errors: pipeline.telemetry.sample.keep_errors,
            slow: pipeline.telemetry.sample.slow,
            keep_sampled_parents: pipeline.telemetry.sample.keep_sampled_parents,
        },
    });
    metrics.set_guests(loaded.guest_sources(&shared.pipeline));
    let manager = Arc::new(Manager {
        shared: Arc::clone(&shared),
        metrics: Arc::clone(&metrics),
        drain_timeout: pipeline.source.drain_timeout,
        lanes: Mutex::default(),
        assigned: AtomicUsize::new(0),
        reachable: AtomicBool::new(false),
        host: reload.as_ref().map(|r| r.host.clone()),
    });
    let api = AdminApi {
        token: admin_token,
        control: Arc::new(ReloadControl {
            requested: reload.as_ref().map(|r| Arc::clone(&r.requested)),
            shared: Arc::clone(&shared),
        }),
    };
    let admin = AdminServer::start(
        pipeline.telemetry.listen,
        Arc::clone(&metrics),
        Arc::clone(&manager) as Arc<dyn Health>,
        Some(api),
    )?;
    tracing::info!(addr = %admin.addr(), "Admin listener started (/metrics, /healthz, /readyz).");
    let _reloader = match reload {
        Some(options) => Some(Reloader::start(
            pipeline.clone(),
            options,
            Arc::clone(&shared),
            &cluster,
        )?),
        None => None,
    };
    crate::cluster::check_topics(pipeline, &loaded, &sink, &cluster)?;
    manager.reachable.store(true, Ordering::Relaxed);
    let source = KafkaSource::new(
        &SourceSettings {
            cluster,
            group: pipeline.source.group.clone(),
            topics: pipeline.source.topics.clone(),
            prefetch_records: pipeline.source.queue_capacity,
            start: match pipeline.source.start {
                weir_config::StartFrom::Earliest => StartFrom::Earliest,
                weir_config::StartFrom::Latest => StartFrom::Latest,
            },
            properties: pipeline.source.kafka.clone(),
        },
        Arc::clone(&manager) as Arc<dyn PartitionHandler>,
    )?;
    tracing::info!(
        pipeline = %pipeline.name,
        group = %pipeline.source.group,
        topics = %pipeline.source.topics.join(","),
        "Pipeline running."
    );

    let started = Instant::now();
    let mut last_commit = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_gauges = Instant::now();
    let mut client_errors = weir_core::Throttle::default();
    let failure = loop {
        if shutdown.load(Ordering::Relaxed) {
            break None;
        }
        if let Some(f) = shared.fatal.lock().clone().or_else(|| sink.failure()) {
            break Some(f);
        }
        match source.poll(Duration::from_millis(100)) {
            Ok(()) => {}
            // Delivering it out of its lane could reorder or skip records: stop instead, and let
            // the restart re-read from the last commit.
            Err(error @ KafkaError::Unsplit(_)) => break Some(error.to_string()),
            Err(error) => {
                let kind = error.kind();
                metrics.consume_error("", None, &kind);
                if let Some(repeats) = client_errors.admit(&kind, Instant::now()) {
                    tracing::warn!(%error, kind, repeats, "Consumer error; retrying.");
                }
            }
        }
        if last_commit.elapsed() >= pipeline.source.commit_interval {
            let offsets = manager.committable();
            if !offsets.is_empty()
                && let Err(error) = source.commit(&offsets, false)
            {
                tracing::warn!(%error, "Commit failed; retried at the next interval.");
            }
            last_commit = Instant::now();
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            log_progress(&stats, started);
            last_progress = Instant::now();
        }
        if last_gauges.elapsed() >= GAUGES_EVERY {
            manager.update_gauges();
            last_gauges = Instant::now();
        }
    };

    // Drain: stop every lane, wait for outputs, commit what is safe, leave the group.
    tracing::info!("Shutting down; draining lanes.");
    let offsets = manager.drain_all();
    if let Err(error) = source.commit(&offsets, true) {
        tracing::warn!(%error, "Final commit failed; the next owner re-reads from the last commit.");
    }
    source.close();
    if let Err(error) = sink.flush(pipeline.source.drain_timeout) {
        tracing::warn!(%error, "Not every output was acknowledged before exit.");
    }
    manager.update_gauges();
    drop(admin);
    let summary = stats.summary();
    tracing::info!(
        records_in = summary.records_in,
        records_out = summary.records_out,
        dead_letters = summary.dead_letters,
        seconds = started.elapsed().as_secs_f64(),
        "Pipeline stopped."
    );
    match failure {
        Some(f) => Err(EngineError::Fatal(f)),
        None => Ok(summary),
    }
}

impl Stats {
    fn summary(&self) -> Summary {
        Summary {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
        }
    }
}

/// Starts span export when the pipeline names a collector.
fn start_spans(
    pipeline: &Pipeline,
    metrics: &Arc<Metrics>,
) -> Result<(Spans, Option<SpansGuard>), EngineError> {
    let Some(endpoint) = &pipeline.telemetry.otlp else {
        return Ok((Spans::disabled(Arc::clone(metrics)), None));
    };
    let resource = vec![
        ("service.name", "weir".to_owned()),
        ("service.version", env!("CARGO_PKG_VERSION").to_owned()),
        ("service.instance.id", instance_id()),
        ("weir.pipeline", pipeline.name.clone()),
    ];
    let (spans, guard) = Spans::start(
        endpoint,
        pipeline.telemetry.export_queue,
        pipeline.telemetry.export_timeout,
        resource,
        Arc::clone(metrics),
    )?;
    tracing::info!(%endpoint, "Exporting spans over OTLP.");
    Ok((spans, Some(guard)))
}

/// This process, for the `service.instance.id` resource attribute.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!("{host}/{}", std::process::id())
}

/// Feeds acknowledged deliveries into the throughput and end-to-end latency metrics.
struct Delivered(Arc<Metrics>);

impl DeliveryObserver for Delivered {
    fn delivered(&self, topic: &str, timestamp_ms: Option<i64>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.0.delivered(topic, timestamp_ms, now);
    }
}

fn log_progress(stats: &Stats, started: Instant) {
    let s = stats.summary();
    let secs = started.elapsed().as_secs_f64().max(f64::EPSILON);
    tracing::info!(
        records_in = s.records_in,
        records_out = s.records_out,
        dead_letters = s.dead_letters,
        records_per_sec = (s.records_in as f64 / secs).round(),
        "Progress."
    );
}

/// Owns the lanes; the consumer's [`PartitionHandler`].
struct Manager {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    drain_timeout: Duration,
    lanes: Mutex<BTreeMap<TopicPartition, Lane>>,
    /// Partitions assigned, for `/readyz`.
    assigned: AtomicUsize,
    /// Whether the brokers answered lately, for `/readyz`.
    reachable: AtomicBool,
    /// The wasm host, for the watchdog's count of overdue calls.
    host: Option<weir_wasm::WasmHost>,
}

impl Health for Manager {
    fn live(&self) -> Result<(), String> {
        match self.shared.fatal.lock().as_ref() {
            Some(fatal) => Err(format!("pipeline failing: {fatal}")),
            None => Ok(()),
        }
    }

    fn ready(&self) -> Result<(), String> {
        self.live()?;
        if !self.reachable.load(Ordering::Relaxed) {
            return Err("brokers unreachable".into());
        }
        if self.assigned.load(Ordering::Relaxed) == 0 {
            return Err("no partition assigned".into());
        }
        match self.shared.stalls.describe() {
            Some(stalled) => Err(stalled),
            None => Ok(()),
        }
    }
}

impl Manager {
    /// Refreshes the assignment and backpressure gauges.
    fn update_gauges(&self) {
        let lanes = self.lanes.lock();
        let saturated = lanes
            .values()
            .filter(|l| l.saturated.load(Ordering::Relaxed))
            .count();
        let in_flight: usize = lanes.values().map(|l| l.tracker.in_flight()).sum();
        self.assigned.store(lanes.len(), Ordering::Relaxed);
        *self.shared.assigned.lock() = lanes.keys().cloned().collect();
        self.metrics
            .set_lanes(lanes.len() as i64, saturated as i64, in_flight as i64);
        if let Some(host) = &self.host {
            self.metrics.set_overdue_calls(host.overdue_calls());
        }
    }

    /// Offsets that advanced since the last call, for a periodic commit. None with exactly-once
    /// delivery: each lane commits its offsets in its transactions.
    fn committable(&self) -> Vec<(TopicPartition, i64)> {
        if self.shared.exactly_once {
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

    fn drain_all(&self) -> Vec<(TopicPartition, i64)> {
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
            lane.stop.store(true, Ordering::Release);
            waiting.push((tp, lane.thread, lane.tracker));
        }
        let poll = Duration::from_millis(2);
        while Instant::now() < deadline
            && waiting
                .iter()
                .any(|(_, t, tracker)| !t.is_finished() || tracker.in_flight() > 0)
        {
            std::thread::sleep(poll);
        }
        let mut offsets = Vec::new();
        for (tp, thread, tracker) in waiting {
            if !thread.is_finished() || tracker.in_flight() > 0 {
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
        if self.shared.exactly_once {
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
        let generation = self.shared.generation.load(Ordering::Acquire);
        let loaded = self.shared.current();
        for feed in feeds {
            let tp = feed.partition().clone();
            match loaded.chain_for(tp.partition) {
                Ok(chain) => {
                    let stage_metrics = (0..loaded.infos().len())
                        .map(|i| {
                            let labels = loaded.labels(&self.shared.pipeline, i, tp.partition);
                            self.metrics.stage(&labels, &tp.topic, tp.partition)
                        })
                        .collect();
                    let chain = chain
                        .with_metrics(stage_metrics)
                        .with_spans(self.shared.tracing.spans.enabled())
                        .with_forward(loaded.aggregate().is_some());
                    let lane = Lane::start(
                        feed,
                        chain,
                        Arc::clone(&loaded),
                        generation,
                        Arc::clone(&self.shared),
                        self.metrics.partition(&tp.topic, tp.partition),
                    );
                    if let Some(old) = lanes.insert(tp.clone(), lane) {
                        // Assigned twice without a revoke in between: retire the old lane.
                        old.stop.store(true, Ordering::Release);
                    }
                }
                Err(e) => self
                    .shared
                    .set_fatal(format!("cannot start a lane for {tp}: {e}")),
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
            if let Some(p) = self.shared.prepared.lock().remove(tp) {
                self.shared.retired.lock().extend(p.into_stages());
            }
        }
        self.drain(taken)
    }

    fn group_changed(&self, metadata: weir_kafka::GroupMetadata) {
        *self.shared.group_metadata.lock() = Some(Arc::new(metadata));
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
