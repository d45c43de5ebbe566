//! The Weir runtime: the engine behind the `weir` binary.
//!
//! - [`loader`]: a pipeline's stages compiled, checked against the contract and ready to
//!   instantiate per lane.
//! - [`chain`]: a lane's stages in order; one batch in, for each input record its outputs and
//!   dead letters.
//! - [`engine`]: the consumer loop, lanes, commits, rebalances, shutdown and hot reload.
//! - [`tap`]: `weir tap`'s engine side, the records offered to attached tap clients.
//! - [`testing`]: `weir test`, a pipeline's `[[test]]` cases without Kafka.

mod admin;
mod aggregate;
pub mod chain;
mod cluster;
pub mod engine;
pub mod error;
pub mod gate;
mod guest;
mod hot;
mod lane;
pub mod loader;
mod manager;
mod memory;
pub mod privacy;
mod reload;
pub mod rollout;
mod shared;
mod stall;
mod stores;
pub mod tap;
pub mod testing;

pub use shared::Stats;
