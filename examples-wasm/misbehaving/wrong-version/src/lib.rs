//! Misbehaving Weir stage: wrong-version.
//!
//! An identity stage built against a different version of the contract: `wit/stage.wit` is the
//! enrich part of `weir:stage` at version 0.2.0, so the component exports
//! `weir:stage/enrich@0.2.0`. The runtime implements 0.1.0 and must refuse it at load time,
//! naming both versions. It uses `wit-bindgen` directly because the SDK only speaks 0.1.0. No
//! config.

use weir_wire::{BatchReader, DecodeError, ResultWriter};

/// Identity over an encoded batch: one entry per input, holding the input unchanged.
pub fn identity(batch: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = ResultWriter::new();
    for record in BatchReader::new(batch)?.records() {
        let r = record?;
        out.begin_ok();
        out.output(
            r.timestamp,
            r.key,
            r.value,
            r.headers().map_while(Result::ok),
        );
    }
    Ok(out.finish())
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "enricher" });

    use exports::weir::stage::enrich::{Guest, StageError};

    struct Identity;

    impl Guest for Identity {
        fn batch_format() -> u32 {
            weir_wire::FORMAT_VERSION
        }

        fn init(_config: String) -> Result<(), StageError> {
            Ok(())
        }

        fn process(batch: Vec<u8>) -> Vec<u8> {
            super::identity(&batch).expect("undecodable batch")
        }
    }

    export!(Identity);
}

#[cfg(test)]
mod tests {
    use weir_wire::{BatchWriter, Entry, Header, decode_result};

    #[test]
    fn returns_each_record_unchanged() {
        let mut batch = BatchWriter::new("t", 0);
        batch.push(3, Some(9), Some(b"k"), Some(b"v"), [Header::new("h", None)]);
        let result = super::identity(&batch.finish()).unwrap();
        let entries = decode_result(result.into(), &[Default::default()]).unwrap();
        let [Entry::Ok(outputs)] = &entries[..] else {
            panic!("{entries:?}")
        };
        assert_eq!(
            (
                outputs[0].key.as_deref(),
                outputs[0].value.as_deref(),
                outputs[0].timestamp
            ),
            (Some(&b"k"[..]), Some(&b"v"[..]), Some(9))
        );
        let headers: Vec<_> = outputs[0]
            .headers
            .iter()
            .map(|h| (h.name, h.value))
            .collect();
        assert_eq!(headers, [("h", None)]);
    }
}
