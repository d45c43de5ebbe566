//! Kafka failures, with whose fault they are.

/// A Kafka operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client could not be created: a bad property or value in the pipeline's `kafka` tables.
    #[error("invalid Kafka client configuration: {0}")]
    Config(String),
    /// The broker or the network failed; retrying later may help. The cause is part of the
    /// message (not a `source`), so that logs and error chains print it exactly once.
    #[error("{context}: {cause}")]
    Broker {
        context: String,
        cause: rdkafka::error::KafkaError,
    },
    /// A topic the pipeline writes to is missing or too small.
    #[error("{0}")]
    Topic(String),
    /// A record arrived on the consumer's queue instead of its partition's feed: the partition's
    /// queue was not split off, so its records cannot be handed to its lane in order.
    #[error("record {0} arrived outside its partition's feed")]
    Unsplit(String),
}

impl KafkaError {
    pub(crate) fn broker(context: impl Into<String>, cause: rdkafka::error::KafkaError) -> Self {
        Self::Broker {
            context: context.into(),
            cause,
        }
    }
}
