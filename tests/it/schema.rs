//! Schema gates end to end: records that do not match a stage's `input_schema` or whose outputs
//! do not match its `output_schema` are dead-lettered as `schema-invalid` with the keyword and
//! where, while the valid records of the same batches flow on; a schema that is not one is
//! refused by `weir validate` with its line.

use std::time::Duration;

use crate::harness::{
    Rec, Weir, consume, create_topic, module, one_stage_pipeline, produce, source_table, unique,
    weir_cli, write_pipeline,
};

#[test]
fn records_that_break_a_schema_are_dead_lettered_and_the_rest_flow_on() {
    const N: usize = 60;
    let (input, output, dlq) = (unique("in"), unique("out"), unique("dlq"));
    create_topic(&input, 2);
    create_topic(&output, 2);
    create_topic(&dlq, 1);
    let gates = r#"config = { field = "url" }
input_schema = { type = "object", required = ["user", "url"], properties = { url = { type = "string", pattern = "^https://" } } }
output_schema = { type = "object", properties = { section = { enum = ["products", "search", "cart"] } } }"#;
    let toml = one_stage_pipeline(
        "gated",
        &source_table(&[&input], &unique("group")),
        "enrich",
        &module("json_enrich"),
        gates,
        &output,
        &dlq,
    );
    let (_dir, pipeline) = write_pipeline(&toml);
    let sections = ["products", "search", "cart"];
    let mut records: Vec<Rec> = (0..N)
        .map(|i| {
            let url = format!("https://shop.example/{}/{i}", sections[i % 3]);
            Rec::new(
                i as i32 % 2,
                &format!("ok-{i}"),
                format!(r#"{{"user":"u{i}","url":"{url}"}}"#),
            )
        })
        .collect();
    // Each breaks the input gate, but for the last, which breaks the output gate: json_enrich
    // derives section "account", which the output schema does not allow.
    records.push(Rec::new(
        0,
        "no-user",
        r#"{"url":"https://shop.example/cart/1"}"#,
    ));
    records.push(Rec::new(
        1,
        "plain-http",
        r#"{"user":"u","url":"http://shop.example/cart/1"}"#,
    ));
    records.push(Rec::new(0, "not-json", "<html>"));
    records.push(Rec::new(
        1,
        "bad-section",
        r#"{"user":"u","url":"https://shop.example/account/1"}"#,
    ));
    produce(&input, &records);

    let weir = Weir::run(&pipeline);
    let out = consume(&output, N, Duration::from_secs(60));
    let letters = consume(&dlq, 4, Duration::from_secs(30));
    weir.terminate();

    let mut keys: Vec<String> = out
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap()).into())
        .collect();
    keys.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("ok-{i}")).collect();
    expected.sort();
    assert_eq!(keys, expected, "every valid record, once");
    let mut got: Vec<(String, String, String)> = letters
        .iter()
        .map(|l| {
            (
                String::from_utf8_lossy(l.key.as_deref().unwrap()).into_owned(),
                l.header_str("weir.error.kind").unwrap_or_default(),
                l.header_str("weir.error.code").unwrap_or_default(),
            )
        })
        .collect();
    got.sort();
    let invalid =
        |key: &str, code: &str| (key.to_owned(), "schema-invalid".to_owned(), code.to_owned());
    assert_eq!(
        got,
        [
            invalid("bad-section", "enum"),
            invalid("no-user", "required"),
            invalid("not-json", "json"),
            invalid("plain-http", "pattern"),
        ],
        "{letters:?}"
    );
    let message = |key: &str| {
        let letter = letters
            .iter()
            .find(|l| l.key.as_deref() == Some(key.as_bytes()))
            .unwrap();
        letter.header_str("weir.error.message").unwrap_or_default()
    };
    assert!(
        message("plain-http").starts_with("input schema: at /url: "),
        "{}",
        message("plain-http")
    );
    assert!(
        message("bad-section").starts_with("output schema: at /section: "),
        "{}",
        message("bad-section")
    );
    // The letter holds the record as it entered the stage.
    let bad = letters
        .iter()
        .find(|l| l.key.as_deref() == Some(&b"bad-section"[..]))
        .unwrap();
    assert_eq!(
        bad.value_str(),
        r#"{"user":"u","url":"https://shop.example/account/1"}"#
    );
}

#[test]
fn a_schema_that_is_not_one_is_refused_by_validate_with_its_line() {
    let toml = one_stage_pipeline(
        "gated",
        &source_table(&["in"], "group"),
        "enrich",
        &module("json_enrich"),
        "input_schema = { type = 7 }",
        "out",
        "dlq",
    );
    let (_dir, pipeline) = write_pipeline(&toml);
    let (ok, _, stderr) = weir_cli(&["validate", pipeline.to_str().unwrap()]);
    assert!(!ok, "validate accepted an invalid schema");
    let line = toml
        .lines()
        .position(|l| l.starts_with("input_schema"))
        .unwrap()
        + 1;
    let expected =
        format!("pipeline.toml:{line}:16: stage \"enrich\": input_schema: not a valid JSON Schema");
    assert!(stderr.contains(&expected), "{expected} not in {stderr}");
}
