//! Kafka failures, with whose fault they are.

/// A Kafka operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client could not be created: a bad property or value in the pipeline's `kafka` tables.
    #[error("invalid Kafka client configuration: {0}")]
    Config(String),
    /// The broker or the network failed; retrying later may help.
    #[error("{context}: {source}")]
    Broker {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A topic the pipeline writes to is missing or too small.
    #[error("{0}")]
    Topic(String),
}

impl KafkaError {
    pub(crate) fn broker(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Self::Broker {
            context: context.into(),
            source,
        }
    }
}
