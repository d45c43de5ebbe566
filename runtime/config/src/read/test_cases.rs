//! `[[test]]` tables, for `weir test`.

use crate::model::{Expectation, TestCase, TestRecord};
use crate::reader::{Value, collect_all};
use crate::report::Report;
use crate::validate::{Crossrefs, Written};

use super::{array_of_tables, item_label};

pub(super) fn test_cases(
    value: &Value<'_, '_>,
    report: &mut Report<'_>,
    refs: &mut Crossrefs,
) -> Option<Vec<TestCase>> {
    let items = array_of_tables(value, report, "test")?;
    let test_cases = items
        .iter()
        .enumerate()
        .map(|(index, item)| test_case(item, index, report, refs));
    collect_all(test_cases)
}

fn test_case(
    value: &Value<'_, '_>,
    index: usize,
    report: &mut Report<'_>,
    refs: &mut Crossrefs,
) -> Option<TestCase> {
    let label = item_label("test", value, index);
    let mut table = value.table(report)?.owned_by(label);
    let name = table
        .required(report, "name")
        .and_then(|value| value.non_empty_string(report));
    let input = table.required(report, "input").and_then(|value| {
        let records = value.non_empty_array(report)?;
        collect_all(records.iter().map(|record| test_record(record, report)))
    });
    let expect = table.required(report, "expect").and_then(|value| {
        let expectations = value.non_empty_array(report)?;
        let expectations = expectations
            .iter()
            .map(|expectation| self::expectation(expectation, report, refs));
        collect_all(expectations)
    });
    table.finish(report);
    Some(TestCase {
        name: name?,
        input: input?,
        expect: expect?,
    })
}

fn test_record(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<TestRecord> {
    let mut table = value.table(report)?;
    let key = table.optional("key", |value| value.string(report));
    let record_value = table
        .required(report, "value")
        .and_then(|value| value.string(report));
    let headers = table.with_default("headers", Vec::new(), |value| {
        value.string_table(report, false)
    });
    let timestamp = table.optional("timestamp", |value| value.integer(report));
    table.finish(report);
    Some(TestRecord {
        key: key?,
        value: record_value?,
        headers: headers?,
        timestamp: timestamp?,
    })
}

fn expectation(
    value: &Value<'_, '_>,
    report: &mut Report<'_>,
    refs: &mut Crossrefs,
) -> Option<Expectation> {
    let mut table = value.table(report)?;
    let stage = table.required(report, "stage").and_then(|value| {
        let stage = value.string(report)?;
        refs.expected_stages
            .push(Written::new(&value, stage.clone()));
        Some(stage)
    });
    let expected_value = table.optional("value", |value| value.string(report));
    let value_contains = table.optional("value_contains", |value| value.string(report));
    let key = table.optional("key", |value| value.string(report));
    let count = table.optional("count", |value| value.integer_in(report, 0..));
    let error = table.optional("error", |value| value.non_empty_string(report));
    let checks = ["value", "value_contains", "key", "count", "error"];
    if !checks.iter().any(|check| table.contains(check)) {
        table.error(
            report,
            "nothing to check: add value, value_contains, key, count or error",
        );
    }
    table.finish(report);
    Some(Expectation {
        stage: stage?,
        value: expected_value?,
        value_contains: value_contains?,
        key: key?,
        count: count?,
        error: error?,
    })
}
