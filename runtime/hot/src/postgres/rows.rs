//! From outputs to the rows of one statement: each record's value (a JSON object) gives the
//! mapped columns, the output gives the provenance columns, each as the text the column's type
//! reads (a JSON string as it is, a number or boolean as written, an object or array as JSON
//! text, `null` or a missing field as `NULL`); the statement takes them as one text array per
//! column.

use serde_json::Value;
use tokio_postgres::types::ToSql;
use weir_core::trace::{self, SpanId, TraceId};
use weir_core::{Output, Refused};

use super::Layout;
use crate::provenance;

/// One output made into a row.
#[derive(Debug)]
pub(super) struct Row {
    /// Index of the output in the write.
    pub index: usize,
    /// The row's values, in the statement's column order.
    pub values: Vec<Option<String>>,
    /// The record's trace: (trace id, its span, sampled).
    pub trace: Option<(TraceId, SpanId, bool)>,
}

/// The text a column reads for a JSON value.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// The rows of `outputs`, and the outputs refused because their value is not a JSON object.
pub(super) fn rows(layout: &Layout, outputs: &[Output<'_>]) -> (Vec<Row>, Vec<(usize, Refused)>) {
    let mut rows = Vec::with_capacity(outputs.len());
    let mut refused = Vec::new();
    let numbered = outputs.iter().zip(provenance::output_indexes(outputs));
    for (index, (output, nth)) in numbered.enumerate() {
        let value = output
            .record
            .value
            .as_deref()
            .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok());
        let Some(value) = value.filter(Value::is_object) else {
            refused.push((
                index,
                Refused::new(
                    "the value is not a JSON object, which a postgres sink's rows are made of",
                ),
            ));
            continue;
        };
        let trace = provenance::trace(output.record);
        let mut values = Vec::with_capacity(layout.fields.len() + 5);
        for (_, pointer, json) in &layout.fields {
            let field = value.pointer(pointer);
            values.push(match json {
                // A json or jsonb column takes the field as JSON: a string stays a string.
                true => field.filter(|v| !v.is_null()).map(Value::to_string),
                false => field.and_then(text),
            });
        }
        if layout.provenance {
            values.push(Some(output.source_topic.to_owned()));
            values.push(Some(output.source_partition.to_string()));
            values.push(Some(output.ack.offset().to_string()));
            values.push(Some(nth.to_string()));
            values.push(trace.map(|(t, _, _)| trace::hex(&t)));
        }
        rows.push(Row {
            index,
            values,
            trace,
        });
    }
    (rows, refused)
}

/// The rows one upsert statement writes: the last row of each key (a statement may not update
/// one row twice), `key` being the key columns' positions. The rows of a key it skips were
/// written over by a later one. A row with a `NULL` in its key is always kept: a unique index
/// holds any number of them. (Keys spelled differently but equal once typed, such as `1` and
/// `1.0` for a numeric key, still meet in the statement: the server refuses it with 21000, and
/// the batch is written row by row instead.)
pub(super) fn latest_per_key<'r>(rows: &'r [Row], key: &[usize]) -> Vec<&'r Row> {
    let mut seen = std::collections::HashSet::new();
    let mut latest: Vec<&Row> = rows
        .iter()
        .rev()
        .filter(|row| {
            let values: Vec<&Option<String>> = key.iter().map(|&k| &row.values[k]).collect();
            values.iter().any(|v| v.is_none()) || seen.insert(values)
        })
        .collect();
    latest.reverse();
    latest
}

/// The statement's parameters for `rows`: one text array per column.
pub(super) fn columns<'r>(rows: &[&'r Row], width: usize) -> Vec<Vec<Option<&'r str>>> {
    (0..width)
        .map(|i| rows.iter().map(|row| row.values[i].as_deref()).collect())
        .collect()
}

/// `columns` as the driver takes parameters.
pub(super) fn params<'c>(columns: &'c [Vec<Option<&str>>]) -> Vec<&'c (dyn ToSql + Sync)> {
    columns
        .iter()
        .map(|column| column as &(dyn ToSql + Sync))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: usize, id: i64, page: &str) -> Row {
        Row {
            index,
            values: vec![Some(id.to_string()), Some(page.into())],
            trace: None,
        }
    }

    #[test]
    fn an_upsert_keeps_the_last_row_of_each_key_in_order() {
        let mut rows = vec![
            row(0, 1, "a"),
            row(1, 2, "b"),
            row(2, 1, "c"),
            row(3, 3, "d"),
            row(4, 0, "e"),
            row(5, 0, "f"),
        ];
        // Two rows without a key: both kept, as a unique index keeps both.
        rows[4].values[0] = None;
        rows[5].values[0] = None;
        let kept: Vec<usize> = latest_per_key(&rows, &[0])
            .iter()
            .map(|r| r.index)
            .collect();
        assert_eq!(kept, [1, 2, 3, 4, 5]);
        let all: Vec<&Row> = rows.iter().collect();
        assert_eq!(
            columns(&all[..2], 2),
            [vec![Some("1"), Some("2")], vec![Some("a"), Some("b")]]
        );
    }

    #[test]
    fn json_values_become_the_text_their_column_reads() {
        assert_eq!(text(&Value::Null), None);
        assert_eq!(text(&serde_json::json!("it's")), Some("it's".into()));
        assert_eq!(text(&serde_json::json!(42)), Some("42".into()));
        assert_eq!(text(&serde_json::json!(1.5)), Some("1.5".into()));
        assert_eq!(text(&serde_json::json!(true)), Some("true".into()));
        assert_eq!(
            text(&serde_json::json!({"a": [1, null]})),
            Some(r#"{"a":[1,null]}"#.into())
        );
    }
}
