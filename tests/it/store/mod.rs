//! The Parquet cold store, end to end: `weir run` writes a stage's results to a local lake, and
//! an independent reader (pyarrow, installed by `make test-deps`) finds every record exactly once
//! with its provenance and trace id; records that do not fit the schema are dead-lettered as
//! `sink-rejected`; a bad store config is refused by `weir validate` with its line. S3 in
//! [`s3_lake`].

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{
    Rec, Weir, committed, consume, create_topic, http_get, metric_value, module, produce,
    source_table, unique, wait_for_value, weir_cli, write_pipeline,
};
use crate::s3;

mod letters;
mod s3_lake;

/// Reads every Parquet file under `lake` (a local folder, or `s3://bucket/prefix` on the test
/// S3 server) with pyarrow (Hive partitioning): the schema as `name: type` strings, then the
/// rows as JSON objects (bytes in hex).
pub(super) fn read_lake(lake: &str) -> (Vec<String>, Vec<serde_json::Value>) {
    const READER: &str = r#"
import json, os, sys
import pyarrow.dataset as ds
import pyarrow.fs as fs
where, filesystem = sys.argv[1], None
if where.startswith("s3://"):
    endpoint = os.environ["S3_ENDPOINT"]
    scheme, host = endpoint.split("://", 1)
    filesystem = fs.S3FileSystem(endpoint_override=host, scheme=scheme,
        access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ["AWS_REGION"])
    where = where[len("s3://"):]
table = ds.dataset(where, format="parquet", partitioning="hive", filesystem=filesystem).to_table()
print(json.dumps([f"{f.name}: {f.type}" for f in table.schema]))
for row in table.to_pylist():
    print(json.dumps(row, default=lambda v: v.hex() if isinstance(v, bytes) else str(v)))
"#;
    let text = if lake.starts_with("s3://") {
        s3::run_python(READER, &[lake])
    } else {
        let out = Command::new(s3::python())
            .args(["-c", READER, lake])
            .output()
            .expect("python runs (install pyarrow with `make test-deps`)");
        assert!(
            out.status.success(),
            "pyarrow could not read {lake}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mut lines = text.lines();
    let schema = serde_json::from_str(lines.next().unwrap()).unwrap();
    let rows = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    (schema, rows)
}

pub(super) fn lake_pipeline(input: &str, dlq: &str, group: &str) -> String {
    let store = r#"schema = [
    { name = "id", type = "int64", nullable = false },
    { name = "user", type = "string", nullable = false },
    { name = "at", type = "timestamp[ms]" },
]
partition_by = [{ name = "dt", column = "at" }]
roll_records = 7
roll_age = "2s"
compression = "snappy"
row_group_rows = 4"#;
    store_pipeline(input, dlq, group, store)
}

/// A pipeline copying `input` to the parquet sink `lake` (folder `lake` beside the file), whose
/// keys besides `kind` and `path` are `store`.
fn store_pipeline(input: &str, dlq: &str, group: &str, store: &str) -> String {
    store_pipeline_at(input, dlq, group, "path = \"lake\"", store)
}

/// [`store_pipeline`] with the sink's `path` (and other location keys) given by `location`.
pub(super) fn store_pipeline_at(
    input: &str,
    dlq: &str,
    group: &str,
    location: &str,
    store: &str,
) -> String {
    format!(
        r#"name = "lake"
{source}
[[stage]]
name = "copy"
module = "{module}"
sink = "lake"

[dead_letter]
topic = "{dlq}"

[sinks.lake]
kind = "parquet"
{location}
{store}

[telemetry]
listen = "127.0.0.1:0"
"#,
        source = source_table(&[input], group),
        module = module("identity").display(),
    )
}

pub(super) fn trace_id(i: usize) -> String {
    format!("{:032x}", 0x5eed_0000_u64 + i as u64)
}

#[test]
fn a_parquet_lake_holds_every_record_once_with_its_provenance_and_trace_id() {
    const N: usize = 120;
    const DAY: i64 = 1_764_892_800_000; // 2025-12-05T00:00:00Z
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 2);
    create_topic(&dlq, 1);
    let collector = crate::otlp::OtlpReceiver::start();
    let toml = lake_pipeline(&input, &dlq, &group)
        + &format!(
            "otlp = \"{}\"\nsample = {{ ratio = 1.0 }}\n",
            collector.endpoint()
        );
    let (dir, pipeline) = write_pipeline(&toml);
    let mut records: Vec<Rec> = (0..N)
        .map(|i| {
            // Two days, so two dt= folders.
            let at = DAY + (i as i64 % 2) * 86_400_000 + i as i64;
            let value = format!(r#"{{"id":{i},"user":"u{i}","at":{at},"extra":"kept out"}}"#);
            let parent = format!("00-{}-{:016x}-01", trace_id(i), i + 1);
            Rec::new(i as i32 % 2, &format!("k{i}"), value).header("traceparent", &parent)
        })
        .collect();
    // Three values that do not fit: a field of the wrong type, a required field missing, and
    // bytes that are not UTF-8.
    records.push(Rec::new(0, "bad-type", r#"{"id":"seven","user":"x"}"#));
    records.push(Rec::new(1, "bad-missing", r#"{"id":7}"#));
    records.push(Rec::new(
        0,
        "bad-utf8",
        b"{\"id\":8,\"user\":\"\xff\"}".to_vec(),
    ));
    produce(&input, &records);
    let per_partition: BTreeMap<i32, i64> = records.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.partition).or_default() += 1;
        m
    });

    let weir = Weir::run(&pipeline);
    let letters = consume(&dlq, 3, Duration::from_secs(60));
    // Every input is committed only once its rows are in complete files.
    wait_for_value(Duration::from_secs(60), || {
        per_partition
            .iter()
            .all(|(&p, &n)| committed(&group, &input, p) == Some(n))
            .then_some(())
    });
    weir.terminate();

    let mut kinds: Vec<(String, Option<String>, Option<String>)> = letters
        .iter()
        .map(|l| {
            (
                String::from_utf8_lossy(l.key.as_deref().unwrap()).into_owned(),
                l.header_str("weir.error.kind"),
                l.header_str("weir.error.field"),
            )
        })
        .collect();
    kinds.sort();
    let rejected = Some("sink-rejected".to_owned());
    assert_eq!(
        kinds,
        [
            ("bad-missing".into(), rejected.clone(), Some("user".into())),
            ("bad-type".into(), rejected.clone(), Some("id".into())),
            ("bad-utf8".into(), rejected, None),
        ],
        "{letters:?}"
    );

    let lake = dir.path().join("lake");
    let (schema, rows) = read_lake(lake.to_str().unwrap());
    assert_eq!(
        schema,
        [
            "id: int64",
            "user: string",
            "at: timestamp[ms, tz=+00:00]",
            "weir_topic: string",
            "weir_partition: int32",
            "weir_offset: int64",
            "weir_timestamp: timestamp[ms, tz=+00:00]",
            "weir_trace_id: string",
            "dt: string",
        ]
    );
    assert_eq!(rows.len(), N, "every record once");
    let mut seen = BTreeMap::new();
    for row in &rows {
        let id = row["id"].as_u64().unwrap() as usize;
        assert!(seen.insert(id, row).is_none(), "id {id} twice");
        assert_eq!(row["user"], format!("u{id}"));
        assert_eq!(row["weir_topic"], input.as_str());
        assert_eq!(row["weir_partition"], id as u64 % 2);
        assert_eq!(row["weir_trace_id"], trace_id(id), "{row}");
        let dt = if id.is_multiple_of(2) {
            "2025-12-05"
        } else {
            "2025-12-06"
        };
        assert_eq!(row["dt"], dt);
    }
    assert_eq!(seen.len(), N);
    // Offsets are each partition's, once each.
    let mut offsets: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| {
            let p = r["weir_partition"].as_u64().unwrap();
            (p, r["weir_offset"].as_u64().unwrap())
        })
        .collect();
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(offsets.len(), N);

    // Nothing partial or temporary is left where readers look.
    let mut names = Vec::new();
    for day in ["dt=2025-12-05", "dt=2025-12-06"] {
        for entry in std::fs::read_dir(lake.join(day)).unwrap() {
            names.push(entry.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    assert!(
        names
            .iter()
            .all(|n| n.starts_with(&format!("{input}-")) && n.ends_with(".parquet")),
        "{names:?}"
    );

    // A CLIENT span per file, linked to the traces of the rows it holds.
    let spans = collector.wait_for(Duration::from_secs(30), |spans| {
        let rows = spans.iter().filter(|s| s.name == "weir.store.file");
        rows.map(|s| s.attributes["weir.store.rows"].parse::<usize>().unwrap())
            .sum::<usize>()
            == N
    });
    let files: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "weir.store.file")
        .collect();
    assert_eq!(files.len(), names.len(), "one span per file");
    let mut linked = BTreeMap::new();
    for span in &files {
        assert_eq!(span.kind, 3, "a CLIENT span: {}", span.summary());
        assert_eq!(span.attributes["weir.sink"], "lake");
        let file = &span.attributes["weir.store.file"];
        assert!(lake.join(file).is_file(), "{file} is in the lake");
        let (_, in_file) = read_lake(lake.join(file).to_str().unwrap());
        assert_eq!(
            span.attributes["weir.store.rows"],
            in_file.len().to_string()
        );
        // At most 7 inputs per file: every row's trace is linked, to the span that wrote it.
        let mut traces: Vec<&str> = in_file
            .iter()
            .map(|r| r["weir_trace_id"].as_str().unwrap())
            .collect();
        traces.sort_unstable();
        let mut links: Vec<&str> = span.links.iter().map(|(t, _)| t.as_str()).collect();
        links.sort_unstable();
        assert_eq!(links, traces, "{}", span.summary());
        assert_eq!(span.attributes["weir.store.unlinked_rows"], "0");
        for (trace, linked_span) in &span.links {
            linked.insert(trace.clone(), linked_span.clone());
        }
    }
    // Each link names the span under which weir wrote the record: a span of its trace.
    for (trace, linked_span) in &linked {
        assert!(
            spans
                .iter()
                .any(|s| &s.trace_id == trace && &s.span_id == linked_span),
            "link {trace}/{linked_span} leads to an exported span"
        );
    }
    assert_eq!(linked.len(), N);
}

#[test]
fn a_bad_store_config_is_refused_by_validate_with_its_line() {
    let (dir, pipeline) = write_pipeline(&lake_pipeline("in", "dlq", "group"));
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let text = text
        .replace(r#"type = "timestamp[ms]""#, r#"type = "datetime""#)
        .replace(r#"path = "lake""#, r#"path = "s3://""#);
    std::fs::write(&pipeline, text).unwrap();
    let (ok, _, stderr) = weir_cli(&["validate", pipeline.to_str().unwrap()]);
    assert!(!ok, "validate accepted a bad store config");
    for error in [
        r#"pipeline.toml:21:8: sinks.lake.path: "s3://": "#,
        r#"pipeline.toml:25:27: sinks.lake.schema[2].type: unknown value "datetime""#,
    ] {
        assert!(stderr.contains(error), "{error} not in {stderr}");
    }
    drop(dir);
}

/// The names of the entries of `folder`, if it exists.
fn entries(folder: &Path) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    read.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn kill_9_while_files_are_open_leaves_every_record_in_the_lake_once() {
    let _broker = crate::harness::exclusive();
    const N: usize = 60_000;
    const ROLL: usize = 500;
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 2);
    create_topic(&dlq, 1);
    let store = format!(
        r#"schema = [{{ name = "id", type = "int64", nullable = false }}]
roll_records = {ROLL}
roll_age = "1h""#
    );
    let (dir, pipeline) = write_pipeline(&store_pipeline(&input, &dlq, &group, &store));
    let records: Vec<Rec> = (0..N)
        .map(|i| Rec::new(i as i32 % 2, &format!("k{i}"), format!(r#"{{"id":{i}}}"#)))
        .collect();
    produce(&input, &records);
    let lake = dir.path().join("lake");

    let first = Weir::run(&pipeline);
    wait_for_value(Duration::from_secs(120), || {
        let files = entries(&lake)
            .iter()
            .filter(|n| n.ends_with(".parquet"))
            .count();
        (files >= 10).then_some(())
    });
    first.kill9();
    let at_kill = entries(&lake);
    let complete = at_kill.iter().filter(|n| n.ends_with(".parquet")).count();
    assert!(
        complete < N / ROLL,
        "the kill came too late to test anything ({complete} files)"
    );
    // What readers see is whole files only; temporary ones are hidden.
    for name in &at_kill {
        assert!(
            name.ends_with(".parquet") || name.starts_with('.') || name == "_weir",
            "{name} is visible"
        );
    }

    let second = Weir::run(&pipeline);
    let whole = (N / 2 / ROLL * ROLL) as i64;
    wait_for_value(Duration::from_secs(180), || {
        (0..2)
            .all(|p| committed(&group, &input, p).is_some_and(|o| o >= whole))
            .then_some(())
    });
    // Stopping completes the last, shorter files.
    second.terminate();

    let (_, rows) = read_lake(lake.to_str().unwrap());
    let mut ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "{} records twice", before - ids.len());
    assert_eq!(ids.len(), N, "records missing");
    assert!(
        entries(&lake).iter().all(|n| !n.starts_with('.')),
        "a temporary file was left: {:?}",
        entries(&lake)
    );
}

#[test]
fn a_store_that_fails_for_a_while_holds_the_lanes_back_loses_nothing_and_shows_in_readyz() {
    const N: usize = 30;
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 1);
    create_topic(&dlq, 1);
    let store = r#"schema = [{ name = "id", type = "int64", nullable = false }]
roll_records = 5
roll_age = "1h""#;
    let (dir, pipeline) = write_pipeline(&store_pipeline(&input, &dlq, &group, store));
    // The lake's folder cannot be made: a file is in its way.
    let lake = dir.path().join("lake");
    std::fs::write(&lake, b"in the way").unwrap();
    let records: Vec<Rec> = (0..N)
        .map(|i| Rec::new(0, &format!("k{i}"), format!(r#"{{"id":{i}}}"#)))
        .collect();
    produce(&input, &records);

    let weir = Weir::run(&pipeline);
    let admin = weir.admin_addr();
    let body = wait_for_value(Duration::from_secs(60), || {
        let (status, body) = http_get(admin, "/readyz");
        (status == 503 && body.contains("sink \"lake\" unavailable")).then_some(body)
    });
    assert!(body.contains("lake"), "{body}");
    assert_eq!(
        http_get(admin, "/healthz").0,
        200,
        "a store down is not death"
    );
    assert_eq!(
        committed(&group, &input, 0),
        None,
        "nothing committed while it is down"
    );
    // Then the folder is there, but the first file's name is taken by a folder: the progress
    // reads, the rows are taken and held, and the file cannot be renamed into place.
    std::fs::remove_file(&lake).unwrap();
    let first_file = lake.join(format!("{input}-0-{:020}.parquet", 0));
    std::fs::create_dir_all(first_file.join("in-the-way")).unwrap();
    let age = |metrics: &str| {
        metric_value(
            metrics,
            "weir_store_open_segment_age_seconds",
            &[("sink", "lake")],
        )
    };
    wait_for_value(Duration::from_secs(30), || {
        (age(&http_get(admin, "/metrics").1) >= Some(1.0)).then_some(())
    });
    assert_eq!(http_get(admin, "/readyz").0, 503, "still not ready");
    assert_eq!(committed(&group, &input, 0), None, "nothing committed");

    std::fs::remove_dir_all(&first_file).unwrap();
    wait_for_value(Duration::from_secs(60), || {
        (committed(&group, &input, 0) == Some(N as i64)).then_some(())
    });
    wait_for_value(Duration::from_secs(30), || {
        (http_get(admin, "/readyz").0 == 200).then_some(())
    });
    let (_, metrics) = http_get(admin, "/metrics");
    let sink = [("sink", "lake")];
    let failed = [("sink", "lake"), ("reason", "not-a-folder")];
    let value = |name, labels: &[(&str, &str)]| metric_value(&metrics, name, labels);
    assert!(
        value("weir_store_failures_total", &failed) >= Some(1.0),
        "{metrics}"
    );
    assert_eq!(value("weir_store_files_total", &sink), Some((N / 5) as f64));
    assert_eq!(value("weir_store_rows_total", &sink), Some(N as f64));
    assert!(value("weir_store_written_bytes_total", &sink) > Some(0.0));
    assert_eq!(
        age(&metrics),
        Some(0.0),
        "nothing held once all is written: {metrics}"
    );
    weir.terminate();
    let (_, rows) = read_lake(lake.to_str().unwrap());
    let mut ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..N as u64).collect::<Vec<_>>());
}
