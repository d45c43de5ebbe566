//! `enricher!(type T)` with a configured stage, tested through the native harness.

#![cfg(feature = "serde")]

use serde::Deserialize;
use weir_sdk::{Config, Enricher, Error, Record, testing};

#[derive(Deserialize)]
struct PrefixConfig {
    #[serde(default)]
    prefix: String,
}

struct Prefix {
    prefix: String,
}

impl Enricher for Prefix {
    type Output = Option<Record>;

    fn init(config: Config) -> Result<Self, Error> {
        let PrefixConfig { prefix } = config.json()?;
        weir_sdk::log::log(
            weir_sdk::log::Level::Info,
            "configured",
            &[("prefix", &prefix)],
        );
        Ok(Self { prefix })
    }

    fn process(&mut self, record: Record) -> Result<Option<Record>, Error> {
        let keep = record.value_str()?.starts_with(&self.prefix);
        weir_sdk::metrics::counter_add("seen", 1);
        Ok(keep.then_some(record))
    }
}

weir_sdk::enricher!(type Prefix);

#[test]
fn a_configured_stage_runs_natively() {
    let out = testing::run::<Prefix>(
        r#"{"prefix":"a"}"#,
        vec![Record::new("apple"), Record::new("banana")],
    );
    assert_eq!(out, [Ok(vec![Record::new("apple")]), Ok(vec![])]);
    assert_eq!(
        testing::run::<Prefix>("null", vec![Record::new("x")]),
        [Ok(vec![Record::new("x")])]
    );
}
