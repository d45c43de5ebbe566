//! Records through the whole exchange: the host writes them as a batch, the guest reads it back
//! (owned and borrowed), answers each input through every `ResultWriter` call there is, and the
//! host reads the result. Checks that each side reads exactly what the other wrote, and that
//! both ways of writing a batch give the same bytes.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use weir_wire::{
    BatchReader, BatchWriter, Bytes, Entry, Header, Record, ResultReader, ResultWriter,
};

type Pairs = Vec<(String, Option<Vec<u8>>)>;

fn headers(pairs: &Pairs) -> impl Iterator<Item = Header<'_>> {
    pairs.iter().map(|(n, v)| Header::new(n, v.as_deref()))
}

/// `i64::MIN` is the encoding's "no timestamp": written, it reads back as `None`.
fn as_read(timestamp: Option<i64>) -> Option<i64> {
    timestamp.filter(|&t| t != i64::MIN)
}

#[derive(Arbitrary, Debug)]
struct Rec {
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Pairs,
}

impl Rec {
    /// The record as given to a writer.
    fn record(&self) -> Record {
        Record {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.clone().map(Bytes::from),
            value: self.value.clone().map(Bytes::from),
            headers: headers(&self.headers).collect(),
        }
    }
}

/// One output of an accepted input, by the `ResultWriter` call that writes it.
#[derive(Arbitrary, Debug)]
enum Output {
    /// `output`: fields given one by one.
    Fields(Rec),
    /// `output_record`: an owned record, every field written.
    Owned(Rec),
    /// `output_from`: the input as the guest decoded it, some fields replaced (the SDK's way).
    From {
        timestamp: Option<Option<i64>>,
        key: Option<Option<Vec<u8>>>,
        value: Option<Option<Vec<u8>>>,
        headers: Option<Pairs>,
        add_header: Option<(String, Option<Vec<u8>>)>,
    },
    /// `output_input`: exactly the input.
    Input,
}

#[derive(Arbitrary, Debug)]
enum Answer {
    Unchanged,
    Error(String, String),
    Ok(Vec<Output>),
}

#[derive(Arbitrary, Debug)]
struct Exchange {
    topic: String,
    partition: i32,
    records: Vec<Rec>,
    /// One per input; inputs past the last go on unchanged.
    answers: Vec<Answer>,
}

/// What the host reads for an output that is its input unchanged.
fn unchanged(input: &Record) -> Record {
    Record {
        offset: -1,
        timestamp: None,
        ..input.clone()
    }
}

fuzz_target!(|x: Exchange| {
    // The host's side: its records, written as a batch both ways.
    let inputs: Vec<Record> = x
        .records
        .iter()
        .map(|r| Record {
            timestamp: as_read(r.timestamp),
            ..r.record()
        })
        .collect();
    let mut by_record = BatchWriter::new(&x.topic, x.partition);
    let mut by_field = BatchWriter::with_buffer(vec![1, 2, 3], &x.topic, x.partition);
    for r in &x.records {
        by_record.push_record(&r.record());
        by_field.push(
            r.offset,
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            headers(&r.headers),
        );
    }
    assert_eq!(by_record.len(), inputs.len());
    let batch = by_record.finish();
    assert_eq!(batch, by_field.finish(), "push and push_record disagree");
    let batch = Bytes::from(batch);

    // The guest's side: the batch read back, owned and borrowed.
    let owned = weir_wire::decode_batch(batch.clone()).expect("a written batch decodes");
    assert_eq!(
        (&owned.topic[..], owned.partition),
        (&x.topic[..], x.partition)
    );
    assert_eq!(owned.records, inputs);

    let reader = BatchReader::new(&batch).expect("a written batch reads");
    assert_eq!(
        (reader.topic(), reader.partition()),
        (&x.topic[..], x.partition)
    );
    assert_eq!(reader.len(), inputs.len());
    for (raw, input) in reader.raw_records().zip(&inputs) {
        let raw = raw.expect("a written record steps over");
        assert_eq!(
            (raw.offset(), raw.timestamp()),
            (input.offset, input.timestamp)
        );
        assert_eq!(raw.key().unwrap(), input.key.as_deref());
        assert_eq!(raw.value().unwrap(), input.value.as_deref());
        let lazy: Vec<_> = raw.headers().unwrap().map(Result::unwrap).collect();
        assert_eq!(lazy, input.headers.iter().collect::<Vec<_>>());
    }

    // The guest answers each input.
    let mut w = ResultWriter::with_capacity(batch.len());
    let mut expected = Vec::with_capacity(inputs.len());
    let mut records = reader.records();
    for (i, input) in inputs.iter().enumerate() {
        let read = records.next().unwrap().expect("a written record reads");
        let shared = read.to_shared(&batch);
        assert_eq!(&shared, input);
        let names: Vec<_> = read.headers().map(|h| h.unwrap().name).collect();
        assert_eq!(names.len(), input.headers.len());

        match x.answers.get(i).unwrap_or(&Answer::Unchanged) {
            Answer::Unchanged => {
                w.unchanged();
                expected.push(Entry::Input);
            }
            Answer::Error(code, message) => {
                w.error(code, message);
                expected.push(Entry::Err {
                    code: code.clone(),
                    message: message.clone(),
                });
            }
            Answer::Ok(outputs) => {
                w.begin_ok();
                let mut outs = Vec::with_capacity(outputs.len());
                for out in outputs {
                    let record = match out {
                        Output::Fields(r) => {
                            w.output(
                                r.timestamp,
                                r.key.as_deref(),
                                r.value.as_deref(),
                                headers(&r.headers),
                            );
                            r.record()
                        }
                        Output::Owned(r) => {
                            let r = r.record();
                            w.output_record(&r);
                            r
                        }
                        Output::From {
                            timestamp,
                            key,
                            value,
                            headers: replaced,
                            add_header,
                        } => {
                            let mut r = read.to_shared(&batch);
                            if let Some(t) = timestamp {
                                r.timestamp = *t;
                            }
                            if let Some(k) = key {
                                r.key = k.clone().map(Bytes::from);
                            }
                            if let Some(v) = value {
                                r.value = v.clone().map(Bytes::from);
                            }
                            if let Some(pairs) = replaced {
                                r.headers = headers(pairs).collect();
                            }
                            if let Some((name, value)) = add_header {
                                r.headers.push(name, value.as_deref());
                            }
                            w.output_from(&r, &read);
                            r
                        }
                        Output::Input => {
                            w.output_input();
                            Record {
                                timestamp: None,
                                ..input.clone()
                            }
                        }
                    };
                    outs.push(Record {
                        offset: -1,
                        timestamp: as_read(record.timestamp),
                        ..record
                    });
                }
                // The reader hands back no record for a lone `output_input`.
                expected.push(match outputs[..] {
                    [Output::Input] => Entry::Input,
                    _ => Entry::Ok(outs),
                });
            }
        }
    }
    assert!(records.next().is_none());
    records
        .finish()
        .expect("a written batch has no trailing bytes");
    assert_eq!(w.len(), inputs.len());
    let result = Bytes::from(w.finish());

    // The host reads the result: whole, and entry by entry as the runtime does.
    let decoded = weir_wire::decode_result(result.clone(), &inputs).expect("a result decodes");
    let whole: Vec<Entry> = expected
        .iter()
        .zip(&inputs)
        .map(|(e, input)| match e {
            Entry::Input => Entry::Ok(vec![unchanged(input)]),
            other => other.clone(),
        })
        .collect();
    assert_eq!(decoded, whole);

    let mut reader = ResultReader::new(result, &inputs).expect("a result reads");
    let mut read = Vec::with_capacity(inputs.len());
    loop {
        let kept = reader.skip_unchanged();
        read.extend(std::iter::repeat_n(Entry::Input, kept));
        match reader.next() {
            Some(entry) => read.push(entry.expect("a result entry reads")),
            None => break,
        }
    }
    assert_eq!(read.len(), inputs.len());
    for ((got, want), input) in read.iter().zip(&expected).zip(&inputs) {
        match (got, want) {
            // One output that is exactly its input comes back as the input, whatever wrote it.
            (Entry::Input, Entry::Ok(outs)) => assert_eq!(outs, &[unchanged(input)]),
            (got, want) => assert_eq!(got, want),
        }
    }
});
