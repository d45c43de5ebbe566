//! The Redis hot store, end to end against a real `redis-server` (the shared throwaway one of
//! `crate::pg`, or one of the test's own when it must stop it): a hash per key holding the
//! latest value with its trace id and provenance, and a TTL; a stream per key holding every
//! record once, in order, while keys of another type (`WRONGTYPE`) and records lacking the key's
//! field are dead-lettered; a server that dies mid-stream holds the pipeline back (readiness
//! says why) and loses nothing once it is back; a url that is unset or out of reach is refused
//! at start, without its password in the log.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::wait_committed;
use crate::harness::{
    Process, Rec, Weir, committed, consume, consume_all, create_topic, die_with_parent, free_port,
    http_get, metric_value, module, produce, source_table, unique, wait_for_value, wait_listening,
    write_pipeline,
};
use crate::pg::redis;

/// A pipeline copying `input` to the redis sink `sink` (at the url `WEIR_REDIS_URL` holds), with
/// `settings` (its `mode`, `key`...) in the sink's table.
fn pipeline(input: &str, dlq: &str, group: &str, sink: &str, settings: &str) -> String {
    format!(
        r#"name = "hot"
{source}
[[stage]]
name = "copy"
module = "{module}"
sink = "{sink}"

[dead_letter]
topic = "{dlq}"

[sinks.{sink}]
kind = "redis"
url = {{ env = "WEIR_REDIS_URL" }}
{settings}

[telemetry]
listen = "127.0.0.1:0"
"#,
        source = source_table(&[input], group),
        module = module("identity").display(),
    )
}

fn trace_id(i: usize) -> String {
    format!("{:032x}", 0x0bad_cafe_0000_u64 + i as u64)
}

/// Record `i` on `partition`, with `value` and a `traceparent` of trace [`trace_id`]`(i)`.
fn traced(i: usize, partition: i32, value: String) -> Rec {
    let parent = format!("00-{}-{:016x}-01", trace_id(i), i + 1);
    Rec::new(partition, &format!("k{i}"), value).header("traceparent", &parent)
}

/// The offset each record of `records` gets: its place among the records of its partition.
fn offsets(records: &[Rec]) -> Vec<u64> {
    let mut next: BTreeMap<i32, u64> = BTreeMap::new();
    records
        .iter()
        .map(|r| {
            let n = next.entry(r.partition).or_default();
            *n += 1;
            *n - 1
        })
        .collect()
}

/// `redis-cli --json ARGS` against the shared server, parsed.
fn json(args: &[&str]) -> Value {
    let text = redis().cli(&[&["--json"], args].concat());
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("redis-cli {args:?}: {e}: {text}"))
}

/// The string `field` of the JSON object `object`.
fn text<'v>(object: &'v Value, field: &str) -> &'v str {
    object[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string {field} in {object}"))
}

#[test]
fn a_redis_hash_holds_the_latest_value_per_key_with_its_trace_id() {
    const N: usize = 60;
    const USERS: usize = 20;
    let prefix = unique("latest");
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 2);
    create_topic(&dlq, 1);
    let settings = format!("mode = \"hash\"\nkey = \"{prefix}:{{/user}}\"\nttl = \"1h\"");
    let toml = pipeline(&input, &dlq, &group, "latest", &settings);
    let (_dir, file) = write_pipeline(&toml);
    // Every record of a user goes to the same partition, so its last one is well defined.
    let records: Vec<Rec> = (0..N)
        .map(|i| {
            let user = i % USERS;
            let value = format!(r#"{{"user":"u{user}","n":{i}}}"#);
            traced(i, (user % 2) as i32, value)
        })
        .collect();
    let offsets = offsets(&records);
    produce(&input, &records);

    // The redis watcher reads the server's health at once, then every 10 s: it does not read
    // WEIR_HOT_WATCH_INTERVAL_MS (only the postgres one does), so none is set here.
    let weir = Weir::run_with_env(&file, &[], &[("WEIR_REDIS_URL", &redis().url())]);
    wait_committed(&group, &input, &records);
    let sink = [("sink", "latest")];
    let metrics = wait_for_value(Duration::from_secs(15), || {
        let (_, metrics) = http_get(weir.admin_addr(), "/metrics");
        metric_value(&metrics, "weir_hot_redis_used_memory_bytes", &sink).map(|_| metrics)
    });
    weir.terminate();

    assert!(metric_value(&metrics, "weir_hot_redis_used_memory_bytes", &sink) > Some(0.0));
    assert_eq!(
        metric_value(&metrics, "weir_hot_rows_total", &sink),
        Some(N as f64),
        "every record written once"
    );
    for user in 0..USERS {
        let key = format!("{prefix}:u{user}");
        // The last record of the user: its value, trace and provenance.
        let last = (0..N).rev().find(|i| i % USERS == user).unwrap();
        let hash = json(&["HGETALL", &key]);
        assert_eq!(text(&hash, "value"), records[last].value_str(), "{key}");
        assert_eq!(text(&hash, "weir_trace_id"), trace_id(last), "{key}");
        assert_eq!(text(&hash, "weir_topic"), input, "{key}");
        let partition = records[last].partition.to_string();
        assert_eq!(text(&hash, "weir_partition"), partition, "{key}");
        assert_eq!(
            text(&hash, "weir_offset"),
            offsets[last].to_string(),
            "{key}"
        );
        let ttl: i64 = redis().cli(&["PTTL", &key]).parse().unwrap();
        assert!(ttl > 0 && ttl <= 3_600_000, "{key} expires in {ttl} ms");
    }
    assert!(
        consume_all(&dlq, Duration::from_secs(2), Duration::from_secs(5)).is_empty(),
        "nothing was dead-lettered"
    );
}

/// A dead letter: its key, and its headers `weir.error.kind`, `.code` and `.field`.
type Letter = (String, Option<String>, Option<String>, Option<String>);

#[test]
fn a_redis_stream_gets_every_record_and_wrongtype_keys_are_dead_lettered() {
    const N: usize = 40;
    const COUNTRIES: [&str; 4] = ["de", "fr", "xx", "us"];
    let prefix = unique("events");
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 2);
    create_topic(&dlq, 1);
    // The key of country xx holds a string: its entries are refused (WRONGTYPE).
    redis().cli(&["SET", &format!("{prefix}:xx"), "oops"]);
    let settings = format!("mode = \"stream\"\nkey = \"{prefix}:{{/country}}\"\nmax_len = 1000");
    let toml = pipeline(&input, &dlq, &group, "events", &settings);
    let (_dir, file) = write_pipeline(&toml);
    let mut records: Vec<Rec> = (0..N)
        .map(|i| {
            let value = format!(r#"{{"id":{i},"country":"{}"}}"#, COUNTRIES[i % 4]);
            traced(i, (i % 2) as i32, value)
        })
        .collect();
    // A value without the key's field.
    records.push(Rec::new(1, "no-country", r#"{"id":999}"#));
    let offsets = offsets(&records);
    produce(&input, &records);

    let weir = Weir::run_with_env(&file, &[], &[("WEIR_REDIS_URL", &redis().url())]);
    let expected_letters = N / 4 + 1;
    let letters = consume(&dlq, expected_letters, Duration::from_secs(60));
    wait_committed(&group, &input, &records);
    weir.terminate();

    let mut refused: Vec<Letter> = letters
        .iter()
        .map(|l| {
            (
                String::from_utf8_lossy(l.key.as_deref().unwrap()).into_owned(),
                l.header_str("weir.error.kind"),
                l.header_str("weir.error.code"),
                l.header_str("weir.error.field"),
            )
        })
        .collect();
    refused.sort();
    let rejected = || Some("sink-rejected".to_owned());
    let mut expected: Vec<_> = (0..N)
        .filter(|i| COUNTRIES[i % 4] == "xx")
        .map(|i| (format!("k{i}"), rejected(), Some("WRONGTYPE".into()), None))
        .collect();
    expected.push((
        "no-country".into(),
        rejected(),
        None,
        Some("/country".into()),
    ));
    expected.sort();
    assert_eq!(refused, expected, "{letters:?}");
    assert_eq!(
        redis().cli(&["GET", &format!("{prefix}:xx")]),
        "oops",
        "the string is left alone"
    );

    for country in COUNTRIES.iter().filter(|c| **c != "xx") {
        let key = format!("{prefix}:{country}");
        let mine: Vec<usize> = (0..N).filter(|i| COUNTRIES[i % 4] == *country).collect();
        let len: usize = redis().cli(&["XLEN", &key]).parse().unwrap();
        assert_eq!(len, mine.len(), "{key}: every record once");
        let entries = json(&["XRANGE", &key, "-", "+"]);
        let mut seen: Vec<usize> = Vec::new();
        let mut last_offset: BTreeMap<u64, u64> = BTreeMap::new();
        for entry in entries.as_array().unwrap() {
            let pairs = entry[1].as_array().unwrap();
            let fields: BTreeMap<&str, &str> = pairs
                .chunks(2)
                .map(|kv| (kv[0].as_str().unwrap(), kv[1].as_str().unwrap()))
                .collect();
            let value: Value = serde_json::from_str(fields["value"]).unwrap();
            let i = value["id"].as_u64().unwrap() as usize;
            assert_eq!(fields["value"], records[i].value_str(), "{key}");
            assert_eq!(fields["weir_trace_id"], trace_id(i), "{key}: entry {i}");
            assert_eq!(fields["weir_topic"], input, "{key}");
            let partition: u64 = fields["weir_partition"].parse().unwrap();
            let offset: u64 = fields["weir_offset"].parse().unwrap();
            assert_eq!(partition, records[i].partition as u64, "{key}: entry {i}");
            assert_eq!(offset, offsets[i], "{key}: entry {i}");
            // In order: within a partition, each entry after the one before.
            if let Some(before) = last_offset.insert(partition, offset) {
                assert!(before < offset, "{key}: offset {offset} after {before}");
            }
            seen.push(i);
        }
        seen.sort_unstable();
        assert_eq!(seen, mine, "{key}");
    }
}

/// A `redis-server` of the test's own on `port`, writing every command to its append-only file
/// (fsync'd before it answers) in `dir`, so that what it acknowledged survives a kill -9.
fn own_redis(port: u16, dir: &Path) -> Process {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap();
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    die_with_parent(&mut cmd);
    let child = Process(cmd.spawn().expect("cannot start redis-server"));
    wait_listening(port, "redis-server");
    child
}

/// `redis-cli -p port ARGS`: its output, trimmed.
fn cli_at(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_redis_that_goes_away_holds_the_pipeline_back_and_loses_nothing() {
    const N: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Some(own_redis(port, dir.path()));
    let prefix = unique("set");
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 2);
    create_topic(&dlq, 1);
    let settings = format!("mode = \"set\"\nkey = \"{prefix}:{{/id}}\"");
    let toml = pipeline(&input, &dlq, &group, "latest", &settings);
    let (_dir, file) = write_pipeline(&toml);
    let records: Vec<Rec> = (0..N)
        .map(|i| traced(i, (i % 2) as i32, format!(r#"{{"id":{i},"v":"v{i}"}}"#)))
        .collect();
    // Half the records before the server goes away, half while it is away: writes are then
    // certainly attempted (and failing) while it is down, however fast the first half went.
    let (first, second) = records.split_at(N / 2);
    produce(&input, first);

    let url = format!("redis://127.0.0.1:{port}");
    let weir = Weir::run_with_env(&file, &[], &[("WEIR_REDIS_URL", &url)]);
    wait_for_value(Duration::from_secs(60), || {
        let keys: usize = cli_at(port, &["DBSIZE"]).parse().unwrap_or(0);
        (keys > 0).then_some(())
    });
    // The server dies: writes fail and are retried, readiness says why.
    drop(server.take());
    produce(&input, second);
    wait_for_value(Duration::from_secs(30), || {
        let (code, body) = http_get(weir.admin_addr(), "/readyz");
        (code == 503 && body.contains("latest")).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let _server = own_redis(port, dir.path());
    wait_committed(&group, &input, &records);
    let (_, metrics) = http_get(weir.admin_addr(), "/metrics");
    let (code, ready) = http_get(weir.admin_addr(), "/readyz");
    let log = weir.terminate();

    assert_eq!(code, 200, "ready again: {ready}");
    let keys: Vec<String> = (0..N).map(|i| format!("{prefix}:{i}")).collect();
    let mget: Vec<&str> = ["--json", "MGET"]
        .into_iter()
        .chain(keys.iter().map(String::as_str))
        .collect();
    let values: Value = serde_json::from_str(&cli_at(port, &mget)).unwrap();
    let values = values.as_array().unwrap();
    assert_eq!(values.len(), N);
    for (i, value) in values.iter().enumerate() {
        assert_eq!(
            value.as_str(),
            Some(records[i].value_str().as_str()),
            "key {}",
            keys[i]
        );
    }
    assert_eq!(cli_at(port, &["DBSIZE"]), N.to_string(), "no other key");
    let unavailable = [("sink", "latest"), ("reason", "unavailable")];
    assert!(metric_value(&metrics, "weir_hot_failures_total", &unavailable) >= Some(1.0));
    assert!(log.iter().any(|l| l.contains("redis sink unavailable")));
    assert!(log.iter().any(|l| l.contains("redis sink available again")));
    assert!(
        consume_all(&dlq, Duration::from_secs(2), Duration::from_secs(5)).is_empty(),
        "nothing was dead-lettered"
    );
}

#[test]
fn a_redis_url_that_is_unset_or_out_of_reach_is_refused_at_start_without_its_password() {
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 1);
    produce(&input, &[traced(0, 0, r#"{"id":0}"#.into())]);
    let settings = "mode = \"set\"\nkey = \"bad:{/id}\"";
    let (_dir, file) = write_pipeline(&pipeline(&input, &dlq, &group, "latest", settings));

    // A server that is not there, with a password in the url.
    let nowhere = format!("redis://:s3cret@127.0.0.1:{}", free_port());
    let weir = Weir::run_with_env(&file, &[], &[("WEIR_REDIS_URL", &nowhere)]);
    let (status, log) = weir.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(4), "{log:?}");
    assert!(
        log.iter().all(|l| !l.contains("s3cret")),
        "a password was logged: {log:?}"
    );

    // The variable unset.
    let mut cmd = Command::new(Weir::weir_bin());
    cmd.env_remove("WEIR_REDIS_URL");
    let weir = Weir::spawn(cmd, &file, &[], &[]);
    let (status, log) = weir.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(2), "{log:?}");
    assert!(
        log.iter().any(|l| l.contains("WEIR_REDIS_URL")),
        "the variable is not named: {log:?}"
    );
    assert_eq!(committed(&group, &input, 0), None, "an offset moved");
}
