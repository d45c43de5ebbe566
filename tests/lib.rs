//! Weir's benchmarks (`benches/`) and the demo client (`demo/`). The integration tests in `it/`
//! are compiled as part of the `weir` package so that they run its freshly built binary.
