//! The listener's limits: slow clients hold up no one, oversized requests are refused, a
//! slowloris is cut off by the read deadline, and connections beyond the limit are turned away.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use weir_telemetry::AdminLimits;

use crate::{TOKEN, body, get, request, start, status};

/// `GET path` must be answered `200` within `within`.
fn answered(addr: std::net::SocketAddr, path: &str, within: Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    if let Err(e) = s.read_to_string(&mut out) {
        panic!("{path} not answered within {within:?}: {e}");
    }
    assert_eq!(crate::status(&out), 200, "{out}");
    assert!(
        started.elapsed() < within,
        "{path} took {:?}",
        started.elapsed()
    );
}

#[test]
fn health_and_metrics_answer_while_fifty_clients_are_slow() {
    let f = start(
        Some(TOKEN),
        AdminLimits {
            read_timeout: Duration::from_secs(60),
            ..AdminLimits::default()
        },
    );
    // Half never finish their header; the other half are authorized POSTs whose body never
    // finishes. Every one sends a byte every 100 ms.
    let slow: Vec<TcpStream> = (0..50)
        .map(|i| {
            let mut s = TcpStream::connect(f.addr()).unwrap();
            let start = if i % 2 == 0 {
                "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_owned()
            } else {
                format!(
                    "POST /admin/reload HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\
                     Content-Length: 1000\r\n\r\n"
                )
            };
            s.write_all(start.as_bytes()).unwrap();
            s
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let trickle = std::thread::spawn(move || {
        let mut slow = slow;
        while !stopping.load(Ordering::SeqCst) {
            for s in &mut slow {
                s.write_all(b"x").unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        slow
    });

    for _ in 0..5 {
        answered(f.addr(), "/healthz", Duration::from_secs(3));
        answered(f.addr(), "/metrics", Duration::from_secs(3));
        answered(f.addr(), "/healthz?again", Duration::from_secs(3));
        std::thread::sleep(Duration::from_millis(200));
    }

    // The slow clients were all still being served (neither answered nor dropped) meanwhile.
    stop.store(true, Ordering::SeqCst);
    let slow = trickle.join().unwrap();
    for (i, mut s) in slow.into_iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        let e = s
            .read(&mut [0u8; 64])
            .expect_err("no answer to a slow client yet");
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "client {i}: {e}");
    }
    assert_eq!(f.calls.reloads.load(Ordering::SeqCst), 0);
}

#[test]
fn a_header_over_the_cap_is_answered_431() {
    let f = start(None, AdminLimits::default());
    let cap = AdminLimits::MAX_HEADER_BYTES;
    let with_pad = |n: usize| format!("GET /healthz HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(n));
    assert_eq!(
        status(&request(f.addr(), with_pad(cap - 100).as_bytes())),
        200
    );
    let r = request(f.addr(), with_pad(cap).as_bytes());
    assert_eq!(status(&r), 431, "{r}");
    assert!(body(&r).contains("larger than 8192 bytes"), "{r}");

    // A header that never ends is refused once it passes the cap, not at the deadline.
    let started = Instant::now();
    let r = request(
        f.addr(),
        format!("GET /healthz HTTP/1.1\r\nX-Pad: {}", "a".repeat(2 * cap)).as_bytes(),
    );
    assert_eq!(status(&r), 431, "{r}");
    assert!(started.elapsed() < AdminLimits::READ_TIMEOUT / 2);
}

#[test]
fn a_body_over_the_cap_is_answered_413() {
    let f = start(Some(TOKEN), AdminLimits::default());
    let cap = AdminLimits::MAX_BODY_BYTES;
    let post = |length: usize, body: &str| {
        request(
            f.addr(),
            format!(
                "POST /admin/reload HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Length: {length}\r\n\r\n{body}"
            )
            .as_bytes(),
        )
    };
    // Refused on its announced length, before a byte of it is read.
    let r = post(10 * cap, "");
    assert_eq!(status(&r), 413, "{r}");
    // Refused with the body on its way: the client still reads the answer.
    let r = post(cap + 1, &"b".repeat(cap + 1));
    assert_eq!(status(&r), 413, "{r}");
    assert_eq!(f.calls.reloads.load(Ordering::SeqCst), 0);
    // A body within the cap is read and the call goes through.
    let r = post(cap, &"b".repeat(cap));
    assert_eq!(status(&r), 202, "{r}");
    assert_eq!(f.calls.reloads.load(Ordering::SeqCst), 1);
    // A body without a length is refused.
    let r = request(
        f.addr(),
        format!(
            "POST /admin/reload HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(status(&r), 411, "{r}");
    assert_eq!(f.calls.reloads.load(Ordering::SeqCst), 1);
}

#[test]
fn a_slowloris_is_cut_off_by_the_read_deadline() {
    let timeout = Duration::from_secs(1);
    let f = start(
        None,
        AdminLimits {
            read_timeout: timeout,
            ..AdminLimits::default()
        },
    );
    // A byte every 100 ms: far more often than the read timeout, forever.
    let started = Instant::now();
    let mut s = TcpStream::connect(f.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let mut answer = Vec::new();
    let cut = loop {
        assert!(
            started.elapsed() < 10 * timeout,
            "still connected after {:?}",
            started.elapsed()
        );
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => break started.elapsed(),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("the connection was reset rather than answered: {e}"),
        }
        std::thread::sleep(Duration::from_millis(80));
        // Once the server has stopped reading, a write may fail: the read above tells.
        let _ = s.write_all(b"x");
    };
    let answer = String::from_utf8(answer).unwrap();
    assert_eq!(status(&answer), 408, "{answer}");
    assert!(
        cut >= timeout - Duration::from_millis(100),
        "cut after {cut:?}"
    );
    assert!(cut < 3 * timeout, "cut after {cut:?}");
    assert_eq!(status(&get(f.addr(), "/healthz")), 200);
}

#[test]
fn connections_beyond_the_limit_are_answered_503() {
    let f = start(
        None,
        AdminLimits {
            max_connections: 4,
            ..AdminLimits::default()
        },
    );
    // Four idle connections take every place (the listener accepts in connection order).
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(f.addr()).unwrap())
        .collect();
    let started = Instant::now();
    let mut fifth = TcpStream::connect(f.addr()).unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut r = String::new();
    fifth.read_to_string(&mut r).unwrap();
    assert_eq!(status(&r), 503, "{r}");
    assert!(r.contains("Retry-After: 1\r\n"), "{r}");
    assert!(started.elapsed() < AdminLimits::READ_TIMEOUT / 2);

    // Places are given back as their connections end.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(f.addr(), "/healthz");
        if status(&r) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no place freed: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_client_that_never_reads_its_answer_is_cut_off_by_the_write_deadline() {
    let f = start(
        Some(TOKEN),
        AdminLimits {
            write_timeout: Duration::from_secs(1),
            max_connections: 1,
            ..AdminLimits::default()
        },
    );
    // An answer far larger than the sockets' buffers, which the client never reads.
    let size = 64 << 20;
    *f.calls.status.lock().unwrap() = "x".repeat(size);
    let mut stuck = TcpStream::connect(f.addr()).unwrap();
    write!(
        stuck,
        "GET /admin/canary HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    let started = Instant::now();
    let r = get(f.addr(), "/healthz");
    assert_eq!(
        status(&r),
        503,
        "the stuck client holds the only place: {r}"
    );
    // Its place comes back once the write deadline has passed.
    loop {
        let r = get(f.addr(), "/healthz");
        if status(&r) == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still held after {:?}: {r}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    // And the stuck client got only part of its answer.
    stuck
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    let _ = stuck.read_to_end(&mut got);
    assert!(got.len() < size, "{} bytes", got.len());
}
