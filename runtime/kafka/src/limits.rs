//! The cluster's own limits, so the producer follows them instead of librdkafka's defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};

use crate::context::QuietContext;
use crate::{Cluster, KafkaError};

/// The smallest `max.message.bytes` of `topics`, as the brokers report it (a topic's own setting
/// or the broker default it inherits); `None` when the brokers report none (some
/// Kafka-compatible brokers describe only the settings a topic was created with).
pub fn max_message_bytes(
    cluster: &Cluster,
    properties: &BTreeMap<String, String>,
    topics: &[&str],
    timeout: Duration,
) -> Result<Option<usize>, KafkaError> {
    let admin: AdminClient<QuietContext> = cluster
        .config(&[], &crate::changelog::admin_properties(properties))
        .create_with_context(QuietContext::default())
        .map_err(|e| cluster.config_error(e))?;
    let resources: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let results = futures_executor::block_on(admin.describe_configs(&resources, &options))
        .map_err(|e| KafkaError::broker("cannot describe the output topics", e))?;
    let limit = results
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|resource| {
            resource
                .get("max.message.bytes")
                .and_then(|entry| entry.value.as_deref())
                .and_then(|value| value.parse::<usize>().ok())
        })
        .min();
    Ok(limit)
}
