//! A lane that falls behind pauses its partition instead of buffering, and resumes without losing
//! or reordering a record.

use std::time::Duration;

use crate::harness::{
    Rec, Weir, broker, consume, create_topic, module, one_stage_pipeline, produce, unique,
    write_pipeline,
};

#[test]
fn a_full_lane_pauses_its_partition_and_resumes_in_order() {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq) = (unique("in"), unique("out"), unique("dlq"));
    create_topic(&input, 1);
    create_topic(&output, 1);
    create_topic(&dlq, 1);
    // A queue of 32 records against a 5,000-record backlog: the consumer outruns the lane.
    // Tansu answers a fetch only after `fetch.wait.max.ms`, and every resume costs a fetch, so
    // the wait is kept short here.
    let source = format!(
        r#"[source]
brokers = "{brokers}"
topics = ["{input}"]
group = "{group}"
batch_size = 16
queue_capacity = 32
commit_interval = "200ms"
kafka = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500", "fetch.wait.max.ms" = "10" }}
"#,
        brokers = broker().bootstrap,
        group = unique("group"),
    );
    let (_dir, pipeline) = write_pipeline(&one_stage_pipeline(
        "backpressure",
        &source,
        "identity",
        &module("identity"),
        "",
        &output,
        &dlq,
    ));
    let records: Vec<Rec> = (0..5_000)
        .map(|i| Rec::new(0, "k", format!("{i}")))
        .collect();
    produce(&input, &records);

    let weir = Weir::run(&pipeline);
    let out = consume(&output, records.len(), Duration::from_secs(90));
    let log = weir.terminate();
    let values: Vec<String> = out.iter().map(Rec::value_str).collect();
    let want: Vec<String> = (0..5_000).map(|i| i.to_string()).collect();
    assert_eq!(values, want, "every record, once, in order");
    assert!(
        log.iter()
            .any(|l| l.contains("Lane full; partition paused")),
        "the lane's queue filled and the partition was paused"
    );
}
