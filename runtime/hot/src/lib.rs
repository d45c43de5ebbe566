//! Weir's hot-store sinks: a PostgreSQL table ([`PostgresSink`]) and Redis keys or streams
//! ([`RedisSink`]), behind the engine's [`weir_core::Sink`] seam.
//!
//! Each sink writes synchronously from the lane that calls [`weir_core::Sink::write`]: the call
//! returns once the batch is durable (the transaction committed, the commands answered), and names
//! the outputs the store refused (a constraint, a
//! type), which the engine dead-letters as `sink-rejected`. A store that is down answers
//! [`weir_core::SinkError::Unavailable`], which the engine retries with backoff, holding the
//! lane back: nothing is lost and memory stays bounded. Since every output a write accepts is
//! durable when it returns, the sinks leave the outputs' acknowledgements alone (registering one
//! unit and settling it at once would change nothing).
//!
//! Owns: the clients, their pools, the statements, and the watchers that read the stores' own
//! health. Telemetry goes out through [`HotObserver`].

mod error;
mod observe;
pub mod postgres;
mod provenance;
pub mod redis;

pub use error::HotError;
pub use observe::{HotObserver, MAX_LINKS, PoolState, Server, Statement};
pub use postgres::PostgresSink;
pub use redis::RedisSink;
