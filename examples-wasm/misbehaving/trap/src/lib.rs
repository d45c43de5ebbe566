//! Misbehaving Weir stage: trap.
//!
//! Passes records through unchanged, but panics on a record whose value contains the bytes
//! `trap_on`. Built with `panic = "abort"`, the panic traps the instance: the host must report the
//! trap (with the panic message, which the SDK logs first), dead-letter that record alone and
//! carry on with a fresh instance.
//!
//! Config: `{ trap_on = "poison" }` (the default); an empty marker is refused (`bad-config`).

use serde::Deserialize;
use weir_sdk::{Config, Enricher, Error, Record};

/// The stage's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrapConfig {
    #[serde(default = "default_marker")]
    pub trap_on: String,
}

fn default_marker() -> String {
    "poison".to_owned()
}

/// The stage.
#[derive(Debug)]
pub struct Trap {
    marker: Vec<u8>,
}

impl Enricher for Trap {
    type Output = Record;

    fn init(config: Config) -> Result<Self, Error> {
        let TrapConfig { trap_on } = config.json()?;
        if trap_on.is_empty() {
            return Err(Error::new("bad-config", "`trap_on` must not be empty"));
        }
        Ok(Self {
            marker: trap_on.into_bytes(),
        })
    }

    fn process(&mut self, record: Record) -> Result<Record, Error> {
        let value = record.value().unwrap_or_default();
        if value.windows(self.marker.len()).any(|w| w == self.marker) {
            panic!("record at offset {} is poisoned", record.offset());
        }
        Ok(record)
    }
}

weir_sdk::enricher!(type Trap);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing;

    #[test]
    fn passes_clean_records() {
        let r = Record::new("fine").with_key("k");
        assert_eq!(testing::run::<Trap>("{}", vec![r.clone()]), [Ok(vec![r])]);
    }

    #[test]
    #[should_panic(expected = "poisoned")]
    fn panics_on_the_default_marker() {
        testing::run::<Trap>("{}", vec![Record::new("a poison pill")]);
    }

    #[test]
    fn a_configured_marker_replaces_the_default() {
        let out = testing::run::<Trap>(r#"{"trap_on":"boom"}"#, vec![Record::new("poison")]);
        assert_eq!(out, [Ok(vec![Record::new("poison")])]);
    }

    #[test]
    #[should_panic(expected = "poisoned")]
    fn panics_on_a_configured_marker() {
        testing::run::<Trap>(r#"{"trap_on":"boom"}"#, vec![Record::new("kaboom")]);
    }

    #[test]
    fn refuses_an_empty_marker() {
        let err = testing::Harness::new::<Trap>(r#"{"trap_on":""}"#).unwrap_err();
        assert_eq!(err.code(), "bad-config");
    }
}
