//! The PostgreSQL sink: each write is one `INSERT` (or one per record with
//! `statement = "record"`) in one transaction, on a connection from a pool, and returns once it
//! has committed: every output it did not refuse is then durable.
//!
//! A row the server refuses (SQLSTATE class 22, data; 23, a constraint; 54, a limit) fails the
//! statement; the batch is then written again row by row, each under a savepoint, in one
//! transaction, so only the refused rows are left out: they are returned as refusals carrying
//! their SQLSTATE, and the engine dead-letters them. Any other failure (the server down or
//! restarting, a serialization conflict, no connection free in time) answers
//! [`SinkError::Unavailable`]: nothing was accepted, the engine writes the batch again
//! after a backoff, and rows already there are skipped or rewritten with the same values (the
//! statement's `ON CONFLICT`), so a replay never adds a row twice.
//!
//! Owns: the pool, its I/O thread (one tokio worker per sink), the statements and their spans.

mod check;
mod rows;
pub mod sql;
mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod};
use parking_lot::Mutex;
use weir_config::{StatementMode, TlsMode, WriteMode};
use weir_core::trace::{IdGenerator, SpanId, TraceId, format_traceparent};
use weir_core::{Output, Refused, Sink, SinkError};

use crate::HotError;
use crate::observe::{HotObserver, PoolState, Server, Statement};
use rows::Row;

/// How long a write waits for a free connection before it counts as a failure (`pool`) and is
/// retried: the pool is exhausted.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// The server-side `statement_timeout` of the sink's connections: a statement held up longer
/// (a lock, a synchronous standby that is down) fails and its batch is retried.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a whole write may take on the client's side, whatever the server does (a
/// connection black-holed by the network): then its connection is dropped and it is retried.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Which record fields fill which columns.
#[derive(Debug)]
pub(crate) struct Layout {
    /// (column, JSON pointer, whether the column is json or jsonb) of the mapped columns.
    fields: Vec<(String, String, bool)>,
    provenance: bool,
}

/// A `kind = "postgres"` sink.
pub struct PostgresSink {
    name: Arc<str>,
    table: String,
    layout: Layout,
    mode: WriteMode,
    /// The positions of the key columns among the statement's (upsert).
    key: Vec<usize>,
    /// How many columns the statement fills.
    width: usize,
    per_record: bool,
    statement: String,
    pool: Pool,
    server: Server,
    observer: Arc<dyn HotObserver>,
    ids: Mutex<IdGenerator>,
    /// Why the last write (or the watcher) could not reach the store, until one succeeds.
    down: Arc<Mutex<Option<String>>>,
    watcher: Mutex<Option<watch::Watcher>>,
    /// Last, so it is dropped after the pool it drives.
    runtime: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("name", &self.name)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// How a failed statement is handled.
enum Failed {
    /// The server refused the data of a row (SQLSTATE class 22, 23 or 54, or P0: an exception
    /// a trigger raised), or the batch as one statement (21000: two rows of one key that only
    /// the server could tell equal). The batch is written again row by row.
    Rejected { code: String, message: String },
    /// Anything else: retried. `kind` as in [`HotObserver::failed`].
    Unavailable { kind: &'static str, message: String },
}

fn classify(error: &tokio_postgres::Error) -> Failed {
    match error.as_db_error() {
        Some(db) => {
            let code = db.code().code().to_owned();
            let message = db.message().to_owned();
            match code.get(..2).unwrap_or_default() {
                "21" | "22" | "23" | "54" | "P0" => Failed::Rejected { code, message },
                "40" => Failed::Unavailable {
                    kind: "serialization",
                    message: format!("{code}: {message}"),
                },
                _ => Failed::Unavailable {
                    kind: "unavailable",
                    message: format!("{code}: {message}"),
                },
            }
        }
        None => Failed::Unavailable {
            kind: "unavailable",
            message: with_causes(error),
        },
    }
}

impl PostgresSink {
    /// Connects, checks the table (see `check`), and starts the watcher. Nothing is written.
    pub fn open(
        name: &str,
        settings: &weir_config::PostgresSink,
        observer: Arc<dyn HotObserver>,
    ) -> Result<Self, HotError> {
        let url = settings.url.read()?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| HotError::Url(e.to_string()))?;
        drop(url);
        config.connect_timeout(settings.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("weir");
        }
        let mut tls = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls())
            .map_err(|e| HotError::Tls(e.to_string()))?;
        if let Some(ca) = &settings.ca {
            tls.set_ca_file(ca)
                .map_err(|e| HotError::Tls(format!("{}: {e}", ca.display())))?;
        }
        // `sslmode=require` in the url asks for TLS as `tls = "require"` does: never less.
        use tokio_postgres::config::SslMode;
        let url_requires = config.get_ssl_mode() == SslMode::Require;
        config.ssl_mode(match settings.tls {
            TlsMode::Require => SslMode::Require,
            TlsMode::Disable if url_requires => SslMode::Require,
            TlsMode::Disable => SslMode::Disable,
        });
        // A statement that waits on a lock or a dead standby ends after STATEMENT_TIMEOUT (the
        // server's 57014, retried); keepalives find a connection whose peer vanished.
        let options = format!(
            "{} -c statement_timeout={}",
            config.get_options().unwrap_or_default(),
            STATEMENT_TIMEOUT.as_millis()
        );
        config.options(options.trim());
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let server = server(&config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("weir-pg-{name}"))
            .enable_all()
            .build()
            .map_err(HotError::Runtime)?;
        let runtime = Arc::new(runtime);
        let connector = postgres_openssl::MakeTlsConnector::new(tls.build());
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size as usize)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| HotError::Runtime(std::io::Error::other(e.to_string())))?;
        let columns = runtime.block_on(async {
            let client = pool.get().await.map_err(|e| HotError::Connect {
                server: format!("{}:{}", server.address, server.port),
                reason: pool_error(&e),
            })?;
            check::table(&client, settings).await
        })?;
        let statement = sql::insert(&settings.table, &columns, settings.mode, &settings.key);
        let down = Arc::new(Mutex::new(None));
        let watcher = watch::Watcher::start(watch::Watch {
            sink: name.into(),
            table: settings.table.clone(),
            config,
            connector,
            runtime: Arc::clone(&runtime),
            observer: Arc::clone(&observer),
            down: Arc::clone(&down),
            pool: pool.clone(),
        })
        .map_err(HotError::Runtime)?;
        Ok(Self {
            name: name.into(),
            table: settings.table.clone(),
            layout: Layout {
                fields: settings
                    .columns
                    .iter()
                    .zip(&columns)
                    .map(|(m, typed)| (m.column.clone(), m.field.clone(), typed.json))
                    .collect(),
                provenance: settings.provenance,
            },
            mode: settings.mode,
            key: settings
                .key
                .iter()
                .filter_map(|k| columns.iter().position(|c| &c.name == k))
                .collect(),
            width: columns.len(),
            per_record: settings.statement == StatementMode::Record,
            statement,
            pool,
            server,
            observer,
            ids: Mutex::new(IdGenerator::default()),
            down,
            watcher: Mutex::new(Some(watcher)),
            runtime,
        })
    }

    /// Writes `rows` (all of them, or none on error), returning the rows the server refused.
    async fn write_rows(&self, rows: &[Row]) -> Result<Vec<(usize, Refused)>, SinkError> {
        let waited = Instant::now();
        let mut client = match self.pool.get().await {
            Ok(client) => client,
            Err(error) => {
                // A wait that timed out is a wait too: the histogram shows it.
                self.report_pool(waited.elapsed());
                let kind = if matches!(error, PoolError::Timeout(_)) {
                    "pool"
                } else {
                    "unavailable"
                };
                return Err(self.unavailable(kind, pool_error(&error)));
            }
        };
        self.report_pool(waited.elapsed());
        let write = async {
            let first = if self.per_record {
                self.each_record(&mut client, rows).await
            } else {
                self.batch(&client, rows).await
            };
            match first {
                Ok(()) => Ok(Vec::new()),
                Err(Failed::Unavailable { kind, message }) => Err(self.unavailable(kind, message)),
                Err(Failed::Rejected { .. }) => {
                    self.observer.failed(&self.name, "rejected");
                    self.row_by_row(&mut client, rows).await
                }
            }
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(written) => written,
            Err(_) => {
                // No answer at all (a connection the network black-holed): the connection is
                // taken out of the pool and closed, so no later write queues behind it.
                drop(deadpool_postgres::Object::take(client));
                Err(self.unavailable(
                    "unavailable",
                    format!("no answer within {}s", WRITE_TIMEOUT.as_secs()),
                ))
            }
        }
    }

    /// One statement for every row.
    async fn batch(&self, client: &impl GenericClient, rows: &[Row]) -> Result<(), Failed> {
        let (trace_id, span_id) = self.new_span();
        let written: Vec<&Row> = match self.mode {
            WriteMode::Insert => rows.iter().collect(),
            WriteMode::Upsert => rows::latest_per_key(rows, &self.key),
        };
        let links = links(rows);
        self.run(
            client,
            &written,
            rows.len(),
            (trace_id, span_id, None, true),
            &links,
        )
        .await
    }

    /// One statement per record, in one transaction, each under its record's trace.
    async fn each_record(
        &self,
        client: &mut deadpool_postgres::Object,
        rows: &[Row],
    ) -> Result<(), Failed> {
        let transaction = client.transaction().await.map_err(|e| classify(&e))?;
        for row in rows {
            let (trace_id, parent, sampled) = match row.trace {
                Some((trace_id, span_id, sampled)) => (trace_id, Some(span_id), sampled),
                None => (self.new_span().0, None, true),
            };
            let span_id = self.ids.lock().span_id();
            self.run(
                &transaction,
                &[row],
                1,
                (trace_id, span_id, parent, sampled),
                &[],
            )
            .await?;
        }
        transaction.commit().await.map_err(|e| classify(&e))
    }

    /// Every row under a savepoint of its own, in one transaction: the rows the server refuses
    /// are rolled back alone and returned; the others are committed.
    async fn row_by_row(
        &self,
        client: &mut deadpool_postgres::Object,
        rows: &[Row],
    ) -> Result<Vec<(usize, Refused)>, SinkError> {
        let retry = |failed: Failed| match failed {
            Failed::Unavailable { kind, message } => self.unavailable(kind, message),
            Failed::Rejected { code, message } => {
                self.unavailable("unavailable", format!("{code}: {message}"))
            }
        };
        let mut transaction = client
            .transaction()
            .await
            .map_err(|e| retry(classify(&e)))?;
        let mut refused = Vec::new();
        for row in rows {
            let savepoint = transaction
                .savepoint("weir_row")
                .await
                .map_err(|e| retry(classify(&e)))?;
            let (trace_id, span_id) = self.new_span();
            let links = links(std::slice::from_ref(row));
            match self
                .run(
                    &savepoint,
                    &[row],
                    1,
                    (trace_id, span_id, None, true),
                    &links,
                )
                .await
            {
                Ok(()) => savepoint.commit().await.map_err(|e| retry(classify(&e)))?,
                Err(Failed::Rejected { code, message }) => {
                    savepoint
                        .rollback()
                        .await
                        .map_err(|e| retry(classify(&e)))?;
                    // ROLLBACK TO keeps the savepoint: release it, or every refused row would
                    // nest the next one a level deeper.
                    transaction
                        .batch_execute("RELEASE SAVEPOINT weir_row")
                        .await
                        .map_err(|e| retry(classify(&e)))?;
                    refused.push((
                        row.index,
                        Refused {
                            reason: format!("PostgreSQL refused the row: {message}"),
                            field: None,
                            code: Some(code),
                        },
                    ));
                }
                Err(other) => return Err(retry(other)),
            }
        }
        transaction
            .commit()
            .await
            .map_err(|e| retry(classify(&e)))?;
        Ok(refused)
    }

    /// Runs the statement on `written` under span `span` (trace, span, parent, sampled), and
    /// reports it as writing `rows` rows.
    async fn run(
        &self,
        client: &impl GenericClient,
        written: &[&Row],
        rows: usize,
        span: (TraceId, SpanId, Option<SpanId>, bool),
        links: &[(TraceId, SpanId)],
    ) -> Result<(), Failed> {
        let (trace_id, span_id, parent, sampled) = span;
        let sampled = sampled && self.observer.tracing();
        let traceparent = format_traceparent(&trace_id, &span_id, sampled);
        let text = sql::with_traceparent(&self.statement, &traceparent);
        let started = SystemTime::now();
        let clock = Instant::now();
        let columns = rows::columns(written, self.width);
        let result = client.execute(text.as_str(), &rows::params(&columns)).await;
        let failed = result.as_ref().err().map(classify);
        let message = match &failed {
            Some(Failed::Rejected { code, message }) => format!("{code}: {message}"),
            Some(Failed::Unavailable { message, .. }) => message.clone(),
            None => String::new(),
        };
        let kind = match &failed {
            Some(Failed::Rejected { .. }) => Some("rejected"),
            Some(Failed::Unavailable { kind, .. }) => Some(*kind),
            None => None,
        };
        self.observer.statement(&Statement {
            sink: &self.name,
            server: &self.server,
            operation: "INSERT",
            collection: &self.table,
            trace_id,
            span_id,
            parent,
            sampled,
            rows: rows as u64,
            started,
            elapsed: clock.elapsed(),
            links,
            error: kind.map(|kind| (kind, message.as_str())),
        });
        match failed {
            None => Ok(()),
            Some(failed) => Err(failed),
        }
    }

    fn new_span(&self) -> (TraceId, SpanId) {
        let mut ids = self.ids.lock();
        (ids.trace_id(), ids.span_id())
    }

    fn unavailable(&self, kind: &'static str, message: String) -> SinkError {
        self.observer.failed(&self.name, kind);
        let reason = format!("postgres {}: {message}", self.server.address);
        // A serialization conflict is the database working as it should under concurrent
        // writers: retried, but the store is not down.
        if kind != "serialization" {
            *self.down.lock() = Some(reason.clone());
        }
        SinkError::Unavailable(reason)
    }

    fn report_pool(&self, waited: Duration) {
        self.observer
            .pool(&self.name, Some(waited), pool_state(&self.pool));
    }
}

/// How `pool` stands now.
fn pool_state(pool: &Pool) -> PoolState {
    let status = pool.status();
    PoolState {
        busy: status.size.saturating_sub(status.available),
        idle: status.available,
        waiting: status.waiting,
        max: status.max_size,
    }
}

/// Distinct sampled traces of `rows`, at most `MAX_LINKS`.
fn links(rows: &[Row]) -> Vec<(TraceId, SpanId)> {
    crate::provenance::links(rows.iter().map(|r| r.trace))
}

/// A pool error, in words that hold no connection string.
fn pool_error(error: &PoolError) -> String {
    match error {
        PoolError::Timeout(_) => format!(
            "no connection free within {}s: the pool is exhausted",
            POOL_WAIT.as_secs()
        ),
        PoolError::Backend(e) => with_causes(e),
        other => with_causes(other),
    }
}

/// `error` and the errors beneath it: tokio-postgres keeps the reason a connection failed (a
/// certificate that does not verify, a server refusing the user) in the error's source. None
/// of them holds the connection string.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        cause = inner.source();
    }
    text
}

/// The server's address, port and database, for spans and messages.
fn server(config: &tokio_postgres::Config) -> Server {
    let address = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    Server {
        system: "postgresql",
        namespace: config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres")
            .to_owned(),
        address,
        port: config.get_ports().first().copied().unwrap_or(5432),
    }
}

impl Sink for PostgresSink {
    fn write(&self, outputs: &[Output<'_>]) -> Result<Vec<(usize, Refused)>, SinkError> {
        let (rows, mut refused) = rows::rows(&self.layout, outputs);
        if !rows.is_empty() {
            let rejected = self.runtime.block_on(self.write_rows(&rows))?;
            *self.down.lock() = None;
            refused.extend(rejected);
            refused.sort_by_key(|(i, _)| *i);
        }
        Ok(refused)
    }

    fn flush(&self, _timeout: Duration) -> Result<(), SinkError> {
        Ok(())
    }

    fn close(&self, _timeout: Duration) -> Result<(), SinkError> {
        if let Some(watcher) = self.watcher.lock().take() {
            watcher.stop();
        }
        self.pool.close();
        Ok(())
    }

    fn failure(&self) -> Option<weir_core::DeliveryFailure> {
        None
    }

    fn in_flight(&self) -> usize {
        0
    }

    fn unavailable(&self) -> Option<String> {
        self.down.lock().clone()
    }
}

impl Drop for PostgresSink {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.lock().take() {
            watcher.stop();
        }
    }
}
