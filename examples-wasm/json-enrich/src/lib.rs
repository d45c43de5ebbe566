//! Example Weir stage: json-enrich, the demo's flagship.
//!
//! Input: a click as a JSON object, such as
//! `{"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000}`.
//! Output: the same object plus fields derived from its URL and timestamp:
//!
//! | field      | value                                                         |
//! |------------|---------------------------------------------------------------|
//! | `domain`   | the URL's host, lower-cased, without port (`shop.example`)    |
//! | `path`     | the URL's path (`/products/42`; `/` when empty)               |
//! | `section`  | the path's first segment (`products`; `""` for `/`)           |
//! | `ref`, `utm_*` | those query parameters, percent-decoded, when present     |
//! | `hour`     | the UTC hour (0-23) of `ts` (milliseconds), when `ts` is a number |
//!
//! Derived fields overwrite input fields of the same name. Key and headers pass through.
//!
//! Config: `{ field = "url" }`: the field that holds the URL (default `url`).
//!
//! Errors: `bad-json` (value not a JSON object), `missing-field` (no string at `field`),
//! `bad-url` (not an absolute `scheme://host/...` URL).

use serde::Deserialize;
use serde_json::{Map, Value};
use weir_sdk::{Config, Enricher, Error, Record};

mod url;

pub use url::{Url, parse_url};

/// The stage's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEnrichConfig {
    /// The field that holds the URL.
    #[serde(default = "default_field")]
    pub field: String,
}

fn default_field() -> String {
    "url".to_owned()
}

/// The stage.
#[derive(Debug)]
pub struct JsonEnrich {
    field: String,
}

impl Enricher for JsonEnrich {
    type Output = Record;

    fn init(config: Config) -> Result<Self, Error> {
        let JsonEnrichConfig { field } = config.json()?;
        Ok(Self { field })
    }

    fn process(&mut self, mut record: Record) -> Result<Record, Error> {
        let enriched =
            enrich_value(record.value().unwrap_or_default(), &self.field).inspect_err(|e| {
                // The operator's first question about a bad click: which URL. Weir removes the
                // parts its `[privacy]` lists from log lines such as this one.
                if e.code() == "bad-url" {
                    weir_sdk::log::log(
                        weir_sdk::log::Level::Warn,
                        "Bad URL.",
                        &[("error", e.message())],
                    );
                }
            })?;
        record.set_value(enriched);
        Ok(record)
    }
}

weir_sdk::enricher!(type JsonEnrich);

/// The stage's logic on one value: parses `value` as a JSON object, derives the fields from the
/// URL in `field` and from `ts`, and returns the enriched object. Public so that a benchmark can
/// run the same logic natively and in wasm.
pub fn enrich_value(value: &[u8], field: &str) -> Result<Vec<u8>, Error> {
    let mut click = match serde_json::from_slice(value) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(Error::new("bad-json", "the value is not a JSON object")),
        Err(e) => {
            return Err(Error::new(
                "bad-json",
                format!("the value is not JSON: {e}"),
            ));
        }
    };
    let derived = derive(&click, field)?;
    click.extend(derived);
    // The enriched click is its input plus a few short fields.
    let mut out = Vec::with_capacity(value.len() + value.len() / 2 + 64);
    serde_json::to_writer(&mut out, &click)?;
    Ok(out)
}

/// The fields derived from a click, in order (a later field of the same name wins).
fn derive(click: &Map<String, Value>, field: &str) -> Result<Vec<(String, Value)>, Error> {
    let url = match click.get(field) {
        Some(Value::String(url)) => url,
        Some(_) => {
            return Err(Error::new(
                "missing-field",
                format!("`{field}` is not a string"),
            ));
        }
        None => return Err(Error::new("missing-field", format!("no `{field}` field"))),
    };
    let url =
        parse_url(url).ok_or_else(|| Error::new("bad-url", format!("cannot parse {url:?}")))?;

    let mut derived = vec![
        ("domain".into(), url.host.to_ascii_lowercase().into()),
        ("path".into(), url.path.into()),
        ("section".into(), url.section().into()),
    ];
    for (name, value) in url.query_pairs() {
        if name == "ref" || name.starts_with("utm_") {
            derived.push((name.into_owned(), value.into_owned().into()));
        }
    }
    if let Some(hour) = click.get("ts").and_then(utc_hour) {
        derived.push(("hour".into(), hour.into()));
    }
    Ok(derived)
}

/// The UTC hour of a millisecond timestamp.
fn utc_hour(ts: &Value) -> Option<u8> {
    const HOUR_MS: i64 = 3_600_000;
    let ms = ts.as_i64().or_else(|| ts.as_f64().map(|f| f as i64))?;
    Some(ms.div_euclid(HOUR_MS).rem_euclid(24) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing;

    const CLICK: &str = r#"{"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000,"ip":"81.2.69.160","ua":"Mozilla/5.0"}"#;

    fn enrich(value: &str) -> Result<Value, Error> {
        let out = enrich_value(value.as_bytes(), "url")?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn derives_fields_from_a_click() {
        let v = enrich(CLICK).unwrap();
        assert_eq!(v["domain"], "shop.example");
        assert_eq!(v["path"], "/products/42");
        assert_eq!(v["section"], "products");
        assert_eq!(v["ref"], "mail");
        assert_eq!(v["hour"], 22); // 2023-11-14T22:13:20Z
        assert_eq!(v["user"], "u17");
        assert_eq!(v["ua"], "Mozilla/5.0");
        assert!(v.get("utm_source").is_none());
    }

    #[test]
    fn copies_campaign_parameters() {
        let v = enrich(
            r#"{"url":"http://A.Example:8080/?utm_source=news%20letter&utm_medium=email&x=1#top"}"#,
        )
        .unwrap();
        assert_eq!(v["domain"], "a.example");
        assert_eq!(v["path"], "/");
        assert_eq!(v["section"], "");
        assert_eq!(v["utm_source"], "news letter");
        assert_eq!(v["utm_medium"], "email");
        assert!(v.get("x").is_none() && v.get("hour").is_none() && v.get("ref").is_none());
    }

    #[test]
    fn refuses_bad_inputs() {
        let code = |v: &str| enrich(v).unwrap_err().code().to_owned();
        assert_eq!(code("not json"), "bad-json");
        assert_eq!(code("[1,2]"), "bad-json");
        assert_eq!(code(""), "bad-json");
        assert_eq!(code(r#"{"user":"u1"}"#), "missing-field");
        assert_eq!(code(r#"{"url":42}"#), "missing-field");
        assert_eq!(code(r#"{"url":"/products/42"}"#), "bad-url");
        assert_eq!(code(r#"{"url":"https://"}"#), "bad-url");
    }

    #[test]
    fn runs_as_a_stage_with_config() {
        let click = Record::new(r#"{"link":"https://shop.example/cart","ts":0}"#)
            .with_key("u1")
            .with_header("trace", "t");
        let out = testing::run::<JsonEnrich>(r#"{"field":"link"}"#, vec![click, Record::new("{}")]);
        let enriched = &out[0].as_ref().unwrap()[0];
        assert_eq!(enriched.key(), Some(&b"u1"[..]));
        assert_eq!(enriched.header("trace"), Some(&b"t"[..]));
        let v: Value = enriched.value_json().unwrap();
        assert_eq!(
            (v["section"].as_str(), v["hour"].as_u64()),
            (Some("cart"), Some(0))
        );
        assert_eq!(out[1].as_ref().unwrap_err().code(), "missing-field");
    }

    #[test]
    fn defaults_and_refuses_config() {
        assert!(testing::Harness::new::<JsonEnrich>("").is_ok());
        assert!(testing::Harness::new::<JsonEnrich>("{}").is_ok());
        let err = testing::Harness::new::<JsonEnrich>(r#"{"feild":"url"}"#).unwrap_err();
        assert_eq!(err.code(), "bad-config");
    }
}
