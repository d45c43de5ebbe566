//! A real Prometheus server for end-to-end metric tests: it scrapes one target (`weir`'s admin
//! listener) as job `weir` and answers PromQL over its HTTP API.
//!
//! Needs Debian's `prometheus` package (`/usr/bin/prometheus`). Each [`Prometheus`] has its own
//! free loopback port and a temporary data directory, and is killed when dropped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/prometheus";

/// One sample of an instant vector: its labels (with `__name__`) and its value.
pub type Sample = (BTreeMap<String, String>, f64);

/// A running Prometheus scraping one target.
pub struct Prometheus {
    addr: SocketAddr,
    target: String,
    child: Child,
    /// The thread that spawned the child: the child's death signal follows that thread, so it
    /// lives exactly as long as this value (see `Drop`).
    spawner: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `scrape_target` (`host:port`, path `/metrics`) every
    /// `scrape_interval`, and waits until it is ready.
    pub fn start(scrape_target: &str, scrape_interval: Duration) -> Self {
        assert!(
            Path::new(BINARY).is_file(),
            "{BINARY} is missing: install Debian's prometheus package (make test does)"
        );
        let mut dir = tempfile::Builder::new()
            .prefix("weir-prometheus-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(scrape_target, scrape_interval)).unwrap();

        // The port is picked free and then handed over, so another process may take it in
        // between: retry a few times on an early exit.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let log = dir.path().join("prometheus.log");
            let (child, spawner) = spawn(&config, &dir.path().join("data"), addr, &log);
            let mut p = Self {
                addr,
                target: scrape_target.to_owned(),
                child,
                spawner: Some(spawner),
                dir,
            };
            match p.wait_ready(Duration::from_secs(60)) {
                Ok(()) => return p,
                Err(why) => {
                    last_log = format!("{why}; log:\n{}", p.log());
                    // Reclaim the directory for the next attempt.
                    p.stop();
                    dir = std::mem::replace(&mut p.dir, tempfile::tempdir().unwrap());
                }
            }
        }
        panic!("prometheus did not start: {last_log}");
    }

    /// `http://127.0.0.1:PORT`, Prometheus' own web address.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Prometheus' log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant query: the samples of the resulting vector (a scalar gives one sample
    /// without labels). Panics if the query fails.
    pub fn query(&self, promql: &str) -> Vec<Sample> {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let (status, body) = http_get(self.addr, &path)
            .unwrap_or_else(|e| panic!("prometheus query {promql:?} failed: {e}"));
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("prometheus query {promql:?}: HTTP {status}, not JSON ({e}): {body}")
        });
        assert!(
            status == 200 && json["status"] == "success",
            "prometheus query {promql:?}: HTTP {status}: {body}"
        );
        let data = &json["data"];
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let labels = r["metric"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect();
                    (labels, sample_value(&r["value"]))
                })
                .collect(),
            Some("scalar") => vec![(BTreeMap::new(), sample_value(&data["result"]))],
            other => panic!(
                "prometheus query {promql:?}: result type {other:?} is not an instant vector: \
                 {body}"
            ),
        }
    }

    /// Polls `query(promql)` until `pred` holds and returns that result; panics after
    /// `timeout` with the last result and the scrape target's health.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        pred: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            let samples = self.query(promql);
            if pred(&samples) {
                return samples;
            }
            if Instant::now() >= deadline {
                panic!(
                    "prometheus: {promql:?} did not satisfy the condition within {timeout:?}; \
                     last result: {samples:?}; target {}: {}",
                    self.target,
                    self.target_health()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The health, last error and last scrape of the target, as Prometheus reports them.
    pub fn target_health(&self) -> String {
        let Ok((_, body)) = http_get(self.addr, "/api/v1/targets") else {
            return "targets unavailable".into();
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
            return body;
        };
        json["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "health={} lastError={} lastScrape={}",
                    t["health"], t["lastError"], t["lastScrape"]
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("prometheus exited with {status}"));
            }
            if let Ok((200, _)) = http_get(self.addr, "/-/ready") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready on {} within {timeout:?}", self.addr));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((release, thread)) = self.spawner.take() {
            drop(release);
            let _ = thread.join();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn config_yaml(target: &str, interval: Duration) -> String {
    let ms = interval.as_millis().max(1);
    format!(
        "global:\n  scrape_interval: {ms}ms\n  scrape_timeout: {ms}ms\n  evaluation_interval: {ms}ms\n\
         scrape_configs:\n  - job_name: weir\n    static_configs:\n      - targets: [\"{target}\"]\n"
    )
}

/// Spawns Prometheus from a thread that lives until the returned sender is dropped, with
/// `PR_SET_PDEATHSIG` so that it dies with that thread, and so with the test process.
fn spawn(
    config: &Path,
    data: &Path,
    addr: SocketAddr,
    log: &Path,
) -> (Child, (mpsc::Sender<()>, JoinHandle<()>)) {
    let mut cmd = Command::new(BINARY);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=info")
        .stdin(Stdio::null());
    let log = std::fs::File::create(log).unwrap();
    cmd.stdout(log.try_clone().unwrap()).stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let (child_tx, child_rx) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("prometheus-spawner".into())
        .spawn(move || {
            child_tx.send(cmd.spawn()).unwrap();
            // Returns when the sender is dropped.
            let _ = released.recv();
        })
        .unwrap();
    let child = child_rx
        .recv()
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
    (child, (release, thread))
}

fn sample_value(v: &serde_json::Value) -> f64 {
    // [ <unix time>, "<value>" ]; Prometheus writes NaN and +Inf/-Inf, which Rust parses.
    let s = v[1].as_str().unwrap_or_else(|| panic!("bad sample {v}"));
    s.parse()
        .unwrap_or_else(|_| panic!("bad sample value {s:?}"))
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A plain HTTP/1.0 GET: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("malformed HTTP response: {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("malformed HTTP status line: {head:?}"))?;
    Ok((status, body.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Self-test: Prometheus scrapes a tiny OpenMetrics endpoint served here, no broker.

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use super::Prometheus;

    /// What prometheus-client writes: OpenMetrics text with its content type.
    const BODY: &str = "# HELP x An example counter.\n# TYPE x counter\nx_total 5\n\
                        # TYPE weir_lag gauge\nweir_lag{partition=\"0\"} 3\n\
                        weir_lag{partition=\"1\"} 0.5\n# EOF\n";
    const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Serves `BODY` on `/metrics` (404 elsewhere) until dropped.
    struct MetricsServer {
        addr: String,
        scrapes: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
    }

    impl MetricsServer {
        fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let scrapes = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (n, s) = (Arc::clone(&scrapes), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    stream.set_nonblocking(false).unwrap();
                    let mut reader = BufReader::new(stream);
                    let mut request_line = String::new();
                    let _ = reader.read_line(&mut request_line);
                    loop {
                        let mut header = String::new();
                        match reader.read_line(&mut header) {
                            Ok(0) | Err(_) => break,
                            Ok(_) if header == "\r\n" || header == "\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let mut stream = reader.into_inner();
                    let response = if request_line.starts_with("GET /metrics ") {
                        n.fetch_add(1, Ordering::SeqCst);
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                            BODY.len()
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_owned()
                    };
                    let _ = stream.write_all(response.as_bytes());
                }
            });
            Self {
                addr,
                scrapes,
                stop,
            }
        }
    }

    impl Drop for MetricsServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn prometheus_scrapes_and_queries_a_metrics_endpoint() {
        let target = MetricsServer::start();
        let prom = Prometheus::start(&target.addr, Duration::from_millis(200));

        let samples = prom.wait_for("x_total", Duration::from_secs(30), |s| !s.is_empty());
        assert_eq!(samples.len(), 1, "{samples:?}");
        let (labels, value) = &samples[0];
        assert_eq!(*value, 5.0);
        assert_eq!(labels["__name__"], "x_total");
        assert_eq!(labels["job"], "weir");
        assert_eq!(labels["instance"], target.addr);

        let lag = prom.query("sum(weir_lag)");
        assert_eq!(lag.len(), 1, "{lag:?}");
        assert_eq!(lag[0].1, 3.5);
        let by_partition = prom.query("weir_lag{job=\"weir\"}");
        assert_eq!(by_partition.len(), 2, "{by_partition:?}");
        assert!(
            by_partition
                .iter()
                .any(|(l, v)| l["partition"] == "1" && *v == 0.5),
            "{by_partition:?}"
        );
        assert_eq!(prom.query("scalar(x_total) * 2")[0].1, 10.0);
        assert!(target.scrapes.load(Ordering::SeqCst) >= 1);
        assert!(prom.target_health().contains("health=\"up\""));
    }
}
