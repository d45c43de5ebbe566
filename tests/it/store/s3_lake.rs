//! The Parquet cold store on an S3-compatible server (moto, or `WEIR_TEST_S3`): every record
//! once with its trace id; the server cut off mid-stream; a `kill -9` while an upload is in
//! flight.

use std::time::Duration;

use super::{read_lake, store_pipeline_at, trace_id};
use crate::harness::{
    Rec, Weir, committed, create_topic, http_get, metric_value, produce, unique, wait_for_value,
    write_pipeline,
};
use crate::proxy::Relay;
use crate::s3;

#[test]
fn an_s3_lake_holds_every_record_once_with_its_trace_id() {
    const N: usize = 40;
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    let bucket = unique("lake").to_ascii_lowercase().replace('_', "-");
    create_topic(&input, 2);
    create_topic(&dlq, 1);
    s3::create_bucket(&bucket);
    let location = format!(
        "path = \"s3://{bucket}/clicks\"\nendpoint = \"{}\"",
        s3::s3().endpoint
    );
    let store = r#"schema = [{ name = "id", type = "int64", nullable = false }]
roll_records = 6
roll_age = "1h""#;
    let (_dir, pipeline) =
        write_pipeline(&store_pipeline_at(&input, &dlq, &group, &location, store));
    let records: Vec<Rec> = (0..N)
        .map(|i| {
            let parent = format!("00-{}-{:016x}-01", trace_id(i), i + 1);
            Rec::new(i as i32 % 2, &format!("k{i}"), format!(r#"{{"id":{i}}}"#))
                .header("traceparent", &parent)
        })
        .collect();
    produce(&input, &records);
    let env = s3::credentials();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let weir = Weir::run_with_env(&pipeline, &[], &env);
    let whole = (N / 2 / 6 * 6) as i64;
    wait_for_value(Duration::from_secs(60), || {
        (0..2)
            .all(|p| committed(&group, &input, p) == Some(whole))
            .then_some(())
    });
    weir.terminate();
    let (_, rows) = read_lake(&format!("s3://{bucket}/clicks"));
    let mut ids: Vec<(u64, String)> = rows
        .iter()
        .map(|r| {
            let id = r["id"].as_u64().unwrap();
            (id, r["weir_trace_id"].as_str().unwrap().to_owned())
        })
        .collect();
    ids.sort();
    let expected: Vec<(u64, String)> = (0..N).map(|i| (i as u64, trace_id(i))).collect();
    assert_eq!(ids, expected);
}

/// One-partition topics `input` and `dlq`, a fresh bucket named after `name`, and a relay in
/// front of the S3 server: the bucket, the relay, and the sink's location keys for objects under
/// `prefix`, reached through the relay.
fn behind_a_relay(input: &str, dlq: &str, name: &str, prefix: &str) -> (String, Relay, String) {
    let bucket = unique(name).to_ascii_lowercase().replace('_', "-");
    create_topic(input, 1);
    create_topic(dlq, 1);
    s3::create_bucket(&bucket);
    let relay = Relay::start(s3::s3().endpoint.trim_start_matches("http://"));
    let location = format!(
        "path = \"s3://{bucket}/{prefix}\"\nendpoint = \"http://127.0.0.1:{}\"",
        relay.port
    );
    (bucket, relay, location)
}

#[test]
fn an_s3_store_cut_off_mid_stream_holds_the_lane_back_and_loses_nothing() {
    const N: usize = 20;
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    let (bucket, relay, location) = behind_a_relay(&input, &dlq, "cut", "clicks");
    let store = r#"schema = [{ name = "id", type = "int64", nullable = false }]
roll_records = 5
roll_age = "1h""#;
    let (_dir, pipeline) =
        write_pipeline(&store_pipeline_at(&input, &dlq, &group, &location, store));
    let record = |i: usize| Rec::new(0, &format!("k{i}"), format!(r#"{{"id":{i}}}"#));
    produce(&input, &(0..N).map(record).collect::<Vec<_>>());
    let env = s3::credentials();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let weir = Weir::run_with_env(&pipeline, &[], &env);
    let admin = weir.admin_addr();
    wait_for_value(Duration::from_secs(60), || {
        (committed(&group, &input, 0) == Some(N as i64)).then_some(())
    });

    // The store goes away; more records come.
    relay.cut();
    produce(&input, &(N..2 * N).map(record).collect::<Vec<_>>());
    let body = wait_for_value(Duration::from_secs(60), || {
        let (status, body) = http_get(admin, "/readyz");
        (status == 503 && body.contains("sink \"lake\" unavailable")).then_some(body)
    });
    assert_eq!(http_get(admin, "/healthz").0, 200, "{body}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        committed(&group, &input, 0),
        Some(N as i64),
        "nothing committed while the store is away"
    );
    let (_, metrics) = http_get(admin, "/metrics");
    let failed = metric_value(
        &metrics,
        "weir_store_failures_total",
        &[("sink", "lake"), ("reason", "object-store")],
    );
    assert!(failed >= Some(1.0), "{metrics}");

    relay.restore();
    wait_for_value(Duration::from_secs(60), || {
        (committed(&group, &input, 0) == Some(2 * N as i64)).then_some(())
    });
    wait_for_value(Duration::from_secs(30), || {
        (http_get(admin, "/readyz").0 == 200).then_some(())
    });
    weir.terminate();
    let (_, rows) = read_lake(&format!("s3://{bucket}/clicks"));
    let mut ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..2 * N as u64).collect::<Vec<_>>(),
        "every record once"
    );
}

/// Text of `len` characters that compresses poorly, different for each `seed`.
fn noise(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

#[test]
fn kill_9_while_an_upload_is_in_flight_leaves_every_record_in_the_lake_once() {
    // 40 records of 300 kB: a 12 MB file, which goes up as a multipart upload of 8 MiB parts.
    const N: usize = 40;
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    let (bucket, relay, location) = behind_a_relay(&input, &dlq, "inflight", "big");
    let store = r#"schema = [
    { name = "id", type = "int64", nullable = false },
    { name = "blob", type = "string", nullable = false },
]
roll_records = 40
roll_age = "1h"
compression = "none""#;
    let (_dir, pipeline) =
        write_pipeline(&store_pipeline_at(&input, &dlq, &group, &location, store));
    let records: Vec<Rec> = (0..N)
        .map(|i| {
            let value = format!(r#"{{"id":{i},"blob":"{}"}}"#, noise(i as u64, 300_000));
            Rec::new(0, &format!("k{i}"), value)
        })
        .collect();
    produce(&input, &records);
    let env = s3::credentials();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // The upload starts; after 4 MB of it the link holds (the relay lets no more through), and
    // weir is killed with its upload in flight.
    relay.hold_after(4 << 20);
    let weir = Weir::run_with_env(&pipeline, &[], &env);
    wait_for_value(Duration::from_secs(60), || {
        (relay.upstream_bytes() > 3 << 20).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(relay.upstream_bytes() <= 4 << 20, "the relay held");
    weir.kill9();
    assert_eq!(committed(&group, &input, 0), None, "nothing was committed");
    relay.restore();
    let objects = list_objects(&bucket);
    assert!(
        !objects.iter().any(|o| o.ends_with(".parquet")),
        "no file is visible before its upload completes: {objects:?}"
    );

    let weir = Weir::run_with_env(&pipeline, &[], &env);
    wait_for_value(Duration::from_secs(120), || {
        (committed(&group, &input, 0) == Some(N as i64)).then_some(())
    });
    weir.terminate();
    let objects = list_objects(&bucket);
    let files: Vec<&String> = objects.iter().filter(|o| o.ends_with(".parquet")).collect();
    assert_eq!(files.len(), 1, "{objects:?}");
    let (_, rows) = read_lake(&format!("s3://{bucket}/big"));
    let mut ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..N as u64).collect::<Vec<_>>(), "every record once");
    for row in &rows {
        let id = row["id"].as_u64().unwrap();
        assert_eq!(
            row["blob"].as_str().unwrap(),
            noise(id, 300_000),
            "row {id}"
        );
    }
}

/// The names of the objects in `bucket`.
fn list_objects(bucket: &str) -> Vec<String> {
    const LIST: &str = r#"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1]):
    for o in page.get("Contents", []):
        print(o["Key"])
"#;
    s3::run_python(LIST, &[bucket])
        .lines()
        .map(str::to_owned)
        .collect()
}
