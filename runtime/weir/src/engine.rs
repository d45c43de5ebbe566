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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use weir_config::Pipeline;
use weir_kafka::{
    DeliveryObserver, KafkaError, KafkaSink, KafkaSource, PartitionHandler, SinkSettings,
    SourceSettings, StartFrom,
};
use weir_telemetry::{AdminApi, AdminServer, AdminToken, Health, Metrics, Spans, SpansGuard};

use crate::admin::AdminControl;
pub use crate::error::{EngineError, Exit, FatalError};
use crate::lane::pool::Pool;
use crate::loader::LoadedPipeline;
use crate::manager::Manager;
pub use crate::reload::ReloadOptions;
use crate::reload::Reloader;
use crate::shared::{
    Fatal, RolloutBoard, Settings, Shared, Stats, Tracing, Transactions, Versions,
};

/// How a pipeline runs beyond its file.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Hot reload; `None` runs the versions loaded at start until the process stops.
    pub reload: Option<ReloadOptions>,
    /// The bearer token the admin API's calls must carry; without one the API refuses them.
    pub admin_token: Option<AdminToken>,
    /// The member's static membership id, in place of the file's `source.instance_id` (the
    /// running pipeline keeps the file's, so that a reload does not see `[source]` changed).
    pub instance_id: Option<String>,
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
/// How often freed memory is given back to the system ([`crate::memory`]).
const TRIM_EVERY: Duration = Duration::from_secs(10);

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
        instance_id,
    } = options;
    let static_id = instance_id.or_else(|| pipeline.source.instance_id.clone());
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
    let transactions =
        (pipeline.sink.delivery == weir_config::Delivery::ExactlyOnce).then(|| Transactions {
            sink_settings,
            group_metadata: Mutex::new(None),
        });

    let stores = crate::stores::open(pipeline, &metrics, &spans)?;
    let (dead_letter, dead_letter_store) = crate::cluster::dead_letter_target(pipeline);
    let stats = Arc::new(Stats::default());
    let privacy = crate::privacy::redactor(pipeline)?;
    let shared = Arc::new(Shared {
        settings: Settings {
            pipeline: pipeline.name.as_str().into(),
            dead_letter: dead_letter.into(),
            dead_letter_store,
            batch_size: pipeline.source.batch_size,
            cluster: cluster.clone(),
            source_properties: pipeline.source.kafka.clone(),
            commit_interval: pipeline.source.commit_interval,
            drain_timeout: pipeline.source.drain_timeout,
        },
        versions: Versions::new(Arc::clone(&loaded)),
        rollout: RolloutBoard::default(),
        fatal: Fatal::default(),
        sink: Arc::clone(&sink),
        stores: Arc::clone(&stores),
        transactions,
        stats: Arc::clone(&stats),
        stalls: Arc::default(),
        metrics: Arc::clone(&metrics),
        tracing: Tracing {
            spans,
            group: pipeline.source.group.as_str().into(),
            ratio: pipeline.telemetry.sample.ratio,
            keep_errors: pipeline.telemetry.sample.keep_errors,
            slow: pipeline.telemetry.sample.slow,
            keep_sampled_parents: pipeline.telemetry.sample.keep_sampled_parents,
        },
        tap: crate::tap::TapHub::new(privacy.clone()),
        privacy,
        redact_letters: pipeline
            .privacy
            .as_ref()
            .is_some_and(|p| p.redact_dead_letters),
    });
    metrics.set_guests(loaded.guest_sources(&shared.settings.pipeline));
    let workers = pipeline
        .source
        .lane_workers
        .unwrap_or_else(crate::lane::pool::default_size);
    let pool = Pool::start(workers, &shared).map_err(|source| EngineError::Thread {
        what: "lane worker",
        source,
    })?;
    tracing::debug!(workers = pool.size(), "Lane workers started.");
    let manager = Arc::new(Manager {
        shared: Arc::clone(&shared),
        pool,
        metrics: Arc::clone(&metrics),
        drain_timeout: pipeline.source.drain_timeout,
        lanes: Mutex::default(),
        assigned: AtomicUsize::new(0),
        reachable: AtomicBool::new(false),
        host: reload.as_ref().map(|r| r.host.clone()),
    });
    let api = AdminApi {
        token: admin_token,
        control: Arc::new(AdminControl {
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
    let source_partitions = crate::cluster::check_topics(pipeline, &loaded, &sink, &cluster)?;
    manager.reachable.store(true, Ordering::Relaxed);
    let source = KafkaSource::new(
        &SourceSettings {
            cluster,
            group: pipeline.source.group.clone(),
            topics: pipeline.source.topics.clone(),
            prefetch_records: pipeline.source.queue_capacity,
            source_partitions,
            // The one mapping from the pipeline file's `start` to the consumer's: weir-kafka
            // does not read pipeline files.
            start: match pipeline.source.start {
                weir_config::StartFrom::Earliest => StartFrom::Earliest,
                weir_config::StartFrom::Latest => StartFrom::Latest,
            },
            instance_id: static_id.clone(),
            properties: pipeline.source.kafka.clone(),
        },
        Arc::clone(&manager) as Arc<dyn PartitionHandler>,
    )?;
    tracing::info!(
        pipeline = %pipeline.name,
        group = %pipeline.source.group,
        topics = %pipeline.source.topics.join(","),
        instance_id = static_id.as_deref().unwrap_or("none (dynamic membership)"),
        "Pipeline running."
    );

    let started = Instant::now();
    let mut last_commit = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_gauges = Instant::now();
    let mut last_trim = Instant::now();
    let mut client_errors = weir_core::Throttle::default();
    let failure = loop {
        if shutdown.load(Ordering::Relaxed) {
            break None;
        }
        if let Some(f) = shared.fatal.get() {
            break Some(f);
        }
        if let Some(failure) = sink.failure() {
            shared.fatal.set(FatalError::Delivery(failure));
            break shared.fatal.get();
        }
        match source.poll(Duration::from_millis(100)) {
            Ok(()) => {}
            // Delivering it out of its lane could reorder or skip records: stop instead, and let
            // the restart re-read from the last commit.
            Err(error @ KafkaError::Unsplit(_)) => {
                shared.fatal.set(FatalError::Consumer(error));
                break shared.fatal.get();
            }
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
        if last_trim.elapsed() >= TRIM_EVERY {
            crate::memory::release_free_memory();
            last_trim = Instant::now();
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
    for (name, store) in stores.iter() {
        if let Err(error) = store.close(pipeline.source.drain_timeout) {
            tracing::warn!(sink = &**name, %error, "Store not complete before exit.");
        }
    }
    manager.update_gauges();
    shared.tap.close();
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
