//! The admin listener over real sockets: its routes and tokens (`api`), and its limits under
//! slow, oversized and too many clients (`limits`).

mod api;
mod limits;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_telemetry::{AdminApi, AdminLimits, AdminServer, AdminToken, Control, Health, Metrics};

/// Ready or not, as the test sets it.
struct Ready(pub AtomicBool);

impl Health for Ready {
    fn live(&self) -> Result<(), weir_telemetry::Unhealthy> {
        Ok(())
    }
    fn ready(&self) -> Result<(), weir_telemetry::Unhealthy> {
        if self.0.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("no partition assigned".into())
        }
    }
}

/// Counts the calls the admin API makes; answers status with `status`.
struct Calls {
    pub reloads: AtomicUsize,
    pub canary: AtomicUsize,
    pub status: Mutex<String>,
}

impl Default for Calls {
    fn default() -> Self {
        Self {
            reloads: AtomicUsize::new(0),
            canary: AtomicUsize::new(0),
            status: Mutex::new(r#"[{"stage":"tag","state":"running"}]"#.into()),
        }
    }
}

impl Control for Calls {
    fn reload(&self) -> Result<(), weir_telemetry::Refusal> {
        self.reloads.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn canary_status(&self) -> String {
        self.status.lock().unwrap().clone()
    }
    fn canary(&self, stage: &str, action: &str) -> Result<String, weir_telemetry::Refusal> {
        self.canary.fetch_add(1, Ordering::SeqCst);
        Ok(format!("{action} {stage}"))
    }
}

struct Fixture {
    pub server: AdminServer,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<Ready>,
    pub calls: Arc<Calls>,
}

impl Fixture {
    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
}

const TOKEN: &str = "s3cret";

/// A listener on a free loopback port whose admin API takes `token` (none: it is disabled).
fn start(token: Option<&str>, limits: AdminLimits) -> Fixture {
    let metrics = Metrics::new("p");
    let ready = Arc::new(Ready(AtomicBool::new(false)));
    let calls = Arc::new(Calls::default());
    let api = AdminApi {
        token: token.map(|t| AdminToken::new(t.into()).unwrap()),
        control: Arc::clone(&calls) as Arc<dyn Control>,
    };
    let server = AdminServer::start_with_limits(
        "127.0.0.1:0".parse().unwrap(),
        Arc::clone(&metrics),
        Arc::clone(&ready) as Arc<dyn Health>,
        Some(api),
        limits,
    )
    .unwrap();
    Fixture {
        server,
        metrics,
        ready,
        calls,
    }
}

/// Sends `raw` and reads the answer to the end; panics if it takes more than 10 s.
fn request(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn get(addr: SocketAddr, path: &str) -> String {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

/// The status code of an answer.
fn status(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 answer: {answer:?}"))
}

/// The body of an answer.
fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}
