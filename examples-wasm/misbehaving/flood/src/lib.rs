//! Misbehaving Weir stage: flood.
//!
//! Passes records through unchanged, except those whose value starts with one of these words,
//! each of which asks the host for more than it grants (the host's caps must hold, the record
//! fail with kind `limit` where it is the outputs, and the host go on):
//!
//! - `logs`: writes [`LOG_LINES`] log lines of [`LOG_FIELDS`] fields of [`LOG_VALUE`] bytes each.
//! - `fanout`: returns [`FANOUT`] copies of the record.
//! - `amplify`: returns [`AMPLIFY`] copies of the record, which cost the module nothing (they
//!   share the input's bytes) but count their full size downstream.
//! - `long-error`: fails the record with a code of [`ERROR_CODE`] bytes and a message of
//!   [`ERROR_MESSAGE`] bytes.
//! - `clash`: adds 1 to the counter `clash`, then records 1.0 in a histogram of the same name.
//!
//! No config.

use weir_sdk::log::{self, Level};
use weir_sdk::{Error, Record, metrics};

pub const LOG_LINES: usize = 1000;
pub const LOG_FIELDS: usize = 40;
pub const LOG_VALUE: usize = 2000;
pub const FANOUT: usize = 10_001;
pub const AMPLIFY: usize = 3000;
pub const ERROR_CODE: usize = 5000;
pub const ERROR_MESSAGE: usize = 100_000;

/// The stage.
pub fn flood(record: Record) -> Result<Vec<Record>, Error> {
    let value = record.value().unwrap_or_default();
    if value.starts_with(b"logs") {
        let v = "v".repeat(LOG_VALUE);
        let names: Vec<String> = (0..LOG_FIELDS).map(|i| format!("field{i}")).collect();
        let fields: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), v.as_str())).collect();
        for _ in 0..LOG_LINES {
            log::log(Level::Info, "Flooding.", &fields);
        }
    } else if value.starts_with(b"fanout") {
        return Ok(vec![record; FANOUT]);
    } else if value.starts_with(b"amplify") {
        return Ok(vec![record; AMPLIFY]);
    } else if value.starts_with(b"long-error") {
        return Err(Error::new(
            "c".repeat(ERROR_CODE),
            "m".repeat(ERROR_MESSAGE),
        ));
    } else if value.starts_with(b"clash") {
        metrics::counter_add("clash", 1);
        metrics::histogram_record("clash", 1.0);
    }
    Ok(vec![record])
}

weir_sdk::enricher!(flood);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing;

    #[test]
    fn asks_for_what_it_says() {
        let out = testing::run_fn(
            flood,
            vec![
                Record::new("fanout"),
                Record::new("amplify"),
                Record::new("long-error"),
                Record::new("plain"),
            ],
        );
        assert_eq!(out[0].as_ref().unwrap().len(), FANOUT);
        assert_eq!(out[1].as_ref().unwrap().len(), AMPLIFY);
        let e = out[2].as_ref().unwrap_err();
        assert_eq!(
            (e.code().len(), e.message().len()),
            (ERROR_CODE, ERROR_MESSAGE)
        );
        assert_eq!(out[3], Ok(vec![Record::new("plain")]));
    }
}
