//! The cluster as the pipeline meets it at start: the `[security]` settings and broker list as
//! the Kafka clients take them (every secret read now, from where the file says it lives), the
//! producer's size limit, and the checks that the topics the pipeline writes to can take it.

use std::time::Duration;

use weir_config::{Pipeline, Secret, Security, SecurityProtocol};
use weir_kafka::{Cluster, KafkaError, KafkaSink, Protocol, Sasl};

use crate::chain::Partitioning;
use crate::loader::LoadedPipeline;

/// How long start-up waits for topic metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(15);
/// How long start-up waits for the output topics' settings before going on without them.
const CONFIGS_TIMEOUT: Duration = Duration::from_secs(5);

/// A secret named by the pipeline file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("security.{field}: {source}")]
pub struct SecretUnavailable {
    field: &'static str,
    source: weir_config::SecretError,
}

/// How every client reaches the cluster at `brokers`.
pub fn cluster(brokers: &str, security: &Security) -> Result<Cluster, SecretUnavailable> {
    let read = |field: &'static str, secret: &Secret| {
        secret
            .read()
            .map_err(|source| SecretUnavailable { field, source })
    };
    let sasl = match &security.sasl {
        Some(sasl) => Some(Sasl {
            mechanism: sasl.mechanism.name(),
            username: read("sasl.username", &sasl.username)?,
            password: read("sasl.password", &sasl.password)?,
        }),
        None => None,
    };
    let key_password = match &security.key_password {
        Some(secret) => Some(read("key_password", secret)?),
        None => None,
    };
    Ok(Cluster {
        brokers: brokers.to_owned(),
        security: weir_kafka::Security {
            protocol: match security.protocol {
                SecurityProtocol::Plaintext => Protocol::Plaintext,
                SecurityProtocol::Ssl => Protocol::Ssl,
                SecurityProtocol::SaslPlaintext => Protocol::SaslPlaintext,
                SecurityProtocol::SaslSsl => Protocol::SaslSsl,
            },
            ca: security.ca.clone(),
            certificate: security.certificate.clone(),
            key: security.key.clone(),
            key_password,
            verify_hostname: security.verify_hostname,
            sasl,
        },
    })
}

/// The pipeline's producer properties, with `message.max.bytes` following the output topics'
/// `max.message.bytes` unless the file sets it: librdkafka's default (1,000,000) is below
/// Kafka's, so it would refuse records the brokers take.
pub(crate) fn producer_properties(
    pipeline: &Pipeline,
    cluster: &weir_kafka::Cluster,
) -> std::collections::BTreeMap<String, String> {
    let mut properties = pipeline.sink.kafka.clone();
    if properties.contains_key("message.max.bytes") {
        return properties;
    }
    let topics = pipeline.all_output_topics();
    match weir_kafka::max_message_bytes(cluster, &pipeline.source.kafka, &topics, CONFIGS_TIMEOUT) {
        Ok(Some(limit)) => {
            tracing::debug!(
                limit,
                "Producer message.max.bytes follows the output topics."
            );
            properties.insert("message.max.bytes".into(), limit.to_string());
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(
            %error,
            "Cannot read the output topics' max.message.bytes; the producer keeps its default."
        ),
    }
    properties
}

/// Where dead letters go: `[dead_letter]`'s topic or its `kind = "kafka"` sink's topic
/// (`false`), or the name of its parquet sink (`true`).
pub(crate) fn dead_letter_target(pipeline: &Pipeline) -> (&str, bool) {
    match pipeline.dead_letter_target() {
        weir_config::Target::Topic(topic) => (topic, false),
        weir_config::Target::Store(sink) => (&sink.name, true),
    }
}

/// Fails fast when a topic the pipeline writes to is missing, or too small for source
/// partitioning.
pub(crate) fn check_topics(
    pipeline: &Pipeline,
    loaded: &LoadedPipeline,
    sink: &KafkaSink,
    cluster: &weir_kafka::Cluster,
) -> Result<usize, KafkaError> {
    let mut source_partitions = 0;
    let mut all_source_partitions = 0;
    for t in &pipeline.source.topics {
        let n = sink.partition_count(t, METADATA_TIMEOUT)?;
        source_partitions = source_partitions.max(n);
        all_source_partitions += n;
    }
    if let (topic, false) = dead_letter_target(pipeline) {
        sink.partition_count(topic, METADATA_TIMEOUT)?;
    }
    let aggregate = loaded.aggregate().map(|a| &a.info);
    if let Some(a) = loaded.aggregate() {
        weir_kafka::ensure_changelog(
            cluster,
            &pipeline.source.kafka,
            &a.spec.changelog,
            source_partitions,
            METADATA_TIMEOUT,
        )?;
    }
    for info in loaded.infos().iter().chain(aggregate) {
        let Some(topic) = &info.output else { continue };
        let n = sink.partition_count(topic, METADATA_TIMEOUT)?;
        if info.partitioning == Partitioning::Source && n < source_partitions {
            return Err(KafkaError::Topic(format!(
                "stage {} publishes to {topic} with partitioning = \"source\", but {topic} has {n} \
                 partitions and the source has {source_partitions}: give {topic} at least \
                 {source_partitions} partitions or set partitioning = \"key\"",
                info.name
            )));
        }
    }
    Ok(all_source_partitions)
}
