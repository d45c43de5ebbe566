//! Example Weir aggregate stage: percentile.
//!
//! Per key and window, keeps a sketch of the JSON number at `field` of the records' values (a
//! JSON object each) and, when the window closes, emits one record keyed by the group's key:
//! `{"count":…,"min":…,"max":…,"p50":…,"p90":…,"p99":…}`, one `pNN` per configured quantile
//! (`0.999` is `p99.9`). A window without values emits nothing. Errors (which fail the record's
//! group in that `add` call): `bad-json`, `missing-field`, `not-a-number`.
//!
//! The sketch ([`sketch`]) is a log-bucketed histogram, in the manner of HDR histograms: `count`,
//! `min` and `max` are exact; a quantile is within 0.96 % (relative) of the exact value of its
//! nearest rank `⌈q·count⌉`, and printed with 4 significant digits. Sketches merge exactly (the
//! merge of two is the sketch of all their values), so session and hopping windows lose nothing.
//! The accumulator is bounded whatever the number of records: at most 2048 bucket counts per
//! sign; latencies of 1 ms to 10 s take at most 513 counts, about 3 KB as JSON.
//!
//! Config: `{ field = "latency_ms", quantiles = [0.5, 0.9, 0.99] }` (the defaults). `field` must
//! not be empty; `quantiles` must not be empty, each in `(0, 1]` and no two of the same name.
//! The accuracy is fixed, not configurable: it decides the buckets the accumulator holds.

pub mod sketch;

use serde::Deserialize;
use weir_sdk::{Aggregator, Config, Error, Record, Window};

pub use sketch::Sketch;

/// The stage's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PercentileConfig {
    #[serde(default = "default_field")]
    pub field: String,
    #[serde(default = "default_quantiles")]
    pub quantiles: Vec<f64>,
}

fn default_field() -> String {
    "latency_ms".to_owned()
}

fn default_quantiles() -> Vec<f64> {
    vec![0.5, 0.9, 0.99]
}

/// The output name of quantile `q`: `p` and the percentage (`0.5` is `p50`, `0.999` is `p99.9`).
pub fn quantile_name(q: f64) -> String {
    let percent = format!("{:.6}", q * 100.0);
    let percent = percent.trim_end_matches('0').trim_end_matches('.');
    format!("p{percent}")
}

/// The stage.
#[derive(Debug)]
pub struct Percentile {
    field: String,
    /// (output name, quantile), in the configured order.
    quantiles: Vec<(String, f64)>,
}

impl Aggregator for Percentile {
    type Acc = Sketch;

    /// Covers the encoding of [`Sketch`] and its buckets ([`sketch::BUCKET_ERROR`],
    /// [`sketch::MAX_BUCKETS`]): a change to either needs a new version.
    const STATE_VERSION: u32 = 1;

    fn init(config: Config) -> Result<Self, Error> {
        let PercentileConfig { field, quantiles } = config.json()?;
        let bad = |message: String| Err(Error::new("bad-config", message));
        if field.is_empty() {
            return bad("`field` must not be empty".into());
        }
        if quantiles.is_empty() {
            return bad("`quantiles` must not be empty".into());
        }
        let mut named: Vec<(String, f64)> = Vec::with_capacity(quantiles.len());
        for q in quantiles {
            if !(q > 0.0 && q <= 1.0) {
                return bad(format!("quantile {q} is not in (0, 1]"));
            }
            let name = quantile_name(q);
            if named.iter().any(|(n, _)| *n == name) {
                return bad(format!("quantile {q} is given twice (`{name}`)"));
            }
            named.push((name, q));
        }
        Ok(Self {
            field,
            quantiles: named,
        })
    }

    fn add(&mut self, acc: &mut Sketch, record: &Record) -> Result<(), Error> {
        let value: serde_json::Map<String, serde_json::Value> = record.value_json()?;
        let n = match value.get(&self.field) {
            None => {
                return Err(Error::new(
                    "missing-field",
                    format!("no `{}` in the record", self.field),
                ));
            }
            Some(v) => v.as_f64().filter(|n| n.is_finite()).ok_or_else(|| {
                Error::new(
                    "not-a-number",
                    format!("`{}` is not a number: {v}", self.field),
                )
            })?,
        };
        acc.insert(n);
        Ok(())
    }

    fn merge(&mut self, mut a: Sketch, b: Sketch) -> Result<Sketch, Error> {
        check(&a)?;
        check(&b)?;
        a.merge(&b);
        Ok(a)
    }

    fn emit(&mut self, key: &[u8], _window: Window, acc: Sketch) -> Result<Vec<Record>, Error> {
        check(&acc)?;
        if acc.count == 0 {
            return Ok(vec![]);
        }
        // Written by hand to keep the fields in this order (a serde_json map sorts its keys).
        let mut value = format!(
            r#"{{"count":{},"min":{},"max":{}"#,
            acc.count,
            number(acc.min)?,
            number(acc.max)?
        );
        for (name, q) in &self.quantiles {
            let estimate = acc.quantile(*q).unwrap_or(acc.max);
            value.push_str(&format!(r#","{name}":{}"#, number(estimate)?));
        }
        value.push('}');
        Ok(vec![Record::new(value).with_key(key)])
    }
}

/// Refuses an accumulator `add` and `merge` cannot have produced.
fn check(acc: &Sketch) -> Result<(), Error> {
    if acc.is_valid() {
        Ok(())
    } else {
        Err(Error::new(
            "bad-state",
            "the accumulator is not a consistent sketch",
        ))
    }
}

/// `x` as a JSON number.
fn number(x: f64) -> Result<String, Error> {
    Ok(serde_json::to_string(&x)?)
}

weir_sdk::aggregator!(type Percentile);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{self, AggregateHarness};

    const W: Window = Window::new(0, 60_000);

    fn latency(n: &str) -> Record {
        Record::new(format!(r#"{{"latency_ms":{n},"route":"/api"}}"#))
    }

    fn latencies(ns: &[&str]) -> Vec<Record> {
        ns.iter().map(|n| latency(n)).collect()
    }

    #[test]
    fn emits_count_extremes_and_quantiles() {
        let records = latencies(&["12", "20", "35", "48", "250"]);
        let out = testing::aggregate::<Percentile>("{}", b"/api", W, records).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key(), Some(&b"/api"[..]));
        let text = out[0].value_str().unwrap();
        assert!(
            text.starts_with(r#"{"count":5,"min":12.0,"max":250.0,"p50":"#),
            "{text}"
        );
        assert!(text.ends_with(r#","p99":250.0}"#), "{text}");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        for (name, exact) in [("p50", 35.0), ("p90", 250.0)] {
            let got = v[name].as_f64().unwrap();
            assert!(
                (got - exact).abs() / exact <= sketch::RELATIVE_ERROR,
                "{name}={got}"
            );
        }
    }

    #[test]
    fn configured_field_and_quantiles() {
        let records = (1..=1000)
            .map(|n| Record::new(format!(r#"{{"ms":{n}}}"#)))
            .collect();
        let config = r#"{"field":"ms","quantiles":[0.999,0.25,1]}"#;
        let out = testing::aggregate::<Percentile>(config, b"k", W, records).unwrap();
        let text = out[0].value_str().unwrap();
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let names: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(names.len(), 6, "{text}");
        for (name, exact) in [("p99.9", 999.0), ("p25", 250.0), ("p100", 1000.0)] {
            let got = v[name].as_f64().unwrap();
            assert!(
                (got - exact).abs() / exact <= sketch::RELATIVE_ERROR,
                "{name}={got}"
            );
        }
        let p999 = text.find("p99.9").unwrap();
        assert!(p999 < text.find("p25").unwrap() && text.ends_with(r#""p100":1000.0}"#));
    }

    #[test]
    fn quantile_names() {
        assert_eq!(quantile_name(0.5), "p50");
        assert_eq!(quantile_name(0.99), "p99");
        assert_eq!(quantile_name(0.999), "p99.9");
        assert_eq!(quantile_name(0.9999), "p99.99");
        assert_eq!(quantile_name(0.07), "p7");
        assert_eq!(quantile_name(0.001), "p0.1");
        assert_eq!(quantile_name(1.0), "p100");
    }

    #[test]
    fn a_failing_group_leaves_the_others_alone() {
        let mut h = AggregateHarness::new::<Percentile>(r#"{"field":"n"}"#).unwrap();
        let empty = h.create();
        let out = h.add(vec![
            (empty.clone(), vec![Record::new(r#"{"n":1.5}"#)]),
            (empty.clone(), vec![Record::new(r#"{"n":"12"}"#)]),
            (empty.clone(), vec![Record::new(r#"{"m":1}"#)]),
            (empty.clone(), vec![Record::new("nope")]),
            (empty, vec![]),
        ]);
        let acc = |r: &Result<Vec<u8>, Error>| {
            AggregateHarness::decode::<Sketch>(r.as_ref().unwrap()).unwrap()
        };
        assert_eq!(acc(&out[0]).count, 1);
        assert_eq!(acc(&out[0]).min, 1.5);
        assert_eq!(out[1].as_ref().unwrap_err().code(), "not-a-number");
        assert_eq!(out[2].as_ref().unwrap_err().code(), "missing-field");
        assert_eq!(out[3].as_ref().unwrap_err().code(), "bad-json");
        assert_eq!(acc(&out[4]), Sketch::default());
    }

    #[test]
    fn merges_accumulators_exactly() {
        let mut h = AggregateHarness::new::<Percentile>("{}").unwrap();
        let empty = h.create();
        let all: Vec<&str> = vec!["3", "0.5", "80", "1200", "7", "7", "15000", "0"];
        let mut accs = h.add(vec![
            (empty.clone(), latencies(&all[..3])),
            (empty.clone(), latencies(&all[3..])),
            (empty, latencies(&all)),
        ]);
        let whole = accs.pop().unwrap().unwrap();
        let b = accs.pop().unwrap().unwrap();
        let a = accs.pop().unwrap().unwrap();
        assert_eq!(h.merge(&a, &b).unwrap(), whole);
        assert_eq!(h.merge(&b, &a).unwrap(), whole);
        assert_eq!(h.merge(b"garbage", &b).unwrap_err().code(), "bad-state");
        let lying = br#"{"count":5,"min":1.0,"max":2.0,"pos":{"offset":0,"counts":[1]}}"#;
        assert_eq!(h.merge(lying, &b).unwrap_err().code(), "bad-state");
        assert_eq!(h.emit(b"k", W, lying).unwrap_err().code(), "bad-state");
    }

    #[test]
    fn adds_across_calls_and_an_empty_window_emits_nothing() {
        let mut h = AggregateHarness::new::<Percentile>(r#"{"quantiles":[0.5]}"#).unwrap();
        let mut acc = h.create();
        assert_eq!(h.emit(b"k", W, &acc).unwrap(), vec![]);
        for n in ["4", "4", "4"] {
            acc = h.add(vec![(acc, vec![latency(n)])]).remove(0).unwrap();
        }
        let out = h.emit(b"k", W, &acc).unwrap();
        assert_eq!(
            out[0].value_str().unwrap(),
            r#"{"count":3,"min":4.0,"max":4.0,"p50":4.0}"#
        );
    }

    #[test]
    fn the_accumulator_stays_small() {
        let mut h = AggregateHarness::new::<Percentile>("{}").unwrap();
        let mut acc = h.create();
        assert_eq!(acc, br#"{"count":0,"min":0.0,"max":0.0}"#);
        let mut sizes = Vec::new();
        for round in 0..20u64 {
            let records = (0..1000u64)
                .map(|i| latency(&(1 + (i * 7919 + round * 104_729) % 10_000).to_string()))
                .collect();
            acc = h.add(vec![(acc, records)]).remove(0).unwrap();
            sizes.push(acc.len());
        }
        let sketch: Sketch = AggregateHarness::decode(&acc).unwrap();
        assert_eq!(sketch.count, 20_000);
        // Values of 1 to 10000: at most ⌈ln 10^4 / ln γ⌉ + 1 = 513 buckets, whatever the count.
        assert!(sketch.buckets() <= 513, "{}", sketch.buckets());
        assert!(sizes.iter().all(|&s| s <= 4_500), "{sizes:?}");
    }

    #[test]
    fn refuses_bad_config() {
        for config in [
            r#"{"field":""}"#,
            r#"{"quantiles":[]}"#,
            r#"{"quantiles":[0]}"#,
            r#"{"quantiles":[1.5]}"#,
            r#"{"quantiles":[-0.5]}"#,
            r#"{"quantiles":[0.5,0.50]}"#,
            r#"{"quantiles":"p99"}"#,
            r#"{"other":1}"#,
        ] {
            let e = AggregateHarness::new::<Percentile>(config).unwrap_err();
            assert_eq!(e.code(), "bad-config", "{config}");
        }
        assert!(AggregateHarness::new::<Percentile>(r#"{"quantiles":[1]}"#).is_ok());
        assert_eq!(Percentile::STATE_VERSION, 1);
    }
}
