//! Weir's integration tests against a real Kafka-compatible broker, and its benchmarks.
