//! Telemetry a stage author gets without writing a line: a trace continued from the input's
//! `traceparent` through every stage into the output headers, received by a real OTLP/gRPC
//! collector; tail sampling that keeps every error at ratio 0; metrics on `/metrics` that match
//! what flowed, read back through a real Prometheus; and a dead or black-holed collector that
//! costs spans, never records.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{
    Rec, Weir, consume, consume_all, create_topic, http_get, metric_value, module, produce,
    source_table, unique, write_pipeline,
};
use crate::otlp::{OtlpReceiver, ReceivedSpan};
use crate::prometheus::Prometheus;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const UPSTREAM_SPAN: &str = "00f067aa0ba902b7";

fn click(i: usize) -> String {
    format!(r#"{{"user":"u{i}","url":"https://shop.example/products/{i}","ts":1700000000000}}"#)
}

/// A two-stage pipeline: `enrich` (JSON enrich, published to `mid`) then `tag` (identity,
/// published to `out`), with `telemetry` lines in its `[telemetry]` table.
fn two_stages(input: &str, mid: &str, out: &str, dlq: &str, telemetry: &str) -> String {
    two_stages_with(input, mid, out, dlq, telemetry, "identity")
}

/// [`two_stages`] with module `second` as the `tag` stage.
fn two_stages_with(
    input: &str,
    mid: &str,
    out: &str,
    dlq: &str,
    telemetry: &str,
    second: &str,
) -> String {
    format!(
        r#"name = "traced"
{source}
[[stage]]
name = "enrich"
module = "{enrich}"
config = {{ field = "url" }}
output = "{mid}"

[[stage]]
name = "tag"
module = "{identity}"
output = "{out}"

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"
{telemetry}
"#,
        source = source_table(&[input], &unique("group")),
        enrich = module("json_enrich").display(),
        identity = module(second).display(),
    )
}

/// (trace id, parent span id, sampled) of a record's `traceparent`.
fn traceparent(r: &Rec) -> (String, String, bool) {
    let v = r
        .header_str("traceparent")
        .unwrap_or_else(|| panic!("no traceparent on {r:?}"));
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    assert_eq!(parts[0], "00", "{v}");
    (parts[1].into(), parts[2].into(), parts[3] == "01")
}

fn stage_span<'a>(spans: &'a [ReceivedSpan], stage: &str, trace: &str) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|s| {
            s.name == "weir.stage"
                && s.trace_id == trace
                && s.attributes.get("weir.stage").map(String::as_str) == Some(stage)
        })
        .unwrap_or_else(|| panic!("no span of stage {stage} in trace {trace}"))
}

#[test]
fn a_trace_continues_through_every_stage_into_the_outputs_and_metrics_match_the_flow() {
    let _broker = crate::harness::exclusive();
    let collector = OtlpReceiver::start();
    let (input, mid, out, dlq) = (unique("in"), unique("mid"), unique("out"), unique("dlq"));
    for t in [&input, &mid, &out] {
        create_topic(t, 1);
    }
    create_topic(&dlq, 1);
    let (_dir, pipeline) = write_pipeline(&two_stages(
        &input,
        &mid,
        &out,
        &dlq,
        &format!(
            "otlp = \"{}\"\nsample = {{ ratio = 0.0, keep_errors = true, keep_sampled_parents = true, slow = \"1h\" }}",
            collector.endpoint()
        ),
    ));

    // 0: continues a sampled upstream trace; 1: no trace context; 2: an invalid traceparent;
    // 3: not JSON, so the enrich stage fails it.
    let upstream = format!("00-{TRACE}-{UPSTREAM_SPAN}-01");
    produce(
        &input,
        &[
            Rec::new(0, "k0", click(0)).header("traceparent", &upstream),
            Rec::new(0, "k1", click(1)),
            Rec::new(0, "k2", click(2)).header("traceparent", "not-a-traceparent"),
            Rec::new(0, "k3", "not json").header("traceparent", &upstream.replace("-01", "-00")),
        ],
    );
    let weir = Weir::run(&pipeline);
    let admin = weir.admin_addr();
    let outs = consume(&out, 3, Duration::from_secs(60));
    let mids = consume(&mid, 3, Duration::from_secs(30));
    let dead = consume(&dlq, 1, Duration::from_secs(30));
    let by_key = |rs: &[Rec], k: &str| {
        rs.iter()
            .find(|r| r.key.as_deref() == Some(k.as_bytes()))
            .cloned()
            .unwrap()
    };

    // Record 0: enrich's span is a child of the upstream span, tag's a child of enrich's; the
    // output of each stage names that stage's span as parent, all in the input's trace.
    let spans = collector.wait_for(Duration::from_secs(30), |s| {
        s.iter().filter(|s| s.trace_id == TRACE).count() >= 2
    });
    let enrich = stage_span(&spans, "enrich", TRACE);
    let tag = stage_span(&spans, "tag", TRACE);
    assert_eq!(enrich.parent_span_id.as_deref(), Some(UPSTREAM_SPAN));
    assert_eq!(tag.parent_span_id.as_deref(), Some(enrich.span_id.as_str()));
    assert_eq!(enrich.kind, 5, "a consumer span");
    for (k, v) in [
        ("messaging.system", "kafka"),
        ("messaging.destination.name", input.as_str()),
        ("messaging.destination.partition.id", "0"),
        ("messaging.kafka.offset", "0"),
        ("weir.pipeline", "traced"),
        ("weir.cohort", "stable"),
        ("weir.outcome", "ok"),
    ] {
        assert_eq!(
            enrich.attributes.get(k).map(String::as_str),
            Some(v),
            "{k}: {}",
            enrich.summary()
        );
    }
    assert!(
        enrich
            .attributes
            .contains_key("messaging.consumer.group.name")
    );
    assert_eq!(enrich.attributes["weir.module.version"].len(), 64);
    assert_eq!(
        enrich.resource.get("service.name").map(String::as_str),
        Some("weir")
    );
    assert_eq!(
        traceparent(&by_key(&mids, "k0")),
        (TRACE.to_owned(), enrich.span_id.clone(), true)
    );
    assert_eq!(
        traceparent(&by_key(&outs, "k0")),
        (TRACE.to_owned(), tag.span_id.clone(), true)
    );
    // The stage spans link to their batch's span, which carries the batch size.
    let (batch_trace, batch_span) = enrich
        .links
        .first()
        .expect("a link to the batch span")
        .clone();
    let batch = collector.wait_for(Duration::from_secs(10), |s| {
        s.iter().any(|s| s.span_id == batch_span)
    });
    let batch = batch.iter().find(|s| s.span_id == batch_span).unwrap();
    assert_eq!(
        (batch.name.as_str(), batch.trace_id.as_str()),
        ("weir.stage.batch", batch_trace.as_str())
    );
    assert!(
        batch.attributes["messaging.batch.message_count"]
            .parse::<u64>()
            .unwrap()
            >= 1
    );

    // Records 1 and 2: new roots, not sampled at ratio 0; their outputs still carry a trace.
    for k in ["k1", "k2"] {
        let (trace, parent, sampled) = traceparent(&by_key(&outs, k));
        assert_ne!(trace, TRACE);
        assert_eq!((trace.len(), parent.len(), sampled), (32, 16, false), "{k}");
        let (mid_trace, _, _) = traceparent(&by_key(&mids, k));
        assert_eq!(mid_trace, trace, "one trace through both stages");
        assert!(
            !spans.iter().any(|s| s.trace_id == trace),
            "{k} was not sampled"
        );
    }

    // Record 3: failed in enrich; kept at ratio 0 because errors are always kept, although its
    // upstream trace was not sampled. The dead letter carries the failing span as parent.
    let letter = &dead[0];
    assert_eq!(
        letter.header_str("weir.error.kind").as_deref(),
        Some("stage-error")
    );
    let (trace, parent, sampled) = traceparent(letter);
    assert_eq!((trace.as_str(), sampled), (TRACE, true));
    let failed = collector.wait_for(Duration::from_secs(30), |s| {
        s.iter().any(|s| s.span_id == parent)
    });
    let failed = failed.iter().find(|s| s.span_id == parent).unwrap();
    assert!(failed.status_error, "{}", failed.summary());
    assert_eq!(failed.attributes["weir.outcome"], "error");
    assert_eq!(failed.attributes["messaging.kafka.offset"], "3");
    assert_eq!(failed.parent_span_id.as_deref(), Some(UPSTREAM_SPAN));

    // Metrics count what flowed.
    let (status, _) = http_get(admin, "/healthz");
    assert_eq!(status, 200);
    // Delivery reports may trail what a consumer already reads: wait for each topic's count.
    wait_metric(admin, "weir_produced_total", &[("topic", &mid)], 3.0);
    wait_metric(admin, "weir_produced_total", &[("topic", &dlq)], 1.0);
    let metrics = wait_metric(admin, "weir_produced_total", &[("topic", &out)], 3.0);
    let stage = |name: &str, s: &str| {
        metric_value(
            &metrics,
            name,
            &[("pipeline", "traced"), ("stage", s), ("cohort", "stable")],
        )
    };
    assert_eq!(
        stage("weir_records_in_total", "enrich"),
        Some(4.0),
        "{metrics}"
    );
    assert_eq!(stage("weir_records_out_total", "enrich"), Some(3.0));
    assert_eq!(stage("weir_records_in_total", "tag"), Some(3.0));
    assert_eq!(stage("weir_records_out_total", "tag"), Some(3.0));
    assert_eq!(
        metric_value(
            &metrics,
            "weir_records_dead_lettered_total",
            &[("stage", "enrich"), ("kind", "stage-error")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, "weir_wasm_failures_total", &[]),
        None,
        "a stage error is not a wasm failure"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "weir_consumed_total",
            &[("topic", &input), ("partition", "0")]
        ),
        Some(4.0)
    );
    assert_eq!(
        metric_value(&metrics, "weir_produced_total", &[("topic", &mid)]),
        Some(3.0)
    );
    assert_eq!(
        metric_value(&metrics, "weir_produced_total", &[("topic", &dlq)]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "weir_trace_context_invalid_total",
            &[("topic", &input)]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "weir_end_to_end_latency_seconds_count",
            &[("topic", &out)]
        ),
        Some(3.0)
    );
    assert_eq!(
        metric_value(&metrics, "weir_assigned_partitions", &[]),
        Some(1.0)
    );
    assert!(
        metric_value(
            &metrics,
            "weir_stage_duration_seconds_count",
            &[("stage", "tag")]
        )
        .unwrap()
            >= 1.0
    );
    let (status, body) = http_get(admin, "/readyz");
    assert_eq!(status, 200, "{body}");
    let _ = weir.terminate();
    let metrics_after = collector.spans();
    assert!(!metrics_after.is_empty());
}

/// Scrapes `/metrics` until `metric` (with `labels`) reaches `at_least`; returns the text.
fn wait_metric(
    admin: std::net::SocketAddr,
    metric: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = http_get(admin, "/metrics");
        assert_eq!(status, 200);
        if metric_value(&text, metric, labels).is_some_and(|v| v >= at_least) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{metric}{labels:?} never reached {at_least}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A collector that refuses connections, or accepts them and never answers: every record still
/// flows, and the spans are counted as dropped.
fn pipeline_completes_with_collector(endpoint: &str) -> String {
    let (input, mid, out, dlq) = (unique("in"), unique("mid"), unique("out"), unique("dlq"));
    for t in [&input, &mid, &out] {
        create_topic(t, 2);
    }
    create_topic(&dlq, 1);
    let (_dir, pipeline) = write_pipeline(&two_stages(
        &input,
        &mid,
        &out,
        &dlq,
        &format!(
            "otlp = \"{endpoint}\"\nsample = {{ ratio = 1.0 }}\nexport_queue = 16\nexport_timeout = \"500ms\""
        ),
    ));
    let n = 2000;
    let records: Vec<Rec> = (0..n)
        .map(|i| Rec::new((i % 2) as i32, &format!("k{i}"), click(i)))
        .collect();
    produce(&input, &records);
    let weir = Weir::run(&pipeline);
    let admin = weir.admin_addr();
    let outs = consume(&out, n, Duration::from_secs(120));
    assert_eq!(outs.len(), n, "every record flows");
    let metrics = wait_metric(admin, "weir_produced_total", &[("topic", &out)], n as f64);
    let _ = weir.terminate();
    assert!(consume_all(&dlq, Duration::from_secs(1), Duration::from_secs(5)).is_empty());
    metrics
}

#[test]
fn a_dead_collector_costs_spans_not_records() {
    let _broker = crate::harness::exclusive();
    let metrics = pipeline_completes_with_collector(&OtlpReceiver::refused_endpoint());
    let dropped = metric_value(&metrics, "weir_spans_dropped_total", &[]).unwrap_or(0.0);
    assert!(dropped > 0.0, "{metrics}");
    assert_eq!(
        metric_value(&metrics, "weir_spans_exported_total", &[]).unwrap_or(0.0),
        0.0
    );
}

#[test]
fn a_black_holed_collector_costs_spans_not_records() {
    let _broker = crate::harness::exclusive();
    let (endpoint, hole) = OtlpReceiver::black_hole();
    let metrics = pipeline_completes_with_collector(&endpoint);
    let dropped = metric_value(
        &metrics,
        "weir_spans_dropped_total",
        &[("reason", "queue_full")],
    )
    .unwrap_or(0.0);
    assert!(dropped > 0.0, "{metrics}");
    assert!(hole.connections() > 0, "the exporter did try the collector");
}

#[test]
fn prometheus_scrapes_the_runtime_and_guest_metrics() {
    let _broker = crate::harness::exclusive();
    let (input, mid, out, dlq) = (unique("in"), unique("mid"), unique("out"), unique("dlq"));
    for t in [&input, &mid, &out] {
        create_topic(t, 1);
    }
    create_topic(&dlq, 1);
    // The second stage is the bot filter, which counts what it drops through the host import.
    let (_dir, pipeline) = write_pipeline(&two_stages_with(&input, &mid, &out, &dlq, "", "filter"));
    let n = 50;
    let bots = 7;
    let records: Vec<Rec> = (0..n)
        .map(|i| {
            let ua = if i < bots {
                "Googlebot/2.1"
            } else {
                "Mozilla/5.0"
            };
            let value = format!(r#"{{"url":"https://shop.example/p/{i}","ua":"{ua}"}}"#);
            Rec::new(0, &format!("k{i}"), value)
        })
        .collect();
    produce(&input, &records);
    let weir = Weir::run(&pipeline);
    let admin = weir.admin_addr();
    assert_eq!(
        consume(&out, n - bots, Duration::from_secs(60)).len(),
        n - bots
    );
    let prometheus = Prometheus::start(&admin.to_string(), Duration::from_millis(500));
    let samples = prometheus.wait_for(
        r#"sum by (stage) (weir_records_in_total{pipeline="traced"})"#,
        Duration::from_secs(60),
        |s| s.len() == 2 && s.iter().all(|(_, v)| *v == n as f64),
    );
    let stages: BTreeMap<String, f64> = samples
        .into_iter()
        .map(|(labels, v)| (labels["stage"].clone(), v))
        .collect();
    assert_eq!(stages.keys().collect::<Vec<_>>(), ["enrich", "tag"]);
    let out_of_tag = prometheus.wait_for(
        r#"sum(weir_records_out_total{pipeline="traced",stage="tag"})"#,
        Duration::from_secs(30),
        |s| s.len() == 1,
    );
    assert_eq!(out_of_tag[0].1, (n - bots) as f64);
    let dropped = prometheus.wait_for(
        r#"weir_guest_dropped_total{pipeline="traced",stage="tag",cohort="stable"}"#,
        Duration::from_secs(30),
        |s| s.len() == 1,
    );
    assert_eq!(
        dropped[0].1, bots as f64,
        "the guest's own counter, labelled with its stage"
    );
    let up = prometheus.wait_for(
        r#"weir_assigned_partitions{pipeline="traced"}"#,
        Duration::from_secs(30),
        |s| s.len() == 1,
    );
    assert_eq!(up[0].1, 1.0);
    let lag = prometheus.wait_for(
        r#"weir_consumer_lag{pipeline="traced"}"#,
        Duration::from_secs(30),
        |s| s.len() == 1,
    );
    // Only its presence is checked: the test broker's offsets are not trustworthy.
    assert_eq!(lag[0].0["topic"], input);
    let _ = weir.terminate();
}
