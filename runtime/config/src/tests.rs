//! What a valid file reads into, and the file-level behaviour the golden files do not show.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::*;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn golden(name: &str) -> Pipeline {
    let path = Path::new(MANIFEST_DIR).join("tests/golden").join(name);
    load(&path).unwrap_or_else(|errors| panic!("{name} should be valid:\n{errors}"))
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

const MINIMAL: &str = r#"
name = "minimal"
[source]
brokers = "localhost:9092"
topics = ["in"]
group = "g"
[[stage]]
name = "identity"
module = "identity.wasm"
output = "out"
[dead_letter]
topic = "dlq"
"#;

#[test]
fn defaults() {
    let pipeline = parse(MINIMAL, Path::new("pipelines/minimal.toml")).unwrap();
    let source = &pipeline.source;
    assert_eq!(source.start, StartFrom::Earliest);
    assert_eq!(source.batch_size, 256);
    assert_eq!(source.queue_capacity, 2048);
    assert_eq!(source.commit_interval, Duration::from_secs(1));
    assert_eq!(source.drain_timeout, Duration::from_secs(10));
    assert_eq!(source.lane_workers, None);
    assert!(source.kafka.is_empty());
    assert_eq!(source.instance_id, None);

    let stage = &pipeline.stages[0];
    assert_eq!(stage.kind, StageKind::Enrich);
    assert_eq!(stage.module, Path::new("pipelines/identity.wasm"));
    assert_eq!(stage.config, json!({}));
    assert_eq!(stage.limits.memory, 64 << 20);
    assert_eq!(stage.limits.timeout, Duration::from_millis(100));
    assert_eq!(stage.limits.recycle_after, None);
    assert_eq!(stage.limits.recycle_memory, None);
    assert_eq!(stage.limits.fuel, None);
    assert_eq!(stage.partitioning, Partitioning::Source);
    assert_eq!(stage.line, 7);

    assert_eq!(pipeline.sink, Sink::default());
    assert_eq!(pipeline.sink.delivery, Delivery::AtLeastOnce);
    let telemetry = &pipeline.telemetry;
    assert_eq!(telemetry.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(telemetry.otlp, None);
    assert_eq!(telemetry.sample.ratio, 0.01);
    assert!(telemetry.sample.keep_errors);
    assert_eq!(telemetry.sample.slow, Duration::from_millis(100));
    assert!(pipeline.tests.is_empty());
    assert_eq!(pipeline.path, Path::new("pipelines/minimal.toml"));
}

#[test]
fn every_key() {
    let pipeline = golden("ok_full.toml");
    let dir = Path::new(MANIFEST_DIR).join("tests/golden");
    assert_eq!(pipeline.name, "clickstream");

    let source = &pipeline.source;
    assert_eq!(source.brokers, "127.0.0.1:9092,127.0.0.1:9093");
    assert_eq!(source.topics, ["clicks", "clicks.mobile"]);
    assert_eq!(source.group, "weir-clickstream");
    assert_eq!(source.start, StartFrom::Latest);
    assert_eq!(source.batch_size, 512);
    assert_eq!(source.queue_capacity, 4096);
    assert_eq!(source.commit_interval, Duration::from_millis(500));
    assert_eq!(source.drain_timeout, Duration::from_secs(90));
    assert_eq!(source.instance_id.as_deref(), Some("weir-0"));
    assert_eq!(source.lane_workers, Some(3));
    let kafka = [
        ("check.crcs", "true"),
        ("fetch.min.bytes", "1"),
        ("fetch.wait.max.ms", "100"),
    ];
    assert_eq!(source.kafka, strings(&kafka));

    let [geo, filter] = &pipeline.stages[..] else {
        panic!("two stages expected");
    };
    assert_eq!(geo.name, "geo");
    assert_eq!(geo.module, dir.join("modules/geo_enrich.wasm"));
    let config = json!({
        "field": "ip",
        "database": { "path": "/data/geo.mmdb", "reload": "1h" },
        "weights": [1, 2.5],
    });
    assert_eq!(geo.config, config);
    let limits = Limits {
        memory: 128 << 20,
        timeout: Duration::from_millis(50),
        recycle_after: Some(100_000),
        recycle_memory: Some(96 << 20),
        fuel: None,
    };
    assert_eq!(geo.limits, limits);
    assert_eq!(geo.output.as_deref(), Some("clicks.geo"));
    assert_eq!(geo.partitioning, Partitioning::Key);
    assert_eq!(geo.canary, None);
    let canary = filter.canary.as_ref().expect("filter has a canary");
    assert_eq!(canary.module, Path::new("/opt/weir/filter_v2.wasm"));
    assert_eq!(canary.config, Some(serde_json::json!({ "threshold": 3 })));
    assert_eq!(canary.cohort, crate::CanaryCohort::Partitions(vec![0, 2]));
    assert_eq!(
        canary.rollback,
        crate::Rollback {
            max_error_rate: 0.05,
            max_p99: Some(Duration::from_millis(20)),
            min_records: 500,
            window: Duration::from_secs(120),
        }
    );
    assert_eq!(canary.promote_after, Some(Duration::from_secs(1800)));
    assert!(!canary.rescue);
    assert_eq!((geo.line, geo.module_location.line), (17, 20));
    assert_eq!(geo.module_location.column, 10);

    assert_eq!(filter.module, Path::new("/opt/weir/filter.wasm"));
    assert_eq!(filter.limits.memory, 1 << 30);
    assert_eq!(filter.limits.timeout, Duration::from_millis(100));
    assert_eq!(filter.limits.fuel, Some(2_000_000_000));

    assert_eq!(pipeline.dead_letter, DeadLetter::Topic("clicks.dlq".into()));
    let sink = [("compression.type", "zstd"), ("linger.ms", "5")];
    assert_eq!(pipeline.sink.kafka, strings(&sink));
    assert_eq!(pipeline.sink.delivery, Delivery::ExactlyOnce);
    let telemetry = &pipeline.telemetry;
    assert_eq!(telemetry.listen.to_string(), "0.0.0.0:9464");
    assert_eq!(telemetry.otlp.as_deref(), Some("http://127.0.0.1:4317"));
    let sample = Sample {
        ratio: 0.5,
        keep_errors: false,
        slow: Duration::from_millis(250),
        keep_sampled_parents: true,
    };
    assert_eq!(telemetry.sample, sample);
    assert_eq!(telemetry.export_queue, 1024);
    assert_eq!(
        pipeline.control.as_ref().map(|c| c.topic.as_str()),
        Some("clickstream.control")
    );
    assert_eq!(telemetry.export_timeout, Duration::from_secs(2));

    let [country, keeps] = &pipeline.tests[..] else {
        panic!("two tests expected");
    };
    assert_eq!(country.name, "adds the country");
    let first = TestRecord {
        key: Some("k1".into()),
        value: r#"{"ip":"81.2.69.160"}"#.into(),
        headers: vec![("h".into(), "v".into())],
        timestamp: Some(1_700_000_000_000),
    };
    assert_eq!(country.input[0], first);
    assert_eq!(country.input[1].key, None);
    assert_eq!(country.expect.len(), 3);
    let counted = Expectation {
        stage: "filter".into(),
        value: None,
        value_contains: None,
        key: Some("k1".into()),
        count: Some(1),
        error: None,
    };
    assert_eq!(country.expect[2], counted);
    assert_eq!(
        keeps.expect[0].value.as_deref(),
        Some(r#"{"ip":"81.2.69.160","country":"GB"}"#)
    );
}

#[test]
fn output_topics_are_listed_once() {
    let mut pipeline = golden("ok_full.toml");
    assert_eq!(
        pipeline.all_output_topics(),
        ["clicks.geo", "clicks.enriched", "clicks.dlq"]
    );
    pipeline.stages[1].output = Some("clicks.geo".into());
    pipeline.stages[0].output = None;
    assert_eq!(pipeline.all_output_topics(), ["clicks.geo", "clicks.dlq"]);
}

#[test]
fn modules_are_checked_against_the_file_system() {
    let text = MINIMAL.replace(
        "[dead_letter]",
        "[[stage]]\nname = \"dir\"\nmodule = \"src\"\n\
         [[stage]]\nname = \"missing\"\nmodule = \"missing.wasm\"\noutput = \"out\"\n\
         [dead_letter]",
    );
    let text = text.replace("identity.wasm", "Cargo.toml");
    let path = PathBuf::from(MANIFEST_DIR).join("pipeline.toml");
    let pipeline = parse(&text, &path).unwrap();
    let errors = pipeline.check_modules().unwrap_err();
    let messages: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let shown = |line: usize, stage: &str, module: &str, problem: &str| {
        let module = Path::new(MANIFEST_DIR).join(module);
        format!(
            "{}:{line}:10: stage {stage:?}: module {} {problem}",
            path.display(),
            module.display()
        )
    };
    assert_eq!(
        messages,
        [
            shown(13, "dir", "src", "is not a file"),
            shown(16, "missing", "missing.wasm", "does not exist"),
        ]
    );
}

#[test]
fn unreadable_file() {
    let errors = load(Path::new("no/such/pipeline.toml")).unwrap_err();
    let text = errors.to_string();
    assert!(
        text.starts_with("no/such/pipeline.toml: cannot read the pipeline file: "),
        "{text}"
    );
    assert_eq!((errors.0[0].line, errors.0[0].column), (0, 0));
}

#[test]
fn columns_count_characters() {
    let text = "telemetry = { otlp = \"é\", listen = 5 }\n\tbogus = 1";
    let errors = parse(text, Path::new("p.toml")).unwrap_err();
    let positions: Vec<(usize, usize)> = errors.0.iter().map(|e| (e.line, e.column)).collect();
    // Four missing keys at 1:1, `otlp` and `listen` after the "é", `bogus` after the tab.
    assert_eq!(
        positions,
        [(1, 1), (1, 1), (1, 1), (1, 1), (1, 22), (1, 36), (2, 2)]
    );
}

#[test]
fn errors_display_one_per_line() {
    let errors = ConfigErrors(vec![
        ConfigError {
            path: "a.toml".into(),
            line: 3,
            column: 7,
            message: "first".into(),
        },
        ConfigError {
            path: "a.toml".into(),
            line: 0,
            column: 0,
            message: "second".into(),
        },
    ]);
    assert_eq!(errors.to_string(), "a.toml:3:7: first\na.toml: second");
}

#[test]
fn aggregate_stages() {
    let pipeline = golden("ok_aggregate.toml");
    assert_eq!(pipeline.stages[0].aggregate, None);
    let stage = &pipeline.stages[1];
    assert_eq!(stage.kind, StageKind::Aggregate);
    assert_eq!(
        stage.aggregate,
        Some(Aggregate {
            key: Some("/country".into()),
            time: Some("/ts".into()),
            window: WindowKind::Hopping {
                size: Duration::from_secs(60),
                every: Duration::from_secs(10),
            },
            lateness: Duration::from_secs(5),
            late: LatePolicy::Drop,
            idle_timeout: Duration::from_secs(30),
            max_windows: 5000,
            on_full: OnFull::EvictOldest,
            changelog: "counts.state".into(),
        })
    );

    let text = MINIMAL.replace(
        "output = \"out\"",
        "output = \"out\"\nkind = \"aggregate\"\nwindow = { tumbling = \"10s\" }",
    );
    let pipeline = parse(&text, Path::new("minimal.toml")).unwrap();
    assert_eq!(
        pipeline.stages[0].aggregate,
        Some(Aggregate {
            key: None,
            time: None,
            window: WindowKind::Tumbling(Duration::from_secs(10)),
            lateness: Duration::ZERO,
            late: LatePolicy::DeadLetter,
            idle_timeout: Aggregate::DEFAULT_IDLE_TIMEOUT,
            max_windows: Aggregate::DEFAULT_MAX_WINDOWS,
            on_full: OnFull::Fail,
            changelog: "minimal.identity.changelog".into(),
        })
    );
}

#[test]
fn security_reads_into_the_model_with_paths_relative_to_the_file() {
    let pipeline = golden("ok_security.toml");
    let dir = Path::new(MANIFEST_DIR).join("tests/golden");
    let security = &pipeline.security;
    assert_eq!(security.protocol, SecurityProtocol::SaslSsl);
    assert_eq!(security.ca.as_deref(), Some(&*dir.join("certs/ca.pem")));
    assert_eq!(
        security.key.as_deref(),
        Some(&*dir.join("certs/client.key"))
    );
    assert!(security.verify_hostname, "on unless turned off");
    assert_eq!(
        security.key_password,
        Some(Secret::File("/run/secrets/kafka-key-password".into()))
    );
    let sasl = security.sasl.as_ref().unwrap();
    assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
    assert_eq!(sasl.username, Secret::Env("KAFKA_USER".into()));
    assert_eq!(sasl.password, Secret::Env("KAFKA_PASSWORD".into()));
}

#[test]
fn a_secret_written_in_the_file_is_refused_without_being_quoted() {
    let path = Path::new(MANIFEST_DIR).join("tests/golden/bad_security.toml");
    let errors = load(&path).unwrap_err().to_string();
    assert!(
        errors.contains("sasl.pasword"),
        "a misspelt secret is refused: {errors}"
    );
    assert!(errors.contains("security.sasl.password"), "{errors}");
    assert!(!errors.contains("hunter"), "a secret was quoted:\n{errors}");
}

#[test]
fn named_sinks_are_read_with_their_defaults() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/ok_sinks.toml"
    ));
    let pipeline = load(path).expect("ok_sinks.toml is valid");
    let names: Vec<&str> = pipeline.sinks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["archive", "errors", "lake"]);
    assert_eq!(pipeline.dead_letter, DeadLetter::Sink("errors".into()));
    assert_eq!(pipeline.dead_letter_target(), Target::Topic("clicks.dlq"));
    assert_eq!(
        pipeline.stage_target(&pipeline.stages[0]),
        Some(Target::Topic("clicks.geo"))
    );
    assert_eq!(pipeline.all_output_topics(), ["clicks.geo", "clicks.dlq"]);
    let lake = pipeline.named_sink("lake").expect("lake is declared");
    assert_eq!(
        pipeline.stage_target(&pipeline.stages[1]),
        Some(Target::Store(lake))
    );
    let SinkKind::Parquet(parquet) = &lake.kind else {
        panic!("lake is a parquet sink");
    };
    let folder = path.parent().unwrap().join("lake/clicks");
    assert_eq!(parquet.path, StorePath::Local(folder));
    assert_eq!((&parquet.endpoint, &parquet.region), (&None, &None));
    assert_eq!(parquet.schema.len(), 4);
    assert_eq!(
        parquet.schema[1],
        Column {
            name: "at".into(),
            data_type: ColumnType::Timestamp(TimeUnit::Millisecond),
            nullable: false,
        }
    );
    assert!(parquet.schema[2].nullable);
    assert_eq!(
        parquet.partition_by,
        [PartitionKey {
            name: "dt".into(),
            column: "at".into()
        }]
    );
    assert_eq!(parquet.roll_records, 50_000);
    assert_eq!(parquet.roll_bytes, Some(128 << 20));
    assert_eq!(parquet.roll_age, Duration::from_secs(300));
    assert_eq!(parquet.compression, Compression::Snappy);
    assert_eq!(parquet.row_group_rows, 10_000);
    assert_eq!(lake.line, 29);
}
