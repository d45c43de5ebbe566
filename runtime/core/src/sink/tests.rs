//! The delivery rule against an in-memory sink: what is committed is exactly the prefix of
//! inputs whose every output is durable, whatever the order of acknowledgements, failures,
//! retries and backpressure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::memory::MemorySink;
use super::{Backoff, Output, Sink, SinkError, write_all};
use crate::{Bytes, PartitionTracker, Record};

fn record(value: &str) -> Record {
    Record {
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        ..Record::default()
    }
}

const QUICK: Backoff = Backoff {
    first: Duration::from_millis(1),
    max: Duration::from_millis(4),
};

/// Tracks inputs `offsets`, writes `per_input` outputs of each, and settles the guards.
fn write_inputs(
    sink: &dyn Sink,
    tracker: &PartitionTracker,
    offsets: std::ops::Range<i64>,
    per_input: usize,
) {
    let records: Vec<Record> = (0..per_input).map(|i| record(&i.to_string())).collect();
    let acks: Vec<_> = offsets.map(|o| tracker.track(o)).collect();
    let outputs: Vec<Output<'_>> = acks
        .iter()
        .flat_map(|ack| {
            records.iter().map(move |r| Output {
                destination: "out",
                partition: None,
                record: r,
                source_topic: "in",
                source_partition: 0,
                ack,
            })
        })
        .collect();
    let refused = write_all(sink, &outputs, QUICK, &|| false).expect("written");
    assert!(refused.is_empty());
    for ack in &acks {
        ack.settle();
    }
}

#[test]
fn out_of_order_acknowledgements_commit_only_the_durable_prefix() {
    let sink = MemorySink::holding(usize::MAX);
    let tracker = PartitionTracker::new();
    write_inputs(&sink, &tracker, 0..4, 2); // 8 outputs, 2 per input
    // The broker answers out of order: the last input's outputs first, then the first's.
    sink.ack(7);
    sink.ack(6);
    assert_eq!(tracker.committable(), None);
    sink.ack(0);
    assert_eq!(tracker.committable(), None, "input 0 has one output left");
    sink.ack(0);
    assert_eq!(tracker.committable(), Some(1));
    // Inputs 1 and 2 are pending; input 3 is durable but behind them.
    assert_eq!(tracker.in_flight(), 3);
    for _ in 0..4 {
        sink.ack(0);
    }
    assert_eq!(tracker.committable(), Some(4));
    assert_eq!(sink.stored().len(), 8);
}

#[test]
fn an_output_that_fails_for_good_pins_the_commit_point_and_is_reported() {
    let sink = MemorySink::holding(usize::MAX);
    let tracker = PartitionTracker::new();
    write_inputs(&sink, &tracker, 10..13, 1);
    sink.ack(0); // input 10
    sink.fail(0, "broker said no"); // input 11
    sink.ack(0); // input 12
    assert_eq!(tracker.committable(), Some(11));
    assert_eq!(tracker.failed_at(), Some(11));
    let failure = sink.failure().expect("the failure is kept");
    assert_eq!(failure.source_offset, 11, "{failure}");
    assert!(
        failure.to_string().contains("source offset 11"),
        "{failure}"
    );
    // Later inputs never move the commit point past the failed one.
    write_inputs(&sink, &tracker, 13..14, 1);
    sink.ack(0);
    assert_eq!(tracker.committable(), Some(11));
}

#[test]
fn a_refused_output_leaves_its_acknowledgement_to_the_caller() {
    let sink = MemorySink::durable().refusing_values_over(3);
    let tracker = PartitionTracker::new();
    let ack = tracker.track(0);
    let (small, large) = (record("ok"), record("too large"));
    let outputs = [
        Output {
            destination: "out",
            partition: Some(2),
            record: &large,
            source_topic: "in",
            source_partition: 0,
            ack: &ack,
        },
        Output {
            destination: "out",
            partition: Some(2),
            record: &small,
            source_topic: "in",
            source_partition: 0,
            ack: &ack,
        },
    ];
    let refused = write_all(&sink, &outputs, QUICK, &|| false).expect("written");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, 0);
    assert!(refused[0].1.reason.contains("9 bytes"), "{}", refused[0].1);
    // The caller dead-letters the refused output's input in its place.
    let letter = record("dl");
    let dead = [Output {
        destination: "dlq",
        partition: None,
        record: &letter,
        source_topic: "in",
        source_partition: 0,
        ack: &ack,
    }];
    assert!(
        write_all(&sink, &dead, QUICK, &|| false)
            .unwrap()
            .is_empty()
    );
    ack.settle();
    assert_eq!(tracker.committable(), Some(1));
    let stored = sink.stored();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].partition, Some(2));
    assert_eq!(stored[1].destination, "dlq");
    assert_eq!(stored[1].source_offset, 0);
}

#[test]
fn an_unavailable_sink_is_retried_and_takes_the_batch_exactly_once() {
    let sink = MemorySink::durable();
    sink.unavailable_for(3);
    let tracker = PartitionTracker::new();
    write_inputs(&sink, &tracker, 0..5, 1);
    assert_eq!(sink.writes(), 4, "three refusals, then the write");
    assert_eq!(sink.stored().len(), 5, "no output twice, none lost");
    assert_eq!(tracker.committable(), Some(5));
}

#[test]
fn retrying_stops_when_the_caller_stops_and_nothing_is_committed() {
    let sink = MemorySink::durable();
    sink.unavailable_for(u32::MAX);
    let tracker = PartitionTracker::new();
    let ack = tracker.track(0);
    let r = record("x");
    let outputs = [Output {
        destination: "out",
        partition: None,
        record: &r,
        source_topic: "in",
        source_partition: 0,
        ack: &ack,
    }];
    let attempts = AtomicU32::new(0);
    // The caller stops after a few attempts.
    let result = write_all(&sink, &outputs, QUICK, &|| {
        attempts.fetch_add(1, Ordering::Relaxed) >= 3
    });
    assert!(matches!(result, Err(SinkError::Stopped(_))), "{result:?}");
    // A lane whose write failed never settles the input: it is re-read after a restart.
    assert_eq!(
        tracker.committable(),
        None,
        "the output never became durable"
    );
    assert_eq!(tracker.in_flight(), 1);
    assert!(sink.stored().is_empty());
}

#[test]
fn a_full_sink_blocks_the_writer_and_bounds_what_is_held() {
    const CAPACITY: usize = 4;
    const INPUTS: i64 = 200;
    let sink = Arc::new(MemorySink::holding(CAPACITY));
    let tracker = Arc::new(PartitionTracker::new());
    let writer = {
        let (sink, tracker) = (Arc::clone(&sink), Arc::clone(&tracker));
        std::thread::spawn(move || {
            for offset in 0..INPUTS {
                write_inputs(&*sink, &tracker, offset..offset + 1, 1);
            }
        })
    };
    // The store drains slowly, oldest first.
    let mut acked = 0;
    while acked < INPUTS {
        if sink.pending() > 0 {
            sink.ack(0);
            acked += 1;
        } else {
            std::thread::yield_now();
        }
    }
    writer.join().expect("writer");
    assert!(
        sink.most_pending() <= CAPACITY,
        "held {} outputs at once",
        sink.most_pending()
    );
    assert_eq!(sink.stored().len(), INPUTS as usize);
    assert_eq!(tracker.committable(), Some(INPUTS));
    sink.flush(Duration::from_secs(1)).expect("nothing left");
}
