//! The Redis sink: each output becomes a key or a stream entry, written with one pipeline per
//! write.
//!
//! Modes (`[sinks.<name>] mode`):
//! - `set`: `SET key value [PX ttl]`, the latest value per key.
//! - `hash`: `HSET key value <value> weir_trace_id <id> weir_topic <t> weir_partition <p>
//!   weir_offset <o>` (then `PEXPIRE key ttl`), the latest value per key with its trace id and
//!   provenance.
//! - `stream`: `XADD key [MAXLEN ~ n] * value <value> weir_trace_id ...`, every record in order.
//!
//! The key is the sink's `key` template filled from the record's JSON value, or the record's own
//! key. A write sends every output it takes in one (non-atomic) pipeline over one connection and
//! returns once the replies are in. An output the server refuses (`WRONGTYPE`: the key holds
//! another type) is returned refused with the server's error code; the others are written.
//! Any other server error (`NOPERM`, `MOVED`, an unknown command) is about the server or its
//! configuration, not the output, and is retried like a failure.
//! A connection that fails (or a server that cannot take writes now: `LOADING`, `OOM`,
//! `READONLY`...) fails the whole write as [`SinkError::Unavailable`], accepting nothing, and
//! the engine makes the write again later.
//!
//! Delivery: a write may thus reach Redis more than once. In `set` and `hash` modes a replay
//! rewrites the same value, so the result is as if written once. In `stream` mode delivery is
//! at-least-once: a replay after a failed write or a crash can add the same entries again (their
//! `weir_topic`, `weir_partition`, `weir_offset` and `weir_output` tell duplicates apart). In
//! `hash` mode with a `ttl`, `PEXPIRE` runs even when `HSET` was refused, so a key of another
//! type gets the TTL.
//!
//! Owns: the client, its connection pool (`pool`), the commands (`command`), the keys (`key`)
//! and the watcher that reads the server's health every [`WATCH_INTERVAL`] (`watch`), on a
//! connection of its own. Never logs or returns the url or its password.

mod command;
mod key;
mod pool;
mod watch;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use weir_core::trace::{IdGenerator, SpanId, TraceId};
use weir_core::{DeliveryFailure, Output, Refused, Sink, SinkError};

use self::command::{Batch, Prepared, Shape};
use self::key::KeyTemplate;
use self::pool::{IO_TIMEOUT, POOL_WAIT, Pool, Redactor, TakeError};
use self::watch::{Watch, Watcher};
use crate::{HotError, HotObserver, Server, Statement};

/// How often the watcher reads the server's health.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// The server error codes that refuse an output for what it is (the key holds another type):
/// the output is dead-lettered. Any other server error (below, and NOPERM, MOVED, an unknown
/// command...) says the server or its configuration cannot take the write: it is retried.
const REFUSALS: &[&str] = &["WRONGTYPE"];

/// Server error codes that say the server cannot take writes now, not that it refuses an output:
/// the write is retried rather than its outputs refused.
const TRANSIENT: &[&str] = &[
    "LOADING",
    "BUSY",
    "OOM",
    "READONLY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MISCONF",
    "NOREPLICAS",
    "NOAUTH",
];

/// A `kind = "redis"` sink. See the module's description.
pub struct RedisSink {
    name: String,
    server: Server,
    /// `host:port`, for messages.
    label: String,
    shape: Shape,
    key: KeyTemplate,
    pool: Pool,
    redactor: Redactor,
    observer: Arc<dyn HotObserver>,
    /// Ids of the pipelines' spans.
    ids: Mutex<IdGenerator>,
    /// Why the last write failed, while the server is unreachable.
    unavailable: Mutex<Option<String>>,
    watcher: Mutex<Option<Watcher>>,
}

impl fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSink")
            .field("name", &self.name)
            .field("server", &self.server)
            .field("shape", &self.shape)
            .field("key", &self.key.collection())
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    /// Opens sink `name`: reads its url, connects once and sends `PING`, and starts the watcher.
    pub fn open(
        name: &str,
        settings: &weir_config::RedisSink,
        observer: Arc<dyn HotObserver>,
    ) -> Result<Self, HotError> {
        Self::open_watching(name, settings, observer, WATCH_INTERVAL)
    }

    /// [`Self::open`], with the watcher reading every `every`.
    fn open_watching(
        name: &str,
        settings: &weir_config::RedisSink,
        observer: Arc<dyn HotObserver>,
        every: Duration,
    ) -> Result<Self, HotError> {
        let url = settings.url.read()?;
        let client = ::redis::Client::open(url.as_str())
            .map_err(|error| HotError::Url(Redactor::new([url.clone()]).clean(error)))?;
        let info = client.get_connection_info();
        let password = info.redis_settings().password().map(str::to_owned);
        let redactor = Redactor::new([url].into_iter().chain(password));
        let (address, port) = match info.addr() {
            ::redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            ::redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
            ::redis::ConnectionAddr::Unix(path) => (path.display().to_string(), 0),
            _ => ("unknown".to_owned(), 0),
        };
        let label = if port == 0 {
            address.clone()
        } else {
            format!("{address}:{port}")
        };
        let server = Server {
            system: "redis",
            namespace: info.redis_settings().db().to_string(),
            address,
            port,
        };
        let key = KeyTemplate::parse(settings.key.as_deref())
            .map_err(|error| HotError::Schema(format!("its key template is not valid: {error}")))?;
        let first = pool::connect(&client, IO_TIMEOUT)
            .and_then(|mut connection| {
                ::redis::cmd("PING").exec(&mut connection)?;
                Ok(connection)
            })
            .map_err(|error| HotError::Connect {
                server: label.clone(),
                reason: redactor.clean(error),
            })?;
        let watcher = Watcher::start(Watch {
            sink: name.to_owned(),
            client: client.clone(),
            redactor: redactor.clone(),
            observer: Arc::clone(&observer),
            every,
        })
        .map_err(HotError::Runtime)?;
        tracing::debug!(sink = name, server = %label, "redis sink open");
        Ok(Self {
            name: name.to_owned(),
            server,
            shape: Shape::new(settings.mode, settings.ttl, settings.max_len),
            key,
            pool: Pool::new(client, redactor.clone(), label.clone(), first),
            label,
            redactor,
            observer,
            ids: Mutex::new(IdGenerator::default()),
            unavailable: Mutex::new(None),
            watcher: Mutex::new(Some(watcher)),
        })
    }

    /// Lends a connection, reporting how the pool stands.
    fn lend(&self) -> Result<pool::Lent<'_>, SinkError> {
        match self.pool.take() {
            Ok((lent, waited, stand)) => {
                self.observer.pool(&self.name, Some(waited), stand);
                Ok(lent)
            }
            Err(TakeError::Connect(reason)) => Err(self.down(reason)),
            Err(TakeError::Exhausted) => {
                self.observer.failed(&self.name, "pool");
                Err(SinkError::Unavailable(format!(
                    "no redis connection came free within {}s",
                    POOL_WAIT.as_secs()
                )))
            }
        }
    }

    /// The server cannot take writes: remembers why, and says so.
    fn down(&self, reason: String) -> SinkError {
        self.observer.failed(&self.name, "unavailable");
        let was = self.unavailable.lock().replace(reason.clone());
        if was.is_none() {
            tracing::warn!(sink = %self.name, %reason, "redis sink unavailable");
        }
        SinkError::Unavailable(reason)
    }

    /// The server answered a write.
    fn up(&self) {
        if self.unavailable.lock().take().is_some() {
            tracing::info!(sink = %self.name, "redis sink available again");
        }
    }

    /// Reports one pipeline.
    fn report(&self, pipeline: &Pipeline, error: Option<(&'static str, &str)>) {
        let (trace_id, span_id) = {
            let mut ids = self.ids.lock();
            (ids.trace_id(), ids.span_id())
        };
        self.observer.statement(&Statement {
            sink: &self.name,
            server: &self.server,
            operation: self.shape.operation(),
            collection: self.key.collection(),
            trace_id,
            span_id,
            parent: None,
            // A pipeline's span is a trace of its own, linked to its records' traces.
            sampled: true,
            rows: pipeline.rows,
            started: pipeline.started,
            elapsed: pipeline.elapsed,
            links: &pipeline.links,
            error,
        });
    }
}

/// What one pipeline did, for its statement.
struct Pipeline {
    rows: u64,
    started: SystemTime,
    elapsed: Duration,
    links: Vec<(TraceId, SpanId)>,
}

/// How a pipeline failed.
enum Failure {
    /// The connection broke (or timed out): it is dropped.
    Connection(String),
    /// The server answered but cannot take writes now; the connection is fine.
    Busy(String),
    /// The server refused some commands: `(position among the prepared outputs, why)`.
    Refused(Vec<(usize, Refused)>),
}

impl Failure {
    /// How the pipeline whose commands belong to `owners` failed with `error`, on `server`.
    fn of(error: ::redis::RedisError, owners: &[usize], server: &str, redactor: &Redactor) -> Self {
        use ::redis::ErrorKind;
        let server_side = matches!(error.kind(), ErrorKind::Server(_) | ErrorKind::Extension);
        let message = redactor.clean(&error);
        let connection = || {
            Self::Connection(format!(
                "lost the connection to redis at {server}: {message}"
            ))
        };
        if !server_side {
            return connection();
        }
        let Some(errors) = error.into_server_errors() else {
            return connection();
        };
        let text = |error: &::redis::ServerError| {
            redactor.clean(match error.details() {
                Some(details) => format!("{} {details}", error.code()),
                None => error.code().to_owned(),
            })
        };
        let busy = errors
            .iter()
            .find(|(_, e)| TRANSIENT.contains(&e.code()) || !REFUSALS.contains(&e.code()));
        if let Some((_, busy)) = busy {
            return Self::Busy(format!(
                "redis at {server} cannot take writes now: {}",
                text(busy)
            ));
        }
        let mut refused = Vec::with_capacity(errors.len());
        for (command, error) in errors.iter() {
            let Some(&position) = owners.get(*command) else {
                return connection();
            };
            refused.push((
                position,
                Refused {
                    reason: format!("redis refused it: {}", text(error)),
                    field: None,
                    code: Some(error.code().to_owned()),
                },
            ));
        }
        Self::Refused(refused)
    }
}

impl Sink for RedisSink {
    fn write(&self, outputs: &[Output<'_>]) -> Result<Vec<(usize, Refused)>, SinkError> {
        let mut refused = Vec::new();
        let mut prepared = Vec::with_capacity(outputs.len());
        // Their index among the outputs of their input tells a flat-map's outputs apart.
        let numbered = outputs
            .iter()
            .zip(crate::provenance::output_indexes(outputs));
        for (index, (output, nth)) in numbered.enumerate() {
            match Prepared::new(&self.key, index, output) {
                Ok(mut p) => {
                    p.nth = nth;
                    prepared.push(p);
                }
                Err(why) => refused.push((index, why)),
            }
        }
        if prepared.is_empty() {
            return Ok(refused);
        }
        let batch = Batch::new(self.shape, &prepared);
        let mut lent = self.lend()?;
        let started = SystemTime::now();
        let clock = Instant::now();
        let result = batch.pipe.exec(lent.connection());
        let pipeline = Pipeline {
            rows: prepared.len() as u64,
            started,
            elapsed: clock.elapsed(),
            links: command::links(&prepared),
        };
        let error = match result {
            Ok(()) => {
                drop(lent);
                self.report(&pipeline, None);
                self.up();
                return Ok(refused);
            }
            Err(error) => error,
        };
        match Failure::of(error, &batch.owners, &self.label, &self.redactor) {
            Failure::Connection(reason) => {
                lent.discard();
                self.report(&pipeline, Some(("unavailable", &reason)));
                Err(self.down(reason))
            }
            Failure::Busy(reason) => {
                // A connection told READONLY (a replica after a failover), NOAUTH or NOPERM
                // would be told so again: the next write connects anew.
                lent.discard();
                self.report(&pipeline, Some(("unavailable", &reason)));
                Err(self.down(reason))
            }
            Failure::Refused(by_server) => {
                drop(lent);
                let first = by_server.first().map(|(_, why)| why.reason.clone());
                self.report(
                    &pipeline,
                    Some(("rejected", first.as_deref().unwrap_or(""))),
                );
                self.observer.failed(&self.name, "rejected");
                self.up();
                let mut failed = vec![false; prepared.len()];
                for (position, why) in by_server {
                    if let Some(slot) = failed.get_mut(position).filter(|failed| !**failed) {
                        *slot = true;
                        refused.push((prepared[position].index, why));
                    }
                }
                refused.sort_by_key(|(index, _)| *index);
                Ok(refused)
            }
        }
    }

    /// Writes are synchronous: nothing is ever left to flush.
    fn flush(&self, _timeout: Duration) -> Result<(), SinkError> {
        Ok(())
    }

    fn close(&self, _timeout: Duration) -> Result<(), SinkError> {
        if let Some(watcher) = self.watcher.lock().take() {
            watcher.stop();
        }
        self.pool.clear();
        Ok(())
    }

    fn failure(&self) -> Option<DeliveryFailure> {
        None
    }

    fn in_flight(&self) -> usize {
        0
    }

    fn unavailable(&self) -> Option<String> {
        self.unavailable.lock().clone()
    }
}
