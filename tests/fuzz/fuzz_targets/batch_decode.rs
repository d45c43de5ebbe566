//! Arbitrary bytes as an input batch, read every way a stage can read one: owned
//! (`decode_batch`), borrowed (`BatchReader::records`) and lazily (`raw_records`, one field at a
//! time). Checks that nothing panics, that the readers agree, and that a batch that decodes
//! re-encodes to the very same bytes (the encoding has one form per batch).
//!
//! Input batches come from the host, which writes header names from Rust strings, so the batch
//! readers leave names to be checked as each header is read: a decoded record's headers are only
//! looked at here when every name in the batch is UTF-8.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_wire::{BatchReader, BatchWriter, Bytes, DecodeError, RawRecord, RecordRef};

/// A field-by-field read, as a filter stage's view does it; agrees with the eager read where
/// that succeeds.
fn read_lazily(r: &RawRecord<'_>) {
    let _ = (r.offset(), r.timestamp());
    let key = r.key();
    let value = r.value();
    let headers = r.headers();
    if let Ok(headers) = &headers {
        let declared = headers.size_hint().1.unwrap();
        let mut it = headers.clone();
        let mut n = 0;
        while let Some(h) = it.next() {
            n += 1;
            if h.is_err() {
                // A malformed header ends the list: nothing after an error.
                assert!(it.next().is_none(), "headers read past an error");
                break;
            }
        }
        assert!(n <= declared);
    }
    if let Ok(read) = r.read() {
        assert_eq!((read.offset, read.timestamp), (r.offset(), r.timestamp()));
        assert_eq!(key, Ok(read.key));
        assert_eq!(value, Ok(read.value));
        let lazy: Vec<_> = headers.expect("a record that reads has headers").collect();
        assert_eq!(lazy, read.headers().collect::<Vec<_>>());
    }
}

/// Whether every header name of `r` is UTF-8 (the only check the eager readers leave out).
fn names_are_text(r: &RecordRef<'_>) -> bool {
    r.headers().all(|h| h.is_ok())
}

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    let decoded = weir_wire::decode_batch(buf.clone());

    let mut names_ok = true;
    let borrowed = BatchReader::new(&buf).and_then(|reader| {
        let mut raw = reader.raw_records();
        for r in raw.by_ref() {
            match r {
                Ok(r) => read_lazily(&r),
                Err(_) => break,
            }
        }
        let lazy_end = raw.finish();

        let mut records = reader.records();
        let mut all = Vec::new();
        for r in records.by_ref() {
            let r = r?;
            names_ok &= names_are_text(&r);
            all.push(r.to_shared(&buf));
        }
        records.finish()?;
        assert_eq!(all.len(), reader.len());
        // Every record read: the lazy pass stepped over the same bytes.
        assert_eq!(lazy_end, Ok(()));
        Ok((reader.topic(), reader.partition(), all))
    });

    match (&decoded, &borrowed) {
        (Ok(batch), Ok((topic, partition, records))) => {
            assert_eq!(&batch.topic, topic);
            assert_eq!(batch.partition, *partition);
            assert_eq!(&batch.records, records);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            let _ = a.to_string();
        }
        (a, b) => panic!("decode_batch gave {a:?}, BatchReader {b:?}"),
    }

    let Ok(batch) = decoded else {
        return;
    };
    let mut w = BatchWriter::new(&batch.topic, batch.partition);
    for r in &batch.records {
        if names_ok {
            for h in r.headers.iter() {
                assert!(r.headers.get(h.name).is_some());
            }
            assert_eq!(r.headers.iter().count(), r.headers.len());
            let _ = format!("{r:?}");
        }
        w.push_record(r);
    }
    assert_eq!(w.len(), batch.records.len());
    assert_eq!(
        w.finish(),
        data,
        "a decoded batch re-encodes to other bytes"
    );

    if !names_ok {
        // The one error the eager readers leave to the header reads.
        let reader = BatchReader::new(data).unwrap();
        let failed = reader
            .records()
            .flat_map(|r| r.unwrap().headers())
            .find_map(Result::err);
        assert!(
            matches!(failed, Some(DecodeError::Utf8 { .. })),
            "{failed:?}"
        );
    }
});
