//! A batch result as a (possibly hostile) guest may write it, read by the host.
//!
//! The first byte picks the input batch the result answers (bits 0-1: how many of four fixed
//! input records) and the per-entry output cap of the host's reader (bits 2-3); the rest is the
//! result buffer. Checks that reading never panics, that the host's path (`ResultReader` with
//! `max_outputs` and `skip_unchanged`, as the runtime reads a stage's result) and
//! `decode_result` agree, that every decoded record is usable, and that re-encoding what was
//! decoded reads back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_wire::{Bytes, DecodeError, Entry, Headers, Record, ResultReader, ResultWriter};

/// The host's cap on one entry's outputs (`MAX_OUTPUTS_PER_INPUT` in the wasm runtime).
const MAX_OUTPUTS_PER_INPUT: usize = 10_000;
const CAPS: [usize; 4] = [MAX_OUTPUTS_PER_INPUT, 0, 1, 2];

fn inputs(n: usize) -> Vec<Record> {
    let headers = |pairs: &[(&str, Option<&[u8]>)]| -> Headers {
        pairs
            .iter()
            .map(|&(name, value)| weir_wire::Header::new(name, value))
            .collect()
    };
    let all = [
        Record {
            offset: 7,
            timestamp: Some(1_700_000_000_000),
            key: Some(Bytes::from_static(b"user-1")),
            value: Some(Bytes::from_static(b"{\"n\":1}")),
            headers: headers(&[("traceparent", Some(b"00-x")), ("h", None)]),
        },
        Record {
            offset: 8,
            ..Record::default()
        },
        Record {
            offset: 9,
            timestamp: Some(-1),
            key: Some(Bytes::new()),
            value: Some(Bytes::from(vec![0xab; 100])),
            headers: headers(&[("", Some(b""))]),
        },
        Record {
            offset: 10,
            timestamp: None,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Headers::new(),
        },
    ];
    all[..n].to_vec()
}

/// The runtime's way through a result (the wasm runtime's `decode_outcomes`).
fn host_read(buf: Bytes, inputs: &[Record], cap: usize) -> Result<Vec<Entry>, DecodeError> {
    let mut entries = Vec::with_capacity(inputs.len());
    let mut reader = ResultReader::new(buf, inputs)?.max_outputs(cap);
    loop {
        let kept = reader.skip_unchanged();
        entries.extend(std::iter::repeat_n(Entry::Input, kept));
        let Some(entry) = reader.next() else {
            break;
        };
        entries.push(entry?);
    }
    Ok(entries)
}

/// Every field of a decoded record, read.
fn touch(r: &Record) {
    for h in r.headers.iter() {
        let _ = (h.name.len(), h.value.map(<[u8]>::len));
    }
    assert_eq!(r.headers.iter().count(), r.headers.len());
    let _ = format!("{r:?}");
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut w = ResultWriter::new();
    for entry in entries {
        match entry {
            Entry::Ok(outputs) => {
                w.begin_ok();
                for r in outputs {
                    w.output_record(r);
                }
            }
            Entry::Err { code, message } => w.error(code, message),
            Entry::Input | Entry::TooMany { .. } => unreachable!("decode_result returns neither"),
        }
    }
    w.finish()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, result)) = data.split_first() else {
        return;
    };
    let inputs = inputs(usize::from(pick & 3));
    let cap = CAPS[usize::from(pick >> 2 & 3)];
    let buf = Bytes::copy_from_slice(result);

    let decoded = weir_wire::decode_result(buf.clone(), &inputs);
    let host = host_read(buf, &inputs, cap);
    let entries = match (decoded, host) {
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "the host's reader and decode_result disagree");
            let _ = a.to_string();
            return;
        }
        (Ok(entries), Ok(host)) => {
            assert_eq!(entries.len(), inputs.len());
            assert_eq!(host.len(), inputs.len());
            for ((entry, seen), input) in entries.iter().zip(&host).zip(&inputs) {
                match (entry, seen) {
                    (Entry::Ok(outputs), Entry::Input) => assert_eq!(
                        outputs,
                        &[Record {
                            offset: -1,
                            timestamp: None,
                            ..input.clone()
                        }]
                    ),
                    (Entry::Ok(outputs), Entry::TooMany { outputs: n }) => {
                        assert_eq!(outputs.len(), *n);
                        assert!(*n > cap);
                    }
                    (Entry::Ok(outputs), Entry::Ok(same)) => {
                        assert!(outputs.len() <= cap);
                        assert_eq!(outputs, same);
                    }
                    (a, b) => assert_eq!(a, b),
                }
            }
            entries
        }
        (a, b) => panic!("decode_result gave {a:?}, the host's reader {b:?}"),
    };

    for entry in &entries {
        match entry {
            Entry::Ok(outputs) => outputs.iter().for_each(|r| {
                assert_eq!(r.offset, -1);
                touch(r);
            }),
            Entry::Err { .. } => {}
            Entry::Input | Entry::TooMany { .. } => panic!("decode_result returned {entry:?}"),
        }
    }

    let again = weir_wire::decode_result(encode(&entries).into(), &inputs)
        .expect("a re-encoded result decodes");
    assert_eq!(entries, again);
});
