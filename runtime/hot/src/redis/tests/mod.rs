//! The Redis sink against a real `redis-server`.

mod failures;
mod server;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use weir_config::{RedisMode, Secret};
use weir_core::trace::{TRACEPARENT, format_traceparent};
use weir_core::{Bytes, Headers, InputAck, Output, PartitionTracker, Record, Refused, Sink};

use self::server::RedisServer;
use super::RedisSink;
use crate::{HotObserver, PoolState, Statement};

/// One statement, as the observer saw it.
#[derive(Debug, Clone)]
struct Seen {
    operation: &'static str,
    collection: String,
    namespace: String,
    port: u16,
    rows: u64,
    links: usize,
    error: Option<(&'static str, String)>,
}

/// An observer that records what it is told.
#[derive(Debug, Default)]
struct Recorder {
    statements: Mutex<Vec<Seen>>,
    failed: Mutex<Vec<&'static str>>,
    pools: Mutex<Vec<PoolState>>,
    health: Mutex<Vec<Vec<(&'static str, f64)>>>,
}

impl HotObserver for Recorder {
    fn tracing(&self) -> bool {
        true
    }
    fn statement(&self, s: &Statement<'_>) {
        self.statements.lock().push(Seen {
            operation: s.operation,
            collection: s.collection.to_owned(),
            namespace: s.server.namespace.clone(),
            port: s.server.port,
            rows: s.rows,
            links: s.links.len(),
            error: s.error.map(|(kind, message)| (kind, message.to_owned())),
        });
    }
    fn failed(&self, _sink: &str, kind: &'static str) {
        self.failed.lock().push(kind);
    }
    fn pool(&self, _sink: &str, _waited: Option<Duration>, pool: PoolState) {
        self.pools.lock().push(pool);
    }
    fn health(&self, _sink: &str, readings: &[(&'static str, f64)]) {
        self.health.lock().push(readings.to_vec());
    }
}

fn settings(url: String, mode: RedisMode, key: Option<&str>) -> weir_config::RedisSink {
    weir_config::RedisSink {
        url: Secret::Inline(url),
        mode,
        key: key.map(str::to_owned),
        ttl: None,
        max_len: None,
    }
}

fn open(settings: &weir_config::RedisSink) -> (RedisSink, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let sink = RedisSink::open(
        "hot",
        settings,
        Arc::clone(&recorder) as Arc<dyn HotObserver>,
    )
    .expect("the sink opens");
    (sink, recorder)
}

fn record(value: &str, traceparent: Option<&str>) -> Record {
    let mut headers = Headers::new();
    if let Some(tp) = traceparent {
        headers.push(TRACEPARENT, Some(tp.as_bytes()));
    }
    Record {
        key: Some(Bytes::from_static(b"own-key")),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers,
        ..Record::default()
    }
}

/// What a write answered, and which of its outputs were acknowledged.
type Written = (
    Result<Vec<(usize, Refused)>, weir_core::SinkError>,
    Vec<bool>,
);

/// Writes `records` (one input each, at offsets from 100), and says which were acknowledged.
fn write(sink: &RedisSink, records: &[Record]) -> Written {
    let tracker = PartitionTracker::new();
    let acks: Vec<Arc<InputAck>> = (0..records.len())
        .map(|i| tracker.track(100 + i as i64))
        .collect();
    let outputs: Vec<Output<'_>> = records
        .iter()
        .zip(&acks)
        .map(|(record, ack)| Output {
            destination: "redis",
            partition: None,
            record,
            source_topic: "in",
            source_partition: 3,
            ack,
        })
        .collect();
    let result = sink.write(&outputs);
    // A synchronous sink leaves the acknowledgements alone: what it returns is durable.
    for ack in &acks {
        ack.settle();
        assert!(ack.is_complete(), "the sink touched an acknowledgement");
    }
    let acked = (0..records.len())
        .map(|i| match &result {
            Ok(refused) => !refused.iter().any(|(at, _)| *at == i),
            Err(_) => false,
        })
        .collect();
    (result, acked)
}

#[test]
fn set_mode_writes_values_with_their_ttl() {
    let server = RedisServer::start();
    let mut s = settings(server.url(), RedisMode::Set, Some("user:{/user}"));
    s.ttl = Some(Duration::from_secs(60));
    let (sink, recorder) = open(&s);
    let records = [
        record(r#"{"user":"ada"}"#, None),
        record(r#"{"user":7}"#, None),
    ];
    let (result, acked) = write(&sink, &records);
    assert_eq!(result.unwrap(), vec![]);
    assert_eq!(acked, [true, true]);
    let mut c = server.connection();
    let value: String = ::redis::cmd("GET").arg("user:ada").query(&mut c).unwrap();
    assert_eq!(value, r#"{"user":"ada"}"#);
    let pttl: i64 = ::redis::cmd("PTTL").arg("user:7").query(&mut c).unwrap();
    assert!(pttl > 50_000 && pttl <= 60_000, "{pttl}");
    let seen = recorder.statements.lock().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].operation, seen[0].rows), ("SET", 2));
    assert_eq!(seen[0].collection, "user:{/user}");
    assert_eq!(
        (seen[0].namespace.as_str(), seen[0].port),
        ("0", server.port)
    );
    assert!(seen[0].error.is_none());
    let pools = recorder.pools.lock().clone();
    assert_eq!(pools.last().map(|p| (p.busy, p.max)), Some((1, 16)));
    assert!(sink.unavailable().is_none());
    assert_eq!((sink.in_flight(), sink.failure()), (0, None));
    sink.close(Duration::from_secs(1)).unwrap();
}

#[test]
fn hash_mode_stores_the_trace_id_and_provenance() {
    let server = RedisServer::start();
    let url = format!("{}/2", server.url());
    let mut s = settings(url, RedisMode::Hash, None);
    s.ttl = Some(Duration::from_secs(30));
    let (sink, recorder) = open(&s);
    let traceparent = format_traceparent(&[0xab; 16], &[0xcd; 8], true);
    let (result, acked) = write(&sink, &[record("v1", Some(&traceparent))]);
    assert_eq!(result.unwrap(), vec![]);
    assert_eq!(acked, [true]);
    let mut c = server.connection();
    ::redis::cmd("SELECT").arg(2).exec(&mut c).unwrap();
    let fields: std::collections::HashMap<String, String> = ::redis::cmd("HGETALL")
        .arg("own-key")
        .query(&mut c)
        .unwrap();
    assert_eq!(fields["value"], "v1");
    assert_eq!(fields["weir_trace_id"], "ab".repeat(16));
    assert_eq!(fields["weir_topic"], "in");
    assert_eq!(fields["weir_partition"], "3");
    assert_eq!(fields["weir_offset"], "100");
    let pttl: i64 = ::redis::cmd("PTTL").arg("own-key").query(&mut c).unwrap();
    assert!(pttl > 0, "{pttl}");
    // A record without a traceparent has an empty trace id.
    write(&sink, &[record("v2", None)]).0.unwrap();
    let trace: String = ::redis::cmd("HGET")
        .arg("own-key")
        .arg("weir_trace_id")
        .query(&mut c)
        .unwrap();
    assert_eq!(trace, "");
    let seen = recorder.statements.lock().clone();
    assert_eq!((seen[0].operation, seen[0].links), ("HSET", 1));
    assert_eq!(
        (seen[0].collection.as_str(), seen[0].namespace.as_str()),
        ("<record key>", "2")
    );
}

#[test]
fn stream_mode_appends_and_trims() {
    let server = RedisServer::start();
    let mut s = settings(server.url(), RedisMode::Stream, Some("events:{/kind}"));
    s.max_len = Some(10);
    let (sink, recorder) = open(&s);
    let records: Vec<Record> = (0..1000)
        .map(|i| record(&format!(r#"{{"kind":"click","i":{i}}}"#), None))
        .collect();
    let (result, acked) = write(&sink, &records);
    assert_eq!(result.unwrap(), vec![]);
    assert!(acked.iter().all(|&a| a));
    let mut c = server.connection();
    let len: u64 = ::redis::cmd("XLEN")
        .arg("events:click")
        .query(&mut c)
        .unwrap();
    assert!((10..1000).contains(&len), "trimmed to about 10, got {len}");
    let last: Vec<(String, Vec<(String, String)>)> = ::redis::cmd("XREVRANGE")
        .arg("events:click")
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(&mut c)
        .unwrap();
    let fields = &last[0].1;
    assert_eq!(
        fields[0],
        ("value".into(), r#"{"kind":"click","i":999}"#.into())
    );
    assert!(fields.contains(&("weir_offset".into(), "1099".into())));
    assert_eq!(recorder.statements.lock()[0].operation, "XADD");
}

#[test]
fn the_watcher_reports_health_until_closed() {
    let server = RedisServer::start();
    let recorder = Arc::new(Recorder::default());
    let sink = RedisSink::open_watching(
        "hot",
        &settings(server.url(), RedisMode::Set, None),
        Arc::clone(&recorder) as Arc<dyn HotObserver>,
        Duration::from_millis(20),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while recorder.health.lock().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no health reported");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut names: Vec<_> = recorder.health.lock()[0].iter().map(|r| r.0).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "redis_evicted_keys",
            "redis_maxmemory_bytes",
            "redis_mem_fragmentation_ratio",
            "redis_used_memory_bytes"
        ]
    );
    sink.close(Duration::from_secs(1)).unwrap();
    let after = recorder.health.lock().len();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(recorder.health.lock().len(), after);
}
