//! Host bindings generated from `sdk/wit`.

wasmtime::component::bindgen!({
    path: "../../sdk/wit",
    world: "weir:stage/enricher",
});
