//! Misbehaving Weir stage: sleeper.
//!
//! Passes records through unchanged, but sleeps on a record whose value contains the bytes
//! `sleep` (`std::thread::sleep`: a WASI monotonic-clock subscription the guest waits on). The
//! guest waits inside the host, where epoch interruption cannot stop it: the host must end the
//! wait at the call's deadline, report a timeout, dead-letter that record and carry on with a
//! fresh instance; a sleep within the deadline must simply end.
//!
//! Config: `{ millis = 5000 }` (the default), how long each sleep lasts.

use std::time::Duration;

use serde::Deserialize;
use weir_sdk::{Config, Enricher, Error, Record};

/// The stage's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleeperConfig {
    #[serde(default = "default_millis")]
    pub millis: u64,
}

fn default_millis() -> u64 {
    5000
}

/// The stage.
#[derive(Debug)]
pub struct Sleeper {
    sleep: Duration,
}

impl Enricher for Sleeper {
    type Output = Record;

    fn init(config: Config) -> Result<Self, Error> {
        let SleeperConfig { millis } = config.json()?;
        Ok(Self {
            sleep: Duration::from_millis(millis),
        })
    }

    fn process(&mut self, record: Record) -> Result<Record, Error> {
        if record
            .value()
            .is_some_and(|v| v.windows(5).any(|w| w == b"sleep"))
        {
            std::thread::sleep(self.sleep);
        }
        Ok(record)
    }
}

weir_sdk::enricher!(type Sleeper);

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use weir_sdk::testing;

    #[test]
    fn passes_other_records_at_once() {
        let records = vec![Record::new("sle ep"), Record::default()];
        let started = Instant::now();
        assert_eq!(
            testing::run::<Sleeper>("{}", records.clone()),
            records.into_iter().map(|r| Ok(vec![r])).collect::<Vec<_>>()
        );
        assert!(started.elapsed() < Duration::from_millis(default_millis()));
    }

    #[test]
    fn sleeps_as_long_as_configured() {
        let started = Instant::now();
        let out = testing::run::<Sleeper>(r#"{"millis":30}"#, vec![Record::new("sleep")]);
        assert_eq!(out, [Ok(vec![Record::new("sleep")])]);
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
