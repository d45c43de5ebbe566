//! Changelog topics: where aggregate stages checkpoint their state, one compacted partition per
//! source partition, keyed so that the last record of each key is the state that counts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::context::QuietContext;
use crate::{Cluster, KafkaError};

/// Makes sure `topic` exists with at least `partitions` partitions, creating it compacted
/// (`cleanup.policy=compact`) when it is missing. `properties` are the pipeline's client
/// properties (security settings and the like).
pub fn ensure_changelog(
    cluster: &Cluster,
    properties: &BTreeMap<String, String>,
    topic: &str,
    partitions: usize,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let admin: AdminClient<QuietContext> = cluster
        .config(&[], &admin_properties(properties))
        .create_with_context(QuietContext::default())
        .map_err(|e| cluster.config_error(e))?;
    let existing = crate::source::partition_count(admin.inner(), topic, timeout);
    let count = match existing {
        Ok(n) => n,
        Err(KafkaError::Topic(_)) => {
            let new = NewTopic::new(
                topic,
                partitions as i32,
                // The broker's default replication factor.
                TopicReplication::Fixed(-1),
            )
            .set("cleanup.policy", "compact");
            let options = AdminOptions::new().operation_timeout(Some(timeout));
            let results = futures_executor::block_on(admin.create_topics([&new], &options))
                .map_err(|e| KafkaError::broker(format!("cannot create changelog {topic}"), e))?;
            for result in results {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => {
                        return Err(KafkaError::Topic(format!(
                            "cannot create changelog topic {topic}: {code}"
                        )));
                    }
                }
            }
            tracing::info!(topic, partitions, "Changelog topic created (compacted).");
            wait_for_topic(&admin, topic, timeout)?
        }
        Err(e) => return Err(e),
    };
    if count < partitions {
        return Err(KafkaError::Topic(format!(
            "changelog topic {topic} has {count} partitions, but the source has {partitions}: \
             it needs one per source partition"
        )));
    }
    Ok(())
}

/// The pipeline's properties a plain client accepts (consumer-only ones are dropped).
pub(crate) fn admin_properties(properties: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    properties
        .iter()
        .filter(|(k, _)| {
            k.starts_with("security.")
                || k.starts_with("sasl.")
                || k.starts_with("ssl.")
                || k.starts_with("client.")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn wait_for_topic(
    admin: &AdminClient<QuietContext>,
    topic: &str,
    timeout: Duration,
) -> Result<usize, KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        match crate::source::partition_count(admin.inner(), topic, timeout) {
            Ok(n) => return Ok(n),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Reads partition `partition` of changelog `topic` from its start to its end and returns, for
/// every key that starts with `prefix`, the last value written (keys whose last record is a
/// tombstone are left out). Keys are returned without the prefix. `read_committed` skips
/// records of aborted transactions.
pub fn read_changelog(
    cluster: &Cluster,
    properties: &BTreeMap<String, String>,
    topic: &str,
    partition: i32,
    prefix: &[u8],
    timeout: Duration,
) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, KafkaError> {
    // A group id is required by the client, but nothing joins or commits under it.
    let group = format!("weir-changelog-reader-{}", std::process::id());
    let consumer: BaseConsumer<QuietContext> = cluster
        .config(
            &[
                ("group.id", &group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                // The end of the partition, as the fetch responses tell it.
                ("enable.partition.eof", "true"),
                ("isolation.level", "read_committed"),
            ],
            &admin_properties(properties),
        )
        .create_with_context(QuietContext::default())
        .map_err(|e| cluster.config_error(e))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .map_err(|e| KafkaError::broker("cannot build the changelog assignment", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| KafkaError::broker(format!("cannot read changelog {topic}"), e))?;
    let mut state = BTreeMap::new();
    let mut deadline = Instant::now() + timeout;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(msg)) => {
                deadline = Instant::now() + timeout;
                let Some(key) = msg.key() else { continue };
                let Some(rest) = key.strip_prefix(prefix) else {
                    continue;
                };
                match msg.payload() {
                    Some(value) => state.insert(rest.to_vec(), value.to_vec()),
                    None => state.remove(rest),
                };
            }
            Some(Err(RdError::PartitionEOF(_))) => return Ok(state),
            Some(Err(e)) => {
                return Err(KafkaError::broker(
                    format!("cannot read changelog {topic}/{partition}"),
                    e,
                ));
            }
        }
        if Instant::now() >= deadline {
            return Err(KafkaError::Topic(format!(
                "changelog {topic}/{partition}: no progress for {timeout:?} while restoring"
            )));
        }
    }
}
