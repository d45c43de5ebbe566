//! Example Weir stage: flat-map.
//!
//! Splits an order into one record per item: `{"order":"o1","items":[{"sku":"a"},{"sku":"b"}]}`
//! becomes `{"sku":"a","order":"o1","index":0}` and `{"sku":"b","order":"o1","index":1}`. Each
//! output keeps the order's key, headers and timestamp; an order without items produces no
//! output (it is filtered out). No config.
//!
//! Errors: `bad-json` (the value is not a JSON object), `missing-field` (no `items` array),
//! `bad-item` (an item is not an object).

use serde_json::Value;
use weir_sdk::{Error, Record};

/// The stage: one record per item of the order.
pub fn split_order(mut record: Record) -> Result<Vec<Record>, Error> {
    let value = record.take_value().unwrap_or_default();
    let Value::Object(mut order) = serde_json::from_slice(&value)? else {
        return Err(Error::new("bad-json", "the value is not a JSON object"));
    };
    let Some(Value::Array(items)) = order.remove("items") else {
        return Err(Error::new("missing-field", "no `items` array"));
    };
    let order_id = order.remove("order");

    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let Value::Object(mut item) = item else {
                return Err(Error::new(
                    "bad-item",
                    format!("item {index} is not an object"),
                ));
            };
            if let Some(id) = &order_id {
                item.insert("order".into(), id.clone());
            }
            item.insert("index".into(), index.into());
            Ok(record
                .clone()
                .with_value(serde_json::to_vec(&Value::Object(item))?))
        })
        .collect()
}

weir_sdk::enricher!(split_order);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing;

    fn values(outputs: &[Record]) -> Vec<Value> {
        outputs.iter().map(|r| r.value_json().unwrap()).collect()
    }

    #[test]
    fn one_record_per_item() {
        let order = Record::new(r#"{"order":"o1","items":[{"sku":"a"},{"sku":"b","qty":2}]}"#)
            .with_key("c9")
            .with_header("trace", "t")
            .with_timestamp(5);
        let out = testing::run_fn(split_order, vec![order]);
        let outputs = out[0].as_ref().unwrap();
        assert_eq!(
            values(outputs),
            [
                serde_json::json!({"sku":"a","order":"o1","index":0}),
                serde_json::json!({"sku":"b","qty":2,"order":"o1","index":1}),
            ]
        );
        for r in outputs {
            assert_eq!(
                (r.key(), r.header("trace"), r.timestamp()),
                (Some(&b"c9"[..]), Some(&b"t"[..]), Some(5))
            );
        }
    }

    #[test]
    fn an_empty_order_produces_nothing() {
        let out = testing::run_fn(
            split_order,
            vec![Record::new(r#"{"order":"o2","items":[]}"#)],
        );
        assert_eq!(out, [Ok(vec![])]);
    }

    #[test]
    fn refuses_what_is_not_an_order() {
        let codes: Vec<_> = testing::run_fn(
            split_order,
            [
                "{",
                "[]",
                r#"{"order":"o3"}"#,
                r#"{"items":{}}"#,
                r#"{"items":[1]}"#,
            ]
            .map(Record::new)
            .into(),
        )
        .into_iter()
        .map(|o| o.unwrap_err().code().to_owned())
        .collect();
        assert_eq!(
            codes,
            [
                "bad-json",
                "bad-json",
                "missing-field",
                "missing-field",
                "bad-item"
            ]
        );
    }
}
