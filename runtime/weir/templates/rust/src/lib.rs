//! {{name}}: upper-cases each record's value and appends the configured `suffix`.
//!
//! Config: `{ suffix = "!" }` (the default). Errors: `empty-value` (a null or empty value),
//! `bad-utf8` (a value that is not text).

use serde::Deserialize;
use weir_sdk::{Config, Enricher, Error, Record};

/// The stage's configuration: the `config` table of its entry in `pipeline.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    #[serde(default = "default_suffix")]
    pub suffix: String,
}

fn default_suffix() -> String {
    "!".to_owned()
}

/// The stage: built once per instance from its configuration.
#[derive(Debug)]
pub struct Stage {
    suffix: String,
}

impl Enricher for Stage {
    type Output = Record;

    fn init(config: Config) -> Result<Self, Error> {
        let StageConfig { suffix } = config.json()?;
        Ok(Self { suffix })
    }

    fn process(&mut self, mut record: Record) -> Result<Record, Error> {
        let value = std::str::from_utf8(record.value().unwrap_or_default())
            .map_err(|e| Error::new("bad-utf8", format!("the value is not text: {e}")))?;
        if value.is_empty() {
            return Err(Error::new("empty-value", "there is nothing to shout"));
        }
        let shouted = format!("{}{}", value.to_uppercase(), self.suffix);
        record.set_value(shouted);
        Ok(record)
    }
}

weir_sdk::enricher!(type Stage);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing;

    #[test]
    fn shouts() {
        let out = testing::run::<Stage>(r#"{"suffix":"?"}"#, vec![Record::new("hi").with_key("k")]);
        let record = &out[0].as_ref().unwrap()[0];
        assert_eq!(record.value(), Some(&b"HI?"[..]));
        assert_eq!(record.key(), Some(&b"k"[..]));
    }

    #[test]
    fn refuses_empty_values() {
        let out = testing::run::<Stage>("{}", vec![Record::new("")]);
        assert_eq!(out[0].as_ref().unwrap_err().code(), "empty-value");
    }
}
