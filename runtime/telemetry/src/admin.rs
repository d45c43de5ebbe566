//! The admin listener: `/metrics` (OpenMetrics text), `/healthz`, `/readyz`, and the admin API
//! (`POST /admin/reload`, `GET /admin/canary`, `POST /admin/canary/STAGE/ACTION`, and
//! `GET /admin/tap?…`, which streams JSON lines until the client goes away). Every
//! `/admin/` route needs `Authorization: Bearer <token>`. The listener serves each connection
//! on its own thread within [`AdminLimits`], so a slow client never holds up a scrape or a
//! health probe.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::TelemetryError;
use crate::http::{Answer, Handler, Request, Response, Server};
use crate::metrics::Metrics;

pub use crate::http::{AdminLimits, LineStream, Next};
pub use crate::token::AdminToken;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why an instance is not live, or not ready: the body of the probe's 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unhealthy(pub String);

impl From<&str> for Unhealthy {
    fn from(why: &str) -> Self {
        Self(why.to_owned())
    }
}

/// What `/healthz` and `/readyz` report, supplied by the engine.
pub trait Health: Send + Sync + 'static {
    /// `Ok` while the process is able to make progress (no fatal error).
    fn live(&self) -> Result<(), Unhealthy>;
    /// `Ok` when the instance is doing useful work: partitions assigned and brokers reachable.
    fn ready(&self) -> Result<(), Unhealthy>;
}

/// Why the admin API refused a request; each answers with its own status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 503: this process cannot do that at all (hot reload is off, say).
    #[error("{0}")]
    Unavailable(String),
    /// 404: the request names a stage the pipeline does not have.
    #[error("{0}")]
    NotFound(String),
    /// 400: the request itself is wrong (an unknown canary action, say).
    #[error("{0}")]
    BadRequest(String),
    /// 429: too many clients of this kind at once.
    #[error("{0}")]
    TooMany(String),
}

impl Refusal {
    fn status(&self) -> u16 {
        match self {
            Self::Unavailable(_) => 503,
            Self::NotFound(_) => 404,
            Self::BadRequest(_) => 400,
            Self::TooMany(_) => 429,
        }
    }
}

/// What the admin API can ask of the engine.
pub trait Control: Send + Sync + 'static {
    /// Ask for a reload of the pipeline file and its modules (as SIGHUP does).
    fn reload(&self) -> Result<(), Refusal>;

    /// The canaries' status, as JSON.
    fn canary_status(&self) -> String {
        "[]".into()
    }

    /// Ask for `action` (`start`, `promote` or `rollback`) on stage `stage`'s canary; the
    /// answer says what was requested.
    fn canary(&self, _stage: &str, _action: &str) -> Result<String, Refusal> {
        Err(Refusal::Unavailable(
            "canaries are not available in this process".into(),
        ))
    }

    /// A stream of JSON lines of the records `query` (the request's query string) selects.
    fn tap(&self, _query: &str) -> Result<Box<dyn LineStream>, Refusal> {
        Err(Refusal::Unavailable(
            "tap is not available in this process".into(),
        ))
    }
}

/// The admin API's settings.
#[derive(Clone)]
pub struct AdminApi {
    /// The bearer token every admin call must carry; without one they are all refused.
    pub token: Option<AdminToken>,
    pub control: Arc<dyn Control>,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The running listener; stops accepting when dropped.
pub struct AdminServer {
    server: Server,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("addr", &self.addr())
            .finish_non_exhaustive()
    }
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free one) and serves `metrics` and `health`, and `api`
    /// when given, within the default [`AdminLimits`].
    pub fn start(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        health: Arc<dyn Health>,
        api: Option<AdminApi>,
    ) -> Result<Self, TelemetryError> {
        Self::start_with_limits(addr, metrics, health, api, AdminLimits::default())
    }

    /// [`AdminServer::start`] within `limits`.
    pub fn start_with_limits(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        health: Arc<dyn Health>,
        api: Option<AdminApi>,
        limits: AdminLimits,
    ) -> Result<Self, TelemetryError> {
        let routes = Routes {
            metrics,
            health,
            api,
        };
        let server = Server::start(addr, limits, Arc::new(routes))?;
        Ok(Self { server })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
}

struct Routes {
    metrics: Arc<Metrics>,
    health: Arc<dyn Health>,
    api: Option<AdminApi>,
}

impl Handler for Routes {
    fn handle(&self, request: &Request) -> Answer {
        let path = request.path.as_str();
        if path == "/admin" || path.starts_with("/admin/") {
            return match authorize(request, self.api.as_ref()) {
                Ok(api) if request.method == "GET" && path == "/admin/tap" => {
                    match api.control.tap(&request.query) {
                        Ok(lines) => Answer::Stream("application/x-ndjson", lines),
                        Err(why) => Response::text(why.status(), format!("{why}\n")).into(),
                    }
                }
                Ok(api) => admin(api, request).into(),
                Err(refusal) => refusal.into(),
            };
        }
        self.public(request).into()
    }
}

impl Routes {
    /// The routes that need no token.
    fn public(&self, request: &Request) -> Response {
        let path = request.path.as_str();
        let get = matches!(request.method.as_str(), "GET" | "HEAD");
        match path {
            "/metrics" if get => Response::ok(OPENMETRICS, self.metrics.encode()),
            "/healthz" if get => match self.health.live() {
                Ok(()) => Response::text(200, "ok\n"),
                Err(why) => Response::text(503, format!("{why}\n")),
            },
            "/readyz" if get => match self.health.ready() {
                Ok(()) => Response::text(200, "ready\n"),
                Err(why) => Response::text(503, format!("{why}\n")),
            },
            "/metrics" | "/healthz" | "/readyz" => {
                Response::text(405, "use GET\n").with_header("Allow", "GET, HEAD")
            }
            _ => Response::text(
                404,
                "not found: try /metrics, /healthz, /readyz or POST /admin/reload\n",
            ),
        }
    }
}

/// The `/admin/` routes, for an authorized caller.
fn admin(api: &AdminApi, request: &Request) -> Response {
    let path = request.path.as_str();
    match (request.method.as_str(), path) {
        ("POST", "/admin/reload") => match api.control.reload() {
            Ok(()) => Response::text(
                202,
                "reload requested; its result is logged and counted in weir_reloads_total\n",
            ),
            Err(why) => Response::text(why.status(), format!("{why}\n")),
        },
        ("GET" | "HEAD", "/admin/canary") => {
            Response::ok("application/json", api.control.canary_status())
        }
        ("POST", p) if p.starts_with("/admin/canary/") => {
            match p["/admin/canary/".len()..].split_once('/') {
                None => Response::text(404, "use /admin/canary/STAGE/ACTION\n"),
                Some((stage, action)) => match api.control.canary(stage, action) {
                    Ok(message) => Response::text(202, format!("{message}\n")),
                    Err(why) => Response::text(why.status(), format!("{why}\n")),
                },
            }
        }
        (_, "/admin/reload") => Response::text(405, "use POST\n").with_header("Allow", "POST"),
        (_, "/admin/canary") => Response::text(405, "use GET\n").with_header("Allow", "GET, HEAD"),
        (_, "/admin/tap") => Response::text(405, "use GET\n").with_header("Allow", "GET"),
        _ => Response::text(
            404,
            "not found: the admin API has POST /admin/reload, GET /admin/canary, \
             POST /admin/canary/STAGE/ACTION and GET /admin/tap\n",
        ),
    }
}

/// Checks the request's bearer token against the configured one, in constant time.
fn authorize<'a>(request: &Request, api: Option<&'a AdminApi>) -> Result<&'a AdminApi, Response> {
    let Some(api) = api else {
        return Err(Response::text(
            503,
            "the admin API is not available in this mode\n",
        ));
    };
    let Some(token) = &api.token else {
        return Err(Response::text(
            403,
            "the admin API is disabled: start weir with WEIR_ADMIN_TOKEN set (or --token-file) \
             to enable it\n",
        ));
    };
    if token.authorizes(request.authorization.as_deref()) {
        Ok(api)
    } else {
        Err(Response::text(401, "missing or wrong bearer token\n")
            .with_header("WWW-Authenticate", "Bearer"))
    }
}
