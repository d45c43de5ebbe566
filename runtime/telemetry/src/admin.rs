//! The admin listener: `/metrics` (OpenMetrics text), `/healthz`, `/readyz`, and the admin API
//! (`POST /admin/reload`), whose calls need `Authorization: Bearer <token>`.

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

/// What the admin API can ask of the engine.
pub trait Control: Send + Sync + 'static {
    /// Ask for a reload of the pipeline file and its modules (as SIGHUP does).
    fn reload(&self) -> Result<(), String>;

    /// The canaries' status, as JSON.
    fn canary_status(&self) -> String {
        "[]".into()
    }

    /// Ask for `action` (`start`, `promote` or `rollback`) on stage `stage`'s canary.
    fn canary(&self, _stage: &str, _action: &str) -> Result<String, String> {
        Err("canaries are not available in this process".into())
    }
}

/// The admin API's settings.
#[derive(Clone)]
pub struct AdminApi {
    /// The bearer token mutating calls must carry; without one they are refused.
    pub token: Option<String>,
    pub control: Arc<dyn Control>,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
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
        api: Option<AdminApi>,
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
                    respond(request, &metrics, &*health, api.as_ref());
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

fn respond(
    mut request: tiny_http::Request,
    metrics: &Metrics,
    health: &dyn Health,
    api: Option<&AdminApi>,
) {
    use tiny_http::{Header, Method, Response};
    let header = |v: &str| Header::from_bytes(&b"Content-Type"[..], v.as_bytes()).ok();
    let text = |status: u16, body: String| {
        let mut r = Response::from_string(body).with_status_code(status);
        if let Some(h) = header("text/plain; charset=utf-8") {
            r.add_header(h);
        }
        r
    };
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    let method = request.method().clone();
    let response = match (&method, path.as_str()) {
        (Method::Post, "/admin/reload") => match authorize(&request, api) {
            Err((status, why)) => text(status, format!("{why}\n")),
            Ok(api) => match api.control.reload() {
                Ok(()) => text(
                    202,
                    "reload requested; its result is logged and counted in weir_reloads_total\n"
                        .into(),
                ),
                Err(why) => text(503, format!("{why}\n")),
            },
        },
        (Method::Get | Method::Head, "/admin/canary") => match api {
            Some(api) => {
                let mut r = Response::from_string(api.control.canary_status());
                if let Some(h) = header("application/json") {
                    r.add_header(h);
                }
                r
            }
            None => text(503, "the admin API is not available in this mode\n".into()),
        },
        (Method::Post, p) if p.starts_with("/admin/canary/") => {
            match (
                authorize(&request, api),
                p["/admin/canary/".len()..].split_once('/'),
            ) {
                (Err((status, why)), _) => text(status, format!("{why}\n")),
                (Ok(_), None) => text(404, "use /admin/canary/STAGE/ACTION\n".into()),
                (Ok(api), Some((stage, action))) => match api.control.canary(stage, action) {
                    Ok(message) => text(202, format!("{message}\n")),
                    Err(why) => text(409, format!("{why}\n")),
                },
            }
        }
        (Method::Get | Method::Head, "/metrics") => {
            let mut r = Response::from_string(metrics.encode());
            if let Some(h) = header(OPENMETRICS) {
                r.add_header(h);
            }
            r
        }
        (Method::Get | Method::Head, "/healthz") => match health.live() {
            Ok(()) => text(200, "ok\n".into()),
            Err(why) => text(503, format!("{why}\n")),
        },
        (Method::Get | Method::Head, "/readyz") => match health.ready() {
            Ok(()) => text(200, "ready\n".into()),
            Err(why) => text(503, format!("{why}\n")),
        },
        (_, "/metrics" | "/healthz" | "/readyz") => text(405, "use GET\n".into()),
        (_, "/admin/reload") => text(405, "use POST\n".into()),
        _ => text(
            404,
            "not found: try /metrics, /healthz, /readyz or POST /admin/reload\n".into(),
        ),
    };
    // Drain a request body, if any, so the connection stays well-formed.
    let _ = std::io::copy(&mut request.as_reader(), &mut std::io::sink());
    if let Err(error) = request.respond(response) {
        tracing::debug!(%error, "Admin response not sent.");
    }
}

/// Checks the request's bearer token against the configured one, in constant time.
fn authorize<'a>(
    request: &tiny_http::Request,
    api: Option<&'a AdminApi>,
) -> Result<&'a AdminApi, (u16, &'static str)> {
    let Some(api) = api else {
        return Err((503, "the admin API is not available in this mode"));
    };
    let Some(token) = &api.token else {
        return Err((
            403,
            "the admin API is disabled: start weir with WEIR_ADMIN_TOKEN set to enable it",
        ));
    };
    let given = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        Ok(api)
    } else {
        Err((401, "missing or wrong bearer token"))
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
        let reloads = Arc::new(Reloads(std::sync::atomic::AtomicUsize::new(0)));
        let server = AdminServer::start(
            "127.0.0.1:0".parse().unwrap(),
            metrics,
            Arc::clone(&flag) as Arc<dyn Health>,
            Some(AdminApi {
                token: Some("s3cret".into()),
                control: Arc::clone(&reloads) as Arc<dyn Control>,
            }),
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

        assert!(get(server.addr(), "/admin/reload").contains(" 405 "));
        let post = |auth: &str| {
            request(
                server.addr(),
                &format!("POST /admin/reload HTTP/1.0\r\n{auth}Content-Length: 0\r\n\r\n"),
            )
        };
        assert!(post("").contains(" 401 "));
        assert!(post("Authorization: Bearer wrong\r\n").contains(" 401 "));
        assert_eq!(reloads.0.load(Ordering::Relaxed), 0);
        assert!(post("Authorization: Bearer s3cret\r\n").contains(" 202 "));
        assert_eq!(reloads.0.load(Ordering::Relaxed), 1);
    }

    struct Reloads(std::sync::atomic::AtomicUsize);
    impl Control for Reloads {
        fn reload(&self) -> Result<(), String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn request(addr: SocketAddr, raw: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn without_a_token_the_admin_api_is_refused() {
        let server = AdminServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Metrics::new("p"),
            Arc::new(Flag(AtomicBool::new(true))) as Arc<dyn Health>,
            Some(AdminApi {
                token: None,
                control: Arc::new(Reloads(std::sync::atomic::AtomicUsize::new(0))),
            }),
        )
        .unwrap();
        let r = request(
            server.addr(),
            "POST /admin/reload HTTP/1.0\r\nAuthorization: Bearer x\r\n\r\n",
        );
        assert!(r.contains(" 403 ") && r.contains("WEIR_ADMIN_TOKEN"), "{r}");
    }
}
