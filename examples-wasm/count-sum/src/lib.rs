//! Example Weir aggregate stage: count-sum.
//!
//! Per key and window, counts the records and sums the JSON number at `field` of their values
//! (a JSON object each), and emits one record `{"count":…,"sum":…}` keyed by the group's key when
//! the window closes. Errors (which fail the record's group in that `add` call): `bad-json`,
//! `missing-field`, `not-a-number`.
//!
//! Config: `{ field = "amount" }` (default `amount`). For the runtime's tests, `trap_on = "…"`
//! makes `add` panic (trap) on a record whose value contains that text, and `loop_on = "…"`
//! makes it loop forever (until the stage's time limit) on such a record (both off by default).

use serde::{Deserialize, Serialize};
use weir_sdk::{Aggregator, Config, Error, Record, Window};

/// The stage's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountSumConfig {
    #[serde(default = "default_field")]
    pub field: String,
    #[serde(default)]
    pub trap_on: Option<String>,
    #[serde(default)]
    pub loop_on: Option<String>,
}

fn default_field() -> String {
    "amount".to_owned()
}

/// The accumulator of one key and window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CountSum {
    pub count: u64,
    pub sum: f64,
}

/// The stage.
#[derive(Debug)]
pub struct CountSumStage {
    field: String,
    trap_on: Option<Vec<u8>>,
    loop_on: Option<Vec<u8>>,
}

impl Aggregator for CountSumStage {
    type Acc = CountSum;

    fn init(config: Config) -> Result<Self, Error> {
        let CountSumConfig {
            field,
            trap_on,
            loop_on,
        } = config.json()?;
        if field.is_empty() {
            return Err(Error::new("bad-config", "`field` must not be empty"));
        }
        if trap_on.as_deref() == Some("") || loop_on.as_deref() == Some("") {
            return Err(Error::new(
                "bad-config",
                "`trap_on` and `loop_on` must not be empty",
            ));
        }
        Ok(Self {
            field,
            trap_on: trap_on.map(String::into_bytes),
            loop_on: loop_on.map(String::into_bytes),
        })
    }

    fn add(&mut self, acc: &mut CountSum, record: &Record) -> Result<(), Error> {
        if let Some(marker) = &self.trap_on {
            let value = record.value().unwrap_or_default();
            if value.windows(marker.len()).any(|w| w == marker.as_slice()) {
                panic!("record at offset {} is poisoned", record.offset());
            }
        }
        if let Some(marker) = &self.loop_on {
            let value = record.value().unwrap_or_default();
            if value.windows(marker.len()).any(|w| w == marker.as_slice()) {
                let mut spins = 0u64;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
        }
        let value: serde_json::Map<String, serde_json::Value> = record.value_json()?;
        let n = match value.get(&self.field) {
            None => {
                return Err(Error::new(
                    "missing-field",
                    format!("no `{}` in the record", self.field),
                ));
            }
            Some(v) => v.as_f64().ok_or_else(|| {
                Error::new(
                    "not-a-number",
                    format!("`{}` is not a number: {v}", self.field),
                )
            })?,
        };
        acc.count += 1;
        acc.sum += n;
        Ok(())
    }

    fn merge(&mut self, a: CountSum, b: CountSum) -> Result<CountSum, Error> {
        Ok(CountSum {
            count: a.count + b.count,
            sum: a.sum + b.sum,
        })
    }

    fn emit(&mut self, key: &[u8], _window: Window, acc: CountSum) -> Result<Vec<Record>, Error> {
        let mut out = Record::default().with_key(key);
        out.set_value_json(&acc)?;
        Ok(vec![out])
    }
}

weir_sdk::aggregator!(type CountSumStage);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, AggregateHarness};

    const W: Window = Window::new(0, 60_000);

    fn amount(n: &str) -> Record {
        Record::new(format!(r#"{{"amount":{n},"user":"u1"}}"#))
    }

    #[test]
    fn counts_and_sums_a_window() {
        let out =
            testing::aggregate::<CountSumStage>("{}", b"k", W, vec![amount("1.5"), amount("2")])
                .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key(), Some(&b"k"[..]));
        assert_eq!(
            out[0].value_json::<CountSum>().unwrap(),
            CountSum { count: 2, sum: 3.5 }
        );
    }

    #[test]
    fn a_failing_group_leaves_the_others_alone() {
        let mut h = AggregateHarness::new::<CountSumStage>(r#"{"field":"n"}"#).unwrap();
        let empty = h.create();
        let out = h.add(vec![
            (empty.clone(), vec![Record::new(r#"{"n":1}"#)]),
            (empty.clone(), vec![Record::new(r#"{"n":"x"}"#)]),
            (empty.clone(), vec![Record::new(r#"{"m":1}"#)]),
            (empty.clone(), vec![Record::new("nope")]),
            (empty, vec![]),
        ]);
        let acc = |r: &Result<Vec<u8>, Error>| {
            AggregateHarness::decode::<CountSum>(r.as_ref().unwrap()).unwrap()
        };
        assert_eq!(acc(&out[0]), CountSum { count: 1, sum: 1.0 });
        assert_eq!(out[1].as_ref().unwrap_err().code(), "not-a-number");
        assert_eq!(out[2].as_ref().unwrap_err().code(), "missing-field");
        assert_eq!(out[3].as_ref().unwrap_err().code(), "bad-json");
        assert_eq!(acc(&out[4]), CountSum::default());
    }

    #[test]
    fn merges_accumulators() {
        let mut h = AggregateHarness::new::<CountSumStage>("{}").unwrap();
        let a = AggregateHarness::encode(&CountSum { count: 2, sum: 3.0 }).unwrap();
        let b = AggregateHarness::encode(&CountSum { count: 1, sum: 4.5 }).unwrap();
        let merged = h.merge(&a, &b).unwrap();
        assert_eq!(
            AggregateHarness::decode::<CountSum>(&merged).unwrap(),
            CountSum { count: 3, sum: 7.5 }
        );
        assert_eq!(h.merge(b"garbage", &b).unwrap_err().code(), "bad-state");
    }

    #[test]
    fn adds_across_calls() {
        let mut h = AggregateHarness::new::<CountSumStage>("{}").unwrap();
        let mut acc = h.create();
        for n in ["1", "2", "3"] {
            acc = h.add(vec![(acc, vec![amount(n)])]).remove(0).unwrap();
        }
        let out = h.emit(b"k", W, &acc).unwrap();
        assert_eq!(out[0].value_str().unwrap(), r#"{"count":3,"sum":6.0}"#);
    }

    #[test]
    #[should_panic(expected = "poisoned")]
    fn traps_on_the_marker_when_asked() {
        testing::aggregate::<CountSumStage>(
            r#"{"trap_on":"poison"}"#,
            b"k",
            W,
            vec![Record::new(r#"{"amount":1,"poison":true}"#)],
        )
        .ok();
    }

    #[test]
    fn refuses_bad_config() {
        for config in [r#"{"field":""}"#, r#"{"trap_on":""}"#, r#"{"other":1}"#] {
            let e = AggregateHarness::new::<CountSumStage>(config).unwrap_err();
            assert_eq!(e.code(), "bad-config", "{config}");
        }
    }
}
