//! Kafka and lane metrics: records consumed and produced, consumption errors and stalls, lag,
//! fetch queues, end-to-end latency, offset commits, backpressure and partition assignment, and
//! the invalid trace contexts found in input records.
//!
//! It owns the per-lane [`PartitionMetrics`] handles and the topic and partition label sets.
//! The families themselves are fields of [`Metrics`], registered in the parent module; what a
//! stage does with a record is counted in `stage`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use super::Metrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TopicLabels {
    pipeline: Arc<str>,
    topic: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PartitionLabels {
    pipeline: Arc<str>,
    topic: Arc<str>,
    partition: i32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ConsumeErrorLabels {
    pipeline: Arc<str>,
    topic: Arc<str>,
    /// -1 for an error of the client as a whole.
    partition: i32,
    kind: Arc<str>,
}

/// One output topic's delivery metrics, looked up once.
#[derive(Debug)]
pub(super) struct DeliveredHandles {
    topic: Arc<str>,
    produced: Counter,
    latency: Histogram,
}

/// End-to-end latency: 1 ms to about 9 minutes.
pub(super) fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// Commit round trips: 1 ms to about 16 s.
pub(super) fn commit_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    /// The handles of one partition's lane.
    pub fn partition(&self, topic: &Arc<str>, partition: i32) -> PartitionMetrics {
        let labels = PartitionLabels {
            pipeline: Arc::clone(&self.pipeline),
            topic: Arc::clone(topic),
            partition,
        };
        PartitionMetrics {
            consumed: self.consumed.get_or_create_owned(&labels),
            stalled: self.stalled.get_or_create_owned(&labels),
            trace_invalid: self.trace_invalid.get_or_create_owned(&TopicLabels {
                pipeline: Arc::clone(&self.pipeline),
                topic: Arc::clone(topic),
            }),
        }
    }

    /// The broker acknowledged a record produced to `topic`; `timestamp_ms` is the record's
    /// timestamp (its input's unless a stage set another), for end-to-end latency.
    ///
    /// Called for every output record: after a topic's first record it finds the topic's
    /// handles in a short list, without building labels or hashing them.
    pub fn delivered(&self, topic: &str, timestamp_ms: Option<i64>, now_ms: i64) {
        let count = |h: &DeliveredHandles| {
            // Latency first: whoever sees the count has the latency too.
            if let Some(ts) = timestamp_ms {
                h.latency.observe((now_ms - ts).max(0) as f64 / 1000.0);
            }
            h.produced.inc();
        };
        if let Some(h) = self.delivered.read().iter().find(|h| &*h.topic == topic) {
            count(h);
            return;
        }
        // Another thread may have added the topic since the read lock was released.
        let mut handles = self.delivered.write();
        let at = handles.iter().position(|h| &*h.topic == topic);
        let at = at.unwrap_or_else(|| {
            let labels = TopicLabels {
                pipeline: Arc::clone(&self.pipeline),
                topic: topic.into(),
            };
            handles.push(DeliveredHandles {
                latency: self.end_to_end.get_or_create_owned(&labels),
                produced: self.produced.get_or_create_owned(&labels),
                topic: labels.topic,
            });
            handles.len() - 1
        });
        count(&handles[at]);
    }

    /// The Kafka client reported an error of `kind` while consuming `partition` of `topic`
    /// (`None`: an error of the client as a whole).
    pub fn consume_error(&self, topic: &str, partition: Option<i32>, kind: &str) {
        self.consume_errors
            .get_or_create(&ConsumeErrorLabels {
                pipeline: Arc::clone(&self.pipeline),
                topic: topic.into(),
                partition: partition.unwrap_or(-1),
                kind: kind.into(),
            })
            .inc();
    }

    /// The consumer lag of a partition, as the client last reported it.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.lag
            .get_or_create(&PartitionLabels {
                pipeline: Arc::clone(&self.pipeline),
                topic: topic.into(),
                partition,
            })
            .set(lag);
    }

    /// The records fetched ahead for a partition, as the client last reported them.
    pub fn set_fetch_queue(&self, topic: &str, partition: i32, records: i64) {
        self.fetch_queue
            .get_or_create(&PartitionLabels {
                pipeline: Arc::clone(&self.pipeline),
                topic: topic.into(),
                partition,
            })
            .set(records);
    }

    /// Forgets the lag and fetch queue of a partition this instance no longer owns.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let labels = PartitionLabels {
            pipeline: Arc::clone(&self.pipeline),
            topic: topic.into(),
            partition,
        };
        self.lag.remove(&labels);
        self.fetch_queue.remove(&labels);
        self.stalled.remove(&labels);
    }

    /// Sets the backpressure and assignment gauges.
    pub fn set_lanes(&self, assigned: i64, saturated: i64, in_flight: i64) {
        let l = self.pipeline_labels();
        self.assigned.get_or_create(&l).set(assigned);
        self.saturated.get_or_create(&l).set(saturated);
        self.in_flight.get_or_create(&l).set(in_flight);
    }

    /// An offset commit finished.
    pub fn commit_done(&self, seconds: f64, ok: bool) {
        let l = self.pipeline_labels();
        self.commit_duration.get_or_create(&l).observe(seconds);
        if !ok {
            self.commit_failures.get_or_create(&l).inc();
        }
    }
}

/// A lane's per-partition handles.
#[derive(Debug, Clone)]
pub struct PartitionMetrics {
    pub consumed: Counter,
    /// 1 while the partition's consumption keeps failing.
    pub stalled: Gauge,
    pub trace_invalid: Counter,
}
