//! The producer side: every output settles the acknowledgement of the record it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};
use weir_core::{DeliveryFailure, InputAck, Record};

use crate::{Cluster, KafkaError};

/// What the producer needs.
#[derive(Clone)]
pub struct SinkSettings {
    pub cluster: Cluster,
    /// Raw librdkafka producer properties; they override Weir's defaults.
    pub properties: BTreeMap<String, String>,
    /// Told about every acknowledged record, for throughput and end-to-end latency.
    pub observer: Option<Arc<dyn DeliveryObserver>>,
    /// With a transactional id, the producer writes in transactions (see
    /// [`KafkaSink::commit_transaction`]); `None`: plain idempotent producer.
    pub transactional_id: Option<String>,
}

impl fmt::Debug for SinkSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkSettings")
            .field("cluster", &self.cluster)
            .field("properties", &self.properties)
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

/// Told, on the producer's delivery thread, about every record the broker acknowledged.
pub trait DeliveryObserver: Send + Sync + 'static {
    /// A record produced to `topic` with timestamp `timestamp_ms` (milliseconds since the epoch,
    /// if it has one) was acknowledged.
    fn delivered(&self, topic: &str, timestamp_ms: Option<i64>);
}

struct SinkContext {
    /// The first delivery that failed for good; the engine stops when it sees one.
    failure: Mutex<Option<DeliveryFailure>>,
    observer: Option<Arc<dyn DeliveryObserver>>,
    log: crate::context::ClientLog,
}

impl ClientContext for SinkContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message);
    }

    fn error(&self, error: RdError, reason: &str) {
        self.log.error(&error, reason);
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Arc<InputAck>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Self::DeliveryOpaque) {
        match result {
            Ok(msg) => {
                if let Some(o) = &self.observer {
                    o.delivered(msg.topic(), msg.timestamp().to_millis());
                }
                ack.ack();
            }
            Err((error, msg)) => {
                tracing::error!(%error, topic = msg.topic(), source_offset = ack.offset(), "Delivery failed.");
                self.failure.lock().get_or_insert_with(|| DeliveryFailure {
                    destination: msg.topic().to_owned(),
                    partition: Some(msg.partition()),
                    source_offset: ack.offset(),
                    reason: error.to_string(),
                });
                ack.fail();
            }
        }
    }
}

/// The pipeline's idempotent producer.
pub struct KafkaSink {
    /// Serves the delivery reports; stopped first, and the producer is dropped with it.
    _poller: crate::poller::Poller,
    producer: Arc<BaseProducer<SinkContext>>,
}

impl fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSink").finish_non_exhaustive()
    }
}

/// How long transaction calls (start, commit, abort) may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The consumer group's identity and generation, which a transaction's offsets are committed
/// under (so a member fenced by a rebalance cannot commit).
pub struct GroupMetadata(pub(crate) rdkafka::consumer::ConsumerGroupMetadata);

impl fmt::Debug for GroupMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupMetadata").finish_non_exhaustive()
    }
}

/// How long a send waits between retries while the producer's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(2);

impl KafkaSink {
    pub fn new(settings: &SinkSettings) -> Result<Self, KafkaError> {
        let mut config = settings.cluster.config(
            &[
                ("enable.idempotence", "true"),
                ("linger.ms", "5"),
                // Bound the local queue so a slow broker turns into backpressure, not memory.
                ("queue.buffering.max.kbytes", "65536"),
                ("queue.buffering.max.messages", "100000"),
            ],
            &settings.properties,
        );
        if let Some(id) = &settings.transactional_id {
            config.set("transactional.id", id);
        }
        let producer: BaseProducer<SinkContext> = config
            .create_with_context(SinkContext {
                failure: Mutex::new(None),
                observer: settings.observer.clone(),
                log: crate::context::ClientLog::default(),
            })
            .map_err(|e| settings.cluster.config_error(e))?;
        let producer = Arc::new(producer);
        let poller =
            crate::poller::Poller::start(&producer, "weir-producer").map_err(|source| {
                KafkaError::Thread {
                    what: "the producer's event thread",
                    source,
                }
            })?;
        if let Some(id) = &settings.transactional_id {
            // Fences any earlier producer with this id (a crashed process, the partition's
            // previous owner) and aborts the transaction it left open.
            producer
                .init_transactions(TRANSACTION_TIMEOUT)
                .map_err(|e| KafkaError::broker(format!("cannot start transactions as {id}"), e))?;
            producer
                .begin_transaction()
                .map_err(|e| KafkaError::broker("cannot begin a transaction", e))?;
        }
        Ok(Self {
            producer,
            _poller: poller,
        })
    }

    /// Commits the open transaction with the consumer offsets `offsets` (the next offset to
    /// read, per partition) of the group `group`, then begins the next one. Blocks until the
    /// broker has every record of the transaction. On error the transaction is aborted and
    /// the producer unusable: the caller must stop and let a restart resume from the last
    /// committed transaction.
    pub fn commit_transaction(
        &self,
        offsets: &[(crate::TopicPartition, i64)],
        group: &GroupMetadata,
    ) -> Result<(), KafkaError> {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (tp, offset) in offsets {
            tpl.add_partition_offset(&tp.topic, tp.partition, rdkafka::Offset::Offset(*offset))
                .map_err(|e| KafkaError::broker("cannot build the transaction's offsets", e))?;
        }
        let result = (|| {
            if tpl.count() > 0 {
                self.producer
                    .send_offsets_to_transaction(&tpl, &group.0, TRANSACTION_TIMEOUT)
                    .map_err(|e| KafkaError::broker("cannot add offsets to the transaction", e))?;
            }
            self.producer
                .commit_transaction(TRANSACTION_TIMEOUT)
                .map_err(|e| KafkaError::broker("cannot commit the transaction", e))?;
            self.producer
                .begin_transaction()
                .map_err(|e| KafkaError::broker("cannot begin a transaction", e))
        })();
        if result.is_err() {
            let _ = self.producer.abort_transaction(TRANSACTION_TIMEOUT);
        }
        result
    }

    /// Hands `record` to the producer for `topic` (`partition`: `None` lets the partitioner hash
    /// the key). Blocks while the local queue is full: that is the backpressure. On success the
    /// broker's acknowledgement, or a final delivery failure, settles one unit of `ack`; on error
    /// `ack` is untouched.
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        record: &Record,
        ack: &Arc<InputAck>,
    ) -> Result<(), KafkaError> {
        let headers = crate::headers::write(&record.headers);
        let mut r: BaseRecord<'_, [u8], [u8], Arc<InputAck>> =
            BaseRecord::with_opaque_to(topic, Arc::clone(ack)).headers(headers);
        if let Some(k) = &record.key {
            r = r.key(&k[..]);
        }
        if let Some(v) = &record.value {
            r = r.payload(&v[..]);
        }
        if let Some(p) = partition {
            r = r.partition(p);
        }
        if let Some(t) = record.timestamp {
            r = r.timestamp(t);
        }
        ack.add_pending(1);
        loop {
            match self.producer.send(r) {
                Ok(()) => return Ok(()),
                Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    r = back;
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((error, _)) => {
                    // The opaque came back with the record and was dropped: undo the pending unit.
                    ack.ack();
                    return Err(KafkaError::broker(
                        format!("cannot produce to {topic}"),
                        error,
                    ));
                }
            }
        }
    }

    /// The first delivery that failed for good, if any.
    pub fn failure(&self) -> Option<DeliveryFailure> {
        self.producer.context().failure.lock().clone()
    }

    /// Messages handed over but not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits up to `timeout` for every handed-over message to be acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer
            .flush(timeout)
            .map_err(|e| KafkaError::broker("flush did not complete", e))
    }

    /// Number of partitions of `topic` according to the cluster, for start-up checks.
    pub fn partition_count(&self, topic: &str, timeout: Duration) -> Result<usize, KafkaError> {
        crate::source::partition_count(self.producer.client(), topic, timeout)
    }
}

/// The producer as the engine's [`weir_core::Sink`]: each output goes to the topic its
/// destination names. A record the producer will not take at once (too large, an unknown
/// topic) is refused; one the broker fails for good later fails its acknowledgement and is
/// kept as the sink's failure.
impl weir_core::Sink for KafkaSink {
    fn write(
        &self,
        outputs: &[weir_core::Output<'_>],
    ) -> Result<Vec<(usize, weir_core::Refused)>, weir_core::SinkError> {
        let mut refused = Vec::new();
        for (i, out) in outputs.iter().enumerate() {
            if let Err(error) = self.send(out.destination, out.partition, out.record, out.ack) {
                refused.push((i, weir_core::Refused::new(error.to_string())));
            }
        }
        Ok(refused)
    }

    fn flush(&self, timeout: Duration) -> Result<(), weir_core::SinkError> {
        KafkaSink::flush(self, timeout)
            .map_err(|e| weir_core::SinkError::Unavailable(e.to_string()))
    }

    fn failure(&self) -> Option<DeliveryFailure> {
        KafkaSink::failure(self)
    }

    fn in_flight(&self) -> usize {
        usize::try_from(KafkaSink::in_flight(self)).unwrap_or(0)
    }
}
