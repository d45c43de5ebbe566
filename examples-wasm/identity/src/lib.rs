//! Example Weir stage: identity.
//!
//! Passes every record on unchanged. It does no work of its own, so it measures what crossing the
//! wasm boundary costs: encoding the batch, copying it into the guest, reading each record there,
//! and reading the answer back. Written as a filter that keeps everything: the record is read
//! through a borrowed view and goes back as "the input, unchanged". No config.

use weir_sdk::{Error, RecordView};

/// The stage: keep every record, as it came.
pub fn identity(_record: &RecordView<'_>) -> Result<bool, Error> {
    Ok(true)
}

weir_sdk::filter!(identity);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::{Record, testing};

    #[test]
    fn passes_records_through() {
        let r = Record::new("v")
            .with_key("k")
            .with_header("h", "1")
            .with_timestamp(7);
        let out = testing::run_filter_fn(identity, vec![r.clone(), Record::default()]);
        assert_eq!(out, vec![Ok(vec![r]), Ok(vec![Record::default()])]);
    }
}
