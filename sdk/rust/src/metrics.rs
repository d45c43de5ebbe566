//! Stage metrics, recorded by the host.
//!
//! The host prefixes each name and labels it with the stage, so names are short and local:
//! `cache_misses`, not `weir_geo_cache_misses`. Outside a wasm host (native tests) they are
//! dropped.
//!
//! ```
//! weir_sdk::metrics::counter_add("unknown_country", 1);
//! weir_sdk::metrics::histogram_record("lookup_ms", 0.25);
//! ```

/// Adds `delta` to the counter `name`.
pub fn counter_add(name: &str, delta: u64) {
    crate::host::counter_add(name, delta);
}

/// Records `value` in the histogram `name`.
pub fn histogram_record(name: &str, value: f64) {
    crate::host::histogram_record(name, value);
}
