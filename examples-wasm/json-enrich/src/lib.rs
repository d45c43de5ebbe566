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

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
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
/// URL in `field` and from `ts`, and returns the enriched object (keys sorted, compact; input
/// values written back as they were). Public so that a benchmark can run the same logic natively
/// and in wasm.
///
/// The input's values are never built into a tree: each is kept as its raw text, borrowed from
/// `value`, and only `field` and `ts` are decoded. That is most of the stage's cost saved over
/// parsing into a `serde_json::Value` and writing it all back.
pub fn enrich_value(value: &[u8], field: &str) -> Result<Vec<u8>, Error> {
    let mut click: BTreeMap<Key<'_>, Field<'_>> = match serde_json::from_slice::<Object<'_>>(value)
    {
        Ok(Object(map)) => map.into_iter().map(|(k, v)| (k, Field::Raw(v))).collect(),
        Err(e) if e.is_data() => {
            return Err(Error::new("bad-json", "the value is not a JSON object"));
        }
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
    out.push(b'{');
    for (n, (key, field)) in click.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &*key.0)?;
        out.push(b':');
        match field {
            Field::Raw(raw) => out.extend_from_slice(raw.get().as_bytes()),
            Field::Text(text) => serde_json::to_writer(&mut out, text)?,
            Field::Hour(hour) => serde_json::to_writer(&mut out, hour)?,
        }
    }
    out.push(b'}');
    Ok(out)
}

/// A JSON object's members, each value left as its raw text.
#[derive(Deserialize)]
struct Object<'a>(#[serde(borrow)] BTreeMap<Key<'a>, &'a RawValue>);

/// A member's name: borrowed from the input unless it holds escapes.
#[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'a> Key<'a> {
    fn new(name: impl Into<Cow<'a, str>>) -> Self {
        Self(name.into())
    }
}

/// A member's value in the output: as it came in, or derived.
enum Field<'a> {
    Raw(&'a RawValue),
    Text(String),
    Hour(u8),
}

/// The fields derived from a click, in order (a later field of the same name wins).
fn derive<'a>(
    click: &BTreeMap<Key<'a>, Field<'a>>,
    field: &str,
) -> Result<Vec<(Key<'a>, Field<'a>)>, Error> {
    let raw = |name: &str| match click.get(&Key(Cow::Borrowed(name))) {
        Some(Field::Raw(raw)) => Some(*raw),
        _ => None,
    };
    let not_a_string = || Error::new("missing-field", format!("`{field}` is not a string"));
    let url: Cow<'_, str> = match raw(field) {
        Some(raw) => serde_json::from_str(raw.get()).map_err(|_| not_a_string())?,
        None => return Err(Error::new("missing-field", format!("no `{field}` field"))),
    };
    let url =
        parse_url(&url).ok_or_else(|| Error::new("bad-url", format!("cannot parse {url:?}")))?;

    let mut derived = vec![
        (
            Key::new("domain"),
            Field::Text(url.host.to_ascii_lowercase()),
        ),
        (Key::new("path"), Field::Text(url.path.to_owned())),
        (Key::new("section"), Field::Text(url.section().to_owned())),
    ];
    for (name, value) in url.query_pairs() {
        if name == "ref" || name.starts_with("utm_") {
            derived.push((Key::new(name.into_owned()), Field::Text(value.into_owned())));
        }
    }
    if let Some(hour) = raw("ts").and_then(utc_hour) {
        derived.push((Key::new("hour"), Field::Hour(hour)));
    }
    Ok(derived)
}

/// The UTC hour of a millisecond timestamp (a JSON number, integer or not).
fn utc_hour(ts: &RawValue) -> Option<u8> {
    const HOUR_MS: i64 = 3_600_000;
    let ts: serde_json::Number = serde_json::from_str(ts.get()).ok()?;
    let ms = ts.as_i64().or_else(|| ts.as_f64().map(|f| f as i64))?;
    Some(ms.div_euclid(HOUR_MS).rem_euclid(24) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
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
    fn writes_input_members_back_as_they_were() {
        let input = r#"{"z":[1,{"b":null}],"n\u00e9":"q\"x","f":1.5e3,"domain":"old","url":"https:\/\/a.example\/x","f":2}"#;
        let out = String::from_utf8(enrich_value(input.as_bytes(), "url").unwrap()).unwrap();
        // Sorted keys, compact; raw values verbatim; a repeated key's last value; derived
        // fields over input ones; the URL read through its escapes.
        assert_eq!(
            out,
            r#"{"domain":"a.example","f":2,"né":"q\"x","path":"/x","section":"x","url":"https:\/\/a.example\/x","z":[1,{"b":null}]}"#
        );
        let v = enrich(r#"{"url":"https://a.example/","ts":3.6e6}"#).unwrap();
        assert_eq!(v["hour"], 1);
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
