//! The control channel: a compacted topic every instance of a pipeline reads from the start and
//! writes rollout decisions to, so that all instances apply the same rollout and a partition
//! that moves between instances keeps its cohort.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;

use crate::context::QuietContext;
use crate::{Cluster, KafkaError};

/// Reads and writes the control topic: keyed records, last value per key wins.
pub struct ControlChannel {
    topic: String,
    consumer: BaseConsumer<QuietContext>,
    /// Serves the producer's events; stopped first, and the producer is dropped with it.
    _poller: crate::poller::Poller,
    producer: Arc<BaseProducer<QuietContext>>,
}

impl fmt::Debug for ControlChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlChannel")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl ControlChannel {
    /// Opens `topic` on `brokers`: reads every partition from the beginning (no consumer group,
    /// no commits) and writes with an idempotent producer. `properties` are the pipeline's
    /// consumer properties (security settings and the like).
    pub fn open(
        cluster: &Cluster,
        topic: &str,
        properties: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        // A group id is required by the client, but nothing joins or commits under it.
        let group = format!("weir-control-reader-{}", std::process::id());
        let consumer: BaseConsumer<QuietContext> = cluster
            .config(
                &[
                    ("group.id", &group),
                    ("enable.auto.commit", "false"),
                    ("enable.auto.offset.store", "false"),
                    ("enable.partition.eof", "false"),
                ],
                properties,
            )
            .create_with_context(QuietContext::default())
            .map_err(|e| cluster.config_error(e))?;
        let partitions = crate::source::partition_count(consumer.client(), topic, timeout)?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| KafkaError::broker("cannot build the control assignment", e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| KafkaError::broker("cannot read the control topic", e))?;
        // Security and client properties as for the consumer (consumer-only ones dropped).
        let producer: BaseProducer<QuietContext> = cluster
            .config(
                &[("enable.idempotence", "true"), ("linger.ms", "0")],
                &crate::changelog::admin_properties(properties),
            )
            .create_with_context(QuietContext::default())
            .map_err(|e| cluster.config_error(e))?;
        let producer = Arc::new(producer);
        let poller = crate::poller::Poller::start(&producer, "weir-control").map_err(|source| {
            KafkaError::Thread {
                what: "the control producer's event thread",
                source,
            }
        })?;
        Ok(Self {
            topic: topic.to_owned(),
            consumer,
            _poller: poller,
            producer,
        })
    }

    /// The next control record, if one arrived: (key, value).
    pub fn poll(&self) -> Option<(String, Vec<u8>)> {
        match self.consumer.poll(Duration::ZERO)? {
            Ok(msg) => {
                let key = String::from_utf8_lossy(msg.key()?).into_owned();
                Some((key, msg.payload().unwrap_or_default().to_vec()))
            }
            Err(error) => {
                tracing::warn!(%error, topic = %self.topic, "Control topic read failed.");
                None
            }
        }
    }

    /// Writes `value` under `key` and waits up to `timeout` for the broker to have it.
    pub fn publish(&self, key: &str, value: &[u8], timeout: Duration) -> Result<(), KafkaError> {
        self.producer
            .send(
                BaseRecord::<str, [u8]>::to(&self.topic)
                    .key(key)
                    .payload(value),
            )
            .map_err(|(e, _)| KafkaError::broker("cannot write to the control topic", e))?;
        self.producer
            .flush(timeout)
            .map_err(|e| KafkaError::broker("control record not acknowledged", e))
    }
}
