//! From outputs to the rows of one statement: each record's value (a JSON object) gives the
//! mapped columns, the output gives the provenance columns, and the rows go to the server as one
//! JSON array of objects keyed by column name.

use std::sync::Arc;

use serde_json::{Map, Value};
use weir_core::trace::{self, SpanId, TRACEPARENT, TraceId};
use weir_core::{Output, Refused};

use super::Layout;

/// One output made into a row.
#[derive(Debug)]
pub(super) struct Row {
    /// Index of the output in the write.
    pub index: usize,
    /// The row, as a JSON object keyed by column name.
    pub object: Map<String, Value>,
    /// The record's trace: (trace id, its span, sampled).
    pub trace: Option<(TraceId, SpanId, bool)>,
}

/// The rows of `outputs`, and the outputs refused because their value is not a JSON object.
pub(super) fn rows(layout: &Layout, outputs: &[Output<'_>]) -> (Vec<Row>, Vec<(usize, Refused)>) {
    let mut rows = Vec::with_capacity(outputs.len());
    let mut refused = Vec::new();
    // The index of each output among the outputs of its input record: outputs of one input are
    // next to each other in a write.
    let mut previous: Option<(*const weir_core::InputAck, i64)> = None;
    for (index, output) in outputs.iter().enumerate() {
        let ack = Arc::as_ptr(output.ack);
        let nth = match previous {
            Some((p, n)) if p == ack => n + 1,
            _ => 0,
        };
        previous = Some((ack, nth));
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
        let trace = output
            .record
            .headers
            .get(TRACEPARENT)
            .flatten()
            .and_then(trace::parse_traceparent);
        let mut object = Map::with_capacity(layout.fields.len() + 5);
        for (column, pointer) in &layout.fields {
            let field = value.pointer(pointer).cloned().unwrap_or(Value::Null);
            object.insert(column.clone(), field);
        }
        if layout.provenance {
            object.insert("weir_topic".into(), Value::from(output.source_topic));
            object.insert(
                "weir_partition".into(),
                Value::from(output.source_partition),
            );
            object.insert("weir_offset".into(), Value::from(output.ack.offset()));
            object.insert("weir_output".into(), Value::from(nth));
            let trace_id = trace.map(|(t, _, _)| Value::from(trace::hex(&t)));
            object.insert("weir_trace_id".into(), trace_id.unwrap_or(Value::Null));
        }
        rows.push(Row {
            index,
            object,
            trace,
        });
    }
    (rows, refused)
}

/// The rows one upsert statement writes: the last row of each key (a statement may not update
/// one row twice). Every row stays acknowledged by the statement: the rows of a key it skips
/// were written over by a later one.
pub(super) fn latest_per_key<'r>(rows: &'r [Row], key: &[String]) -> Vec<&'r Row> {
    let mut seen = std::collections::HashSet::new();
    let mut latest: Vec<&Row> = rows
        .iter()
        .rev()
        .filter(|row| {
            let key: Vec<&Value> = key.iter().map(|k| &row.object[k]).collect();
            seen.insert(serde_json::to_string(&key).unwrap_or_default())
        })
        .collect();
    latest.reverse();
    latest
}

/// The JSON array of `rows`, the statement's one parameter.
pub(super) fn json<'r>(rows: impl IntoIterator<Item = &'r Row>) -> String {
    let array: Vec<&Map<String, Value>> = rows.into_iter().map(|row| &row.object).collect();
    serde_json::to_string(&array).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: usize, id: i64, page: &str) -> Row {
        let mut object = Map::new();
        object.insert("id".into(), Value::from(id));
        object.insert("page".into(), Value::from(page));
        Row {
            index,
            object,
            trace: None,
        }
    }

    #[test]
    fn an_upsert_keeps_the_last_row_of_each_key_in_order() {
        let rows = [
            row(0, 1, "a"),
            row(1, 2, "b"),
            row(2, 1, "c"),
            row(3, 3, "d"),
        ];
        let kept: Vec<usize> = latest_per_key(&rows, &["id".into()])
            .iter()
            .map(|r| r.index)
            .collect();
        assert_eq!(kept, [1, 2, 3]);
        assert_eq!(json(&rows[..1]), r#"[{"id":1,"page":"a"}]"#);
    }
}
