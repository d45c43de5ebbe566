use serde_json::json;
use weir_core::Outputs;

use super::*;

fn record(value: &str) -> Record {
    Record {
        value: Some(value.as_bytes().to_vec().into()),
        ..Record::EMPTY
    }
}

fn gates(input: Option<serde_json::Value>, output: Option<serde_json::Value>) -> Arc<Gates> {
    let gate = |schema| SchemaGate { schema, file: None };
    let (input, output) = (input.map(gate), output.map(gate));
    Gates::new(input.as_ref(), output.as_ref(), "s").unwrap()
}

#[test]
fn records_that_fail_the_input_gate_never_reach_the_stage() {
    let gates = gates(Some(json!({"type": "object", "required": ["user"]})), None);
    let inputs = [
        record(r#"{"user":"a"}"#),
        record(r#"{"id":1}"#),
        record("nope"),
        record(r#"{"user":"b"}"#),
    ];
    let mut seen = Vec::new();
    let (outcomes, checked) = gated(&gates, &inputs, |passed| {
        seen = passed.to_vec();
        passed.iter().map(|_| Ok(Outputs::Input)).collect()
    });
    assert_eq!(seen, [inputs[0].clone(), inputs[3].clone()]);
    assert!(outcomes[0].is_ok() && outcomes[3].is_ok());
    let failure = outcomes[1].as_ref().unwrap_err();
    assert_eq!(failure.kind, FailureKind::SchemaInvalid);
    assert_eq!(failure.code, "required");
    assert!(
        failure.message.starts_with("input schema: at /: "),
        "{}",
        failure.message
    );
    assert_eq!(outcomes[2].as_ref().unwrap_err().code, "json");
    assert_eq!(checked.input_valid, 2);
    assert_eq!(checked.input_invalid, ["required", "json"]);
    assert_eq!((checked.output_valid, checked.output_invalid.len()), (0, 0));
}

#[test]
fn an_input_with_one_bad_output_fails_whole() {
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "maximum": 9}}});
    let gates = gates(None, Some(schema));
    let inputs = [record("{}"), record("{}")];
    let (outcomes, checked) = gated(&gates, &inputs, |_| {
        vec![
            Ok(Outputs::Records(vec![
                record(r#"{"n":1}"#),
                record(r#"{"n":10}"#),
            ])),
            Ok(Outputs::Records(vec![record(r#"{"n":2}"#)])),
        ]
    });
    let failure = outcomes[0].as_ref().unwrap_err();
    assert_eq!(failure.code, "maximum");
    assert!(failure.message.contains("at /n"), "{}", failure.message);
    assert_eq!(outcomes[1].as_ref().unwrap().len(), 1);
    // {"n":1} and {"n":2} passed; the first input's second output was refused.
    assert_eq!(checked.output_valid, 2);
    assert_eq!(checked.output_invalid, ["maximum"]);
}

#[test]
fn messages_stay_bounded() {
    let gates = gates(
        Some(json!({"type": "array", "items": {"type": "string", "maxLength": 1}})),
        None,
    );
    let long = format!(
        "[{}]",
        vec![format!("\"{}\"", "x".repeat(300)); 50].join(",")
    );
    let (outcomes, _) = gated(&gates, &[record(&long)], |p| {
        p.iter().map(|_| Ok(Outputs::Input)).collect()
    });
    let failure = outcomes[0].as_ref().unwrap_err();
    assert!(
        failure.message.len() <= MAX_MESSAGE + '…'.len_utf8(),
        "{}",
        failure.message.len()
    );
}
