//! Example Weir stage: filter.
//!
//! Drops the records whose JSON value matches a rule and passes the others through unchanged.
//!
//! Config:
//! - `{ pointer = "/ua_is_bot", equals = true }`: drop a record when the value at that
//!   [JSON pointer](https://www.rfc-editor.org/rfc/rfc6901) equals `equals` (any JSON value).
//! - none (the default): drop a record when its `/ua` is a string containing `bot`, in any case.
//!
//! Errors: `bad-json` (the value is not JSON); `bad-config` refuses a `pointer` without `equals`
//! (or the reverse) and a pointer that does not start with `/`. Each dropped record adds 1 to the
//! stage's `dropped` counter.

use serde::Deserialize;
use serde_json::Value;
use weir_sdk::{Config, Error, Filter, RecordView, metrics};

/// The stage's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub pointer: Option<String>,
    pub equals: Option<Value>,
}

/// What makes a record drop.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The value at `pointer` equals `value`.
    Equals { pointer: String, value: Value },
    /// `/ua` contains `bot`, in any case.
    Bot,
}

impl Rule {
    /// Whether `value` matches, so its record drops.
    pub fn matches(&self, value: &Value) -> bool {
        match self {
            Rule::Equals {
                pointer,
                value: want,
            } => value.pointer(pointer) == Some(want),
            Rule::Bot => value
                .pointer("/ua")
                .and_then(Value::as_str)
                .is_some_and(|ua| {
                    ua.as_bytes()
                        .windows(3)
                        .any(|w| w.eq_ignore_ascii_case(b"bot"))
                }),
        }
    }
}

impl TryFrom<FilterConfig> for Rule {
    type Error = Error;

    fn try_from(config: FilterConfig) -> Result<Self, Error> {
        match (config.pointer, config.equals) {
            (None, None) => Ok(Rule::Bot),
            (Some(pointer), Some(value)) if pointer.starts_with('/') => {
                Ok(Rule::Equals { pointer, value })
            }
            (Some(pointer), Some(_)) => Err(Error::new(
                "bad-config",
                format!("`pointer` must start with `/`: {pointer:?}"),
            )),
            _ => Err(Error::new(
                "bad-config",
                "`pointer` and `equals` go together",
            )),
        }
    }
}

/// The stage. It only reads records, so it is a [`Filter`]: each record is seen through a
/// borrowed view, and a kept one goes on unchanged without being copied.
#[derive(Debug)]
pub struct RuleFilter {
    rule: Rule,
}

impl Filter for RuleFilter {
    fn init(config: Config) -> Result<Self, Error> {
        let rule = config.json::<FilterConfig>()?.try_into()?;
        Ok(Self { rule })
    }

    fn keep(&mut self, record: &RecordView<'_>) -> Result<bool, Error> {
        let value: Value = serde_json::from_slice(record.value().unwrap_or_default())?;
        if self.rule.matches(&value) {
            metrics::counter_add("dropped", 1);
            return Ok(false);
        }
        Ok(true)
    }
}

weir_sdk::filter!(type RuleFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::{Record, testing};

    fn kept(config: &str, values: &[&str]) -> Vec<Result<bool, String>> {
        let records = values.iter().map(|v| Record::new(*v)).collect();
        testing::run_filter::<RuleFilter>(config, records)
            .into_iter()
            .map(|o| {
                o.map(|outs| outs.len() == 1)
                    .map_err(|e| e.code().to_owned())
            })
            .collect()
    }

    #[test]
    fn drops_bots_by_default() {
        let got = kept(
            "{}",
            &[
                r#"{"ua":"Googlebot/2.1"}"#,
                r#"{"ua":"Mozilla/5.0"}"#,
                r#"{"ua":"ROBOTS"}"#,
                r#"{"user":"u1"}"#,
                r#"{"ua":7}"#,
                "not json",
            ],
        );
        assert_eq!(
            got,
            [
                Ok(false),
                Ok(true),
                Ok(false),
                Ok(true),
                Ok(true),
                Err("bad-json".into())
            ]
        );
    }

    #[test]
    fn drops_on_a_configured_pointer() {
        let got = kept(
            r#"{"pointer":"/flags/ua_is_bot","equals":true}"#,
            &[
                r#"{"flags":{"ua_is_bot":true}}"#,
                r#"{"flags":{"ua_is_bot":false}}"#,
                r#"{"flags":{"ua_is_bot":"true"}}"#,
                r#"{"ua":"bot"}"#,
            ],
        );
        assert_eq!(got, [Ok(false), Ok(true), Ok(true), Ok(true)]);
    }

    #[test]
    fn passes_kept_records_unchanged() {
        let r = Record::new(r#"{"ua":"curl"}"#)
            .with_key("k")
            .with_header("h", "v");
        assert_eq!(
            testing::run_filter::<RuleFilter>("", vec![r.clone()]),
            [Ok(vec![r])]
        );
    }

    #[test]
    fn refuses_half_a_rule() {
        for bad in [
            r#"{"pointer":"/a"}"#,
            r#"{"equals":1}"#,
            r#"{"pointer":"a","equals":1}"#,
            r#"{"pointr":"/a"}"#,
        ] {
            let err = testing::Harness::filter::<RuleFilter>(bad).unwrap_err();
            assert_eq!(err.code(), "bad-config", "{bad}");
        }
    }
}
