//! Data quality end to end: the schema gates' counts and the conservation gauge under traps,
//! timeouts, filters and flat-maps; `weir tap` following one record through every stage, and
//! refused without the admin token.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{
    Rec, Weir, consume, create_topic, http_get, metric_value, module, produce, source_table,
    unique, write_pipeline,
};

const TOKEN: &str = "tap-test-token-3f9c";

/// The sum of every series of `metric` whose labels include `labels`.
fn metric_sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn every_record_is_accounted_for_under_traps_timeouts_filters_flat_maps_and_gates() {
    let (input, output, dlq) = (unique("in"), unique("out"), unique("dlq"));
    create_topic(&input, 2);
    create_topic(&output, 2);
    create_topic(&dlq, 1);
    let (_dir, pipeline) = write_pipeline(&format!(
        r#"name = "accounted"
{source}
[[stage]]
name = "trap"
module = "{trap}"
config = {{ trap_on = "poison" }}
input_schema = {{ type = "object", required = ["order"] }}

[[stage]]
name = "loop"
module = "{looping}"
limits = {{ timeout = "100ms" }}

[[stage]]
name = "split"
module = "{split}"

[[stage]]
name = "drop"
module = "{filter}"
config = {{ pointer = "/sku", equals = "drop" }}
output_schema = {{ type = "object", properties = {{ sku = {{ pattern = "^[a-z]+$" }} }} }}
output = "{output}"

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"
"#,
        source = source_table(&[&input], &unique("group")),
        trap = module("trap").display(),
        looping = module("endless_loop").display(),
        split = module("flat_map").display(),
        filter = module("filter").display(),
    ));
    // 40 orders of 3 items: "a", "drop" and "b". Besides: one the input gate refuses, one that
    // traps, one that loops, one without items (filtered by the flat-map) and one whose item
    // breaks the output gate.
    let mut records: Vec<Rec> = (0..40)
        .map(|i| {
            let value = format!(
                r#"{{"order":"o{i}","items":[{{"sku":"a"}},{{"sku":"drop"}},{{"sku":"b"}}]}}"#
            );
            Rec::new(i % 2, &format!("o{i}"), value)
        })
        .collect();
    for (key, value) in [
        ("no-order", r#"{"items":[]}"#),
        ("poison", r#"{"order":"poison","items":[{"sku":"a"}]}"#),
        ("loop", r#"{"order":"loop","items":[{"sku":"a"}]}"#),
        ("empty", r#"{"order":"empty","items":[]}"#),
        ("upper", r#"{"order":"upper","items":[{"sku":"A1"}]}"#),
    ] {
        records.push(Rec::new(0, key, value));
    }
    produce(&input, &records);

    let weir = Weir::run(&pipeline);
    let out = consume(&output, 80, Duration::from_secs(90));
    let dead = consume(&dlq, 4, Duration::from_secs(30));
    assert_eq!((out.len(), dead.len()), (80, 4));
    // Unexplained is set after each batch's delivery: wait for the last batch's.
    let metrics = crate::harness::wait_for_value(Duration::from_secs(20), || {
        let (_, text) = http_get(weir.admin_addr(), "/metrics");
        (metric_sum(&text, "weir_records_in_total", &[("stage", "drop")]) == 121.0).then_some(text)
    });
    weir.terminate();

    let sum = |metric: &str, labels: &[(&str, &str)]| metric_sum(&metrics, metric, labels);
    for stage in ["trap", "loop", "split", "drop"] {
        assert!(
            metrics.contains(&format!(
                "weir_records_unexplained{{pipeline=\"accounted\",stage=\"{stage}\""
            )),
            "no conservation gauge for {stage}"
        );
        assert_eq!(
            sum("weir_records_unexplained", &[("stage", stage)]),
            0.0,
            "records unexplained at {stage}"
        );
    }
    // 45 in; 1 refused by the gate and 1 trapped: 43 on, 1 timed out: 42 split, 1 of them
    // without items; 41 orders make 121 items, the 40 "drop" ones filtered and "A1" refused.
    assert_eq!(sum("weir_records_in_total", &[("stage", "trap")]), 45.0);
    assert_eq!(sum("weir_records_in_total", &[("stage", "split")]), 42.0);
    assert_eq!(
        sum("weir_records_filtered_total", &[("stage", "split")]),
        1.0
    );
    assert_eq!(
        sum("weir_records_filtered_total", &[("stage", "drop")]),
        40.0
    );
    let gate = |stage, gate, result| {
        sum(
            "weir_gate_records_total",
            &[("stage", stage), ("gate", gate), ("result", result)],
        )
    };
    assert_eq!(gate("trap", "input", "valid"), 44.0);
    assert_eq!(gate("trap", "input", "invalid"), 1.0);
    assert_eq!(gate("drop", "output", "valid"), 80.0);
    assert_eq!(gate("drop", "output", "invalid"), 1.0);
    let violations = |stage, keyword| {
        sum(
            "weir_gate_violations_total",
            &[("stage", stage), ("keyword", keyword)],
        )
    };
    assert_eq!(violations("trap", "required"), 1.0);
    assert_eq!(violations("drop", "pattern"), 1.0);
    let kinds = |kind| sum("weir_records_dead_lettered_total", &[("kind", kind)]);
    assert_eq!(
        (kinds("schema-invalid"), kinds("trap"), kinds("timeout")),
        (2.0, 1.0, 1.0)
    );
    assert_eq!(
        metric_value(&metrics, "weir_records_unexplained", &[("stage", "nope")]),
        None
    );
}

/// `weir tap ARGS` against `weir`, with the token in the environment unless `token` is `None`.
fn tap(weir: &Weir, args: &[&str], token: Option<&str>) -> std::process::Child {
    let mut cmd = Command::new(Weir::weir_bin());
    cmd.args(["tap", "--admin", &weir.admin_addr().to_string()])
        .args(args)
        .env_remove("WEIR_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        cmd.env("WEIR_ADMIN_TOKEN", token);
    }
    crate::harness::die_with_parent(&mut cmd);
    cmd.spawn().expect("weir tap starts")
}

#[test]
fn tap_follows_one_record_through_every_stage_and_needs_the_token() {
    let (input, mid, output, dlq) = (unique("in"), unique("mid"), unique("out"), unique("dlq"));
    for topic in [&input, &mid, &output, &dlq] {
        create_topic(topic, 1);
    }
    let (_dir, pipeline) = write_pipeline(&format!(
        r#"name = "tapped"
{source}
[[stage]]
name = "enrich"
module = "{enrich}"
config = {{ field = "url" }}
output = "{mid}"

[[stage]]
name = "stamp"
module = "{tag}"
config = {{ header = "stamped", value = "yes" }}
output = "{output}"

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"
"#,
        source = source_table(&[&input], &unique("group")),
        enrich = module("json_enrich").display(),
        tag = module("tag").display(),
    ));
    let weir = Weir::run_with_env(&pipeline, &[], &[("WEIR_ADMIN_TOKEN", TOKEN)]);
    weir.wait_assigned();

    // Without the token, or with a wrong one, tap is refused.
    let refused = tap(&weir, &["--limit", "1"], None)
        .wait_with_output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("WEIR_ADMIN_TOKEN"), "{stderr}");
    let wrong = tap(&weir, &["--limit", "1"], Some("not-the-token"))
        .wait_with_output()
        .unwrap();
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("401"), "{stderr}");

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let mut follower = tap(
        &weir,
        &[
            "--follow-trace",
            &traceparent,
            "--limit",
            "4",
            "--timeout",
            "60",
        ],
        Some(TOKEN),
    );
    weir.wait_for_log("Tap client attached.", Duration::from_secs(10));
    let other = Rec::new(
        0,
        "other",
        r#"{"user":"u2","url":"https://b.example/cart/2"}"#,
    );
    let followed = Rec::new(
        0,
        "followed",
        r#"{"user":"u1","url":"https://a.example/search/1"}"#,
    )
    .header("traceparent", &traceparent);
    produce(&input, &[other, followed]);
    let stdout = follower.stdout.take().unwrap();
    let lines: Vec<serde_json::Value> = std::io::BufReader::new(stdout)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(follower.wait().unwrap().success());
    let outputs = consume(&output, 2, Duration::from_secs(30));
    weir.terminate();

    let path: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["stage"].as_str().unwrap().to_owned(),
                l["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let step = |s: &str, e: &str| (s.to_owned(), e.to_owned());
    assert_eq!(
        path,
        [
            step("enrich", "in"),
            step("enrich", "out"),
            step("stamp", "in"),
            step("stamp", "out")
        ],
        "{lines:?}"
    );
    for line in &lines {
        assert_eq!(line["trace_id"], trace, "{line}");
        assert_eq!(line["key"], "followed");
        assert_eq!(line["offset"], 1);
        assert_eq!(line["partition"], 0);
        assert_eq!(line["cohort"], "stable");
        assert_eq!(line["module_version"].as_str().map(str::len), Some(64));
    }
    assert_eq!(lines[0]["value"]["url"], "https://a.example/search/1");
    assert_eq!(lines[1]["value"]["section"], "search");
    assert_eq!(lines[3]["headers"]["stamped"], "yes");
    // The stage's span on the way in is the one it produced its output under, and the output
    // that left carries it as its traceparent's parent.
    assert_eq!(lines[2]["span_id"], lines[3]["span_id"]);
    let out = outputs
        .iter()
        .find(|r| r.key.as_deref() == Some(&b"followed"[..]))
        .unwrap();
    let parent = out.header_str("traceparent").unwrap();
    let expected = format!("00-{trace}-{}-", lines[3]["span_id"].as_str().unwrap());
    assert!(
        parent.starts_with(&expected),
        "{parent} is not {expected}.."
    );
}
