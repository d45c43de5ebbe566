//! What a stage is, and how a batch flows through one.

use std::cell::Cell;

use weir_wire::{BatchReader, Bytes, DecodeError, ResultWriter};

use crate::{Config, Error, Record};

/// An enrich stage that needs configuration or keeps state across records.
///
/// The host creates one instance per partition worker: it calls [`Enricher::init`] once with the
/// stage's configuration, then [`Enricher::process`] for every record, in offset order. State kept
/// in `self` lives as long as the instance (it is lost when the host restarts a module after a
/// trap). A stage without configuration or state is simpler as a plain function; see
/// [`enricher!`](crate::enricher).
///
/// ```
/// use weir_sdk::{Config, Enricher, Error, Record};
///
/// #[derive(serde::Deserialize)]
/// struct TagConfig {
///     name: String,
/// }
///
/// struct Tag {
///     name: String,
///     tagged: u64,
/// }
///
/// impl Enricher for Tag {
///     type Output = Record;
///
///     fn init(config: Config) -> Result<Self, Error> {
///         let TagConfig { name } = config.json()?;
///         Ok(Tag { name, tagged: 0 })
///     }
///
///     fn process(&mut self, record: Record) -> Result<Record, Error> {
///         self.tagged += 1;
///         Ok(record.with_header("tag", self.name.as_bytes()))
///     }
/// }
///
/// weir_sdk::enricher!(type Tag);
/// # fn main() {}
/// ```
pub trait Enricher: Sized + 'static {
    /// What one input becomes: [`Record`] (map), `Option<Record>` (filter) or `Vec<Record>`
    /// (flat-map); see [`IntoOutputs`].
    type Output: IntoOutputs;

    /// Builds the stage from its configuration. An error refuses the configuration: the pipeline
    /// does not start, and the host reports the error's code and message.
    fn init(config: Config) -> Result<Self, Error>;

    /// Turns one input record into its outputs. An error sends this record (only) to the
    /// dead-letter topic with the error's code and message.
    fn process(&mut self, record: Record) -> Result<Self::Output, Error>;
}

/// What one input record becomes: zero or more output records, written in order.
///
/// Implemented for [`Record`] (a map: exactly one output), `Option<Record>` (a filter: `None`
/// drops the input) and `Vec<Record>` (a flat-map: any number, an empty vector drops the input).
pub trait IntoOutputs {
    /// Calls `emit` once per output record, in order.
    fn into_outputs(self, emit: impl FnMut(Record));
}

impl IntoOutputs for Record {
    fn into_outputs(self, mut emit: impl FnMut(Record)) {
        emit(self);
    }
}

impl IntoOutputs for Option<Record> {
    fn into_outputs(self, emit: impl FnMut(Record)) {
        self.into_iter().for_each(emit);
    }
}

impl IntoOutputs for Vec<Record> {
    fn into_outputs(self, emit: impl FnMut(Record)) {
        self.into_iter().for_each(emit);
    }
}

/// A stage behind the export glue: one encoded batch in, one encoded batch result out.
pub(crate) trait BatchStage {
    fn process_batch(&mut self, batch: Vec<u8>) -> Vec<u8>;
}

/// An [`Enricher`] type as a [`BatchStage`].
pub(crate) struct TypeStage<E>(pub(crate) E);

impl<E: Enricher> BatchStage for TypeStage<E> {
    fn process_batch(&mut self, batch: Vec<u8>) -> Vec<u8> {
        process_batch(batch, |r| self.0.process(r))
    }
}

/// A plain function as a [`BatchStage`].
pub(crate) struct FnStage<F>(pub(crate) F);

impl<F, O> BatchStage for FnStage<F>
where
    F: FnMut(Record) -> Result<O, Error>,
    O: IntoOutputs,
{
    fn process_batch(&mut self, batch: Vec<u8>) -> Vec<u8> {
        process_batch(batch, &mut self.0)
    }
}

thread_local! {
    /// The source offset of the record being processed, for the panic report.
    static CURRENT_OFFSET: Cell<Option<i64>> = const { Cell::new(None) };
}

/// The source offset of the record the stage is processing, if it is processing one.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn current_offset() -> Option<i64> {
    CURRENT_OFFSET.get()
}

/// Sets the offset the panic report names (filters set it per record, aggregate stages per record
/// of a group).
#[inline]
pub(crate) fn set_current_offset(offset: Option<i64>) {
    CURRENT_OFFSET.set(offset);
}

/// Decodes `batch`, runs `f` over each record in order and encodes one result entry per record.
///
/// Each output is written into the result as the stage hands it over. A field the stage left as
/// it came (key, value or headers still the slice of the batch the SDK handed in) is not written
/// again: the result marks it as the input's, and the host reuses its own copy.
///
/// A batch that does not decode is a host bug, not a record's fault: it panics, which traps the
/// instance, and the host reports the message.
fn process_batch<O: IntoOutputs>(
    batch: Vec<u8>,
    mut f: impl FnMut(Record) -> Result<O, Error>,
) -> Vec<u8> {
    let undecodable = |e: DecodeError| -> ! { panic!("weir-sdk: undecodable batch: {e}") };
    // Outputs are at most about the size of their inputs plus what a stage adds; room for twice
    // the batch saves regrowing (and copying) the result in most batches.
    let mut out = ResultWriter::with_capacity(2 * batch.len());
    // The records share the batch buffer: nothing is copied out of it until a stage changes it.
    let batch = Bytes::from(batch);
    let reader = BatchReader::new(&batch).unwrap_or_else(|e| undecodable(e));
    let mut records = reader.records();
    for input in records.by_ref() {
        let input = input.unwrap_or_else(|e| undecodable(e));
        CURRENT_OFFSET.set(Some(input.offset));
        match f(input.to_shared(&batch).into()) {
            Ok(outputs) => {
                out.begin_ok();
                outputs.into_outputs(|r| out.output_from(r.as_wire(), &input));
            }
            Err(e) => out.error(e.code(), e.message()),
        }
    }
    CURRENT_OFFSET.set(None);
    if let Err(e) = records.finish() {
        undecodable(e);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Harness};

    /// Exercises every shape at once: errors, drops, maps and flat-maps, by value.
    fn shapes(record: Record) -> Result<Vec<Record>, Error> {
        match record.value_str()? {
            "drop" => Ok(vec![]),
            "fail" => Err(Error::new("refused", "asked to fail")),
            "twice" => Ok(vec![record.clone(), Record::new("extra")]),
            _ => Ok(vec![record]),
        }
    }

    #[test]
    fn one_entry_per_input_in_order() {
        let inputs = ["keep", "drop", "fail", "twice"]
            .map(|v| Record::new(v).with_timestamp(9))
            .to_vec();
        let out = testing::run_fn(shapes, inputs.clone());
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], Ok(vec![inputs[0].clone()]));
        assert_eq!(out[1], Ok(vec![]));
        assert_eq!(out[2], Err(Error::new("refused", "asked to fail")));
        let twice = out[3].as_ref().unwrap();
        assert_eq!(twice[0], inputs[3]);
        // A new record without a timestamp keeps its input's.
        assert_eq!(
            (twice[1].value(), twice[1].timestamp()),
            (Some(&b"extra"[..]), Some(9))
        );
    }

    #[test]
    fn an_empty_batch_has_an_empty_result() {
        assert_eq!(testing::run_fn(shapes, vec![]), vec![]);
    }

    #[test]
    fn each_output_shape_converts() {
        let map = testing::run_fn(
            |r: Record| Ok::<_, Error>(r.with_value("m")),
            vec![Record::new("x")],
        );
        assert_eq!(map[0].as_ref().unwrap()[0].value(), Some(&b"m"[..]));
        let filter = testing::run_fn(
            |r: Record| Ok::<_, Error>(r.value().is_some().then_some(r)),
            vec![Record::new("x"), Record::default()],
        );
        assert_eq!(
            filter
                .iter()
                .map(|o| o.as_ref().unwrap().len())
                .collect::<Vec<_>>(),
            [1, 0]
        );
    }

    /// Numbers records across batches: state lives as long as the instance.
    struct Counter {
        next: u64,
        step: u64,
    }

    impl Enricher for Counter {
        type Output = Record;

        fn init(config: Config) -> Result<Self, Error> {
            let step = match config.as_str().trim() {
                "" | "{}" => 1,
                s => s
                    .parse()
                    .map_err(|_| Error::new("bad-config", format!("not a step: {s}")))?,
            };
            Ok(Self { next: 0, step })
        }

        fn process(&mut self, record: Record) -> Result<Record, Error> {
            let n = self.next;
            self.next += self.step;
            Ok(record.with_header("n", n.to_string()))
        }
    }

    #[test]
    fn state_lives_across_batches() {
        let mut stage = Harness::new::<Counter>("10").unwrap();
        let ns = |out: Vec<testing::Outcome>| -> Vec<String> {
            out.into_iter()
                .map(|o| o.unwrap()[0].header_str("n").unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            ns(stage.process(vec![Record::new("a"), Record::new("b")])),
            ["0", "10"]
        );
        assert_eq!(ns(stage.process(vec![Record::new("c")])), ["20"]);
        assert_eq!(
            Harness::new::<Counter>("x").unwrap_err().code(),
            "bad-config"
        );
    }

    #[test]
    #[should_panic(expected = "undecodable batch")]
    fn an_undecodable_batch_panics() {
        Harness::from_fn(shapes).process_raw(vec![9, 0, 0, 0]);
    }
}
