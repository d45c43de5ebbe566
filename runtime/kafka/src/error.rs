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
    /// A thread the client needs could not be started.
    #[error("cannot start {what}: {source}")]
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
    /// A record arrived on the consumer's queue instead of its partition's feed: the partition's
    /// queue was not split off, so its records cannot be handed to its lane in order.
    #[error("record {0} arrived outside its partition's feed")]
    Unsplit(String),
}

impl KafkaError {
    /// A short, stable name for what went wrong, for metric labels and for grouping repeated
    /// errors: librdkafka's error code in snake case (`bad_compression`, `not_implemented`,
    /// `topic_authorization_failed`), or the variant's name when there is no code.
    pub fn kind(&self) -> String {
        match self {
            Self::Broker { cause, .. } => match cause.rdkafka_error_code() {
                Some(code) => snake_case(&format!("{code:?}")),
                None => "client".into(),
            },
            Self::Config(_) => "config".into(),
            Self::Topic(_) => "topic".into(),
            Self::Unsplit(_) => "unsplit".into(),
            Self::Thread { .. } => "thread".into(),
        }
    }

    pub(crate) fn broker(context: impl Into<String>, cause: rdkafka::error::KafkaError) -> Self {
        Self::Broker {
            context: context.into(),
            cause,
        }
    }
}

pub(crate) fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    #[test]
    fn kinds_are_librdkafka_codes_in_snake_case() {
        let error = KafkaError::broker(
            "consume failed",
            rdkafka::error::KafkaError::MessageConsumption(RDKafkaErrorCode::BadCompression),
        );
        assert_eq!(error.kind(), "bad_compression");
        let error = KafkaError::broker(
            "consume failed",
            rdkafka::error::KafkaError::MessageConsumption(
                RDKafkaErrorCode::TopicAuthorizationFailed,
            ),
        );
        assert_eq!(error.kind(), "topic_authorization_failed");
    }
}
