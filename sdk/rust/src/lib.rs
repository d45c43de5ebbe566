//! The Rust SDK for Weir stages.
