//! The PostgreSQL sink's watcher: every [`INTERVAL`], on a connection of its own (never one of
//! the pool's, never on the data path), it reads the connections in use against
//! `max_connections` and the target table's dead tuples, and reports them. Every [`SAMPLE`] it
//! reports how the sink's pool stands, so an exhausted pool shows (writes waiting, none
//! served) even while no write gets a connection. A server it cannot
//! reach marks the sink unavailable (so readiness tells even while no record flows); the next
//! reading, or write, that succeeds clears it.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use postgres_openssl::MakeTlsConnector;

use super::sql::quote_table;
use crate::HotObserver;

/// How often the watcher reads the server.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// How long one reading may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the watcher samples the pool (no I/O: the pool's own counts).
pub const SAMPLE: Duration = Duration::from_secs(1);

/// What the watcher needs.
pub(super) struct Watch {
    pub sink: Arc<str>,
    pub table: String,
    pub config: tokio_postgres::Config,
    pub connector: MakeTlsConnector,
    pub runtime: Arc<tokio::runtime::Runtime>,
    pub observer: Arc<dyn HotObserver>,
    pub down: Arc<Mutex<Option<String>>>,
    pub pool: deadpool_postgres::Pool,
}

/// The running watcher; [`Watcher::stop`] ends it.
pub(super) struct Watcher {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Watcher {
    pub fn start(watch: Watch) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("weir-pg-watch-{}", watch.sink))
            .spawn(move || {
                let per_reading = (INTERVAL.as_millis() / SAMPLE.as_millis()).max(1);
                for tick in 0.. {
                    if tick % per_reading == 0 {
                        watch.once();
                    }
                    let pool = super::pool_state(&watch.pool);
                    watch.observer.pool(&watch.sink, None, pool);
                    match stopped.recv_timeout(SAMPLE) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                }
            })?;
        Ok(Self { stop, thread })
    }

    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

impl Watch {
    fn once(&self) {
        let read = self.runtime.block_on(async {
            tokio::time::timeout(READ_TIMEOUT, async {
                // A server that cannot be connected to (down, refusing: too many clients, a
                // password no longer valid) is down for the sink too.
                let (client, connection) = self
                    .config
                    .connect(self.connector.clone())
                    .await
                    .map_err(|e| Some(super::with_causes(&e)))?;
                let connection = tokio::spawn(connection);
                // A reading it may not take (a privilege) is only missed.
                let row = client
                    .query_one(
                        "SELECT (SELECT count(*) FROM pg_stat_activity \
                            WHERE backend_type = 'client backend')::float8, \
                         current_setting('max_connections')::float8, \
                         (SELECT n_dead_tup FROM pg_stat_user_tables \
                            WHERE relid = to_regclass($1))::float8",
                        &[&quote_table(&self.table)],
                    )
                    .await;
                drop(client);
                let _ = connection.await;
                row.map_err(|e| {
                    tracing::debug!(sink = %self.sink, error = %e, "The watcher cannot read the server.");
                    None
                })
            })
            .await
            .unwrap_or_else(|_| Err(Some(format!("no answer within {}s", READ_TIMEOUT.as_secs()))))
        });
        match read {
            Ok(row) => {
                let mut readings = vec![
                    ("postgres_connections", row.get::<_, f64>(0)),
                    ("postgres_max_connections", row.get::<_, f64>(1)),
                ];
                if let Ok(Some(dead)) = row.try_get::<_, Option<f64>>(2) {
                    readings.push(("postgres_dead_tuples", dead));
                }
                self.observer.health(&self.sink, &readings);
                self.clear();
            }
            Err(None) => self.clear(),
            Err(Some(reason)) => {
                tracing::debug!(sink = %self.sink, %reason, "The watcher cannot reach the server.");
                self.observer.failed(&self.sink, "unavailable");
                *self.down.lock() = Some(format!("postgres watcher: {reason}"));
            }
        }
    }

    /// Clears what the watcher set: the server answers.
    fn clear(&self) {
        let mut down = self.down.lock();
        if down
            .as_deref()
            .is_some_and(|d| d.starts_with("postgres watcher"))
        {
            *down = None;
        }
    }
}
