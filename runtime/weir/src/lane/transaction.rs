//! Exactly-once delivery: a lane's own transactional producer, and the transaction it has open.
//!
//! Owns: [`Transaction`], its timing and its commit with the consumed offset. Touches the
//! group metadata the engine keeps, and nothing of the batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_kafka::{KafkaSink, TopicPartition};

use crate::error::LaneError;
use crate::shared::Transactions;

/// A lane's open transaction: what it holds and when it began.
pub(super) struct Transaction {
    /// The lane's transactional producer; it fenced the partition's previous owner.
    sink: Arc<KafkaSink>,
    /// One past the last input offset processed in it.
    next: Option<i64>,
    /// Whether anything was written in it.
    written: bool,
    began: Instant,
}

impl Transaction {
    /// Starts `tp`'s transactional producer, whose id is the group's name and the partition.
    pub fn begin(
        tp: &TopicPartition,
        group: &str,
        transactions: &Transactions,
    ) -> Result<Self, LaneError> {
        let id = format!("{group}.{}.{}", tp.topic, tp.partition);
        let sink = KafkaSink::new(&weir_kafka::SinkSettings {
            transactional_id: Some(id.clone()),
            ..transactions.sink_settings.clone()
        })
        .map_err(|source| LaneError::Transaction {
            partition: tp.clone(),
            source: Box::new(source),
        })?;
        tracing::debug!(partition = %tp, transactional_id = %id, "Transactions started.");
        Ok(Self {
            sink: Arc::new(sink),
            next: None,
            written: false,
            began: Instant::now(),
        })
    }

    pub fn sink(&self) -> &Arc<KafkaSink> {
        &self.sink
    }

    /// Inputs up to `last` were processed in this transaction.
    pub fn processed(&mut self, last: i64) {
        self.next = Some(last + 1);
    }

    /// Something was written in this transaction.
    pub fn wrote(&mut self) {
        self.written = true;
    }

    /// Whether the transaction holds something and has run for `interval`: time to commit it
    /// (and, in an aggregate lane, to checkpoint in it first).
    pub fn due(&self, interval: Duration) -> bool {
        (self.written || self.next.is_some()) && self.began.elapsed() >= interval
    }

    /// Commits the transaction with the consumed offset, and begins the next.
    pub fn commit(
        &mut self,
        tp: &TopicPartition,
        transactions: &Transactions,
    ) -> Result<(), LaneError> {
        let group = transactions.group_metadata.lock().clone();
        let Some(group) = group else {
            return Err(LaneError::NoGroupMetadata {
                partition: tp.clone(),
            });
        };
        let offsets: Vec<_> = self.next.map(|n| (tp.clone(), n)).into_iter().collect();
        self.sink
            .commit_transaction(&offsets, &group)
            .map_err(|source| LaneError::Transaction {
                partition: tp.clone(),
                source: Box::new(source),
            })?;
        self.next = None;
        self.written = false;
        self.began = Instant::now();
        Ok(())
    }
}
