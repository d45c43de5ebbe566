//! The Rust SDK for Weir stages.
//!
//! A Weir *stage* is a WebAssembly component that the Weir runtime runs between a Kafka source
//! and a Kafka sink. An enrich stage sees each record once, in offset order, and turns it into
//! zero or more records: a map, a filter or a flat-map. With this SDK it is one plain function
//! over an owned [`Record`]:
//!
//! ```
//! use weir_sdk::{Error, Record};
//!
//! fn enrich(mut record: Record) -> Result<Record, Error> {
//!     let upper = record.value_str()?.to_uppercase();
//!     record.set_value(upper);
//!     Ok(record)
//! }
//!
//! weir_sdk::enricher!(enrich);
//! # fn main() {}
//! ```
//!
//! A stage that only keeps or drops records is cheaper as a *filter*: it reads each record through
//! a borrowed [`RecordView`] (nothing copied) and answers `Ok(true)` to pass it on unchanged; see
//! [`filter!`] and [`Filter`].
//!
//! A stage that needs configuration or state implements [`Enricher`] and is exported with
//! `enricher!(type MyStage)`. Returning an [`Error`] sends that record to the dead-letter topic;
//! a panic traps the instance (the host reports it and isolates the record that caused it).
//!
//! Build with `cargo build --release --target wasm32-wasip2` (a `cdylib` crate); test natively
//! with the helpers in [`testing`], which run a stage through the same batch encoding as the host.
//!
//! An *aggregate* stage folds keyed records into event-time windows: it implements
//! [`Aggregator`] over an accumulator type of its choosing (which the SDK encodes, and the host
//! keeps) and is exported with `aggregator!(type MyAggregate)` (feature `serde`, on by default).
//!
//! The SDK implements the contract `weir:stage@0.1.0` ([`CONTRACT`]), worlds `enricher` and
//! `aggregator`, and batch encoding format 3 ([`BATCH_FORMAT`]).

// The bindings name the SDK by its crate name, both here and in a stage's crate.
extern crate self as weir_sdk;

#[cfg(feature = "serde")]
mod aggregate;
#[cfg(feature = "allocator")]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod alloc;
mod config;
mod error;
mod host;
pub mod log;
pub mod metrics;
mod record;
mod stage;
pub mod testing;
mod view;

#[doc(hidden)]
#[path = "export.rs"]
pub mod __private;

/// Small blocks come from free lists instead of wasi-libc's `malloc`; see `alloc.rs`.
#[cfg(all(
    feature = "allocator",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: alloc::PoolAlloc = alloc::PoolAlloc::new();

#[cfg(feature = "serde")]
pub use aggregate::{Aggregator, Window};
pub use config::Config;
pub use error::Error;
pub use record::Record;
pub use stage::{Enricher, IntoOutputs};
pub use view::{Filter, RecordView};
pub use weir_wire::{Bytes, Header, Headers};

/// The WIT package (and version) of the stage contract this SDK implements.
pub const CONTRACT: &str = "weir:stage@0.1.0";

/// The batch encoding format this SDK reads and writes (reported by `batch-format`).
pub const BATCH_FORMAT: u32 = weir_wire::FORMAT_VERSION;

/// Exports a stage as the component's `weir:stage/enrich` implementation. Use it once per crate.
///
/// - `enricher!(f)`: `f` is a function (or closure) `FnMut(Record) -> Result<O, Error>`, where
///   `O` is [`Record`] (map), `Option<Record>` (filter) or `Vec<Record>` (flat-map). It takes no
///   configuration: a non-empty `config` is refused (`bad-config`).
/// - `enricher!(type T)`: `T` implements [`Enricher`], built once from the stage's configuration.
///
/// On `wasm32` the macro generates the component's exports; on other targets it only checks its
/// argument, so a stage's crate builds and tests natively.
///
/// ```
/// use weir_sdk::{Error, Record};
///
/// fn drop_empty(record: Record) -> Result<Option<Record>, Error> {
///     Ok(record.value().is_some_and(|v| !v.is_empty()).then_some(record))
/// }
///
/// weir_sdk::enricher!(drop_empty);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! enricher {
    (type $ty:ty) => {
        const _: () = $crate::__private::assert_enricher::<$ty>();
        $crate::__enricher_export!(|config| $crate::__private::init_type::<$ty>(config));
    };
    ($f:expr) => {
        const _: () = $crate::__private::assert_enrich_fn(&$f);
        $crate::__enricher_export!(|config| $crate::__private::init_fn(config, $f));
    };
}

/// Exports a filter as the component's `weir:stage/enrich` implementation: a stage that keeps or
/// drops records without changing them. Use it once per crate, instead of [`enricher!`].
///
/// - `filter!(f)`: `f` is a function (or closure) `FnMut(&RecordView) -> Result<bool, Error>`.
///   It takes no configuration: a non-empty `config` is refused (`bad-config`).
/// - `filter!(type T)`: `T` implements [`Filter`], built once from the stage's configuration.
///
/// The stage sees each record through a borrowed [`RecordView`]: nothing is copied to make it,
/// and a kept record goes back as "the input, unchanged", one byte whatever its size.
///
/// ```
/// use weir_sdk::{Error, RecordView};
///
/// fn not_empty(record: &RecordView<'_>) -> Result<bool, Error> {
///     Ok(record.value().is_some_and(|v| !v.is_empty()))
/// }
///
/// weir_sdk::filter!(not_empty);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! filter {
    (type $ty:ty) => {
        const _: () = $crate::__private::assert_filter::<$ty>();
        $crate::__enricher_export!(|config| $crate::__private::init_filter::<$ty>(config));
    };
    ($f:expr) => {
        const _: () = $crate::__private::assert_filter_fn(&$f);
        $crate::__enricher_export!(|config| $crate::__private::init_filter_fn(config, $f));
    };
}

/// The wasm half of [`enricher!`]: implements the contract's `Guest` trait and exports it.
#[doc(hidden)]
#[macro_export]
macro_rules! __enricher_export {
    ($init:expr) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct WeirStage;

            impl $crate::__private::Guest for WeirStage {
                fn batch_format() -> u32 {
                    $crate::BATCH_FORMAT
                }

                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::__private::StageError> {
                    let init: fn(::std::string::String) -> ::std::result::Result<(), $crate::Error> = $init;
                    init(config).map_err($crate::__private::stage_error)
                }

                fn process(batch: ::std::vec::Vec<u8>) -> ::std::vec::Vec<u8> {
                    $crate::__private::process(batch)
                }
            }

            $crate::__private::bindings::export!(WeirStage with_types_in $crate::__private::bindings);
        };
    };
}

/// Exports an aggregate stage as the component's `weir:stage/aggregate` implementation:
/// `aggregator!(type A)`, where `A` implements [`Aggregator`]. Use it once per crate, instead of
/// [`enricher!`] (a component is one or the other). Needs the `serde` feature (on by default).
///
/// On `wasm32` the macro generates the component's exports; on other targets it only checks its
/// argument, so a stage's crate builds and tests natively (see [`testing::AggregateHarness`]).
#[cfg(feature = "serde")]
#[macro_export]
macro_rules! aggregator {
    (type $ty:ty) => {
        const _: () = $crate::__private::assert_aggregator::<$ty>();

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct WeirAggregate;

            impl $crate::__private::AggregateGuest for WeirAggregate {
                fn batch_format() -> u32 {
                    $crate::BATCH_FORMAT
                }

                fn state_version() -> u32 {
                    <$ty as $crate::Aggregator>::STATE_VERSION
                }

                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::__private::StageError> {
                    $crate::__private::init_aggregate::<$ty>(config)
                        .map_err($crate::__private::stage_error)
                }

                fn create() -> ::std::vec::Vec<u8> {
                    $crate::__private::create()
                }

                fn add(
                    groups: ::std::vec::Vec<$crate::__private::Group>,
                ) -> ::std::vec::Vec<
                    ::std::result::Result<::std::vec::Vec<u8>, $crate::__private::StageError>,
                > {
                    $crate::__private::add(groups.into_iter().map(|g| (g.acc, g.records)))
                        .into_iter()
                        .map(|r| r.map_err($crate::__private::stage_error))
                        .collect()
                }

                fn merge(
                    a: ::std::vec::Vec<u8>,
                    b: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::__private::StageError>
                {
                    $crate::__private::merge(&a, &b).map_err($crate::__private::stage_error)
                }

                fn emit(
                    key: ::std::vec::Vec<u8>,
                    window: $crate::__private::WitWindow,
                    acc: ::std::vec::Vec<u8>,
                ) -> ::std::vec::Vec<u8> {
                    $crate::__private::emit(
                        &key,
                        $crate::Window::new(window.start_ms, window.end_ms),
                        &acc,
                    )
                }
            }

            $crate::__private::aggregator_bindings::export!(
                WeirAggregate with_types_in $crate::__private::aggregator_bindings
            );
        };
    };
}

#[cfg(test)]
mod tests {
    /// The version the SDK claims is the version of the WIT it generates bindings from.
    #[test]
    fn contract_matches_the_wit() {
        let wit = include_str!("../../wit/stage.wit");
        assert!(wit.contains(&format!("package {};", super::CONTRACT)));
    }
}
