//! The consumer-group side: records in, commits out, assignment changes to the engine.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, base_consumer::PartitionQueue,
};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use weir_core::{Bytes, Record};

use crate::{Cluster, KafkaError};

/// A topic partition, with the topic name shared rather than copied per record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Where a group without committed offsets starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    Earliest,
    Latest,
}

/// What the consumer needs to join its group.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub cluster: Cluster,
    pub group: String,
    pub topics: Vec<String>,
    pub start: StartFrom,
    /// Records fetched ahead per partition: librdkafka stops fetching a partition whose queue
    /// holds this many (`queued.min.messages`) until its reader catches up.
    pub prefetch_records: usize,
    /// Partitions of the source topics in all: at most this many can be assigned to this
    /// member, which sizes each partition's fetch (see [`crate::fetch_bytes_per_partition`]).
    pub source_partitions: usize,
    /// The member's static membership id (`group.instance.id`), if it has one.
    pub instance_id: Option<String>,
    /// Raw librdkafka consumer properties; they override Weir's defaults.
    pub properties: BTreeMap<String, String>,
}

/// Told about every change of the partitions this member owns. Its methods run on the thread
/// that calls [`KafkaSource::poll`].
pub trait PartitionHandler: Send + Sync + 'static {
    /// These partitions are now this member's; each comes with the feed its records arrive on.
    fn assigned(&self, feeds: Vec<PartitionFeed>);

    /// The group's metadata after a rebalance (before [`Self::assigned`]), for transactions.
    fn group_changed(&self, _metadata: crate::GroupMetadata) {}

    /// These partitions are being taken away. Stop working on them (finish or abandon in-flight
    /// work) and return, per partition, the offset that is safe to commit; the source commits it
    /// before the partitions are released. Also called with every partition of an assignment
    /// before it takes effect: partitions not owned are to be ignored.
    fn revoking(&self, partitions: &[TopicPartition]) -> Vec<(TopicPartition, i64)>;

    /// The client's periodic statistics (every `statistics.interval.ms`, which Weir sets to 5 s
    /// unless the pipeline's Kafka properties say otherwise).
    fn statistics(&self, _stats: &SourceStats) {}

    /// An offset commit finished after `elapsed`, successfully or not.
    fn commit_finished(&self, _elapsed: Duration, _ok: bool) {}

    /// Whether the brokers can be reached changed (all brokers down, or back).
    fn brokers_reachable(&self, _reachable: bool) {}
}

/// What the consumer client reports about its partitions and brokers.
#[derive(Debug, Clone, Default)]
pub struct SourceStats {
    pub partitions: Vec<PartitionStats>,
    /// Brokers the client is connected to.
    pub brokers_up: usize,
}

/// One assigned partition, as the client sees it.
#[derive(Debug, Clone)]
pub struct PartitionStats {
    pub topic: String,
    pub partition: i32,
    /// The partition's high watermark, from fetch responses; -1 when unknown.
    pub high_watermark: i64,
    /// The group's committed offset; -1 when none.
    pub committed: i64,
    /// Records between the high watermark and the committed offset; -1 when unknown.
    pub lag: i64,
    /// Records fetched and not yet taken from the partition's feed.
    pub fetch_queue: i64,
}

struct SourceContext {
    handler: Arc<dyn PartitionHandler>,
    topics: Mutex<HashMap<String, Arc<str>>>,
    /// When the asynchronous commit in flight was issued, for its duration.
    commit_started: Mutex<Option<Instant>>,
    /// The consumer itself (set once it exists), to split assigned partitions' queues off.
    consumer: OnceLock<Weak<BaseConsumer<SourceContext>>>,
    /// Feeds split off before an assignment takes effect, handed over once it has.
    split: Mutex<Vec<PartitionFeed>>,
    log: crate::context::ClientLog,
}

/// One assigned partition's records, in offset order, for the one reader that owns it.
///
/// Each assigned partition's fetch queue is split off the consumer's queue before the assignment
/// takes effect, so its records never pass through [`KafkaSource::poll`]. Backpressure is the
/// reader's pace: librdkafka stops fetching a partition whose queue holds
/// [`SourceSettings::prefetch_records`] records (or `queued.max.messages.kbytes`) and fetches
/// again once the reader has taken them. Nothing fetched is thrown away and fetched again, as it
/// would be by pausing and resuming the partition.
pub struct PartitionFeed {
    partition: TopicPartition,
    queue: PartitionQueue<SourceContext>,
}

impl fmt::Debug for PartitionFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionFeed")
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl PartitionFeed {
    /// The partition this feed reads.
    pub fn partition(&self) -> &TopicPartition {
        &self.partition
    }

    /// Calls `wake` (on a librdkafka thread) whenever the partition's queue goes from empty to
    /// holding something: a record or an error. A reader that serves many feeds waits for these
    /// rather than polling each feed; it must keep polling a feed until it answers `None`, since
    /// only the next arrival after that calls `wake` again. `wake` must be quick and must not
    /// block.
    pub fn on_arrival(&mut self, wake: impl Fn() + Send + Sync + 'static) {
        self.queue.set_nonempty_callback(wake);
    }

    /// Waits up to `timeout` for the partition's next record. An error is the client's
    /// report about the partition (such as an offset reset); the feed stays usable.
    pub fn poll(&self, timeout: Duration) -> Result<Option<Record>, KafkaError> {
        match self.queue.poll(timeout) {
            None => Ok(None),
            Some(Ok(msg)) => Ok(Some(record_of(&msg))),
            Some(Err(e)) => Err(KafkaError::broker(
                format!("consume failed on {}", self.partition),
                e,
            )),
        }
    }
}

/// An owned copy of a fetched message.
fn record_of(msg: &BorrowedMessage<'_>) -> Record {
    let headers = crate::headers::read(msg);
    let (key, value) = match (msg.key(), msg.payload()) {
        // Key and value share one buffer: one allocation for both, and later copies of either
        // (an output that keeps its input's key) share it instead of allocating.
        (Some(key), Some(value)) => {
            let mut both = Vec::with_capacity(key.len() + value.len());
            both.extend_from_slice(key);
            both.extend_from_slice(value);
            let both = Bytes::from(both);
            (Some(both.slice(..key.len())), Some(both.slice(key.len()..)))
        }
        (key, value) => (
            key.map(Bytes::copy_from_slice),
            value.map(Bytes::copy_from_slice),
        ),
    };
    Record {
        offset: msg.offset(),
        timestamp: msg.timestamp().to_millis(),
        key,
        value,
        headers,
    }
}

impl SourceContext {
    fn intern(&self, topic: &str) -> Arc<str> {
        let mut t = self.topics.lock();
        if let Some(a) = t.get(topic) {
            return Arc::clone(a);
        }
        let a: Arc<str> = topic.into();
        t.insert(topic.to_owned(), Arc::clone(&a));
        a
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<TopicPartition> {
        tpl.elements()
            .iter()
            .map(|e| TopicPartition {
                topic: self.intern(e.topic()),
                partition: e.partition(),
            })
            .collect()
    }
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        let brokers_up = statistics
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0 && b.state == "UP")
            .count();
        let mut partitions = Vec::new();
        for (name, topic) in &statistics.topics {
            for (&partition, p) in &topic.partitions {
                // Partition -1 is the client's internal "unassigned" bucket.
                if partition < 0 || !p.desired {
                    continue;
                }
                let lag = if p.hi_offset >= 0 && p.committed_offset >= 0 {
                    (p.hi_offset - p.committed_offset).max(0)
                } else {
                    p.consumer_lag
                };
                partitions.push(PartitionStats {
                    topic: name.clone(),
                    partition,
                    high_watermark: p.hi_offset,
                    committed: p.committed_offset,
                    lag,
                    fetch_queue: p.fetchq_cnt,
                });
            }
        }
        self.handler.statistics(&SourceStats {
            partitions,
            brokers_up,
        });
    }

    fn error(&self, error: RdError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.handler.brokers_reachable(false);
        }
        self.log.error(&error, reason);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts = self.partitions(tpl);
                tracing::info!(partitions = %list(&parts), "Partitions revoked; draining.");
                let offsets = self.handler.revoking(&parts);
                if let Err(error) = commit(consumer, &offsets, CommitMode::Sync) {
                    // The next owner re-reads from the last successful commit: duplicates, no loss.
                    tracing::warn!(%error, "Commit on revoke failed.");
                }
            }
            Rebalance::Assign(tpl) => {
                let parts = self.partitions(tpl);
                // A partition assigned again without a revoke in between (the eager protocol
                // always revokes first) is drained and committed like a revoke before the new
                // assignment fetches: its old lane shares the partition's queue and must not take
                // records of the new one.
                let offsets = self.handler.revoking(&parts);
                if let Err(error) = commit(consumer, &offsets, CommitMode::Sync) {
                    tracing::warn!(%error, "Commit before a repeated assignment failed.");
                }
                // Split before the assignment starts fetching, so that no record of these
                // partitions ever lands on the consumer's own queue.
                let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
                    tracing::error!("Assignment before the consumer exists; not split.");
                    return;
                };
                let mut split = self.split.lock();
                for partition in parts {
                    match consumer.split_partition_queue(&partition.topic, partition.partition) {
                        Some(queue) => split.push(PartitionFeed { partition, queue }),
                        // Its records then arrive through `KafkaSource::poll`, which refuses them.
                        None => tracing::error!(%partition, "Cannot split the partition's queue."),
                    }
                }
            }
            Rebalance::Error(error) => tracing::error!(%error, "Rebalance failed."),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if let Some(metadata) = consumer.group_metadata() {
                self.handler.group_changed(crate::GroupMetadata(metadata));
            }
            let parts = self.partitions(tpl);
            tracing::info!(partitions = %list(&parts), "Partitions assigned.");
            let feeds = std::mem::take(&mut *self.split.lock());
            self.handler.assigned(feeds);
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        if let Some(started) = self.commit_started.lock().take() {
            self.handler
                .commit_finished(started.elapsed(), result.is_ok());
        }
        if let Err(error) = result {
            tracing::warn!(%error, "Offset commit failed; it is retried with the next commit.");
        }
    }
}

fn list(parts: &[TopicPartition]) -> String {
    parts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn commit(
    consumer: &BaseConsumer<SourceContext>,
    offsets: &[(TopicPartition, i64)],
    mode: CommitMode,
) -> Result<(), KafkaError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (tp, offset) in offsets {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
            .map_err(|e| KafkaError::broker("cannot build the commit list", e))?;
    }
    consumer
        .commit(&tpl, mode)
        .map_err(|e| KafkaError::broker("offset commit failed", e))
}

/// A member of the pipeline's consumer group.
pub struct KafkaSource {
    consumer: Arc<BaseConsumer<SourceContext>>,
}

impl fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSource").finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Creates the consumer and subscribes to the topics. Offsets are committed only by
    /// [`Self::commit`] and on revoke, never automatically.
    pub fn new(
        settings: &SourceSettings,
        handler: Arc<dyn PartitionHandler>,
    ) -> Result<Self, KafkaError> {
        let prefetch = settings.prefetch_records.max(1).to_string();
        let fetch_bytes =
            crate::limits::fetch_bytes_per_partition(settings.source_partitions).to_string();
        let start = match settings.start {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        };
        let mut ours = vec![
            ("group.id", settings.group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", start),
            ("enable.partition.eof", "false"),
            // Bound what librdkafka prefetches per partition (each partition's queue is split
            // off, so these apply to each one), so memory stays bounded however fast the
            // input and however slow the lane.
            ("queued.min.messages", &prefetch),
            ("queued.max.messages.kbytes", "32768"),
            // What one fetch may bring per partition: a fetch can bring more than the queue
            // asks for, and that is held until its last record is done with.
            ("max.partition.fetch.bytes", &fetch_bytes),
            // Once a partition's queue is full, look again soon: librdkafka's default (1 s)
            // would idle a lane that drains its queue faster than that.
            ("fetch.queue.backoff.ms", "5"),
            // Partition high watermarks and broker states, for lag and readiness.
            ("statistics.interval.ms", "5000"),
        ];
        if let Some(id) = &settings.instance_id {
            ours.push(("group.instance.id", id));
        }
        let config = settings.cluster.config(&ours, &settings.properties);
        let context = SourceContext {
            handler,
            topics: Mutex::default(),
            commit_started: Mutex::default(),
            consumer: OnceLock::new(),
            split: Mutex::default(),
            log: crate::context::ClientLog::default(),
        };
        let consumer: Arc<BaseConsumer<SourceContext>> = Arc::new(
            config
                .create_with_context(context)
                .map_err(|e| settings.cluster.config_error(e))?,
        );
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| KafkaError::broker("cannot subscribe", e))?;
        Ok(Self { consumer })
    }

    /// Serves the consumer's events for up to `timeout`: rebalance callbacks run inside this
    /// call, and client errors come out of it. Records arrive on each partition's
    /// [`PartitionFeed`]; one that arrives here belongs to a partition whose queue could not be
    /// split, and is refused with [`KafkaError::Unsplit`] rather than delivered out of order.
    pub fn poll(&self, timeout: Duration) -> Result<(), KafkaError> {
        let Some(msg) = self.consumer.poll(timeout) else {
            return Ok(());
        };
        let msg = msg.map_err(|e| KafkaError::broker("consume failed", e))?;
        self.consumer.context().handler.brokers_reachable(true);
        Err(KafkaError::Unsplit(format!(
            "{}/{} at offset {}",
            msg.topic(),
            msg.partition(),
            msg.offset()
        )))
    }

    /// Commits `offsets` (the next offset to read, per partition). Asynchronous unless `sync`.
    pub fn commit(&self, offsets: &[(TopicPartition, i64)], sync: bool) -> Result<(), KafkaError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let context = self.consumer.context();
        if sync {
            let started = Instant::now();
            let result = commit(&self.consumer, offsets, CommitMode::Sync);
            context
                .handler
                .commit_finished(started.elapsed(), result.is_ok());
            return result;
        }
        context
            .commit_started
            .lock()
            .get_or_insert_with(Instant::now);
        commit(&self.consumer, offsets, CommitMode::Async)
    }

    /// Number of partitions of `topic` according to the cluster, for start-up checks.
    pub fn partition_count(&self, topic: &str, timeout: Duration) -> Result<usize, KafkaError> {
        partition_count(self.consumer.client(), topic, timeout)
    }

    /// Leaves the group: revokes (through the handler) and closes.
    pub fn close(self) {
        drop(self.consumer);
    }
}

pub(crate) fn partition_count<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<usize, KafkaError> {
    let md = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| KafkaError::broker(format!("cannot read metadata of topic {topic}"), e))?;
    match md.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
        Some(t) => Err(KafkaError::Topic(format!(
            "topic {topic} is not usable: {}",
            t.error()
                .map(|e| rdkafka::types::RDKafkaErrorCode::from(e).to_string())
                .unwrap_or_else(|| "it has no partitions".into())
        ))),
        None => Err(KafkaError::Topic(format!("topic {topic} does not exist"))),
    }
}
