use super::*;

fn stage() -> StageLabels {
    StageLabels {
        pipeline: "p".into(),
        stage: "enrich".into(),
        module_version: "abc123".into(),
        cohort: "stable",
    }
}

#[derive(Debug)]
struct Fixed;
impl GuestSource for Fixed {
    fn counters(&self) -> Vec<(String, u64)> {
        vec![("hits".into(), 7)]
    }
    fn histograms(&self) -> Vec<(String, f64, u64, Vec<u64>)> {
        vec![("size".into(), 12.5, 3, vec![1, 2, 0])]
    }
    fn bounds(&self) -> &[f64] {
        &[1.0, 10.0, f64::INFINITY]
    }
    fn logs_dropped(&self) -> (u64, u64) {
        (3, 5)
    }
}

#[test]
fn deliveries_count_per_topic_from_the_first_record_on() {
    let m = Metrics::new("p");
    m.delivered("out", Some(1_000), 2_000);
    m.delivered("dlq", None, 2_000);
    m.delivered("out", Some(1_000), 4_000);
    m.delivered("out", None, 4_000);
    let text = m.encode();
    for line in [
        r#"weir_produced_total{pipeline="p",topic="out"} 3"#,
        r#"weir_produced_total{pipeline="p",topic="dlq"} 1"#,
        r#"weir_end_to_end_latency_seconds_count{pipeline="p",topic="out"} 2"#,
        r#"weir_end_to_end_latency_seconds_sum{pipeline="p",topic="out"} 4.0"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[test]
fn handles_count_into_the_labelled_series() {
    let m = Metrics::new("p");
    let topic: Arc<str> = "clicks".into();
    let s = m.stage(&stage(), &topic, 2);
    s.records_in.inc_by(5);
    s.records_out.inc_by(4);
    s.failed("trap", true);
    s.failed("stage-error", false);
    m.delivered("out", Some(1_000), 3_500);
    m.set_lanes(3, 1, 40);
    let text = m.encode();
    for line in [
        r#"weir_records_in_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",topic="clicks",partition="2"} 5"#,
        r#"weir_records_out_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",topic="clicks",partition="2"} 4"#,
        r#"weir_records_dead_lettered_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",topic="clicks",partition="2",kind="trap"} 1"#,
        r#"weir_wasm_failures_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",kind="trap"} 1"#,
        r#"weir_produced_total{pipeline="p",topic="out"} 1"#,
        r#"weir_end_to_end_latency_seconds_count{pipeline="p",topic="out"} 1"#,
        r#"weir_end_to_end_latency_seconds_sum{pipeline="p",topic="out"} 2.5"#,
        r#"weir_saturated_partitions{pipeline="p"} 1"#,
        r#"weir_build_info{version=""#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        !text.contains(r#"weir_wasm_failures_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",kind="stage-error"}"#),
        "a stage error is not a wasm failure"
    );
}

#[test]
fn guest_metrics_are_prefixed_and_labelled() {
    let m = Metrics::new("p");
    m.set_guests(vec![(stage(), Arc::new(Fixed))]);
    let text = m.encode();
    assert!(text.contains(r#"weir_guest_hits_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable"} 7"#), "{text}");
    assert!(text.contains(r#"weir_guest_size_bucket{le="10.0",pipeline="p",stage="enrich",module_version="abc123",cohort="stable"} 3"#) || text.contains(r#"weir_guest_size_bucket{pipeline="p",stage="enrich",module_version="abc123",cohort="stable",le="10.0"} 3"#), "{text}");
    assert!(text.contains(r#"weir_guest_size_count{pipeline="p",stage="enrich",module_version="abc123",cohort="stable"} 3"#), "{text}");
}

#[test]
fn dropped_logs_and_overdue_calls_are_counted() {
    let m = Metrics::new("p");
    m.set_guests(vec![(stage(), Arc::new(Fixed))]);
    m.set_overdue_calls(2);
    m.set_overdue_calls(5);
    m.set_overdue_calls(4);
    let text = m.encode();
    for line in [
        r#"weir_stage_log_lines_dropped_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable"} 3"#,
        r#"weir_stage_log_fields_dropped_total{pipeline="p",stage="enrich",module_version="abc123",cohort="stable"} 5"#,
        r#"weir_stage_calls_overdue_total{pipeline="p"} 5"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}
