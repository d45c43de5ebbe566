//! Weir's Kafka source and sink: the only crate that touches rdkafka.
