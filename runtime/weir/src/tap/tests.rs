use super::*;
use weir_core::{FailureKind, Method};

fn record(key: &str, value: &str) -> Record {
    let mut r = Record {
        offset: 42,
        key: Some(key.as_bytes().to_vec().into()),
        value: Some(value.as_bytes().to_vec().into()),
        ..Record::EMPTY
    };
    r.headers.push("x-user", Some(b"marker-user-77"));
    r
}

fn tapped<'a>(
    record: &'a Record,
    trace_id: &'a TraceId,
    failure: Option<&'a Failure>,
) -> Tapped<'a> {
    Tapped {
        event: if failure.is_some() {
            EventKind::Dead
        } else {
            EventKind::In
        },
        stage: "enrich",
        module_version: "abc",
        cohort: "stable",
        topic: "clicks",
        partition: 3,
        trace_id,
        span_id: &[1; 8],
        record,
        failure,
    }
}

fn next_line(stream: &mut TapStream) -> Value {
    match stream.next(Duration::from_secs(1)) {
        Next::Line(line) => serde_json::from_str(&line).unwrap(),
        other => panic!("no line: {other:?}"),
    }
}

#[test]
fn a_line_carries_where_the_record_was_and_what_it_held() {
    let hub = TapHub::new(None);
    assert!(!hub.attached());
    let mut stream = hub.attach(TapFilter::default()).unwrap();
    assert!(hub.attached());
    let r = record("k1", r#"{"user":"u1","n":2}"#);
    let failure = Failure::new(FailureKind::Trap, "boom");
    hub.offer(&[
        tapped(&r, &[9; 16], None),
        tapped(&r, &[9; 16], Some(&failure)),
    ]);
    let line = next_line(&mut stream);
    assert_eq!(line["event"], "in");
    assert_eq!(line["stage"], "enrich");
    assert_eq!(line["module_version"], "abc");
    assert_eq!(line["cohort"], "stable");
    assert_eq!(
        (line["topic"].as_str(), line["partition"].as_i64()),
        (Some("clicks"), Some(3))
    );
    assert_eq!(line["offset"], 42);
    assert_eq!(line["trace_id"], "09".repeat(16));
    assert_eq!(line["span_id"], "01".repeat(8));
    assert_eq!(line["key"], "k1");
    assert_eq!(line["value"]["n"], 2);
    assert_eq!(line["headers"]["x-user"], "marker-user-77");
    let dead = next_line(&mut stream);
    assert_eq!(dead["event"], "dead");
    assert_eq!(dead["error"]["kind"], "trap");
    drop(stream);
    assert!(!hub.attached(), "a stream dropped detaches its client");
}

#[test]
fn redaction_applies_to_values_headers_keys_and_messages() {
    let privacy = Redactor::new(vec!["/user".into()], vec!["X-User".into()], Method::Mask).unwrap();
    let hub = TapHub::new(Some(Arc::new(privacy)));
    let mut stream = hub.attach(TapFilter::default()).unwrap();
    let r = record("marker-key-99", r#"{"user":"marker-key-99","n":2}"#);
    let failure = Failure::new(
        FailureKind::Trap,
        "no such user marker-key-99 (marker-user-77)",
    );
    hub.offer(&[tapped(&r, &[9; 16], Some(&failure))]);
    let line = next_line(&mut stream).to_string();
    assert!(!line.contains("marker"), "{line}");
    assert!(line.contains("[redacted]"), "{line}");
}

#[test]
fn a_slow_client_loses_lines_counted_and_told_never_the_lane() {
    let hub = TapHub::new(None);
    let mut stream = hub.attach(TapFilter::default()).unwrap();
    let r = record("k", "v");
    let one = [tapped(&r, &[9; 16], None)];
    let started = std::time::Instant::now();
    for _ in 0..QUEUE_LINES + 10 {
        hub.offer(&one);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "offering never waits"
    );
    assert_eq!(next_line(&mut stream), json!({ "dropped": 10 }));
    for _ in 0..QUEUE_LINES {
        assert_eq!(next_line(&mut stream)["event"], "in");
    }
    assert_eq!(stream.next(Duration::from_millis(10)), Next::Idle);
    // A client that caught up gets every line again: the queue counts what it took.
    for _ in 0..QUEUE_LINES {
        hub.offer(&one);
    }
    for _ in 0..QUEUE_LINES {
        assert_eq!(next_line(&mut stream)["event"], "in");
    }
    assert_eq!(stream.next(Duration::from_millis(10)), Next::Idle);
}

#[test]
fn clients_are_bounded_and_filtered_and_end_when_closed() {
    let hub = TapHub::new(None);
    let filter = TapFilter::parse("key=wanted").unwrap();
    let mut streams: Vec<_> = (0..MAX_CLIENTS)
        .map(|_| hub.attach(filter.clone()).unwrap())
        .collect();
    assert!(matches!(
        hub.attach(TapFilter::default()),
        Err(Refusal::TooMany(_))
    ));
    let (a, b) = (record("other", "1"), record("wanted", "2"));
    hub.offer(&[tapped(&a, &[9; 16], None), tapped(&b, &[9; 16], None)]);
    assert_eq!(next_line(&mut streams[0])["key"], "wanted");
    assert_eq!(streams[0].next(Duration::from_millis(10)), Next::Idle);
    hub.close();
    assert_eq!(streams[1].next(Duration::from_millis(10)), Next::End);
    streams.clear();
    assert!(!hub.attached());
}

#[test]
fn values_stay_on_one_line_whatever_their_form() {
    let hub = TapHub::new(None);
    let mut stream = hub.attach(TapFilter::default()).unwrap();
    let pretty = record("k", "{\n  \"user\": \"u1\",\n  \"n\": [1,\r\n 2]\n}");
    let text = record("k", "not json {");
    let mut repeated = record("k", " 7 ");
    repeated.headers.push("x-user", Some(b"second"));
    repeated.headers.push("x-null", None);
    let trace = [3; 16];
    hub.offer(&[
        tapped(&pretty, &trace, None),
        tapped(&text, &trace, None),
        tapped(&repeated, &trace, None),
    ]);
    let mut raw = Vec::new();
    for _ in 0..3 {
        match stream.next(Duration::from_secs(1)) {
            Next::Line(line) => raw.push(line),
            other => panic!("no line: {other:?}"),
        }
    }
    assert!(raw.iter().all(|l| !l.contains(['\n', '\r'])), "{raw:#?}");
    let lines: Vec<Value> = raw
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["value"], json!({ "user": "u1", "n": [1, 2] }));
    assert_eq!(lines[1]["value"], "not json {");
    assert_eq!(lines[2]["value"], 7);
    assert_eq!(
        lines[2]["headers"]["x-user"], "second",
        "a repeated name keeps the last"
    );
    assert_eq!(lines[2]["headers"]["x-null"], Value::Null);
    assert!(lines[2].get("error").is_none());
}
