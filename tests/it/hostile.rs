//! Hostile input from the cluster: every compression codec, a corrupt batch that no read can get
//! past, header names that are not UTF-8, records too large for the producer, forged provenance.
//! One test per case, named for it.

use std::time::Duration;

use weir_core::headers;

use crate::harness::{
    Rec, Weir, broker, consume, consume_all, create_topic, create_topic_with, http_get,
    metric_value, one_stage_pipeline, produce, produce_with, source_table, unique, wait_for_value,
    write_pipeline,
};
use crate::raw::{self, RawRecord};

/// Fresh input and output topics of `partitions` partitions, and a dead-letter topic.
fn topics(name: &str, partitions: i32) -> Topics {
    let topics = Topics {
        input: unique(name),
        output: unique(&format!("{name}-out")),
        dlq: unique("dlq"),
    };
    create_topic(&topics.input, partitions);
    create_topic(&topics.output, partitions);
    create_topic(&topics.dlq, 1);
    topics
}

struct Topics {
    input: String,
    output: String,
    dlq: String,
}

impl Topics {
    /// A pipeline of one stage running `module` (with `extra` lines in its table) from the input
    /// to the output; `tail` is appended to the file.
    fn pipeline(&self, stage: &str, module: &str, extra: &str, tail: &str) -> String {
        let mut toml = one_stage_pipeline(
            &self.input,
            &source_table(&[&self.input], &unique("group")),
            stage,
            &crate::harness::module(module),
            extra,
            &self.output,
            &self.dlq,
        );
        toml.push_str(tail);
        toml
    }
}

fn seq_value(seq: usize) -> String {
    format!(r#"{{"url":"https://shop.example/p/{seq}","seq":{seq}}}"#)
}

#[test]
fn every_compression_codec_is_read_and_written() {
    let t = topics("codecs", 2);
    let (input, output) = (&t.input, &t.output);
    let codecs = ["zstd", "gzip", "snappy", "lz4"];
    for (i, codec) in codecs.iter().enumerate() {
        let records: Vec<Rec> = (0..50)
            .map(|n| Rec::new(n as i32 % 2, codec, seq_value(i * 50 + n)))
            .collect();
        produce_with(input, &records, &[("compression.type", codec)]);
    }
    // Weir's own outputs compressed with zstd too.
    let zstd = "\n[sink]\nkafka = { \"compression.type\" = \"zstd\" }\n";
    let (_dir, pipeline) = write_pipeline(&t.pipeline("identity", "identity", "", zstd));
    let weir = Weir::run(&pipeline);
    let out = consume(output, 200, Duration::from_secs(60));
    let log = weir.terminate();
    assert_eq!(out.len(), 200, "every record of every codec comes out");
    for codec in codecs {
        let n = out
            .iter()
            .filter(|r| r.key.as_deref() == Some(codec.as_bytes()))
            .count();
        assert_eq!(n, 50, "{codec}");
    }
    assert!(
        !log.iter().any(|l| l.contains("Consume error")),
        "no consume error"
    );
}

#[test]
fn a_corrupt_batch_stalls_its_partition_loudly_and_the_others_flow() {
    let t = topics("corrupt", 2);
    let (input, output) = (&t.input, &t.output);
    // Partition 0: a gzip batch whose payload is not gzip. No client can read past it.
    raw::produce(
        &broker().bootstrap,
        input,
        0,
        &raw::corrupt_batch(raw::GZIP, 3, b"\x1f\x8b this is not gzip at all"),
    );
    let good: Vec<Rec> = (0..40).map(|n| Rec::new(1, "k", seq_value(n))).collect();
    produce(input, &good);
    let (_dir, pipeline) = write_pipeline(&t.pipeline("identity", "identity", "", ""));
    let weir = Weir::run(&pipeline);
    let admin = weir.admin_addr();
    let out = consume(output, good.len(), Duration::from_secs(60));
    assert_eq!(out.len(), good.len(), "partition 1 flows");

    // Not ready, naming the partition and the kind; still alive.
    let (status, body) = wait_for_value(Duration::from_secs(30), || {
        let (status, body) = http_get(admin, "/readyz");
        (status == 503 && body.contains("stalled")).then_some((status, body))
    });
    assert_eq!(status, 503);
    assert!(
        body.contains(&format!("{input}/0")) && body.contains("bad_compression"),
        "{body}"
    );
    assert_eq!(http_get(admin, "/healthz").0, 200, "a stall is not death");

    // Errors keep coming (librdkafka retries about twice a second), counted, logged once.
    let errors = |text: &str| {
        metric_value(
            text,
            "weir_consume_errors_total",
            &[("partition", "0"), ("kind", "bad_compression")],
        )
        .unwrap_or(0.0)
    };
    let text = wait_for_value(Duration::from_secs(30), || {
        let text = http_get(admin, "/metrics").1;
        (errors(&text) >= 8.0).then_some(text)
    });
    assert_eq!(
        metric_value(&text, "weir_partition_stalled", &[("partition", "0")]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&text, "weir_partition_stalled", &[("partition", "1")]),
        Some(0.0)
    );
    // Eight errors or more so far, in a few seconds: one line for their kind (two if the
    // client first reported another kind), not one per error.
    let lines = weir.count_logged("\"Consume error.\"");
    assert!((1..=2).contains(&lines), "{lines} log lines");
    assert_eq!(weir.count_logged("Partition stalled"), 1);
    weir.terminate();
}

#[test]
fn a_header_name_that_is_not_utf8_is_carried_through_as_bytes() {
    let t = topics("bytes", 1);
    let (input, output, dlq) = (&t.input, &t.output, &t.dlq);
    let name: &[u8] = b"\xff\xfeorigin";
    let record = |seq: usize, headers: Vec<(Vec<u8>, Vec<u8>)>| RawRecord {
        key: Some(b"k".to_vec()),
        value: Some(seq_value(seq).into_bytes()),
        headers,
    };
    let batch = raw::batch(&[
        record(0, vec![(name.to_vec(), b"v0".to_vec())]),
        record(1, vec![(b"plain".to_vec(), b"v1".to_vec())]),
        record(2, vec![(name.to_vec(), b"v2".to_vec())]),
    ]);
    raw::produce(&broker().bootstrap, input, 0, &batch);
    let config = r#"config = { field = "url" }"#;
    let (_dir, pipeline) = write_pipeline(&t.pipeline("enrich", "json_enrich", config, ""));
    let weir = Weir::run(&pipeline);
    let out = consume(output, 3, Duration::from_secs(60));
    let log = weir.terminate();
    assert_eq!(
        out.len(),
        3,
        "every record comes out, none stalls or panics"
    );
    assert!(!log.iter().any(|l| l.contains("panicked")));
    // The test reader escapes names the way Weir does; an escaped name here was raw bytes on the
    // wire, and these are the very bytes.
    let seen = weir_kafka::headers::name_from_wire(name);
    assert_eq!(&*weir_kafka::headers::name_to_wire(&seen), name);
    for (r, value) in [(&out[0], "v0"), (&out[2], "v2")] {
        assert_eq!(
            r.header_str(&seen).as_deref(),
            Some(value),
            "{:?}",
            r.headers
        );
    }
    assert_eq!(out[1].header_str("plain").as_deref(), Some("v1"));
    assert!(consume_all(dlq, Duration::from_secs(1), Duration::from_secs(10)).is_empty());
}

#[test]
fn an_output_too_large_for_its_topic_becomes_a_truncated_dead_letter() {
    // The output topic takes records of up to 10,000 bytes: the producer follows that limit
    // (librdkafka's own default is 1,000,000), and refuses the large output at once.
    let t = Topics {
        input: unique("large"),
        output: unique("large-out"),
        dlq: unique("dlq"),
    };
    let (input, output, dlq) = (&t.input, &t.output, &t.dlq);
    create_topic(input, 1);
    create_topic_with(output, 1, &[("max.message.bytes", "10000")]);
    create_topic_with(dlq, 1, &[("max.message.bytes", "10000")]);
    let big = format!(r#"{{"url":"https://shop.example/{}"}}"#, "x".repeat(20_000));
    let mut records = vec![Rec::new(0, "small-0", seq_value(0))];
    records.push(Rec::new(0, "big", big.clone()).header(headers::STAGE, "forged"));
    records.push(Rec::new(0, "small-2", seq_value(2)));
    produce(input, &records);
    let (_dir, pipeline) = write_pipeline(&t.pipeline("identity", "identity", "", ""));
    let weir = Weir::run(&pipeline);
    let out = consume(output, 2, Duration::from_secs(60));
    let dead = consume(dlq, 1, Duration::from_secs(30));
    let log = weir.terminate();
    assert_eq!(
        out.iter()
            .map(|r| r.key.clone().unwrap())
            .collect::<Vec<_>>(),
        [b"small-0".to_vec(), b"small-2".to_vec()],
        "the records around it flow"
    );
    assert_eq!(dead.len(), 1, "{log:?}");
    let letter = &dead[0];
    assert_eq!(letter.value, None, "sent without its value");
    assert_eq!(letter.key, None, "and without its key");
    assert_eq!(
        letter.header_str(headers::TRUNCATED),
        Some((big.len() + 3).to_string()),
        "the size of what was left out"
    );
    assert_eq!(
        letter.header_str(headers::SOURCE_OFFSET).as_deref(),
        Some("1")
    );
    assert_eq!(
        letter.header_str(headers::ERROR_KIND).as_deref(),
        Some("invalid-output")
    );
    let stages: Vec<_> = letter
        .headers
        .iter()
        .filter(|(n, _)| n == headers::STAGE)
        .collect();
    assert_eq!(stages.len(), 1, "an input's forged provenance is dropped");
    assert_eq!(
        letter.header_str(headers::STAGE).as_deref(),
        Some("identity")
    );

    // Committed: a restart reads nothing again.
    let weir = Weir::run(&pipeline);
    weir.wait_assigned();
    std::thread::sleep(Duration::from_secs(2));
    weir.terminate();
    assert_eq!(
        consume_all(dlq, Duration::from_secs(1), Duration::from_secs(10)).len(),
        1
    );
}
