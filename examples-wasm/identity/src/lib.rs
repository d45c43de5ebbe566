//! Example Weir stage: identity.
//!
//! Returns every record unchanged. It does no work of its own, so it measures what crossing the
//! wasm boundary costs: encoding, copying and decoding a batch. No config.

use weir_sdk::{Error, Record};

/// The stage: the record, as it came.
pub fn identity(record: Record) -> Result<Record, Error> {
    Ok(record)
}

weir_sdk::enricher!(identity);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing;

    #[test]
    fn passes_records_through() {
        let r = Record::new("v")
            .with_key("k")
            .with_header("h", "1")
            .with_timestamp(7);
        let out = testing::run_fn(identity, vec![r.clone(), Record::default()]);
        assert_eq!(out, vec![Ok(vec![r]), Ok(vec![Record::default()])]);
    }
}
