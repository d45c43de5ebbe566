//! The admin listener: `/metrics` (OpenMetrics text), `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::TelemetryError;
use crate::metrics::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/healthz` and `/readyz` report, supplied by the engine.
pub trait Health: Send + Sync + 'static {
    /// `Ok` while the process is able to make progress (no fatal error).
    fn live(&self) -> Result<(), String>;
    /// `Ok` when the instance is doing useful work: partitions assigned and brokers reachable.
    fn ready(&self) -> Result<(), String>;
}

/// The running listener; stops when dropped.
pub struct AdminServer {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free one) and serves `metrics` and `health` on a thread.
    pub fn start(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        health: Arc<dyn Health>,
    ) -> Result<Self, TelemetryError> {
        let server = tiny_http::Server::http(addr).map_err(|e| TelemetryError::Listen {
            addr,
            message: e.to_string(),
        })?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| TelemetryError::Listen {
                addr,
                message: "not an IP listener".into(),
            })?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("weir-admin".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    respond(request, &metrics, &*health);
                }
            })
            .map_err(|e| TelemetryError::Listen {
                addr,
                message: format!("cannot start its thread: {e}"),
            })?;
        Ok(Self {
            addr: bound,
            server,
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(request: tiny_http::Request, metrics: &Metrics, health: &dyn Health) {
    use tiny_http::{Header, Method, Response};
    let header = |v: &str| Header::from_bytes(&b"Content-Type"[..], v.as_bytes()).ok();
    let text = |status: u16, body: String| {
        let mut r = Response::from_string(body).with_status_code(status);
        if let Some(h) = header("text/plain; charset=utf-8") {
            r.add_header(h);
        }
        r
    };
    let path = request.url().split('?').next().unwrap_or("");
    let response = if *request.method() != Method::Get && *request.method() != Method::Head {
        text(405, "only GET is served here\n".into())
    } else {
        match path {
            "/metrics" => {
                let mut r = Response::from_string(metrics.encode());
                if let Some(h) = header(OPENMETRICS) {
                    r.add_header(h);
                }
                r
            }
            "/healthz" => match health.live() {
                Ok(()) => text(200, "ok\n".into()),
                Err(why) => text(503, format!("{why}\n")),
            },
            "/readyz" => match health.ready() {
                Ok(()) => text(200, "ready\n".into()),
                Err(why) => text(503, format!("{why}\n")),
            },
            _ => text(404, "not found: try /metrics, /healthz or /readyz\n".into()),
        }
    };
    if let Err(error) = request.respond(response) {
        tracing::debug!(%error, "Admin response not sent.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Flag(AtomicBool);
    impl Health for Flag {
        fn live(&self) -> Result<(), String> {
            Ok(())
        }
        fn ready(&self) -> Result<(), String> {
            if self.0.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("no partition assigned".into())
            }
        }
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_health_and_readiness() {
        let metrics = Metrics::new("p");
        metrics.set_lanes(2, 0, 5);
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let server = AdminServer::start(
            "127.0.0.1:0".parse().unwrap(),
            metrics,
            Arc::clone(&flag) as Arc<dyn Health>,
        )
        .unwrap();
        let m = get(server.addr(), "/metrics");
        assert!(
            m.starts_with("HTTP/1.1 200") || m.starts_with("HTTP/1.0 200"),
            "{m}"
        );
        assert!(m.contains("application/openmetrics-text"), "{m}");
        assert!(
            m.contains(r#"weir_assigned_partitions{pipeline="p"} 2"#),
            "{m}"
        );
        assert!(m.trim_end().ends_with("# EOF"), "{m}");
        assert!(get(server.addr(), "/healthz").contains(" 200 "));
        let r = get(server.addr(), "/readyz");
        assert!(
            r.contains(" 503 ") && r.contains("no partition assigned"),
            "{r}"
        );
        flag.0.store(true, Ordering::Relaxed);
        assert!(get(server.addr(), "/readyz").contains(" 200 "));
        assert!(get(server.addr(), "/nope").contains(" 404 "));
    }
}
