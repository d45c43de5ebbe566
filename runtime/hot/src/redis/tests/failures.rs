//! The Redis sink against a real `redis-server`, when things go wrong: refusals, a server that
//! dies or is full, and secrets kept out of errors.

use std::sync::Arc;

use weir_config::RedisMode;
use weir_core::{Sink, SinkError};

use super::server::RedisServer;
use super::{HotObserver, Recorder, open, record, settings, write};
use crate::HotError;
use crate::redis::RedisSink;

#[test]
fn a_key_of_another_type_is_refused_with_its_code_and_the_rest_acked() {
    let server = RedisServer::start();
    let mut c = server.connection();
    for (mode, template) in [(RedisMode::Hash, "h:{/id}"), (RedisMode::Stream, "s:{/id}")] {
        let bad = template.replace("{/id}", "bad");
        ::redis::cmd("RPUSH")
            .arg(&bad)
            .arg("x")
            .exec(&mut c)
            .unwrap();
        let (sink, recorder) = open(&settings(server.url(), mode, Some(template)));
        let records = [
            record(r#"{"id":"a"}"#, None),
            record(r#"{"id":"bad"}"#, None),
            record(r#"{"id":"b"}"#, None),
        ];
        let (result, acked) = write(&sink, &records);
        let refused = result.unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        let (index, why) = &refused[0];
        assert_eq!(*index, 1);
        assert_eq!(why.code.as_deref(), Some("WRONGTYPE"));
        assert!(
            why.reason.starts_with("redis refused it: WRONGTYPE"),
            "{}",
            why.reason
        );
        assert_eq!(why.field, None);
        assert_eq!(acked, [true, false, true]);
        assert_eq!(*recorder.failed.lock(), ["rejected"]);
        let error = recorder.statements.lock()[0].error.clone();
        assert_eq!(error.map(|e| e.0), Some("rejected"));
        assert!(sink.unavailable().is_none());
    }
    // The entries the server took were not added twice.
    for key in ["s:a", "s:b"] {
        let len: u64 = ::redis::cmd("XLEN").arg(key).query(&mut c).unwrap();
        assert_eq!(len, 1, "{key}");
    }
    let value: String = ::redis::cmd("HGET")
        .arg("h:b")
        .arg("value")
        .query(&mut c)
        .unwrap();
    assert_eq!(value, r#"{"id":"b"}"#);
}

#[test]
fn a_missing_field_is_refused_by_name_without_reaching_redis() {
    let server = RedisServer::start();
    let (sink, recorder) = open(&settings(server.url(), RedisMode::Set, Some("u:{/user}")));
    let records = [
        record(r#"{"name":"no user"}"#, None),
        record("not json", None),
        record(r#"{"user":"ok"}"#, None),
    ];
    let (result, acked) = write(&sink, &records);
    let refused = result.unwrap();
    assert_eq!(refused.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(refused[0].1.field.as_deref(), Some("/user"));
    assert!(
        refused[0].1.reason.contains("/user"),
        "{}",
        refused[0].1.reason
    );
    assert_eq!(refused[0].1.code, None);
    assert_eq!(acked, [false, false, true]);
    assert!(recorder.failed.lock().is_empty());
    assert_eq!(recorder.statements.lock()[0].rows, 1);
    // A write whose every output is refused sends nothing.
    let (result, _) = write(&sink, &records[..1]);
    assert_eq!(result.unwrap().len(), 1);
    assert_eq!(recorder.statements.lock().len(), 1);
}

#[test]
fn a_dead_server_makes_the_sink_unavailable_until_it_is_back() {
    let mut server = RedisServer::start();
    let (sink, recorder) = open(&settings(server.url(), RedisMode::Set, None));
    assert!(write(&sink, &[record("1", None)]).0.is_ok());
    server.kill();
    for _ in 0..2 {
        // First on the pooled connection, then while connecting anew.
        let (result, acked) = write(&sink, &[record("2", None)]);
        assert!(
            matches!(result, Err(SinkError::Unavailable(_))),
            "{result:?}"
        );
        assert_eq!(acked, [false]);
        let reason = sink.unavailable().expect("unavailable");
        assert!(reason.contains("redis"), "{reason}");
    }
    assert_eq!(*recorder.failed.lock(), ["unavailable", "unavailable"]);
    let errors: Vec<_> = recorder
        .statements
        .lock()
        .iter()
        .map(|s| s.error.clone())
        .collect();
    assert_eq!(
        errors.len(),
        2,
        "one statement per pipeline sent: {errors:?}"
    );
    assert_eq!(errors[1].as_ref().map(|e| e.0), Some("unavailable"));
    server.restart();
    let (result, acked) = write(&sink, &[record("3", None)]);
    assert_eq!(result.unwrap(), vec![]);
    assert_eq!(acked, [true]);
    assert!(sink.unavailable().is_none());
    let value: String = ::redis::cmd("GET")
        .arg("own-key")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(value, "3");
}

#[test]
fn a_full_server_makes_the_write_wait_rather_than_refuse() {
    let server = RedisServer::start();
    let (sink, recorder) = open(&settings(server.url(), RedisMode::Set, None));
    let mut c = server.connection();
    let config = |c: &mut ::redis::Connection, max: &str| {
        ::redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg("noeviction")
            .arg("maxmemory")
            .arg(max)
            .exec(c)
            .unwrap();
    };
    config(&mut c, "1");
    let (result, acked) = write(&sink, &[record("1", None)]);
    let Err(SinkError::Unavailable(reason)) = result else {
        panic!("expected unavailable, got {result:?}");
    };
    assert!(reason.contains("OOM"), "{reason}");
    assert_eq!(acked, [false]);
    assert_eq!(*recorder.failed.lock(), ["unavailable"]);
    config(&mut c, "0");
    let (result, acked) = write(&sink, &[record("2", None)]);
    assert_eq!(result.unwrap(), vec![]);
    assert_eq!(acked, [true]);
    assert!(sink.unavailable().is_none());
    // The connection was kept: the pool never opened a second one.
    assert!(recorder.pools.lock().iter().all(|p| p.busy + p.idle == 1));
}

#[test]
fn errors_at_open_never_show_the_url_or_password() {
    let server = RedisServer::start_with(Some("right-password"));
    let wrong = format!("redis://:wrong-password@127.0.0.1:{}", server.port);
    let recorder = Arc::new(Recorder::default()) as Arc<dyn HotObserver>;
    let open = |url: &str| {
        RedisSink::open(
            "hot",
            &settings(url.to_owned(), RedisMode::Set, None),
            Arc::clone(&recorder),
        )
    };
    match open(&wrong) {
        Err(error @ HotError::Connect { .. }) => {
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("wrong-password"), "{shown}");
            assert!(
                shown.contains(&format!("127.0.0.1:{}", server.port)),
                "{shown}"
            );
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    match open("redis://:hunter2@[::1") {
        Err(error @ HotError::Url(_)) => {
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        other => panic!("expected a url error, got {other:?}"),
    }
    let sink = open(&server.url()).expect("the right password");
    assert!(!format!("{sink:?}").contains("right-password"));
    let refused = RedisServer::start();
    let port = refused.port;
    drop(refused);
    let down = open(&format!("redis://:pw-secret@127.0.0.1:{port}")).unwrap_err();
    assert!(
        matches!(down, HotError::Connect { ref server, .. } if *server == format!("127.0.0.1:{port}"))
    );
    assert!(!down.to_string().contains("pw-secret"));
}
