//! Canary rollouts: the next version of a stage serves only its partitions, side by side with
//! the stable version; an operator can promote it; a canary that fails records is rolled back
//! automatically, and its failures cost no record.

use std::time::Duration;

use crate::harness::{
    Rec, Weir, by_partition, consume, consume_all, create_topic, http_get, metric_value, module,
    produce, source_table, unique, weir_cli_env,
};

const TOKEN: &str = "canary-token";

/// The admin token from the environment, as operators pass it.
const TOKEN_ENV: &[(&str, &str)] = &[("WEIR_ADMIN_TOKEN", TOKEN)];

/// A file holding the admin token, the other way to pass it.
fn token_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, format!("{TOKEN}\n").as_bytes()).unwrap();
    file
}

struct Setup {
    _dir: tempfile::TempDir,
    pipeline: std::path::PathBuf,
    input: String,
    output: String,
    dlq: String,
}

/// Stage `tag` (stable: version v1) with the `canary` table given, over 2 partitions.
fn setup(canary: &str) -> Setup {
    setup_with(canary, "")
}

/// [`setup`] with `extra` top-level tables.
fn setup_with(canary: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("modules")).unwrap();
    for name in ["tag", "trap"] {
        std::fs::copy(
            module(name),
            dir.path().join(format!("modules/{name}.wasm")),
        )
        .unwrap();
    }
    let (input, output, dlq) = (unique("in"), unique("out"), unique("dlq"));
    create_topic(&input, 2);
    create_topic(&output, 2);
    create_topic(&dlq, 1);
    let toml = format!(
        r#"name = "canaries"
{source}
[[stage]]
name = "tag"
module = "modules/tag.wasm"
config = {{ header = "version", value = "v1" }}
output = "{output}"

[stage.canary]
{canary}

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"

{extra}
"#,
        source = source_table(&[&input], &unique("group")),
    );
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, toml).unwrap();
    Setup {
        _dir: dir,
        pipeline,
        input,
        output,
        dlq,
    }
}

fn version(r: &Rec) -> Option<String> {
    r.header_str("version")
}

fn records(partition: i32, from: usize, n: usize, poison_every: usize) -> Vec<Rec> {
    (from..from + n)
        .map(|i| {
            let marker = if poison_every > 0 && i % poison_every == 0 {
                "poison"
            } else {
                "fine"
            };
            Rec::new(
                partition,
                &format!("k{i}"),
                format!(r#"{{"i":{i},"m":"{marker}"}}"#),
            )
        })
        .collect()
}

fn status(admin: &str) -> serde_json::Value {
    let (ok, out, err) = weir_cli_env(&["canary", "status", "--admin", admin], TOKEN_ENV);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_canary_serves_only_its_partitions_until_promoted() {
    let _broker = crate::harness::exclusive();
    let s = setup(
        r#"module = "modules/tag.wasm"
config = { header = "version", value = "v2" }
partitions = [0]"#,
    );
    let weir = Weir::run_with_env(&s.pipeline, &[], &[("WEIR_ADMIN_TOKEN", TOKEN)]);
    let admin = weir.admin_addr().to_string();
    let first: Vec<Rec> = records(0, 0, 30, 0)
        .into_iter()
        .chain(records(1, 0, 30, 0))
        .collect();
    produce(&s.input, &first);
    let out = consume(&s.output, 60, Duration::from_secs(60));
    for (partition, recs) in by_partition(&out) {
        let want = if partition == 0 { "v2" } else { "v1" };
        assert!(
            recs.iter().all(|r| version(r).as_deref() == Some(want)),
            "partition {partition} runs {want}"
        );
    }

    // Both cohorts side by side, in the metrics and in the status.
    let (_, metrics) = http_get(weir.admin_addr(), "/metrics");
    let cohort = |c: &str, p: &str| {
        metric_value(
            &metrics,
            "weir_records_in_total",
            &[("stage", "tag"), ("cohort", c), ("partition", p)],
        )
    };
    assert_eq!(cohort("canary", "0"), Some(30.0), "{metrics}");
    assert_eq!(cohort("stable", "1"), Some(30.0));
    assert_eq!(cohort("canary", "1"), None);
    let st = crate::harness::wait_for_value(Duration::from_secs(10), || {
        let st = status(&admin);
        (st[0]["canary"]["records"].as_u64() == Some(30)).then_some(st)
    });
    assert_eq!(st[0]["stage"], "tag");
    assert_eq!(st[0]["state"], "running");
    assert_eq!(st[0]["partitions"], "partitions 0");
    assert_eq!(st[0]["stable"]["records"], 30);

    // Promotion needs the token, then every partition runs the canary's version.
    let promote = ["canary", "promote", "tag", "--admin", &admin];
    let (ok, _, err) = weir_cli_env(&promote, &[("WEIR_ADMIN_TOKEN", "x")]);
    assert!(!ok && err.contains("401"), "{err}");
    let file = token_file();
    let with_token = |args: &[&str]| {
        weir_cli_env(
            &[args, &["--token-file", file.path().to_str().unwrap()]].concat(),
            &[],
        )
    };
    // A stage that does not exist is not found; nothing is requested.
    let (ok, _, err) = with_token(&["canary", "promote", "nope", "--admin", &admin]);
    assert!(
        !ok && err.contains("404") && err.contains("no stage named"),
        "{err}"
    );
    let (ok, _, err) = weir_cli_env(
        &[
            &promote[..],
            &["--token-file", file.path().to_str().unwrap()],
        ]
        .concat(),
        &[],
    );
    assert!(ok, "{err}");
    weir.wait_for_log("Canary promoted", Duration::from_secs(30));
    // Lanes swap at their next batch: the first record after the promotion is a new batch.
    produce(&s.input, &records(1, 30, 10, 0));
    let out = consume(&s.output, 70, Duration::from_secs(60));
    let later: Vec<_> = out.iter().filter(|r| r.partition == 1).skip(30).collect();
    assert_eq!(later.len(), 10);
    assert!(later.iter().all(|r| version(r).as_deref() == Some("v2")));
    let st = status(&admin);
    assert_eq!(st[0]["state"], "promoted");
    assert!(st[0]["reason"].as_str().unwrap().contains("operator"));
    weir.terminate();
}

#[test]
fn a_failing_canary_is_rolled_back_automatically_and_loses_nothing() {
    let _broker = crate::harness::exclusive();
    // The canary traps on one record in ten; the rollback threshold is 5 %.
    let s = setup(
        r#"module = "modules/trap.wasm"
config = { trap_on = "poison" }
partitions = [0]
rollback = { max_error_rate = 0.05, min_records = 100, window = "1m" }"#,
    );
    let weir = Weir::run_with_env(&s.pipeline, &[], TOKEN_ENV);
    let admin = weir.admin_addr().to_string();
    let n = 400;
    produce(&s.input, &records(0, 0, n, 10));
    let out = consume(&s.output, n, Duration::from_secs(90));
    assert_eq!(
        out.len(),
        n,
        "every record is delivered, the trapped ones by the stable version"
    );
    weir.wait_for_log("Canary rolled back", Duration::from_secs(30));
    let rescued = out
        .iter()
        .filter(|r| version(r).as_deref() == Some("v1"))
        .count();
    assert!(
        rescued >= n / 10,
        "the poisoned records went through the stable version"
    );
    assert!(consume_all(&s.dlq, Duration::from_secs(1), Duration::from_secs(5)).is_empty());

    // After the rollback, partition 0 runs the stable version.
    produce(&s.input, &records(0, n, 20, 0));
    let out = consume(&s.output, n + 20, Duration::from_secs(60));
    assert!(out[n..].iter().all(|r| version(r).as_deref() == Some("v1")));
    let (_, metrics) = http_get(weir.admin_addr(), "/metrics");
    assert_eq!(
        metric_value(
            &metrics,
            "weir_canary_verdicts_total",
            &[("stage", "tag"), ("verdict", "rollback")]
        ),
        Some(1.0),
        "{metrics}"
    );
    let st = status(&admin);
    assert_eq!(st[0]["state"], "rolled-back");
    let reason = st[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("automatic") && reason.contains("error rate"),
        "{reason}"
    );
    assert!(st[0]["rescued"].as_u64().unwrap() >= (n / 10) as u64);
    weir.terminate();
}

#[test]
fn instances_share_a_rollback_through_the_control_topic_and_remember_it() {
    let _broker = crate::harness::exclusive();
    let control = unique("control");
    create_topic(&control, 1);
    let s = setup_with(
        r#"module = "modules/tag.wasm"
config = { header = "version", value = "v2" }
partitions = [0]"#,
        &format!("[control]\ntopic = \"{control}\"\n"),
    );
    let env = [("WEIR_ADMIN_TOKEN", TOKEN)];
    let a = Weir::run_with_env(&s.pipeline, &[], &env);
    a.wait_assigned();
    let b = Weir::run_with_env(&s.pipeline, &[], &env);
    b.wait_assigned();
    produce(&s.input, &records(0, 0, 10, 0));
    let out = consume(&s.output, 10, Duration::from_secs(60));
    assert!(out.iter().all(|r| version(r).as_deref() == Some("v2")));

    // An operator rolls the canary back on one instance; the other follows.
    let admin_a = a.admin_addr().to_string();
    let (ok, _, err) = weir_cli_env(
        &["canary", "rollback", "tag", "--admin", &admin_a],
        TOKEN_ENV,
    );
    assert!(ok, "{err}");
    a.wait_for_log("Canary rolled back", Duration::from_secs(30));
    b.wait_for_log("from the control topic", Duration::from_secs(30));
    produce(&s.input, &records(0, 10, 10, 0));
    let out = consume(&s.output, 20, Duration::from_secs(60));
    assert!(
        out[10..]
            .iter()
            .all(|r| version(r).as_deref() == Some("v1")),
        "partition 0 runs the stable version on whichever instance owns it"
    );
    a.terminate();
    b.terminate();

    // A new deployment of the pipeline (a new consumer group, so it reads the input from the
    // start) remembers the decision: the canary does not come back.
    let text = std::fs::read_to_string(&s.pipeline).unwrap();
    let group_line = text.lines().find(|l| l.starts_with("group = ")).unwrap();
    let redeployed = text.replace(group_line, &format!("group = \"{}\"", unique("group")));
    std::fs::write(&s.pipeline, redeployed).unwrap();
    let c = Weir::run_with_env(&s.pipeline, &[], &env);
    c.wait_for_log("from the control topic", Duration::from_secs(30));
    produce(&s.input, &records(0, 20, 10, 0));
    let by_key = |out: &[Rec], from: usize, to: usize| -> Vec<Option<String>> {
        (from..to)
            .map(|i| {
                let key = format!("k{i}");
                let mut versions = out
                    .iter()
                    .filter(|r| r.key.as_deref() == Some(key.as_bytes()))
                    .map(version);
                versions.next_back().flatten()
            })
            .collect()
    };
    // 20 outputs from before, 30 more from the redeployment's pass over the whole input.
    let out = consume(&s.output, 50, Duration::from_secs(90));
    assert_eq!(out.len(), 50);
    assert_eq!(
        out.iter()
            .filter(|r| version(r).as_deref() == Some("v2"))
            .count(),
        10,
        "only the records before the rollback went through the canary"
    );
    assert!(
        by_key(&out, 20, 30)
            .iter()
            .all(|v| v.as_deref() == Some("v1"))
    );
    let admin_c = c.admin_addr().to_string();
    let st = status(&admin_c);
    assert_eq!(st[0]["state"], "rolled-back");

    // Until an operator starts it again.
    let file = token_file();
    let (ok, _, err) = weir_cli_env(
        &[
            "canary",
            "start",
            "tag",
            "--admin",
            &admin_c,
            "--token-file",
            file.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{err}");
    c.wait_for_log("Canary started", Duration::from_secs(30));
    crate::harness::wait_for_value(Duration::from_secs(10), || {
        (status(&admin_c)[0]["state"] == "running").then_some(())
    });
    produce(&s.input, &records(0, 30, 10, 0));
    let out = consume(&s.output, 60, Duration::from_secs(60));
    assert_eq!(out.len(), 60);
    assert!(
        by_key(&out, 30, 40)
            .iter()
            .all(|v| v.as_deref() == Some("v2"))
    );
    c.terminate();
}
