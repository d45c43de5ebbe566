//! The export glue behind [`enricher!`](crate::enricher) and `aggregator!`: the
//! `weir:stage/enrich` and `weir:stage/aggregate` implementations a stage's crate exports through
//! the SDK's bindings. Not public API.

use std::cell::RefCell;

use crate::stage::{BatchStage, FnStage, TypeStage};
use crate::view::{FnFilter, TypeFilter};
use crate::{Config, Enricher, Error, Filter, IntoOutputs, Record, RecordView};

#[cfg(target_arch = "wasm32")]
pub use self::wasm::*;

/// Type-checks an [`Enricher`] named by `enricher!(type T)`, on every target.
pub const fn assert_enricher<E: Enricher>() {}

/// Type-checks a function named by `enricher!(f)`, on every target.
pub const fn assert_enrich_fn<F, O>(_f: &F)
where
    F: FnMut(Record) -> Result<O, Error> + 'static,
    O: IntoOutputs,
{
}

thread_local! {
    /// The instance's stage, set by `init`. A component holds exactly one.
    static STAGE: RefCell<Option<Box<dyn BatchStage>>> = RefCell::new(None);
}

/// Installs the stage `make` builds from the configuration, as the instance's one stage.
fn install(
    config: String,
    make: impl FnOnce(Config) -> Result<Box<dyn BatchStage>, Error>,
) -> Result<(), Error> {
    #[cfg(target_arch = "wasm32")]
    install_panic_hook();
    let stage = make(Config::new(config))?;
    STAGE.set(Some(stage));
    Ok(())
}

/// A plain function takes no configuration, and refuses one.
fn no_config(config: &Config) -> Result<(), Error> {
    if config.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            "bad-config",
            "this stage takes no configuration (it is a plain function)",
        ))
    }
}

/// `init` for `enricher!(type E)`.
pub fn init_type<E: Enricher>(config: String) -> Result<(), Error> {
    install(config, |c| Ok(Box::new(TypeStage(E::init(c)?))))
}

/// `init` for `enricher!(f)`: a plain function takes no configuration, and refuses one.
pub fn init_fn<F, O>(config: String, f: F) -> Result<(), Error>
where
    F: FnMut(Record) -> Result<O, Error> + 'static,
    O: IntoOutputs,
{
    install(config, |c| {
        no_config(&c)?;
        Ok(Box::new(FnStage(f)))
    })
}

/// Type-checks a [`Filter`] named by `filter!(type T)`, on every target.
pub const fn assert_filter<F: Filter>() {}

/// Type-checks a function named by `filter!(f)`, on every target.
pub const fn assert_filter_fn<F>(_f: &F)
where
    F: FnMut(&RecordView<'_>) -> Result<bool, Error> + 'static,
{
}

/// `init` for `filter!(type F)`.
pub fn init_filter<F: Filter>(config: String) -> Result<(), Error> {
    install(config, |c| Ok(Box::new(TypeFilter(F::init(c)?))))
}

/// `init` for `filter!(f)`: a plain function takes no configuration, and refuses one.
pub fn init_filter_fn<F>(config: String, f: F) -> Result<(), Error>
where
    F: FnMut(&RecordView<'_>) -> Result<bool, Error> + 'static,
{
    install(config, |c| {
        no_config(&c)?;
        Ok(Box::new(FnFilter(f)))
    })
}

/// `process`: runs the batch through the stage `init` set.
pub fn process(batch: Vec<u8>) -> Vec<u8> {
    STAGE.with_borrow_mut(|stage| {
        stage
            .as_mut()
            .expect("weir-sdk: process called before init")
            .process_batch(batch)
    })
}

/// The aggregate half of the glue (`aggregator!`).
#[cfg(feature = "serde")]
mod aggregate_glue {
    use std::cell::RefCell;

    use crate::aggregate::{AggregateStage, TypeAggregate};
    use crate::{Aggregator, Config, Error, Window};

    /// Type-checks an [`Aggregator`] named by `aggregator!(type A)`, on every target.
    pub const fn assert_aggregator<A: Aggregator>() {}

    thread_local! {
        /// The instance's aggregate stage, set by `init`.
        static AGGREGATE: RefCell<Option<Box<dyn AggregateStage>>> = RefCell::new(None);
    }

    fn with_stage<R>(f: impl FnOnce(&mut dyn AggregateStage) -> R) -> R {
        AGGREGATE.with_borrow_mut(|stage| {
            f(stage
                .as_deref_mut()
                .expect("weir-sdk: aggregate called before init"))
        })
    }

    /// `init` for `aggregator!(type A)`.
    pub fn init_aggregate<A: Aggregator>(config: String) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        super::install_panic_hook();
        let stage = A::init(Config::new(config))?;
        AGGREGATE.set(Some(Box::new(TypeAggregate(stage))));
        Ok(())
    }

    /// `create`: the encoded empty accumulator.
    pub fn create() -> Vec<u8> {
        with_stage(|s| s.create())
    }

    /// `add`: one result per `(accumulator, encoded batch)` group, in order.
    pub fn add(
        groups: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Vec<Result<Vec<u8>, Error>> {
        with_stage(|s| {
            groups
                .into_iter()
                .map(|(acc, records)| s.add(&acc, records))
                .collect()
        })
    }

    /// `merge`.
    pub fn merge(a: &[u8], b: &[u8]) -> Result<Vec<u8>, Error> {
        with_stage(|s| s.merge(a, b))
    }

    /// `emit`: an encoded batch result with exactly one entry.
    pub fn emit(key: &[u8], window: Window, acc: &[u8]) -> Vec<u8> {
        with_stage(|s| s.emit(key, window, acc))
    }
}

#[cfg(feature = "serde")]
pub use aggregate_glue::*;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::sync::Once;

    pub use wit_bindgen;

    pub use self::bindings::exports::weir::stage::enrich::Guest;
    pub use self::bindings::weir::stage::types::{Group, StageError, Window as WitWindow};
    use crate::log::{self, Level};

    /// Bindings for the `enricher` world of the contract in `sdk/wit`. The export macro is public
    /// so a stage's crate exports through these bindings and needs no `wit-bindgen` of its own.
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "enricher",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "weir_sdk::__private::bindings",
            runtime_path: "weir_sdk::__private::wit_bindgen::rt",
            ownership: Borrowing { duplicate_if_necessary: false },
        });
    }

    /// Bindings for the `aggregator` world. Its imports and shared types are those of
    /// [`bindings`], so both worlds share one `StageError` and one `host` import.
    pub mod aggregator_bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "aggregator",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "weir_sdk::__private::aggregator_bindings",
            runtime_path: "weir_sdk::__private::wit_bindgen::rt",
            ownership: Borrowing { duplicate_if_necessary: false },
            with: {
                "weir:stage/types@0.1.0": weir_sdk::__private::bindings::weir::stage::types,
                "weir:stage/host@0.1.0": weir_sdk::__private::bindings::weir::stage::host,
            },
        });
    }

    pub use self::aggregator_bindings::exports::weir::stage::aggregate::Guest as AggregateGuest;

    /// Converts the SDK's error into the contract's.
    pub fn stage_error(e: crate::Error) -> StageError {
        StageError {
            code: e.code().to_owned(),
            message: e.message().to_owned(),
        }
    }

    /// Reports a panic to the host log before the panic traps the instance.
    ///
    /// The panic is not caught: trapping is the contract (the host discards the instance and
    /// isolates the record that caused it). The hook only makes sure the host learns why: it logs
    /// the panic message at error level with the fields `panic = "true"`, `location` (file:line)
    /// and `offset` (of the record being processed).
    pub fn install_panic_hook() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let message = info
                    .payload_as_str()
                    .unwrap_or("panic with a non-text payload");
                let location = info.location().map(|l| l.to_string());
                let offset = crate::stage::current_offset().map(|o| o.to_string());
                let mut fields = vec![("panic", "true")];
                if let Some(location) = &location {
                    fields.push(("location", location));
                }
                if let Some(offset) = &offset {
                    fields.push(("offset", offset));
                }
                log::log(Level::Error, message, &fields);
            }));
        });
    }
}

#[cfg(test)]
mod tests {
    use weir_wire::{BatchWriter, Entry, FORMAT_VERSION, decode_result};

    use super::*;

    fn upper(mut r: Record) -> Result<Record, Error> {
        let v = r.value_str()?.to_uppercase();
        r.set_value(v);
        Ok(r)
    }

    fn batch(values: &[&[u8]]) -> Vec<u8> {
        let mut w = BatchWriter::new("t", 3);
        for (i, v) in values.iter().enumerate() {
            w.push(i as i64, None, None, Some(v), []);
        }
        w.finish()
    }

    #[test]
    fn the_glue_speaks_the_batch_format() {
        init_fn(String::new(), upper).unwrap();
        let result = process(batch(&[b"a", &[0xff]]));
        assert_eq!(result[..4], FORMAT_VERSION.to_le_bytes());
        let inputs = [Record::new("a"), Record::new(vec![0xff])].map(weir_wire::Record::from);
        match &decode_result(result.into(), &inputs).unwrap()[..] {
            [Entry::Ok(a), Entry::Err { code, .. }] => {
                assert_eq!(a[0].value.as_deref(), Some(&b"A"[..]));
                assert_eq!(code, "bad-utf8");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn init_errors_refuse_the_config() {
        struct Picky;
        impl Enricher for Picky {
            type Output = Record;
            fn init(config: Config) -> Result<Self, Error> {
                Err(Error::new("bad-config", config.as_str()))
            }
            fn process(&mut self, record: Record) -> Result<Record, Error> {
                Ok(record)
            }
        }
        assert_eq!(
            init_type::<Picky>("{}".into()),
            Err(Error::new("bad-config", "{}"))
        );
    }

    #[test]
    fn a_plain_function_refuses_config() {
        assert_eq!(
            init_fn("{\"a\":1}".into(), upper).unwrap_err().code(),
            "bad-config"
        );
        assert_eq!(init_fn(" {} ".into(), upper), Ok(()));
    }

    #[test]
    #[should_panic(expected = "process called before init")]
    fn process_needs_init() {
        process(batch(&[]));
    }
}
