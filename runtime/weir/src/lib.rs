//! The weir binary: run, validate and test Weir pipelines.
