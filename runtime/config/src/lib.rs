//! Weir pipeline configuration: TOML parsing and validation that reports every error with its line.
