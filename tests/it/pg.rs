//! PostgreSQL and Redis servers for the hot-store tests (Debian's `postgresql` and
//! `redis-server`, installed by `make test-deps`), each started once per test run on a free
//! loopback port, with its files in a scratch folder. Set
//! `WEIR_TEST_POSTGRES=postgres://user@host:port` or `WEIR_TEST_REDIS=redis://host:port` to use
//! your own server instead: then nothing is started, [`Postgres::log`] is empty and
//! [`Postgres::stop`]/[`Postgres::start`] panic (see [`Postgres::managed`]). A test that stops
//! its server should take one of its own ([`Postgres::spawn`]): stopping the shared one would
//! disturb every test running beside it. As root, PostgreSQL runs as `nobody` (it refuses root).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use crate::harness::{Process, die_with_parent, free_port, wait_listening};

pub struct Postgres {
    pub host: String,
    pub port: u16,
    /// `postgres://user@host:port`, without a database.
    base: String,
    /// The server binaries' folder and the scratch folder (`data/`, `server.log`, the socket),
    /// and the running server; `None` for an external server.
    server: Option<(PathBuf, PathBuf, Mutex<Option<Process>>)>,
}

/// The shared PostgreSQL server, started on first use.
pub fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| match std::env::var("WEIR_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => {
            let (_, host, port) = parse_url(&url, 5432);
            let base = url.trim_end_matches('/').into();
            let server = None;
            Postgres {
                host,
                port,
                base,
                server,
            }
        }
        _ => Postgres::spawn(),
    })
}

impl Postgres {
    /// A new server of the caller's own (user `weir`, trust authentication, every statement
    /// logged), running once this returns. It is killed and its folder removed when dropped.
    pub fn spawn() -> Postgres {
        let bin = pg_bindir().expect("no /usr/lib/postgresql/*/bin: run `make test-deps`");
        let dir = scratch("pg");
        let mut initdb = as_server_user(&bin.join("initdb"));
        initdb.arg("-D").arg(dir.join("data")).current_dir(&dir);
        initdb.args("-U weir --auth=trust --no-sync -E UTF8 --locale=C".split(' '));
        output(&mut initdb).unwrap_or_else(|e| panic!("initdb failed: {e}"));
        let (host, port) = ("127.0.0.1".into(), free_port());
        let base = format!("postgres://weir@127.0.0.1:{port}");
        let server = Some((bin, dir, Mutex::new(None)));
        let pg = Postgres {
            host,
            port,
            base,
            server,
        };
        pg.start();
        pg
    }

    /// Whether the tests started this server (and so can stop and start it).
    pub fn managed(&self) -> bool {
        self.server.is_some()
    }

    fn server(&self) -> &(PathBuf, PathBuf, Mutex<Option<Process>>) {
        let external = "WEIR_TEST_POSTGRES names a server the tests cannot stop or start";
        self.server.as_ref().expect(external)
    }

    /// Starts the stopped server again, on the same port and folder; returns once it answers.
    /// Panics for an external server.
    pub fn start(&self) {
        let (bin, dir, child) = self.server();
        let mut child = child.lock().unwrap();
        assert!(child.is_none(), "PostgreSQL is already running");
        let mut cmd = as_server_user(&bin.join("postgres"));
        cmd.arg("-D").arg(dir.join("data")).arg("-k").arg(dir);
        cmd.args(["-p", &self.port.to_string(), "-h", "127.0.0.1"]);
        cmd.args(["-c", "log_statement=all", "-c", "logging_collector=off"]);
        cmd.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        let mut process = Process(spawn_long_lived(cmd.current_dir(dir), dir).unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.try_psql("postgres", "select 1").as_deref() != Ok("1") {
            if let Ok(Some(status)) = process.0.try_wait() {
                panic!("postgres exited with {status}; log:\n{}", self.log());
            }
            let late = Instant::now() > deadline;
            assert!(!late, "postgres does not answer; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        *child = Some(process);
    }

    /// Stops the server (a fast shutdown: clients are disconnected, and the data is kept).
    /// Panics for an external server.
    pub fn stop(&self) {
        let Some(mut process) = self.server().2.lock().unwrap().take() else {
            return;
        };
        // SAFETY: plain kill(2) on our own child's pid. SIGINT is PostgreSQL's fast shutdown.
        unsafe { libc::kill(process.0.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while process.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "postgres did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`stop`](Self::stop), then [`start`](Self::start).
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// The URL of `database`: `postgres://weir@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("{}/{database}", self.base)
    }

    /// Creates `name` afresh (dropping any database of that name); returns its URL.
    pub fn database(&self, name: &str) -> String {
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        self.psql("postgres", &drop);
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Runs `sql` in `database` with psql; returns its unaligned, tuples-only output, trimmed.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self.try_psql(database, sql);
        out.unwrap_or_else(|e| panic!("psql {sql:?} failed: {e}"))
    }

    fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let bundled = pg_bindir().map(|b| b.join("psql")).filter(|p| p.is_file());
        let mut cmd = Command::new(bundled.unwrap_or_else(|| "psql".into()));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        cmd.arg(self.url(database)).args(["-c", sql]);
        output(cmd.env("PGCONNECT_TIMEOUT", "10"))
    }

    /// The server's log so far (every statement it ran); empty for an external server.
    pub fn log(&self) -> String {
        let log = self.server.as_ref().map(|s| s.1.join("server.log"));
        log.and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some((_, dir, child)) = &self.server {
            drop(child.lock().unwrap().take());
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub struct Redis {
    pub host: String,
    pub port: u16,
    _child: Option<Process>,
}

/// The shared Redis server (no persistence), started on first use.
pub fn redis() -> &'static Redis {
    static REDIS: OnceLock<Redis> = OnceLock::new();
    REDIS.get_or_init(|| {
        if let Ok(url) = std::env::var("WEIR_TEST_REDIS").as_deref()
            && !url.is_empty()
        {
            let (_, host, port) = parse_url(url, 6379);
            return Redis {
                host,
                port,
                _child: None,
            };
        }
        let (dir, port) = (scratch("redis"), free_port());
        let path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("redis-server"))
            .find(|p| p.is_file());
        let mut cmd = Command::new(path.unwrap_or_else(|| "/usr/bin/redis-server".into()));
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
        cmd.args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir);
        let child = spawn_long_lived(&mut cmd, &dir);
        let child = child.unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        wait_listening(port, "redis-server");
        let host = "127.0.0.1".into();
        Redis {
            host,
            port,
            _child: Some(Process(child)),
        }
    })
}

impl Redis {
    /// `redis://host:port`.
    pub fn url(&self) -> String {
        format!("redis://{}:{}", self.host, self.port)
    }

    /// Runs `redis-cli` with `args` against the server; returns its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", &self.host, "-p", &self.port.to_string()]);
        output(cmd.args(args)).unwrap_or_else(|e| panic!("redis-cli {args:?} failed: {e}"))
    }
}

/// Runs `cmd`; its standard output, trimmed, or else why it failed.
fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output();
    let out = out.map_err(|e| format!("cannot run {cmd:?} (`make test-deps`): {e}"))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
    match out.status.success() {
        true => Ok(text(&out.stdout)),
        false => Err(format!("{}\n{}", text(&out.stdout), text(&out.stderr))),
    }
}

/// The user, host and port of `scheme://[user[:password]@]host[:port][/...]`.
fn parse_url(url: &str, default_port: u16) -> (String, String, u16) {
    let authority = url.split_once("://").map_or(url, |(_, a)| a);
    let authority = authority.split('/').next().unwrap();
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, ""));
    let user = userinfo.split(':').next().unwrap().into();
    (user, host.into(), port.parse().unwrap_or(default_port))
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn pg_bindir() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<f64>().ok()?, e.path())))
        .filter(|(_, p)| p.join("bin/postgres").is_file())
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, p)| p.join("bin"))
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `bin`, run as `nobody` when we are root (util-linux's `setpriv`), keeping the death signal.
fn as_server_user(bin: &Path) -> Command {
    if !is_root() {
        return Command::new(bin);
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]);
    cmd.arg("--pdeathsig=keep").arg(bin);
    cmd
}

/// A fresh folder `weir-test-<kind>-<pid>-<n>` in the temporary folder (`/tmp` as root, so that
/// `nobody` can reach it), owned by whoever runs the servers. The folders of finished test runs
/// are removed first: the shared servers outlive every destructor.
fn scratch(kind: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static N: AtomicU32 = AtomicU32::new(0);
    let tmp = if is_root() {
        "/tmp".into()
    } else {
        std::env::temp_dir()
    };
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rest = ["weir-test-pg-", "weir-test-redis-"].map(|p| name.strip_prefix(p));
        let pid = rest.into_iter().flatten().find_map(|r| r.split('-').next());
        if pid.is_some_and(|p| p.parse::<u32>().is_ok() && !Path::new("/proc").join(p).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = tmp.join(format!("weir-test-{kind}-{}-{n}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        output(Command::new("chown").arg("nobody:nogroup").arg(&dir)).unwrap();
    }
    dir
}

/// Spawns `cmd`, its output appended to `dir/server.log`, from a thread that lives as long as
/// the test process: the child dies with the thread that spawned it (`die_with_parent`), and a
/// server outlives the test that starts it.
fn spawn_long_lived(cmd: &mut Command, dir: &Path) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        });
        tx
    });
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    die_with_parent(cmd);
    let cmd = std::mem::replace(cmd, Command::new(""));
    let (tx, rx) = mpsc::channel();
    spawner.send((cmd, tx)).unwrap();
    rx.recv().unwrap()
}

#[test]
fn the_throwaway_servers_answer() {
    let pg = postgres();
    assert_eq!(pg.psql("postgres", "select 1"), "1");
    assert_eq!(pg.database("pg_selftest"), pg.url("pg_selftest"));
    pg.psql(
        "pg_selftest",
        "create table t (v int); insert into t values (4)",
    );
    assert_eq!(pg.psql("pg_selftest", "select v from t"), "4");
    let log = pg.log();
    assert!(
        !pg.managed() || log.contains("select v from t"),
        "log:\n{log}"
    );

    // Stopping and starting, on a server of the test's own: the shared one serves other tests.
    let own = Postgres::spawn();
    own.database("kept");
    own.psql("kept", "create table t (v int); insert into t values (7)");
    own.restart();
    assert_eq!(own.psql("kept", "select v from t"), "7");
    own.stop();
    assert!(own.try_psql("kept", "select 1").is_err());
    own.start();
    assert_eq!(own.psql("kept", "select v from t"), "7");

    assert_eq!(redis().cli(&["PING"]), "PONG");
    redis().cli(&["SET", "pg-selftest", "v"]);
    assert_eq!(redis().cli(&["GET", "pg-selftest"]), "v");
}
