//! The PostgreSQL hot store, end to end against a real server (Debian's `postgresql`, a
//! throwaway cluster: `crate::pg`): every record's row once with its provenance and trace id;
//! rows the database refuses dead-lettered with their SQLSTATE while the rest flow on; the
//! statement's `traceparent` in the server's statement log; a bad table or column refused at
//! start with nothing moved; kill -9 and a server restart mid-stream lose and repeat nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{
    Rec, Weir, committed, consume, create_topic, http_get, metric_value, module, produce,
    source_table, unique, wait_for_value, write_pipeline,
};
use crate::pg::{Postgres, postgres};

mod pool;
mod redis;
mod tls;

/// The table the tests write to: a check constraint (`amount >= 0`) some records break, and
/// the unique index `mode = "insert"` needs.
const TABLE: &str = "CREATE TABLE clicks (
    id bigint NOT NULL,
    user_id varchar(12) NOT NULL,
    amount integer CHECK (amount >= 0),
    at timestamptz,
    weir_topic text, weir_partition integer, weir_offset bigint, weir_output integer,
    weir_trace_id text);
CREATE UNIQUE INDEX ON clicks (weir_topic, weir_partition, weir_offset, weir_output);";

/// A pipeline copying `input` into table `clicks` of the database `WEIR_PG_URL` names, with
/// `extra` keys in the sink.
fn pipeline(input: &str, dlq: &str, group: &str, extra: &str) -> String {
    format!(
        r#"name = "hot"
{source}
[[stage]]
name = "copy"
module = "{module}"
sink = "recent"

[dead_letter]
topic = "{dlq}"

[sinks.recent]
kind = "postgres"
url = {{ env = "WEIR_PG_URL" }}
table = "clicks"
columns = [
    {{ column = "id" }},
    {{ column = "user_id", field = "/user" }},
    {{ column = "amount" }},
    {{ column = "at" }},
]
{extra}

[telemetry]
listen = "127.0.0.1:0"
"#,
        source = source_table(&[input], group),
        module = module("identity").display(),
    )
}

fn trace_id(i: usize) -> String {
    format!("{:032x}", 0x00c0_ffee_0000_u64 + i as u64)
}

fn click(i: usize) -> Rec {
    let value = format!(
        r#"{{"id":{i},"user":"u{i}","amount":{},"at":"2026-12-06T10:00:{:02}Z"}}"#,
        i % 50,
        i % 60
    );
    let parent = format!("00-{}-{:016x}-01", trace_id(i), i + 1);
    Rec::new(i as i32 % 2, &format!("k{i}"), value).header("traceparent", &parent)
}

/// A database of its own on `server`, holding [`TABLE`]; its url.
fn database(server: &Postgres, name: &str) -> String {
    let url = server.database(name);
    server.psql(name, TABLE);
    url
}

/// `(id, partition, offset, trace id)` of every row of `clicks`.
fn rows(server: &Postgres, db: &str) -> Vec<(u64, u64, u64, String)> {
    let text = server.psql(
        db,
        "SELECT id, weir_partition, weir_offset, coalesce(weir_trace_id, '') FROM clicks ORDER BY id",
    );
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            (n(0), n(1), n(2), f[3].to_owned())
        })
        .collect()
}

fn wait_committed(group: &str, input: &str, records: &[Rec]) {
    let mut per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for r in records {
        *per_partition.entry(r.partition).or_default() += 1;
    }
    wait_for_value(Duration::from_secs(90), || {
        per_partition
            .iter()
            .all(|(&p, &n)| committed(group, input, p) == Some(n))
            .then_some(())
    });
}

#[test]
fn a_postgres_table_holds_every_record_once_with_its_trace_and_refused_rows_are_dead_lettered() {
    const N: usize = 150;
    let server = postgres();
    let db = unique("hot").replace('-', "_");
    let url = database(server, &db);
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 2);
    create_topic(&dlq, 1);
    let collector = crate::otlp::OtlpReceiver::start();
    // Batches of at most 16 records: each statement links to every one of its records' traces
    // (at most 32).
    let toml = pipeline(&input, &dlq, &group, "").replace("batch_size = 64", "batch_size = 16")
        + &format!(
            "otlp = \"{}\"\nsample = {{ ratio = 1.0 }}\n",
            collector.endpoint()
        );
    let (_dir, file) = write_pipeline(&toml);
    let mut records: Vec<Rec> = (0..N).map(click).collect();
    // A row the check constraint refuses (23514), one whose NOT NULL column is missing (23502),
    // one of the wrong type (22P02), a value that is not JSON, and one too long for its column
    // (22001): each dead-lettered, alone.
    records.push(Rec::new(
        0,
        "negative",
        r#"{"id":9001,"user":"x","amount":-5}"#,
    ));
    records.push(Rec::new(1, "no-user", r#"{"id":9002,"amount":1}"#));
    records.push(Rec::new(
        0,
        "bad-type",
        r#"{"id":9003,"user":"x","amount":"many"}"#,
    ));
    records.push(Rec::new(1, "not-json", "clicks!"));
    // Too long for varchar(12): refused (22001), never cut short.
    let long = r#"{"id":9004,"user":"a-name-longer-than-twelve","amount":1}"#;
    records.push(Rec::new(0, "too-long", long));
    produce(&input, &records);

    let weir = Weir::run_with_env(&file, &[], &[("WEIR_PG_URL", &url)]);
    let letters = consume(&dlq, 5, Duration::from_secs(60));
    wait_committed(&group, &input, &records);
    let (_, metrics) = http_get(weir.admin_addr(), "/metrics");
    let log = weir.log_text();
    weir.terminate();

    let mut refused: Vec<(String, Option<String>, Option<String>)> = letters
        .iter()
        .map(|l| {
            (
                String::from_utf8_lossy(l.key.as_deref().unwrap()).into_owned(),
                l.header_str("weir.error.kind"),
                l.header_str("weir.error.code"),
            )
        })
        .collect();
    refused.sort();
    let rejected = || Some("sink-rejected".to_owned());
    assert_eq!(
        refused,
        [
            ("bad-type".into(), rejected(), Some("22P02".into())),
            ("negative".into(), rejected(), Some("23514".into())),
            ("no-user".into(), rejected(), Some("23502".into())),
            ("not-json".into(), rejected(), None),
            ("too-long".into(), rejected(), Some("22001".into())),
        ],
        "{letters:?}"
    );
    let rows = rows(server, &db);
    assert_eq!(rows.len(), N, "every good record once");
    for (i, (id, partition, _, trace)) in rows.iter().enumerate() {
        assert_eq!(*id, i as u64);
        assert_eq!(*partition, i as u64 % 2);
        assert_eq!(trace, &trace_id(i), "row {i} leads to its record's trace");
    }
    assert!(!log.contains(&url), "the connection string was logged");
    let sink = [("sink", "recent")];
    assert_eq!(
        metric_value(&metrics, "weir_hot_rows_total", &sink),
        Some(N as f64)
    );
    let rejected = [("sink", "recent"), ("reason", "rejected")];
    assert!(metric_value(&metrics, "weir_hot_failures_total", &rejected) >= Some(1.0));
    assert!(metric_value(&metrics, "weir_hot_pool_max_connections", &sink) == Some(4.0));

    // One CLIENT span per statement, with the database attributes, linked to its records.
    let spans = collector.wait_for(Duration::from_secs(30), |spans| {
        let linked: usize = spans
            .iter()
            .filter(|s| s.name == "weir.store.statement" && !s.status_error)
            .map(|s| s.links.len())
            .sum();
        linked >= N
    });
    let statements: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "weir.store.statement")
        .collect();
    for span in &statements {
        assert_eq!(span.kind, 3, "a CLIENT span: {}", span.summary());
        assert_eq!(span.attributes["db.system.name"], "postgresql");
        assert_eq!(span.attributes["db.namespace"], db);
        assert_eq!(span.attributes["db.collection.name"], "clicks");
        assert_eq!(span.attributes["db.operation.name"], "INSERT");
        assert_eq!(span.attributes["server.address"], server.host);
    }
    let mut linked: Vec<&str> = statements
        .iter()
        .filter(|s| !s.status_error)
        .flat_map(|s| s.links.iter().map(|(t, _)| t.as_str()))
        .collect();
    linked.sort_unstable();
    linked.dedup();
    let mut expected: Vec<String> = (0..N).map(trace_id).collect();
    expected.sort();
    assert_eq!(
        linked, expected,
        "every record's trace is linked from a statement"
    );
    // The statement log holds each statement's traceparent, the span's that ran it.
    let server_log = server.log();
    if !server_log.is_empty() {
        let span = statements[0];
        let comment = format!("/*traceparent='00-{}-{}-01'*/", span.trace_id, span.span_id);
        assert!(
            server_log.contains(&comment),
            "{comment} not in the statement log"
        );
    }
}

#[test]
fn with_one_statement_per_record_the_statement_log_leads_to_the_records_trace() {
    const N: usize = 20;
    let server = postgres();
    if server.log().is_empty() {
        eprintln!("skipped: the statement log of a server of your own is not readable here");
        return;
    }
    let db = unique("hotrec").replace('-', "_");
    let url = database(server, &db);
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 1);
    create_topic(&dlq, 1);
    let toml =
        pipeline(&input, &dlq, &group, "statement = \"record\"") + "sample = { ratio = 1.0 }\n";
    let (_dir, file) = write_pipeline(&toml);
    let records: Vec<Rec> = (0..N)
        .map(|i| Rec {
            partition: 0,
            ..click(i)
        })
        .collect();
    produce(&input, &records);
    let weir = Weir::run_with_env(&file, &[], &[("WEIR_PG_URL", &url)]);
    wait_committed(&group, &input, &records);
    weir.terminate();
    assert_eq!(rows(server, &db).len(), N);
    let log = server.log();
    for i in 0..N {
        let comment = format!("/*traceparent='00-{}-", trace_id(i));
        assert!(
            log.contains(&comment),
            "record {i}'s trace is not in the statement log"
        );
    }
}

#[test]
fn a_missing_table_or_column_or_url_is_refused_at_start_and_nothing_moves() {
    let server = postgres();
    let db = unique("hotbad").replace('-', "_");
    let url = database(server, &db);
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 1);
    produce(&input, &[click(0)]);
    let cases = [
        (
            "table = \"clicks\"",
            "table = \"klicks\"",
            "table klicks does not exist",
        ),
        (
            "column = \"amount\"",
            "column = \"amt\"",
            "table clicks has no column amt",
        ),
    ];
    for (from, to, expected) in cases {
        let toml = pipeline(&input, &dlq, &group, "").replace(from, to);
        let (_dir, file) = write_pipeline(&toml);
        let weir = Weir::run_with_env(&file, &[], &[("WEIR_PG_URL", &url)]);
        let (status, log) = weir.wait_exit(Duration::from_secs(60));
        assert_eq!(status.code(), Some(2), "{log:?}");
        assert!(
            log.iter().any(|l| l.contains(expected)),
            "{expected} not in {log:?}"
        );
    }
    // A url that is not set, and one that points at no server.
    let (_dir, file) = write_pipeline(&pipeline(&input, &dlq, &group, ""));
    let weir = Weir::run(&file);
    let (status, log) = weir.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(2), "{log:?}");
    assert!(
        log.iter().any(|l| l.contains("WEIR_PG_URL is not set")),
        "{log:?}"
    );
    let nowhere = format!(
        "postgres://weir:s3cret@127.0.0.1:{}/x",
        crate::harness::free_port()
    );
    let weir = Weir::run_with_env(&file, &[], &[("WEIR_PG_URL", &nowhere)]);
    let (status, log) = weir.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(4), "{log:?}");
    assert!(
        log.iter().all(|l| !l.contains("s3cret")),
        "a password was logged: {log:?}"
    );
    assert_eq!(committed(&group, &input, 0), None, "an offset moved");
}

#[test]
fn kill_9_and_a_postgres_restart_mid_stream_leave_every_row_once() {
    let _broker = crate::harness::exclusive();
    const N: usize = 20_000;
    let server = Postgres::spawn();
    let db = "restart";
    let url = database(&server, db);
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 2);
    create_topic(&dlq, 1);
    let (_dir, file) = write_pipeline(&pipeline(&input, &dlq, &group, ""));
    let records: Vec<Rec> = (0..N).map(click).collect();
    produce(&input, &records);
    let count = || {
        server
            .psql(db, "SELECT count(*) FROM clicks")
            .parse::<usize>()
            .unwrap()
    };

    let weir = Weir::run_with_env(&file, &[], &[("WEIR_PG_URL", &url)]);
    wait_for_value(Duration::from_secs(60), || (count() > N / 10).then_some(()));
    // The server goes away for a while: writes fail and are retried, readiness says why.
    server.stop();
    wait_for_value(Duration::from_secs(30), || {
        let (code, body) = http_get(weir.admin_addr(), "/readyz");
        (code == 503 && body.contains("recent")).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    server.start();
    wait_for_value(Duration::from_secs(60), || (count() > N / 2).then_some(()));
    weir.kill9();

    let weir = Weir::run_with_env(&file, &[], &[("WEIR_PG_URL", &url)]);
    wait_committed(&group, &input, &records);
    weir.terminate();
    let rows = rows(&server, db);
    assert_eq!(rows.len(), N, "every record once");
    for (i, (id, ..)) in rows.iter().enumerate() {
        assert_eq!(*id, i as u64);
    }
    assert!(consume_none(&dlq), "nothing was dead-lettered");
}

/// Whether `topic` holds nothing after a short wait.
fn consume_none(topic: &str) -> bool {
    crate::harness::consume_all(topic, Duration::from_secs(2), Duration::from_secs(5)).is_empty()
}

#[test]
fn an_upsert_keeps_the_latest_row_per_key_and_a_replay_changes_nothing() {
    const USERS: usize = 7;
    let server = postgres();
    let db = unique("hotup").replace('-', "_");
    let url = server.database(&db);
    server.psql(
        &db,
        "CREATE TABLE users (user_id text PRIMARY KEY, id bigint NOT NULL, weir_topic text, \
         weir_partition integer, weir_offset bigint, weir_output integer, weir_trace_id text)",
    );
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, 1);
    create_topic(&dlq, 1);
    let toml = |group: &str| {
        format!(
            r#"name = "hot"
{source}
[[stage]]
name = "copy"
module = "{module}"
sink = "users"

[dead_letter]
topic = "{dlq}"

[sinks.users]
kind = "postgres"
url = {{ env = "WEIR_PG_URL" }}
table = "users"
columns = [{{ column = "user_id", field = "/user" }}, {{ column = "id" }}]
mode = "upsert"
key = ["user_id"]
"#,
            source = source_table(&[&input], group),
            module = module("identity").display(),
        )
    };
    // 70 clicks of 7 users, in one partition: the last click of user u<k> is id 63 + k.
    let records: Vec<Rec> = (0..70)
        .map(|i| {
            let value = format!(r#"{{"id":{i},"user":"u{}"}}"#, i % USERS);
            Rec::new(0, "k", value).header(
                "traceparent",
                &format!("00-{}-{:016x}-01", trace_id(i), i + 1),
            )
        })
        .collect();
    produce(&input, &records);
    let latest = || {
        server.psql(
            &db,
            "SELECT user_id, id, weir_offset, weir_trace_id FROM users ORDER BY user_id",
        )
    };
    let expected: String = (0..USERS)
        .map(|k| format!("u{k}|{0}|{0}|{1}", 63 + k, trace_id(63 + k)))
        .collect::<Vec<_>>()
        .join("\n");
    // The second run reads everything again (a group of its own): the same rows come out.
    for group in [group.clone(), format!("{group}-again")] {
        let (_dir, file) = write_pipeline(&toml(&group));
        let weir = Weir::run_with_env(&file, &[], &[("WEIR_PG_URL", &url)]);
        wait_committed(&group, &input, &records);
        weir.terminate();
        assert_eq!(latest(), expected);
    }
}
