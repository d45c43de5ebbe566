//! Aggregate stages: fold keyed records into event-time windows over an accumulator the host keeps.

use weir_wire::{BatchReader, Bytes, DecodeError, ResultWriter};

use crate::{Config, Error, Record};

/// The event-time window an aggregate result belongs to: `[start_ms, end_ms)`, in milliseconds
/// since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First millisecond of the window (inclusive).
    pub start_ms: i64,
    /// End of the window (exclusive).
    pub end_ms: i64,
}

impl Window {
    /// The window `[start_ms, end_ms)`.
    pub const fn new(start_ms: i64, end_ms: i64) -> Self {
        Self { start_ms, end_ms }
    }
}

/// An aggregate stage: folds the records of one key and window into an accumulator, and turns a
/// closed window's accumulator into output records.
///
/// The host owns the accumulators: it keeps them as opaque bytes, checkpoints them, restores them
/// after a crash or a rebalance and keeps them across a module reload when
/// [`Aggregator::STATE_VERSION`] is unchanged. The SDK encodes an accumulator as JSON
/// (`serde_json`): compact enough, deterministic for a given value (struct fields in declaration
/// order; use `BTreeMap` rather than `HashMap` for maps, whose order is unspecified) and readable
/// when debugging a checkpoint. Change `STATE_VERSION` whenever `Acc` changes incompatibly.
///
/// State in `self` is a cache (configuration, lookup tables): the host may run several instances
/// and replaces one after a trap. Everything that must survive belongs in `Acc`.
///
/// ```
/// use weir_sdk::{Aggregator, Config, Error, Record, Window};
///
/// struct Count;
///
/// impl Aggregator for Count {
///     type Acc = u64;
///
///     fn init(_config: Config) -> Result<Self, Error> {
///         Ok(Count)
///     }
///
///     fn add(&mut self, acc: &mut u64, _record: &Record) -> Result<(), Error> {
///         *acc += 1;
///         Ok(())
///     }
///
///     fn merge(&mut self, a: u64, b: u64) -> Result<u64, Error> {
///         Ok(a + b)
///     }
///
///     fn emit(&mut self, key: &[u8], _window: Window, acc: u64) -> Result<Vec<Record>, Error> {
///         Ok(vec![Record::new(acc.to_string()).with_key(key)])
///     }
/// }
///
/// weir_sdk::aggregator!(type Count);
/// # fn main() {}
/// ```
pub trait Aggregator: Sized + 'static {
    /// The accumulator of one (key, window). `Default` is the empty accumulator (`create`).
    type Acc: serde::Serialize + serde::de::DeserializeOwned + Default;

    /// The version of the accumulator encoding (reported by `state-version`). A reload keeps
    /// window state only when the new module reports the same version.
    const STATE_VERSION: u32 = 1;

    /// Builds the stage from its configuration. An error refuses the configuration: the pipeline
    /// does not start.
    fn init(config: Config) -> Result<Self, Error>;

    /// Folds one record into `acc`. Records of a group come in order. An error fails the whole
    /// group: the host gets that group's error and keeps the accumulator it sent (what `add` did
    /// to `acc` before failing is discarded); the other groups of the call are unaffected.
    fn add(&mut self, acc: &mut Self::Acc, record: &Record) -> Result<(), Error>;

    /// Merges two accumulators of one key (session windows joining, hopping windows).
    fn merge(&mut self, a: Self::Acc, b: Self::Acc) -> Result<Self::Acc, Error>;

    /// Turns a closed window's accumulator into zero or more output records. An output without a
    /// timestamp is given one by the host.
    fn emit(&mut self, key: &[u8], window: Window, acc: Self::Acc) -> Result<Vec<Record>, Error>;
}

/// An aggregate stage behind the export glue: bytes in, bytes out, as the contract has it.
pub(crate) trait AggregateStage {
    fn create(&mut self) -> Vec<u8>;
    fn add(&mut self, acc: &[u8], records: Vec<u8>) -> Result<Vec<u8>, Error>;
    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, Error>;
    fn emit(&mut self, key: &[u8], window: Window, acc: &[u8]) -> Vec<u8>;
}

/// An [`Aggregator`] type as an [`AggregateStage`].
pub(crate) struct TypeAggregate<A>(pub(crate) A);

/// Encodes an accumulator (JSON).
pub(crate) fn encode_acc<T: serde::Serialize>(acc: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(acc)
        .map_err(|e| Error::new("bad-state", format!("cannot encode the accumulator: {e}")))
}

/// Decodes an accumulator the host kept. An accumulator that does not decode (state written by an
/// incompatible version of the stage) is a `bad-state` error.
pub(crate) fn decode_acc<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::new("bad-state", format!("the accumulator does not decode: {e}")))
}

impl<A: Aggregator> AggregateStage for TypeAggregate<A> {
    fn create(&mut self) -> Vec<u8> {
        encode_acc(&A::Acc::default())
            .unwrap_or_else(|e| panic!("weir-sdk: cannot encode the empty accumulator: {e}"))
    }

    fn add(&mut self, acc: &[u8], records: Vec<u8>) -> Result<Vec<u8>, Error> {
        let mut acc: A::Acc = decode_acc(acc)?;
        let undecodable = |e: DecodeError| -> ! { panic!("weir-sdk: undecodable batch: {e}") };
        let batch = Bytes::from(records);
        let reader = BatchReader::new(&batch).unwrap_or_else(|e| undecodable(e));
        let mut records = reader.records();
        for input in records.by_ref() {
            let input = input.unwrap_or_else(|e| undecodable(e));
            crate::stage::set_current_offset(Some(input.offset));
            let record = Record::from(input.to_shared(&batch));
            let added = self.0.add(&mut acc, &record);
            crate::stage::set_current_offset(None);
            added?;
        }
        if let Err(e) = records.finish() {
            undecodable(e);
        }
        encode_acc(&acc)
    }

    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, Error> {
        let merged = self.0.merge(decode_acc(a)?, decode_acc(b)?)?;
        encode_acc(&merged)
    }

    fn emit(&mut self, key: &[u8], window: Window, acc: &[u8]) -> Vec<u8> {
        let mut out = ResultWriter::new();
        match decode_acc(acc).and_then(|acc| self.0.emit(key, window, acc)) {
            Ok(records) => {
                out.begin_ok();
                for r in &records {
                    out.output_record(r.as_wire());
                }
            }
            Err(e) => out.error(e.code(), e.message()),
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use weir_wire::{BatchWriter, Entry, decode_result};

    use super::*;
    use crate::__private as glue;
    use crate::testing::AggregateHarness;

    /// Sums the values' lengths; refuses values `bad`, and emits an error for a sum of 13.
    struct Lengths;

    impl Aggregator for Lengths {
        type Acc = Vec<u64>;
        const STATE_VERSION: u32 = 7;

        fn init(config: Config) -> Result<Self, Error> {
            if config.is_empty() {
                Ok(Lengths)
            } else {
                Err(Error::new("bad-config", "no config"))
            }
        }

        fn add(&mut self, acc: &mut Vec<u64>, record: &Record) -> Result<(), Error> {
            match record.value() {
                Some(b"bad") => Err(Error::new("refused", "bad value")),
                v => {
                    acc.push(v.map_or(0, |v| v.len() as u64));
                    Ok(())
                }
            }
        }

        fn merge(&mut self, mut a: Vec<u64>, b: Vec<u64>) -> Result<Vec<u64>, Error> {
            a.extend(b);
            Ok(a)
        }

        fn emit(&mut self, key: &[u8], w: Window, acc: Vec<u64>) -> Result<Vec<Record>, Error> {
            let sum: u64 = acc.iter().sum();
            if sum == 13 {
                return Err(Error::new("unlucky", "13"));
            }
            Ok(vec![
                Record::new(sum.to_string())
                    .with_key(key)
                    .with_timestamp(w.end_ms - 1),
            ])
        }
    }

    fn batch(values: &[&str]) -> Vec<u8> {
        let mut w = BatchWriter::new("t", 0);
        for (i, v) in values.iter().enumerate() {
            w.push(i as i64, None, None, Some(v.as_bytes()), []);
        }
        w.finish()
    }

    #[test]
    fn the_glue_folds_groups_and_emits_one_entry() {
        assert_eq!(
            glue::init_aggregate::<Lengths>("{\"x\":1}".into())
                .unwrap_err()
                .code(),
            "bad-config"
        );
        glue::init_aggregate::<Lengths>(String::new()).unwrap();
        let empty = glue::create();
        assert_eq!(empty, b"[]");
        let out = glue::add([
            (empty.clone(), batch(&["ab", "c"])),
            (empty.clone(), batch(&["ok", "bad", "ok"])),
            (b"not json".to_vec(), batch(&["x"])),
        ]);
        assert_eq!(out[0].as_deref(), Ok(&b"[2,1]"[..]));
        assert_eq!(out[1], Err(Error::new("refused", "bad value")));
        assert_eq!(out[2].as_ref().unwrap_err().code(), "bad-state");
        let merged = glue::merge(b"[1]", b"[2,3]").unwrap();
        assert_eq!(merged, b"[1,2,3]");

        let result = glue::emit(b"k", Window::new(0, 10), &merged);
        match &decode_result(result.into(), &[weir_wire::Record::default()]).unwrap()[..] {
            [Entry::Ok(outs)] => {
                assert_eq!(outs.len(), 1);
                assert_eq!(outs[0].value.as_deref(), Some(&b"6"[..]));
                assert_eq!(outs[0].key.as_deref(), Some(&b"k"[..]));
                assert_eq!(outs[0].timestamp, Some(9));
            }
            other => panic!("{other:?}"),
        }
        let result = glue::emit(b"k", Window::new(0, 10), b"[13]");
        match &decode_result(result.into(), &[weir_wire::Record::default()]).unwrap()[..] {
            [Entry::Err { code, .. }] => assert_eq!(code, "unlucky"),
            other => panic!("{other:?}"),
        }
        assert_eq!(Lengths::STATE_VERSION, 7);
    }

    #[test]
    fn the_harness_goes_through_the_same_path() {
        let mut h = AggregateHarness::new::<Lengths>("").unwrap();
        let acc = h.create();
        let acc = h
            .add(vec![(acc, vec![Record::new("abc"), Record::default()])])
            .remove(0)
            .unwrap();
        assert_eq!(AggregateHarness::decode::<Vec<u64>>(&acc).unwrap(), [3, 0]);
        let out = h.emit(b"key", Window::new(5, 8), &acc).unwrap();
        assert_eq!(out[0].value(), Some(&b"3"[..]));
        assert_eq!(out[0].timestamp(), Some(7));
        let thirteen = AggregateHarness::encode(&vec![13u64]).unwrap();
        assert_eq!(
            h.emit(b"k", Window::new(0, 1), &thirteen)
                .unwrap_err()
                .code(),
            "unlucky"
        );
        assert_eq!(
            h.emit(b"k", Window::new(0, 1), b"{").unwrap_err().code(),
            "bad-state"
        );
    }

    #[test]
    #[should_panic(expected = "undecodable batch")]
    fn an_undecodable_group_panics() {
        let mut stage = TypeAggregate(Lengths);
        let _ = stage.add(b"[]", vec![9, 0, 0, 0]);
    }
}
