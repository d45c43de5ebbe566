//! A lane slower than its input holds its partition back: the partition's fetch queue stays
//! bounded, nothing is buffered without bound, and every record still comes out once, in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::{
    Rec, Weir, broker, consume, create_topic, http_get, metric_value, module, one_stage_pipeline,
    produce, unique, write_pipeline,
};

/// Records in the backlog, and in each produce call (so each record batch on the broker, hence
/// each fetch response, holds at most this many).
const RECORDS: usize = 3_000;
const PER_BATCH: usize = 50;
const QUEUE: usize = 32;

#[test]
fn a_slow_lane_bounds_its_partitions_fetch_queue_and_loses_nothing() {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq) = (unique("in"), unique("out"), unique("dlq"));
    create_topic(&input, 1);
    create_topic(&output, 1);
    create_topic(&dlq, 1);
    let records: Vec<Rec> = (0..RECORDS)
        .map(|i| Rec::new(0, "k", format!("{i}")))
        .collect();
    for chunk in records.chunks(PER_BATCH) {
        produce(&input, chunk);
    }
    // A queue of 32 records against a 3,000-record backlog, and a stage that spins on every
    // record: the lane is far slower than the fetches. Small fetches (one record batch each) and
    // statistics every 100 ms make the fetch queue's bound observable. The fetch limits are
    // far below what a pipeline would use, so that one fetch adds one record batch.
    let source = format!(
        r#"[source]
brokers = "{brokers}"
topics = ["{input}"]
group = "{group}"
batch_size = 16
queue_capacity = {QUEUE}
commit_interval = "200ms"
kafka = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500", "fetch.wait.max.ms" = "10", "max.partition.fetch.bytes" = "1024", "fetch.max.bytes" = "1024", "message.max.bytes" = "1000", "statistics.interval.ms" = "100" }}
"#,
        brokers = broker().bootstrap,
        group = unique("group"),
    );
    let (_dir, pipeline) = write_pipeline(&one_stage_pipeline(
        "backpressure",
        &source,
        "tag",
        &module("tag"),
        "config = { header = \"seen\", value = \"1\", spin = 3000000 }\nlimits = { timeout = \"5s\" }",
        &output,
        &dlq,
    ));

    let weir = Weir::run(&pipeline);
    let admin = weir.admin_addr();
    // Watch the gauges while the backlog drains.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let (mut max_queue, mut saturated) = (None::<f64>, false);
            while !done.load(Ordering::Relaxed) {
                let (_, text) = http_get(admin, "/metrics");
                if let Some(q) = metric_value(&text, "weir_fetch_queue_records", &[]) {
                    max_queue = Some(max_queue.map_or(q, |m: f64| m.max(q)));
                }
                saturated |= metric_value(&text, "weir_saturated_partitions", &[]) == Some(1.0);
                std::thread::sleep(Duration::from_millis(50));
            }
            (max_queue, saturated)
        })
    };
    let out = consume(&output, records.len(), Duration::from_secs(120));
    done.store(true, Ordering::Relaxed);
    let (max_queue, saturated) = watcher.join().unwrap();
    eprintln!("fetch queue at most {max_queue:?} records; saturated seen: {saturated}");
    weir.terminate();

    let values: Vec<String> = out.iter().map(Rec::value_str).collect();
    let want: Vec<String> = (0..RECORDS).map(|i| i.to_string()).collect();
    assert_eq!(values, want, "every record, once, in order");
    assert!(
        out.iter()
            .all(|r| r.header_str("seen").as_deref() == Some("1")),
        "every record went through the stage"
    );
    assert!(
        saturated,
        "the lane was seen saturated: records waited for it"
    );
    let max_queue = max_queue.expect("the fetch queue gauge was reported");
    // librdkafka fetches only while the queue holds fewer than `queue_capacity` records, and a
    // fetch answer of at most `fetch.max.bytes` adds a record batch or two (Tansu may add a
    // second batch beyond the limit): far less than the backlog.
    let bound = (QUEUE + 4 * PER_BATCH) as f64;
    assert!(
        max_queue <= bound,
        "the fetch queue held {max_queue} records of a {RECORDS}-record backlog, more than \
         queue_capacity and a fetch answer or two ({bound})"
    );
    assert!(
        max_queue >= QUEUE as f64 / 2.0,
        "the fetch queue was seen filling ({max_queue} records at most): the lane was the \
         bottleneck"
    );
}
