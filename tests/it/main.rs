//! Weir's integration tests: one binary, a module per area, against a real Kafka-compatible
//! broker (see `harness`).

mod harness;
mod otlp;
mod pg;
mod prometheus;
mod proxy;
mod raw;
mod s3;
mod tail;

mod admin;
mod aggregate;
mod backpressure;
mod canary;
mod cli;
mod delivery;
mod fleet;
mod flow;
mod hostile;
mod hot;
mod idle;
mod languages;
mod misbehaving;
mod partitions;
mod privacy;
mod quality;
mod reload;
mod scaffold;
mod schema;
mod security;
mod store;
mod telemetry;
