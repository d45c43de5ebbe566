//! Records flow end to end: values enriched, keys, headers, partitions and order kept; a clean
//! stop commits everything, so a restart neither loses nor repeats a record.

use std::time::Duration;

use crate::harness::{
    Rec, Weir, by_partition, consume, consume_all, create_topic, module, one_stage_pipeline,
    produce, source_table, unique, write_pipeline,
};

fn click(partition: i32, seq: usize) -> Rec {
    Rec::new(
        partition,
        &format!("user-{partition}-{seq}"),
        format!(
            r#"{{"user":"u{seq}","url":"https://shop.example/products/{seq}?ref=mail","ts":1700000000000,"seq":{seq}}}"#
        ),
    )
    .header("trace", &format!("t-{partition}-{seq}"))
}

fn seq_of(r: &Rec) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
    v["seq"].as_u64().unwrap()
}

#[test]
fn records_flow_with_keys_headers_and_order_kept_and_a_clean_stop_commits() {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq) = (unique("clicks"), unique("enriched"), unique("dlq"));
    create_topic(&input, 3);
    create_topic(&output, 3);
    create_topic(&dlq, 1);
    let (_dir, pipeline) = write_pipeline(&one_stage_pipeline(
        "flow",
        &source_table(&[&input], &unique("group")),
        "enrich",
        &module("json_enrich"),
        r#"config = { field = "url" }"#,
        &output,
        &dlq,
    ));

    let first: Vec<Rec> = (0..3)
        .flat_map(|p| (0..50).map(move |i| click(p, i)))
        .collect();
    produce(&input, &first);
    let weir = Weir::run(&pipeline);
    let out = consume(&output, first.len(), Duration::from_secs(60));
    assert_eq!(out.len(), first.len(), "every record comes out");
    let log = weir.terminate();
    assert!(log.iter().any(|l| l.contains("Pipeline stopped")));

    for (partition, recs) in by_partition(&out) {
        let seqs: Vec<u64> = recs.iter().map(|r| seq_of(r)).collect();
        assert_eq!(
            seqs,
            (0..50).collect::<Vec<_>>(),
            "order of partition {partition}"
        );
        for r in recs {
            let seq = seq_of(r);
            assert_eq!(
                r.key.as_deref(),
                Some(format!("user-{partition}-{seq}").as_bytes())
            );
            assert_eq!(r.header_str("trace"), Some(format!("t-{partition}-{seq}")));
            let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            assert_eq!(v["domain"], "shop.example", "enriched: {v}");
            assert_eq!(v["path"], format!("/products/{seq}"));
        }
    }

    // A restart resumes after the committed offsets: new records only, no repeats.
    let second: Vec<Rec> = (0..3)
        .flat_map(|p| (50..80).map(move |i| click(p, i)))
        .collect();
    produce(&input, &second);
    let weir = Weir::run(&pipeline);
    let total = first.len() + second.len();
    let out = consume(&output, total, Duration::from_secs(60));
    assert_eq!(out.len(), total);
    weir.terminate();
    let out = consume_all(&output, Duration::from_secs(2), Duration::from_secs(30));
    assert_eq!(
        out.len(),
        total,
        "a clean stop committed everything: nothing is repeated"
    );
    for (partition, recs) in by_partition(&out) {
        let seqs: Vec<u64> = recs.iter().map(|r| seq_of(r)).collect();
        assert_eq!(
            seqs,
            (0..80).collect::<Vec<_>>(),
            "order of partition {partition}"
        );
    }
    assert!(consume_all(&dlq, Duration::from_secs(1), Duration::from_secs(10)).is_empty());
}
