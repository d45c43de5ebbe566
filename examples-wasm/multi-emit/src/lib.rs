//! Example Weir aggregate stage: multi-emit.
//!
//! Per key and window, counts the records by the value of the JSON field `field` (a string, a
//! number or a boolean, as text) and, when the window closes, emits one record per distinct value,
//! in the values' order: `{"value":"…","count":…}`, keyed by the group's key. At most `max`
//! distinct values are kept; records with further values are counted in one last record
//! `{"other":…}`, so a window emits at most `max + 1` records. Errors (which fail the record's
//! group in that `add` call): `bad-json`, `missing-field`, `bad-field` (an object, array or null).
//!
//! Config: `{ field = "page", max = 10 }` (the defaults); `max` must be at least 1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_sdk::{Aggregator, Config, Error, Record, Window};

/// The stage's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiEmitConfig {
    #[serde(default = "default_field")]
    pub field: String,
    #[serde(default = "default_max")]
    pub max: usize,
}

fn default_field() -> String {
    "page".to_owned()
}

fn default_max() -> usize {
    10
}

/// The accumulator: counts per distinct value (a `BTreeMap`, so its encoding is deterministic),
/// and the records whose value did not fit under the cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub values: BTreeMap<String, u64>,
    pub other: u64,
}

impl Counts {
    fn count(&mut self, value: &str, n: u64, max: usize) {
        if let Some(c) = self.values.get_mut(value) {
            *c += n;
        } else if self.values.len() < max {
            self.values.insert(value.to_owned(), n);
        } else {
            self.other += n;
        }
    }
}

/// The stage.
#[derive(Debug)]
pub struct MultiEmit {
    field: String,
    max: usize,
}

impl Aggregator for MultiEmit {
    type Acc = Counts;

    fn init(config: Config) -> Result<Self, Error> {
        let MultiEmitConfig { field, max } = config.json()?;
        if field.is_empty() || max == 0 {
            return Err(Error::new(
                "bad-config",
                "`field` must not be empty and `max` must be at least 1",
            ));
        }
        Ok(Self { field, max })
    }

    fn add(&mut self, acc: &mut Counts, record: &Record) -> Result<(), Error> {
        let value: serde_json::Map<String, serde_json::Value> = record.value_json()?;
        let text = match value.get(&self.field) {
            None => {
                return Err(Error::new(
                    "missing-field",
                    format!("no `{}` in the record", self.field),
                ));
            }
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v.to_string(),
            Some(v) => {
                return Err(Error::new(
                    "bad-field",
                    format!("`{}` is not a string, number or boolean: {v}", self.field),
                ));
            }
        };
        acc.count(&text, 1, self.max);
        Ok(())
    }

    /// Keeps `a`'s values, then `b`'s while there is room; the rest counts as other.
    fn merge(&mut self, mut a: Counts, b: Counts) -> Result<Counts, Error> {
        for (value, n) in b.values {
            a.count(&value, n, self.max);
        }
        a.other += b.other;
        Ok(a)
    }

    fn emit(&mut self, key: &[u8], _window: Window, acc: Counts) -> Result<Vec<Record>, Error> {
        let mut out = Vec::with_capacity(acc.values.len() + 1);
        for (value, count) in &acc.values {
            let mut r = Record::default().with_key(key);
            r.set_value_json(&serde_json::json!({ "value": value, "count": count }))?;
            out.push(r);
        }
        if acc.other > 0 {
            let mut r = Record::default().with_key(key);
            r.set_value_json(&serde_json::json!({ "other": acc.other }))?;
            out.push(r);
        }
        Ok(out)
    }
}

weir_sdk::aggregator!(type MultiEmit);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, AggregateHarness};

    const W: Window = Window::new(1_000, 2_000);

    fn page(p: &str) -> Record {
        Record::new(format!(r#"{{"page":"{p}"}}"#))
    }

    fn values(out: &[Record]) -> Vec<String> {
        out.iter()
            .map(|r| r.value_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn one_record_per_distinct_value() {
        let records = ["/b", "/a", "/b", "/c", "/b"].map(page).to_vec();
        let out = testing::aggregate::<MultiEmit>("{}", b"u1", W, records).unwrap();
        assert_eq!(
            values(&out),
            [
                r#"{"count":1,"value":"/a"}"#,
                r#"{"count":3,"value":"/b"}"#,
                r#"{"count":1,"value":"/c"}"#,
            ]
        );
        assert!(out.iter().all(|r| r.key() == Some(&b"u1"[..])));
    }

    #[test]
    fn values_past_the_cap_count_as_other() {
        let records = ["/a", "/b", "/c", "/a", "/d"].map(page).to_vec();
        let out = testing::aggregate::<MultiEmit>(r#"{"max":2}"#, b"k", W, records).unwrap();
        assert_eq!(
            values(&out),
            [
                r#"{"count":2,"value":"/a"}"#,
                r#"{"count":1,"value":"/b"}"#,
                r#"{"other":2}"#,
            ]
        );
    }

    #[test]
    fn numbers_and_booleans_count_as_text() {
        let records = [r#"{"x":1}"#, r#"{"x":true}"#, r#"{"x":1}"#]
            .map(Record::new)
            .to_vec();
        let out = testing::aggregate::<MultiEmit>(r#"{"field":"x"}"#, b"k", W, records).unwrap();
        assert_eq!(
            values(&out),
            [
                r#"{"count":2,"value":"1"}"#,
                r#"{"count":1,"value":"true"}"#
            ]
        );
    }

    #[test]
    fn an_empty_window_emits_nothing() {
        assert_eq!(
            testing::aggregate::<MultiEmit>("{}", b"k", W, vec![]),
            Ok(vec![])
        );
    }

    #[test]
    fn merge_keeps_the_cap() {
        let mut h = AggregateHarness::new::<MultiEmit>(r#"{"max":2}"#).unwrap();
        let empty = h.create();
        let mut accs = h.add(vec![
            (empty.clone(), ["/a", "/b"].map(page).to_vec()),
            (empty, ["/b", "/c", "/c"].map(page).to_vec()),
        ]);
        let b = accs.pop().unwrap().unwrap();
        let a = accs.pop().unwrap().unwrap();
        let merged: Counts = AggregateHarness::decode(&h.merge(&a, &b).unwrap()).unwrap();
        assert_eq!(
            merged,
            Counts {
                values: [("/a".to_owned(), 1), ("/b".to_owned(), 2)].into(),
                other: 2,
            }
        );
    }

    #[test]
    fn bad_records_fail_their_group() {
        let mut h = AggregateHarness::new::<MultiEmit>("{}").unwrap();
        let empty = h.create();
        let out = h.add(vec![
            (
                empty.clone(),
                vec![page("/a"), Record::new(r#"{"page":null}"#)],
            ),
            (empty.clone(), vec![Record::new(r#"{}"#)]),
            (empty, vec![page("/a")]),
        ]);
        assert_eq!(out[0].as_ref().unwrap_err().code(), "bad-field");
        assert_eq!(out[1].as_ref().unwrap_err().code(), "missing-field");
        assert!(out[2].is_ok());
        assert_eq!(
            AggregateHarness::new::<MultiEmit>(r#"{"max":0}"#)
                .unwrap_err()
                .code(),
            "bad-config"
        );
    }
}
