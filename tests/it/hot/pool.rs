//! The PostgreSQL sink's connection pool, exhausted: a pool of one connection, four lanes
//! writing at once, and the table locked by another session. The one connection hangs in its
//! `INSERT` while the other lanes queue for it and, after the pool's wait (5 s), give up and
//! retry: the pool metrics show the connection busy and none idle, the `pool` failures and the
//! time spent waiting, readiness names the sink, and the process burns next to no CPU
//! meanwhile; once the lock goes, every record is in the table once. The pool gauges are
//! sampled every second by the sink's watcher, so they show the writes waiting while none gets
//! a connection.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::{click, database, pipeline, rows, wait_committed};
use crate::harness::{
    Process, Rec, Weir, create_topic, die_with_parent, http_get, metric_value, produce, unique,
    wait_for_value, write_pipeline,
};
use crate::pg::{Postgres, postgres};

/// How long a write waits for a connection before it gives up (the sink's `POOL_WAIT`).
const POOL_WAIT: Duration = Duration::from_secs(5);

/// How long the table stays locked once a write has given up waiting for the pool: the lanes'
/// next waits, which end when the lock goes and so are measured.
const HOLD: Duration = Duration::from_secs(3);

/// A psql session holding `clicks` locked (`ACCESS EXCLUSIVE`) until [`Lock::release`].
struct Lock {
    psql: Process,
    stdin: ChildStdin,
}

impl Lock {
    /// Locks `clicks` of `db`; returns once the lock is granted.
    fn take(server: &Postgres, db: &str) -> Self {
        let bundled = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin/psql"))
            .filter(|p| p.is_file())
            .max();
        let mut cmd = Command::new(bundled.unwrap_or_else(|| "psql".into()));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg(server.url(db))
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        die_with_parent(&mut cmd);
        let mut psql = Process(cmd.spawn().expect("cannot run psql (`make test-deps`)"));
        let mut stdin = psql.0.stdin.take().unwrap();
        writeln!(stdin, "BEGIN; LOCK TABLE clicks IN ACCESS EXCLUSIVE MODE;").unwrap();
        stdin.flush().unwrap();
        let held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
            WHERE c.relname = 'clicks' AND l.mode = 'AccessExclusiveLock' AND l.granted \
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())";
        wait_for_value(Duration::from_secs(30), || {
            (server.psql(db, held) == "1").then_some(())
        });
        Self { psql, stdin }
    }

    /// Commits, releasing the lock, and ends the session.
    fn release(mut self) {
        writeln!(self.stdin, "COMMIT;").unwrap();
        drop(self.stdin);
        let status = self.psql.0.wait().unwrap();
        assert!(status.success(), "the locking session failed: {status}");
    }
}

/// CPU time `pid` has used so far (user and system, all its threads).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name (in parentheses): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64(ticks as f64 / per_second)
}

/// What the admin endpoints showed while the table was locked.
#[derive(Debug, Default)]
struct Seen {
    /// The pool gauges read one connection busy, none idle.
    exhausted: bool,
    /// The most `waiting` read.
    waiting: f64,
    /// `weir_hot_failures_total{reason="pool"}`.
    pool_failures: f64,
    /// The first `/readyz` body that answered 503 naming the sink.
    unready: Option<String>,
}

impl Seen {
    fn sample(&mut self, admin: SocketAddr) {
        let (_, metrics) = http_get(admin, "/metrics");
        let pool = |state| {
            let labels = [("sink", "recent"), ("state", state)];
            metric_value(&metrics, "weir_hot_pool_connections", &labels)
        };
        self.exhausted |= pool("busy") == Some(1.0) && pool("idle") == Some(0.0);
        self.waiting = self.waiting.max(pool("waiting").unwrap_or(0.0));
        let labels = [("sink", "recent"), ("reason", "pool")];
        let failures = metric_value(&metrics, "weir_hot_failures_total", &labels);
        self.pool_failures = self.pool_failures.max(failures.unwrap_or(0.0));
        let (code, body) = http_get(admin, "/readyz");
        if code == 503 && body.contains("recent") && self.unready.is_none() {
            self.unready = Some(body);
        }
    }
}

#[test]
fn an_exhausted_connection_pool_shows_in_the_pool_metrics_while_nothing_is_lost() {
    const N: usize = 400;
    const PARTITIONS: usize = 4;
    let server = postgres();
    let db = unique("hotpool").replace('-', "_");
    let url = database(server, &db);
    let (input, dlq, group) = (unique("in"), unique("dlq"), unique("group"));
    create_topic(&input, PARTITIONS as i32);
    create_topic(&dlq, 1);
    // One connection for four lanes, each on a worker of its own.
    let toml = pipeline(&input, &dlq, &group, "pool_size = 1")
        .replace("batch_size = 64", "batch_size = 64\nlane_workers = 4");
    let (_dir, file) = write_pipeline(&toml);
    let records: Vec<Rec> = (0..N)
        .map(|i| Rec {
            partition: (i % PARTITIONS) as i32,
            ..click(i)
        })
        .collect();

    let weir = Weir::run_with_env(&file, &[], &[("WEIR_PG_URL", &url)]);
    let admin = weir.admin_addr();
    weir.wait_assigned();
    let lock = Lock::take(server, &db);
    let locked = Instant::now();
    let cpu_before = cpu_time(weir.pid());
    produce(&input, &records);

    // The first write takes the one connection and hangs on the lock; the others wait for it
    // and give up after 5 s. Then the lock is held a while longer, so the lanes' next waits,
    // which the lock's release ends, are measured.
    let mut seen = Seen::default();
    wait_for_value(Duration::from_secs(60), || {
        seen.sample(admin);
        (seen.pool_failures >= 1.0 && seen.unready.is_some()).then_some(())
    });
    let gave_up = Instant::now();
    while gave_up.elapsed() < HOLD {
        seen.sample(admin);
        std::thread::sleep(Duration::from_millis(100));
    }
    let held = locked.elapsed();
    let cpu = cpu_time(weir.pid()).saturating_sub(cpu_before);
    lock.release();

    assert!(
        seen.exhausted,
        "the pool gauges never showed the one connection busy and none idle: {seen:?}"
    );
    assert!(seen.waiting >= 1.0, "no write was seen waiting: {seen:?}");
    let unready = seen.unready.as_deref().unwrap_or_default();
    assert!(unready.contains("pool is exhausted"), "{unready}");
    // Exhausted, not busy: the lanes wait on the pool, they do not spin.
    assert!(
        cpu < held / 4,
        "weir used {cpu:?} of CPU in {held:?} while its writes waited for the pool"
    );

    // Once the lock goes, everything flows.
    wait_committed(&group, &input, &records);
    let (_, metrics) = http_get(admin, "/metrics");
    wait_for_value(Duration::from_secs(30), || {
        (http_get(admin, "/readyz").0 == 200).then_some(())
    });
    weir.terminate();

    let rows = rows(server, &db);
    assert_eq!(rows.len(), N, "every record once");
    let mut provenance: Vec<(u64, u64)> = rows.iter().map(|r| (r.1, r.2)).collect();
    provenance.sort_unstable();
    provenance.dedup();
    assert_eq!(provenance.len(), N, "each row from a record of its own");
    for (i, (id, partition, ..)) in rows.iter().enumerate() {
        assert_eq!(*id, i as u64);
        assert_eq!(*partition, (i % PARTITIONS) as u64, "row {i}'s partition");
    }

    let sink = [("sink", "recent")];
    let value = |name, labels: &[(&str, &str)]| metric_value(&metrics, name, labels);
    assert_eq!(value("weir_hot_rows_total", &sink), Some(N as f64));
    assert_eq!(value("weir_hot_pool_max_connections", &sink), Some(1.0));
    let pool_failures = [("sink", "recent"), ("reason", "pool")];
    assert!(value("weir_hot_failures_total", &pool_failures) >= Some(seen.pool_failures));
    // The writes that gave up waited 5 s each; the histogram counts those waits too.
    let waited = value("weir_hot_pool_wait_seconds_sum", &sink).unwrap_or(0.0);
    let waits = value("weir_hot_pool_wait_seconds_count", &sink).unwrap_or(0.0);
    assert!(
        waited >= POOL_WAIT.as_secs_f64() * seen.pool_failures + HOLD.as_secs_f64() - 0.5,
        "the writes waited {waited}s for the pool, {} gave up after 5 s",
        seen.pool_failures
    );
    assert!(waits >= (N / 64) as f64, "{waits} writes got a connection");
    // The first write's statement waited for the lock all along: from before the others
    // started waiting for its connection, through their 5 s wait, until the lock went.
    let statements = value("weir_hot_statement_duration_seconds_sum", &sink).unwrap_or(0.0);
    assert!(
        statements >= (POOL_WAIT + HOLD).as_secs_f64() - 0.5,
        "the statements took {statements}s; the lock was held {held:?}"
    );
    eprintln!(
        "locked {held:?}: {seen:?}, {cpu:?} of CPU; afterwards {waited:.2}s waited over {waits} \
         writes, {statements:.2}s in statements"
    );
}
