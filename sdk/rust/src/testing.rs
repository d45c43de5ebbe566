//! Run a stage natively, through the same batch encoding the host uses.
//!
//! The helpers encode the input records as a batch, pass it to the stage exactly as the export
//! glue does in wasm, and decode the batch result the way the host does: an output without a
//! timestamp keeps its input's, and every output carries its input's offset.
//!
//! ```
//! use weir_sdk::{Error, Record, testing};
//!
//! fn shout(mut r: Record) -> Result<Record, Error> {
//!     let upper = r.value_str()?.to_uppercase();
//!     r.set_value(upper);
//!     Ok(r)
//! }
//!
//! let out = testing::run_fn(shout, vec![Record::new("hi"), Record::new(vec![0xff])]);
//! assert_eq!(out[0].as_ref().unwrap()[0].value(), Some(&b"HI"[..]));
//! assert_eq!(out[1].as_ref().unwrap_err().code(), "bad-utf8");
//! ```

use std::fmt;

use weir_wire::{BatchWriter, Entry};

use crate::stage::{BatchStage, FnStage, TypeStage};
use crate::view::{FnFilter, TypeFilter};
use crate::{Config, Enricher, Error, Filter, IntoOutputs, Record, RecordView};

/// What the host learns about one input record: its outputs, or its error.
pub type Outcome = Result<Vec<Record>, Error>;

/// One stage instance, fed batches the way the host feeds it.
pub struct Harness {
    stage: Box<dyn BatchStage>,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

impl Harness {
    /// Initialises an [`Enricher`] with `config` (JSON text), as the host's `init` call would.
    pub fn new<E: Enricher>(config: &str) -> Result<Self, Error> {
        Ok(Self {
            stage: Box::new(TypeStage(E::init(Config::new(config))?)),
        })
    }

    /// A stage made of a plain function.
    pub fn from_fn<F, O>(f: F) -> Self
    where
        F: FnMut(Record) -> Result<O, Error> + 'static,
        O: IntoOutputs,
    {
        Self {
            stage: Box::new(FnStage(f)),
        }
    }

    /// Initialises a [`Filter`] with `config` (JSON text), as the host's `init` call would.
    pub fn filter<F: Filter>(config: &str) -> Result<Self, Error> {
        Ok(Self {
            stage: Box::new(TypeFilter(F::init(Config::new(config))?)),
        })
    }

    /// A filter made of a plain function.
    pub fn from_filter_fn<F>(f: F) -> Self
    where
        F: FnMut(&RecordView<'_>) -> Result<bool, Error> + 'static,
    {
        Self {
            stage: Box::new(FnFilter(f)),
        }
    }

    /// Processes `records` as one batch: one [`Outcome`] per input, in order.
    pub fn process(&mut self, records: Vec<Record>) -> Vec<Outcome> {
        let mut batch = BatchWriter::new("test", 0);
        for r in &records {
            batch.push_record(r.as_wire());
        }
        let result = self.process_raw(batch.finish());
        let inputs: Vec<_> = records.iter().map(|r| r.as_wire().clone()).collect();
        let entries = weir_wire::decode_result(result.into(), &inputs)
            .unwrap_or_else(|e| panic!("the stage wrote an undecodable result: {e}"));
        entries
            .into_iter()
            .zip(&records)
            .map(|(entry, input)| match entry {
                Entry::Ok(outputs) => Ok(outputs
                    .into_iter()
                    .map(|mut o| {
                        o.offset = input.offset();
                        o.timestamp = o.timestamp.or(input.timestamp());
                        Record::from(o)
                    })
                    .collect()),
                Entry::Err { code, message } => Err(Error::new(code, message)),
                Entry::Input | Entry::TooMany { .. } => {
                    unreachable!("decode_result hands back inputs as records, and caps nothing")
                }
            })
            .collect()
    }

    /// Processes an encoded batch and returns the encoded batch result, as the `process` export.
    pub fn process_raw(&mut self, batch: Vec<u8>) -> Vec<u8> {
        self.stage.process_batch(batch)
    }
}

/// Initialises the filter `F` with `config` and processes `records` as one batch.
///
/// # Panics
/// If `F` refuses the configuration; test that with [`Harness::filter`].
pub fn run_filter<F: Filter>(config: &str, records: Vec<Record>) -> Vec<Outcome> {
    match Harness::filter::<F>(config) {
        Ok(mut h) => h.process(records),
        Err(e) => panic!("the filter refused its configuration: {e}"),
    }
}

/// Processes `records` as one batch through the filter function `f`.
pub fn run_filter_fn<F>(f: F, records: Vec<Record>) -> Vec<Outcome>
where
    F: FnMut(&RecordView<'_>) -> Result<bool, Error> + 'static,
{
    Harness::from_filter_fn(f).process(records)
}

/// Initialises `E` with `config` and processes `records` as one batch.
///
/// # Panics
/// If `E` refuses the configuration; test that with [`Harness::new`].
pub fn run<E: Enricher>(config: &str, records: Vec<Record>) -> Vec<Outcome> {
    match Harness::new::<E>(config) {
        Ok(mut h) => h.process(records),
        Err(e) => panic!("the stage refused its configuration: {e}"),
    }
}

/// Processes `records` as one batch through the plain-function stage `f`.
pub fn run_fn<F, O>(f: F, records: Vec<Record>) -> Vec<Outcome>
where
    F: FnMut(Record) -> Result<O, Error> + 'static,
    O: IntoOutputs,
{
    Harness::from_fn(f).process(records)
}

/// One aggregate stage instance, called the way the host calls it: accumulators as the encoded
/// bytes the host keeps, the records of a group as an encoded batch, `emit`'s result decoded.
///
/// ```
/// use weir_sdk::{Aggregator, Config, Error, Record, Window, testing::AggregateHarness};
///
/// struct Count;
/// impl Aggregator for Count {
///     type Acc = u64;
///     fn init(_: Config) -> Result<Self, Error> { Ok(Count) }
///     fn add(&mut self, acc: &mut u64, _: &Record) -> Result<(), Error> { *acc += 1; Ok(()) }
///     fn merge(&mut self, a: u64, b: u64) -> Result<u64, Error> { Ok(a + b) }
///     fn emit(&mut self, _: &[u8], _: Window, acc: u64) -> Result<Vec<Record>, Error> {
///         Ok(vec![Record::new(acc.to_string())])
///     }
/// }
///
/// let mut h = AggregateHarness::new::<Count>("{}").unwrap();
/// let empty = h.create();
/// let acc = h.add(vec![(empty, vec![Record::new("a"), Record::new("b")])]).remove(0).unwrap();
/// assert_eq!(AggregateHarness::decode::<u64>(&acc).unwrap(), 2);
/// let out = h.emit(b"k", Window::new(0, 60_000), &acc).unwrap();
/// assert_eq!(out[0].value(), Some(&b"2"[..]));
/// ```
#[cfg(feature = "serde")]
pub struct AggregateHarness {
    stage: Box<dyn crate::aggregate::AggregateStage>,
}

#[cfg(feature = "serde")]
impl fmt::Debug for AggregateHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateHarness").finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
impl AggregateHarness {
    /// Initialises an [`Aggregator`](crate::Aggregator) with `config` (JSON text), as the host's
    /// `init` call would.
    pub fn new<A: crate::Aggregator>(config: &str) -> Result<Self, Error> {
        Ok(Self {
            stage: Box::new(crate::aggregate::TypeAggregate(A::init(Config::new(
                config,
            ))?)),
        })
    }

    /// `create`: a new, empty accumulator, encoded.
    pub fn create(&mut self) -> Vec<u8> {
        self.stage.create()
    }

    /// `add`: folds each group's records (sent as one encoded batch per group) into its encoded
    /// accumulator; one result per group, in order.
    pub fn add(&mut self, groups: Vec<(Vec<u8>, Vec<Record>)>) -> Vec<Result<Vec<u8>, Error>> {
        groups
            .into_iter()
            .map(|(acc, records)| {
                let mut batch = BatchWriter::new("test", 0);
                for r in &records {
                    batch.push_record(r.as_wire());
                }
                self.stage.add(&acc, batch.finish())
            })
            .collect()
    }

    /// `merge` of two encoded accumulators.
    pub fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, Error> {
        self.stage.merge(a, b)
    }

    /// `emit`: the window's output records, or its error, decoded from the batch result.
    pub fn emit(&mut self, key: &[u8], window: crate::Window, acc: &[u8]) -> Outcome {
        let result = self.stage.emit(key, window, acc);
        let entries = weir_wire::decode_result(result.into(), &[weir_wire::Record::default()])
            .unwrap_or_else(|e| panic!("the stage wrote an undecodable result: {e}"));
        match entries.into_iter().next() {
            Some(Entry::Ok(outputs)) => Ok(outputs.into_iter().map(Record::from).collect()),
            Some(Entry::Err { code, message }) => Err(Error::new(code, message)),
            Some(Entry::Input | Entry::TooMany { .. }) => {
                unreachable!("decode_result hands back inputs as records, and caps nothing")
            }
            None => unreachable!("decode_result checked there is one entry"),
        }
    }

    /// Decodes an encoded accumulator, to look inside it.
    pub fn decode<T: serde::de::DeserializeOwned>(acc: &[u8]) -> Result<T, Error> {
        crate::aggregate::decode_acc(acc)
    }

    /// Encodes an accumulator the way the SDK does, to hand one to `add`, `merge` or `emit`.
    pub fn encode<T: serde::Serialize>(acc: &T) -> Result<Vec<u8>, Error> {
        crate::aggregate::encode_acc(acc)
    }
}

/// Initialises `A` with `config`, folds `records` into a new accumulator as one group and emits
/// it for `key` and `window`.
///
/// # Panics
/// If `A` refuses the configuration; test that with [`AggregateHarness::new`].
#[cfg(feature = "serde")]
pub fn aggregate<A: crate::Aggregator>(
    config: &str,
    key: &[u8],
    window: crate::Window,
    records: Vec<Record>,
) -> Outcome {
    let mut h = AggregateHarness::new::<A>(config)
        .unwrap_or_else(|e| panic!("the stage refused its configuration: {e}"));
    let empty = h.create();
    let acc = h.add(vec![(empty, records)]).remove(0)?;
    h.emit(key, window, &acc)
}
