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
use crate::{Config, Enricher, Error, IntoOutputs, Record};

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
            })
            .collect()
    }

    /// Processes an encoded batch and returns the encoded batch result, as the `process` export.
    pub fn process_raw(&mut self, batch: Vec<u8>) -> Vec<u8> {
        self.stage.process_batch(batch)
    }
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
