//! Dead letters into a parquet sink (`schema = "dead-letters"`): each letter a row with the
//! failed record's key and value and the failure's provenance, committed only once its file is
//! durable.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{lake_pipeline, read_lake};
use crate::harness::{
    Rec, Weir, committed, create_topic, produce, unique, wait_for_value, write_pipeline,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn dead_letters_land_in_a_parquet_sink_with_their_failure_and_provenance() {
    let (input, group) = (unique("in"), unique("group"));
    create_topic(&input, 2);
    // The lake pipeline, its dead letters sent to a parquet sink of their own instead.
    let toml = lake_pipeline(&input, "unused", &group).replace(
        "[dead_letter]\ntopic = \"unused\"",
        r#"[dead_letter]
sink = "letters"

[sinks.letters]
kind = "parquet"
path = "letters"
schema = "dead-letters"
partition_by = [{ name = "kind", column = "error_kind" }]
roll_age = "1s""#,
    );
    assert!(toml.contains("sink = \"letters\""), "{toml}");
    let (dir, pipeline) = write_pipeline(&toml);
    let mut records: Vec<Rec> = (0..20)
        .map(|i| {
            let at = 1_764_892_800_000i64 + i;
            Rec::new(
                i as i32 % 2,
                &format!("k{i}"),
                format!(r#"{{"id":{i},"user":"u{i}","at":{at}}}"#),
            )
        })
        .collect();
    let bad: [(i32, &str, &[u8]); 3] = [
        (0, "bad-type", br#"{"id":"seven","user":"x"}"#),
        (1, "bad-missing", br#"{"id":7}"#),
        (0, "bad-utf8", b"{\"id\":8,\"user\":\"\xff\"}"),
    ];
    for (partition, key, value) in bad {
        let parent = format!(
            "00-{:032x}-{:016x}-01",
            0xdead_0000u64 + partition as u64,
            7
        );
        records.push(Rec::new(partition, key, value.to_vec()).header("traceparent", &parent));
    }
    produce(&input, &records);
    let per_partition: BTreeMap<i32, i64> = records.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.partition).or_default() += 1;
        m
    });

    let weir = Weir::run(&pipeline);
    wait_for_value(Duration::from_secs(60), || {
        per_partition
            .iter()
            .all(|(&p, &n)| committed(&group, &input, p) == Some(n))
            .then_some(())
    });
    weir.terminate();

    let (schema, rows) = read_lake(dir.path().join("letters").to_str().unwrap());
    assert_eq!(
        schema,
        [
            "key: binary",
            "value: binary",
            "stage: string",
            "module_sha256: string",
            "error_kind: string",
            "error_code: string",
            "error_message: string",
            "error_field: string",
            "weir_topic: string",
            "weir_partition: int32",
            "weir_offset: int64",
            "weir_timestamp: timestamp[ms, tz=+00:00]",
            "weir_trace_id: string",
            "kind: string",
        ]
    );
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by_key(|r| r["key"].as_str().unwrap().to_owned());
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, (partition, key, value)) in rows.iter().zip([bad[1], bad[0], bad[2]]) {
        assert_eq!(row["key"], hex(key.as_bytes()), "{row}");
        assert_eq!(row["value"], hex(value), "{row}");
        assert_eq!(row["stage"], "copy");
        assert_eq!(row["error_kind"], "sink-rejected");
        assert_eq!(row["kind"], "sink-rejected", "the Hive folder");
        assert!(!row["error_message"].as_str().unwrap().is_empty(), "{row}");
        assert_eq!(row["module_sha256"].as_str().unwrap().len(), 64, "{row}");
        assert_eq!(row["weir_topic"], input.as_str());
        assert_eq!(row["weir_partition"], partition);
        assert_eq!(
            row["weir_trace_id"],
            format!("{:032x}", 0xdead_0000u64 + partition as u64),
            "a letter keeps its record's trace"
        );
    }
    let fields: Vec<&serde_json::Value> = rows.iter().map(|r| &r["error_field"]).collect();
    assert_eq!(
        fields,
        [&"user".into(), &"id".into(), &serde_json::Value::Null]
    );

    let (_, lake) = read_lake(dir.path().join("lake").to_str().unwrap());
    assert_eq!(lake.len(), 20, "the rest of the batch landed");
}
