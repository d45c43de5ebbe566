//! Filters: stages that read records without changing them, through a borrowed view.

use std::fmt;

use weir_wire::{BatchReader, DecodeError, Header, RawRecord, ResultWriter};

use crate::stage::{BatchStage, set_current_offset};
use crate::{Config, Error};

/// A read-only view of one input record, borrowed from the batch: nothing is copied, allocated
/// or reference-counted to make it, and a field is read only when asked for.
///
/// A filter keeps or drops records it sees through a view. A kept record goes back to the host
/// as "the input, unchanged" (a few bytes, whatever the record's size), which makes a filter the
/// cheapest stage there is. A stage that changes records takes an owned [`Record`](crate::Record)
/// instead (see [`Enricher`](crate::Enricher)).
///
/// The host writes every batch well formed; should a field read through a view not decode, the
/// call panics, which fails the batch (and the host retries its records one by one).
#[derive(Clone)]
pub struct RecordView<'a>(RawRecord<'a>);

/// A field of a view that does not decode: the host broke the batch encoding.
fn malformed(e: DecodeError) -> ! {
    panic!("weir-sdk: undecodable record: {e}")
}

impl<'a> RecordView<'a> {
    /// The source offset of the record this one derives from.
    #[inline]
    pub fn offset(&self) -> i64 {
        self.0.offset()
    }

    /// Milliseconds since the Unix epoch, if the record has a timestamp.
    pub fn timestamp(&self) -> Option<i64> {
        self.0.timestamp()
    }

    /// The key; `None` is a null Kafka key.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.0.key().unwrap_or_else(|e| malformed(e))
    }

    /// The value; `None` is a null Kafka value.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.0.value().unwrap_or_else(|e| malformed(e))
    }

    /// The value as UTF-8 text. Errors: `missing-value` (null value), `bad-utf8`.
    pub fn value_str(&self) -> Result<&'a str, Error> {
        std::str::from_utf8(self.value_required()?)
            .map_err(|e| Error::new("bad-utf8", format!("value is not UTF-8: {e}")))
    }

    /// The value parsed as JSON into `T` (which may borrow from the record). Errors:
    /// `missing-value` (null value), `bad-json`.
    #[cfg(feature = "serde")]
    pub fn value_json<T: serde::Deserialize<'a>>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(self.value_required()?)?)
    }

    fn value_required(&self) -> Result<&'a [u8], Error> {
        self.value()
            .ok_or_else(|| Error::new("missing-value", "the record has a null value"))
    }

    /// The value of the first header called `name`; `None` if there is none or its value is null.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|h| h.name == name)
            .and_then(|h| h.value)
    }

    /// [`RecordView::header`] as UTF-8 text; `None` also if the value is not UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The headers in order; Kafka allows repeated names and null values.
    pub fn headers(&self) -> impl Iterator<Item = Header<'a>> + use<'a> {
        self.0
            .headers()
            .unwrap_or_else(|e| malformed(e))
            .map(|h| h.unwrap_or_else(|e| malformed(e)))
    }
}

impl fmt::Debug for RecordView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn text(b: Option<&[u8]>) -> Option<std::borrow::Cow<'_, str>> {
            b.map(String::from_utf8_lossy)
        }
        f.debug_struct("RecordView")
            .field("offset", &self.offset())
            .field("timestamp", &self.timestamp())
            .field("key", &text(self.key()))
            .field("value", &text(self.value()))
            .field(
                "headers",
                &self
                    .headers()
                    .map(|h| (h.name, text(h.value)))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A stage that keeps or drops records without changing them, configured once.
///
/// It reads each record through a borrowed [`RecordView`] and answers whether to keep it. Kept
/// records go out exactly as they came; an error sends the record (only) to the dead-letter topic.
/// A filter without configuration or state is simpler as a plain function; see
/// [`filter!`](crate::filter).
///
/// ```
/// use weir_sdk::{Config, Error, Filter, RecordView};
///
/// #[derive(serde::Deserialize)]
/// struct MinSize {
///     bytes: usize,
/// }
///
/// impl Filter for MinSize {
///     fn init(config: Config) -> Result<Self, Error> {
///         config.json()
///     }
///
///     fn keep(&mut self, record: &RecordView<'_>) -> Result<bool, Error> {
///         Ok(record.value().is_some_and(|v| v.len() >= self.bytes))
///     }
/// }
///
/// weir_sdk::filter!(type MinSize);
/// # fn main() {}
/// ```
pub trait Filter: Sized + 'static {
    /// Builds the stage from its configuration. An error refuses the configuration.
    fn init(config: Config) -> Result<Self, Error>;

    /// Whether `record` goes on (unchanged) or is dropped.
    fn keep(&mut self, record: &RecordView<'_>) -> Result<bool, Error>;
}

/// A [`Filter`] type as a [`BatchStage`].
pub(crate) struct TypeFilter<F>(pub(crate) F);

impl<F: Filter> BatchStage for TypeFilter<F> {
    fn process_batch(&mut self, batch: Vec<u8>) -> Vec<u8> {
        filter_batch(&batch, |r| self.0.keep(r))
    }
}

/// A plain function as a filter [`BatchStage`].
pub(crate) struct FnFilter<F>(pub(crate) F);

impl<F> BatchStage for FnFilter<F>
where
    F: FnMut(&RecordView<'_>) -> Result<bool, Error>,
{
    fn process_batch(&mut self, batch: Vec<u8>) -> Vec<u8> {
        filter_batch(&batch, &mut self.0)
    }
}

/// Runs `keep` over each record of `batch`, in order, and encodes one result entry per record:
/// the input unchanged, nothing, or the error.
fn filter_batch(
    batch: &[u8],
    mut keep: impl FnMut(&RecordView<'_>) -> Result<bool, Error>,
) -> Vec<u8> {
    let undecodable = |e: DecodeError| -> ! { panic!("weir-sdk: undecodable batch: {e}") };
    let reader = BatchReader::new(batch).unwrap_or_else(|e| undecodable(e));
    // A kept record's entry is one byte, a dropped one's five.
    let mut out = ResultWriter::with_capacity(8 + 5 * reader.len());
    let mut records = reader.raw_records();
    for input in records.by_ref() {
        let view = RecordView(input.unwrap_or_else(|e| undecodable(e)));
        set_current_offset(Some(view.offset()));
        match keep(&view) {
            Ok(true) => out.unchanged(),
            Ok(false) => out.begin_ok(),
            Err(e) => out.error(e.code(), e.message()),
        }
    }
    set_current_offset(None);
    if let Err(e) = records.finish() {
        undecodable(e);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Record;
    use crate::testing::{self, Harness};

    fn keep_odd(record: &RecordView<'_>) -> Result<bool, Error> {
        match record.value_str()? {
            "fail" => Err(Error::new("refused", "asked to fail")),
            v => Ok(v.len() % 2 == 1),
        }
    }

    #[test]
    fn kept_records_come_back_unchanged_dropped_ones_not_at_all() {
        let inputs = vec![
            Record::new("a")
                .with_key("k")
                .with_header("h", "1")
                .with_timestamp(7),
            Record::new("bb"),
            Record::new("fail"),
            Record::new("ccc").with_header("x", "y"),
            Record::new(vec![0xff]),
        ];
        let out = testing::run_filter_fn(keep_odd, inputs.clone());
        assert_eq!(out[0], Ok(vec![inputs[0].clone()]));
        assert_eq!(out[1], Ok(vec![]));
        assert_eq!(out[2], Err(Error::new("refused", "asked to fail")));
        assert_eq!(out[3], Ok(vec![inputs[3].clone()]));
        assert_eq!(out[4].as_ref().unwrap_err().code(), "bad-utf8");
    }

    #[test]
    fn a_view_reads_every_field() {
        let r = Record::new(r#"{"n":3}"#)
            .with_key("k")
            .with_header("a", "1")
            .with_header("b", "2")
            .with_timestamp(9);
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let log = std::rc::Rc::clone(&seen);
        let mut h = Harness::from_filter_fn(move |v: &RecordView<'_>| {
            #[derive(serde::Deserialize)]
            struct N {
                n: u32,
            }
            log.borrow_mut().push(format!(
                "{:?} {:?} {:?} {:?} {} {}",
                v.key(),
                v.timestamp(),
                v.header_str("b"),
                v.header("missing"),
                v.headers().count(),
                v.value_json::<N>()?.n
            ));
            Ok(true)
        });
        h.process(vec![r]);
        assert_eq!(
            seen.borrow()[0],
            r#"Some([107]) Some(9) Some("2") None 2 3"#
        );
    }

    struct Threshold(usize);

    impl Filter for Threshold {
        fn init(config: Config) -> Result<Self, Error> {
            config
                .as_str()
                .trim()
                .parse()
                .map(Threshold)
                .map_err(|_| Error::new("bad-config", "not a number"))
        }

        fn keep(&mut self, record: &RecordView<'_>) -> Result<bool, Error> {
            Ok(record.value().map_or(0, <[u8]>::len) >= self.0)
        }
    }

    #[test]
    fn a_filter_type_is_configured_once() {
        let out = testing::run_filter::<Threshold>("2", vec![Record::new("a"), Record::new("ab")]);
        assert_eq!(out, vec![Ok(vec![]), Ok(vec![Record::new("ab")])]);
        assert_eq!(
            Harness::filter::<Threshold>("x").unwrap_err().code(),
            "bad-config"
        );
    }
}
