//! Example Weir stage: tag.
//!
//! Stamps every record with one header, both taken from the stage's config:
//! `config = { header = "version", value = "v2" }`. Which version of a stage handled a record is
//! then visible on the record itself, which is what the hot-reload tests check, and what a canary
//! rollout can use to mark its outputs.
//!
//! An optional `spin` (default 0) makes every record cost that many iterations of a loop the
//! optimiser cannot remove: a stage slower than its input, for backpressure tests.

use serde::Deserialize;
use weir_sdk::{Config, Enricher, Error, Record};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagConfig {
    header: String,
    value: String,
    #[serde(default)]
    spin: u64,
}

/// The stage: the configured header and value.
#[derive(Debug)]
pub struct Tag {
    header: String,
    value: String,
    spin: u64,
}

impl Enricher for Tag {
    type Output = Record;

    fn init(config: Config) -> Result<Self, Error> {
        let TagConfig {
            header,
            value,
            spin,
        } = config.json()?;
        if header.is_empty() {
            return Err(Error::new("bad-config", "`header` must not be empty"));
        }
        Ok(Self {
            header,
            value,
            spin,
        })
    }

    fn process(&mut self, mut record: Record) -> Result<Record, Error> {
        let mut n = 0u64;
        for _ in 0..self.spin {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        record.set_header(&self.header, self.value.as_bytes());
        Ok(record)
    }
}

weir_sdk::enricher!(type Tag);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_the_configured_header() {
        let mut tag = Tag::init(Config::new(r#"{"header":"v","value":"2"}"#)).unwrap();
        let out = tag.process(Record::new("x").with_header("v", "1")).unwrap();
        assert_eq!(
            out.header_str("v"),
            Some("2"),
            "an existing header is replaced"
        );
        assert_eq!(out.value(), Some(&b"x"[..]));
    }

    #[test]
    fn refuses_a_bad_config() {
        assert!(Tag::init(Config::new(r#"{"header":""}"#)).is_err());
        assert!(Tag::init(Config::new(r#"{"header":"","value":"x"}"#)).is_err());
        assert!(Tag::init(Config::new(r#"{"header":"h","value":"x","extra":1}"#)).is_err());
    }
}
