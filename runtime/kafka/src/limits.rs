//! The cluster's own limits, so the producer follows them instead of librdkafka's defaults, and
//! the consumer's fetch size, so memory stays bounded however many partitions a member owns.

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

/// What all of a member's partitions may bring in one fetch, about: each partition's share of
/// it is its `max.partition.fetch.bytes`, between [`FETCH_BYTES_MIN`] and [`FETCH_BYTES_MAX`].
pub const FETCH_BYTES_BUDGET: usize = 16 << 20;
/// The smallest fetch per partition Weir asks for (many partitions).
pub const FETCH_BYTES_MIN: usize = 64 << 10;
/// The largest fetch per partition Weir asks for (few partitions): librdkafka's default.
pub const FETCH_BYTES_MAX: usize = 1 << 20;

/// `max.partition.fetch.bytes` for a member that may own `partitions`: librdkafka's 1 MB up to
/// 16 partitions, then less, down to 64 KB from 256 partitions on. A fetched block of records
/// stays in memory until its last record is done with, so with hundreds of partitions 1 MB
/// each would hold hundreds of megabytes of backlog; a few partitions keep the large fetches a
/// distant cluster needs for throughput. The source's `kafka` table overrides it.
pub fn fetch_bytes_per_partition(partitions: usize) -> usize {
    (FETCH_BYTES_BUDGET / partitions.max(1)).clamp(FETCH_BYTES_MIN, FETCH_BYTES_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_shrink_as_partitions_grow_within_bounds() {
        assert_eq!(fetch_bytes_per_partition(0), FETCH_BYTES_MAX);
        assert_eq!(fetch_bytes_per_partition(4), FETCH_BYTES_MAX);
        assert_eq!(fetch_bytes_per_partition(16), FETCH_BYTES_MAX);
        assert_eq!(fetch_bytes_per_partition(64), 256 << 10);
        assert_eq!(fetch_bytes_per_partition(256), FETCH_BYTES_MIN);
        assert_eq!(fetch_bytes_per_partition(10_000), FETCH_BYTES_MIN);
        for n in 1..1024 {
            assert!(fetch_bytes_per_partition(n + 1) <= fetch_bytes_per_partition(n));
        }
    }
}
