//! Host bindings generated from `sdk/wit`. Owns the generated types only; what the host does
//! with them is the instance core's and `state.rs`'s.

wasmtime::component::bindgen!({
    path: "../../sdk/wit",
    world: "weir:stage/enricher",
});

/// The `aggregator` world. Its imports and shared types are the enricher bindings' own, so one
/// `host` implementation (and one store state) serves both worlds.
pub mod aggregator {
    wasmtime::component::bindgen!({
        path: "../../sdk/wit",
        world: "weir:stage/aggregator",
        with: {
            "weir:stage/types": crate::bindings::weir::stage::types,
            "weir:stage/host": crate::bindings::weir::stage::host,
        },
    });
}
