//! A stage's `input_schema` and `output_schema`: JSON Schemas (draft 2020-12), from a file
//! next to the pipeline or written inline, checked when the pipeline is read.

use std::path::Path;

use toml::de::DeValue;

use crate::model::SchemaGate;
use crate::reader::Value;
use crate::report::Report;

/// `"file.json"` (relative to the pipeline file) or an inline table.
pub(super) fn gate(
    value: &Value<'_, '_>,
    base: &Path,
    report: &mut Report<'_>,
) -> Option<SchemaGate> {
    let (schema, file) = match value.raw() {
        DeValue::String(_) => {
            let path = base.join(value.non_empty_string(report)?);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) => {
                    value.error(
                        report,
                        format_args!("cannot read {}: {error}", path.display()),
                    );
                    return None;
                }
            };
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(schema) => (schema, Some(path)),
                Err(error) => {
                    value.error(
                        report,
                        format_args!("{} is not JSON: {error}", path.display()),
                    );
                    return None;
                }
            }
        }
        _ => (value.json_object(report)?, None),
    };
    if let Err(error) = jsonschema::draft202012::new(&schema) {
        let at = error.instance_path().to_string();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" at {at}")
        };
        value.error(
            report,
            format_args!("not a valid JSON Schema (draft 2020-12){at}: {error}"),
        );
        return None;
    }
    Some(SchemaGate { schema, file })
}
