//! Misbehaving modules and malformed input: exactly the affected records are dead-lettered, with
//! provenance, while every other record flows.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_core::headers;

use crate::harness::{
    Rec, Weir, consume, create_topic, http_get, metric_value, module, produce, source_table,
    unique, write_pipeline,
};

#[test]
fn each_failure_dead_letters_exactly_its_record_and_the_rest_flow() {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq) = (unique("in"), unique("out"), unique("dlq"));
    create_topic(&input, 1);
    create_topic(&output, 1);
    create_topic(&dlq, 1);
    let group = unique("group");
    let (_dir, pipeline) = write_pipeline(&format!(
        r#"name = "misbehaving"
{source}
[[stage]]
name = "trap"
module = "{trap}"
config = {{ trap_on = "poison" }}

[[stage]]
name = "loop"
module = "{looping}"
limits = {{ timeout = "100ms" }}

[[stage]]
name = "hog"
module = "{hog}"
limits = {{ memory = "32MiB" }}

[[stage]]
name = "enrich"
module = "{enrich}"
output = "{output}"

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"
"#,
        source = source_table(&[&input], &group),
        trap = module("trap").display(),
        looping = module("endless_loop").display(),
        hog = module("memory_hog").display(),
        enrich = module("json_enrich").display(),
    ));

    // What each bad record is expected to do: (stage, error kind, error code).
    let mut expected_dead: BTreeMap<i64, (&str, &str, &str)> = BTreeMap::new();
    let mut records = Vec::new();
    for i in 0..60i64 {
        let value: Vec<u8> = match i {
            5 => br#"{"url":"https://a.example/poison"}"#.to_vec(),
            12 => br#"{"url":"https://a.example/loop"}"#.to_vec(),
            19 => br#"{"url":"https://a.example/hog"}"#.to_vec(),
            26 => b"this is not json".to_vec(),
            33 => Vec::new(),
            40 => vec![b'x'; 900 * 1024],
            _ => format!(r#"{{"url":"https://ok.example/p/{i}","n":{i}}}"#).into_bytes(),
        };
        match i {
            5 => expected_dead.insert(i, ("trap", "trap", "")),
            12 => expected_dead.insert(i, ("loop", "timeout", "")),
            19 => expected_dead.insert(i, ("hog", "memory", "")),
            26 | 33 | 40 => expected_dead.insert(i, ("enrich", "stage-error", "bad-json")),
            _ => None,
        };
        records.push(Rec::new(0, &format!("k{i}"), value).header("origin", &format!("o{i}")));
    }
    produce(&input, &records);

    let weir = Weir::run(&pipeline);
    let good = records.len() - expected_dead.len();
    let out = consume(&output, good, Duration::from_secs(90));
    let dead = consume(&dlq, expected_dead.len(), Duration::from_secs(30));
    let (_, metrics) = http_get(weir.admin_addr(), "/metrics");
    let log = weir.terminate();

    // The guest's own log line (the SDK reports a panic through the host import) lands in the
    // runtime's log with the stage, partition, offsets and the stage call's trace context.
    let guest = log
        .iter()
        .filter(|l| l.contains("\"target\":\"weir::guest\""))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["stage"] == "trap")
        .expect("the trap stage logged its panic");
    assert_eq!(guest["partition"], 0);
    assert_eq!(
        guest["trace_id"].as_str().map(str::len),
        Some(32),
        "{guest}"
    );
    assert_eq!(guest["span_id"].as_str().map(str::len), Some(16), "{guest}");

    // The sandbox's interventions are counted by kind, against the stage that caused them.
    for (stage, kind) in [("trap", "trap"), ("loop", "timeout"), ("hog", "memory")] {
        let labels = [("stage", stage), ("kind", kind)];
        assert_eq!(
            metric_value(&metrics, "weir_wasm_failures_total", &labels),
            Some(1.0),
            "{stage}/{kind}:\n{metrics}"
        );
        assert_eq!(
            metric_value(&metrics, "weir_records_dead_lettered_total", &labels),
            Some(1.0)
        );
    }
    let labels = [("stage", "enrich"), ("kind", "stage-error")];
    assert_eq!(
        metric_value(&metrics, "weir_records_dead_lettered_total", &labels),
        Some(3.0)
    );

    let out_keys: Vec<String> = out
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap()).into_owned())
        .collect();
    let want_keys: Vec<String> = (0..60)
        .filter(|i| !expected_dead.contains_key(i))
        .map(|i| format!("k{i}"))
        .collect();
    assert_eq!(out_keys, want_keys, "every good record flows, in order");

    assert_eq!(dead.len(), expected_dead.len());
    for d in &dead {
        let offset: i64 = d
            .header_str(headers::SOURCE_OFFSET)
            .unwrap()
            .parse()
            .unwrap();
        let (stage, kind, code) = expected_dead[&offset];
        let h = |name| d.header_str(name).unwrap_or_default();
        assert_eq!(h(headers::PIPELINE), "misbehaving");
        assert_eq!(h(headers::STAGE), stage, "offset {offset}");
        assert_eq!(
            h(headers::ERROR_KIND),
            kind,
            "offset {offset}: {}",
            h(headers::ERROR_MESSAGE)
        );
        assert_eq!(h(headers::ERROR_CODE), code, "offset {offset}");
        assert!(!h(headers::ERROR_MESSAGE).is_empty());
        assert_eq!(h(headers::MODULE_SHA256).len(), 64);
        assert_eq!(h(headers::SOURCE_TOPIC), input);
        assert_eq!(h(headers::SOURCE_PARTITION), "0");
        // The dead letter is the record as it entered the failing stage.
        let original = &records[offset as usize];
        assert_eq!(d.key, original.key);
        assert_eq!(d.value, original.value);
        assert_eq!(d.header_str("origin"), Some(format!("o{offset}")));
    }
    let trap = dead
        .iter()
        .find(|d| d.header_str(headers::ERROR_KIND).as_deref() == Some("trap"))
        .unwrap();
    assert!(
        trap.header_str(headers::ERROR_MESSAGE)
            .unwrap()
            .contains("panicked"),
        "a guest panic is reported with its message: {:?}",
        trap.header_str(headers::ERROR_MESSAGE)
    );
}
