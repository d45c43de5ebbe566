//! Which Redis key an output goes to: its `key` template filled from the record's value, or the
//! record's own key.

use serde_json::Value;
use weir_config::{KeyPart, key_template};
use weir_core::{Record, Refused};

/// What `db.collection.name` says when the sink writes to the records' own keys.
const RECORD_KEY: &str = "<record key>";

/// A sink's `key`, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyTemplate {
    /// `None`: the record's own key.
    parts: Option<Vec<KeyPart>>,
    /// The template as written, for telemetry.
    text: String,
}

impl KeyTemplate {
    /// Parses `template` (`None`: use the record's own key).
    pub(super) fn parse(template: Option<&str>) -> Result<Self, String> {
        Ok(match template {
            None => Self {
                parts: None,
                text: RECORD_KEY.to_owned(),
            },
            Some(text) => Self {
                parts: Some(key_template(text)?),
                text: text.to_owned(),
            },
        })
    }

    /// The key space, as `db.collection.name`: the template's text, or `<record key>`.
    pub(super) fn collection(&self) -> &str {
        &self.text
    }

    /// The Redis key for `record`, or why it has none.
    pub(super) fn key(&self, record: &Record) -> Result<Vec<u8>, Refused> {
        let Some(parts) = &self.parts else {
            return match &record.key {
                Some(key) => Ok(key.to_vec()),
                None => Err(Refused::new(
                    "the record has no key, and the sink has no key template to make one",
                )),
            };
        };
        if !parts.iter().any(|part| matches!(part, KeyPart::Field(_))) {
            return Ok(fill(parts, &Value::Null)?.into_bytes());
        }
        let Some(bytes) = &record.value else {
            return Err(Refused::new(
                "the record has no value, from which the key template takes its fields",
            ));
        };
        let value: Value = serde_json::from_slice(bytes).map_err(|error| {
            Refused::new(format!(
                "the value is not JSON, from which the key template takes its fields: {error}"
            ))
        })?;
        Ok(fill(parts, &value)?.into_bytes())
    }
}

/// `parts` with each field replaced by that field of `value`: a string as is, a number or a
/// boolean as its JSON text.
fn fill(parts: &[KeyPart], value: &Value) -> Result<String, Refused> {
    let mut key = String::new();
    for part in parts {
        match part {
            KeyPart::Text(text) => key.push_str(text),
            KeyPart::Field(pointer) => match value.pointer(pointer) {
                Some(Value::String(text)) => key.push_str(text),
                Some(scalar @ (Value::Number(_) | Value::Bool(_))) => {
                    key.push_str(&scalar.to_string());
                }
                _ => {
                    return Err(Refused {
                        reason: format!(
                            "the key template names field {pointer}, which the value lacks or \
                             is not a string or number"
                        ),
                        field: Some(pointer.clone()),
                        code: None,
                    });
                }
            },
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use weir_core::Bytes;

    use super::*;

    fn record(key: Option<&str>, value: &str) -> Record {
        Record {
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            ..Record::default()
        }
    }

    fn key(template: Option<&str>, record: &Record) -> Result<String, Refused> {
        let template = KeyTemplate::parse(template).expect("a valid template");
        template
            .key(record)
            .map(|bytes| String::from_utf8(bytes).expect("utf-8"))
    }

    #[test]
    fn fields_are_filled_from_the_value() {
        let value = r#"{"user":"ada","n":42,"f":1.5,"ok":true,"a/b":"slash","deep":{"x":"y"}}"#;
        let r = record(None, value);
        assert_eq!(key(Some("user:{/user}"), &r).unwrap(), "user:ada");
        assert_eq!(key(Some("{/n}-{/f}-{/ok}"), &r).unwrap(), "42-1.5-true");
        assert_eq!(key(Some("{/a~1b}:{/deep/x}"), &r).unwrap(), "slash:y");
        assert_eq!(key(Some("{{{/user}}}"), &r).unwrap(), "{ada}");
        assert_eq!(
            key(Some("constant"), &record(None, "not json")).unwrap(),
            "constant"
        );
    }

    #[test]
    fn a_field_that_is_missing_or_not_a_scalar_is_refused_by_name() {
        let r = record(None, r#"{"user":null,"obj":{},"list":[1]}"#);
        for pointer in ["/user", "/obj", "/list", "/missing"] {
            let refused = key(Some(&format!("k:{{{pointer}}}")), &r).unwrap_err();
            assert_eq!(refused.field.as_deref(), Some(pointer));
            assert_eq!(refused.code, None);
            assert!(refused.reason.contains(pointer), "{}", refused.reason);
        }
    }

    #[test]
    fn a_value_that_is_not_json_is_refused_when_fields_are_needed() {
        let refused = key(Some("k:{/id}"), &record(None, "plain text")).unwrap_err();
        assert!(refused.reason.contains("not JSON"), "{}", refused.reason);
        assert_eq!(refused.field, None);
        let empty = Record::default();
        assert!(key(Some("k:{/id}"), &empty).is_err());
    }

    #[test]
    fn without_a_template_the_record_key_is_used_as_is() {
        let template = KeyTemplate::parse(None).unwrap();
        assert_eq!(template.collection(), "<record key>");
        let r = Record {
            key: Some(Bytes::from_static(&[0xff, 0x00, b'k'])),
            ..Record::default()
        };
        assert_eq!(template.key(&r).unwrap(), vec![0xff, 0x00, b'k']);
        assert!(template.key(&record(None, "{}")).is_err());
        assert_eq!(
            KeyTemplate::parse(Some("user:{/user}"))
                .unwrap()
                .collection(),
            "user:{/user}"
        );
        assert!(KeyTemplate::parse(Some("{user}")).is_err());
    }
}
