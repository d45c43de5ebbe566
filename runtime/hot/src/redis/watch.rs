//! The watcher: a thread that reads the server's own health (`INFO memory`, `INFO stats`) on
//! its own connection, off the data path, and reports it through [`HotObserver::health`].

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::pool::{Redactor, connect};
use crate::HotObserver;

/// How long a read of the watcher may take: short, so that stopping it is quick.
const WATCH_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The `INFO` fields read, and the gauges they become.
const READINGS: [(&str, &str, &str); 4] = [
    (
        "memory",
        "mem_fragmentation_ratio",
        "redis_mem_fragmentation_ratio",
    ),
    ("memory", "used_memory", "redis_used_memory_bytes"),
    ("memory", "maxmemory", "redis_maxmemory_bytes"),
    ("stats", "evicted_keys", "redis_evicted_keys"),
];

/// A running watcher; it stops when told, or when dropped.
#[derive(Debug)]
pub(super) struct Watcher {
    /// Dropping it stops the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What a watcher watches, and whom it tells.
pub(super) struct Watch {
    pub(super) sink: String,
    pub(super) client: ::redis::Client,
    pub(super) redactor: Redactor,
    pub(super) observer: Arc<dyn HotObserver>,
    /// Between two readings.
    pub(super) every: Duration,
}

impl Watcher {
    /// Starts reading at once, then every `watch.every`.
    pub(super) fn start(watch: Watch) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("weir-redis-watch-{}", watch.sink))
            .spawn(move || watch.run(&stopped))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (at most one reading's timeout).
    pub(super) fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::debug!("the redis watcher thread panicked");
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread, which ends on its own: no waiting here.
        self.stop.take();
    }
}

impl Watch {
    fn run(self, stopped: &mpsc::Receiver<()>) {
        let mut connection = None;
        loop {
            match self.read(&mut connection) {
                Ok(readings) => self.observer.health(&self.sink, &readings),
                Err(error) => {
                    connection = None;
                    tracing::debug!(
                        sink = %self.sink,
                        error = %self.redactor.clean(error),
                        "cannot read redis health"
                    );
                }
            }
            match stopped.recv_timeout(self.every) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// One reading, on `connection` (opened when `None`).
    fn read(
        &self,
        connection: &mut Option<::redis::Connection>,
    ) -> ::redis::RedisResult<Vec<(&'static str, f64)>> {
        let connection = match connection {
            Some(connection) => connection,
            None => connection.insert(connect(&self.client, WATCH_IO_TIMEOUT)?),
        };
        let memory: String = ::redis::cmd("INFO").arg("memory").query(connection)?;
        let stats: String = ::redis::cmd("INFO").arg("stats").query(connection)?;
        Ok(readings(&memory, &stats))
    }
}

/// The gauges found in the `key:value` lines of `INFO memory` and `INFO stats`.
fn readings(memory: &str, stats: &str) -> Vec<(&'static str, f64)> {
    READINGS
        .iter()
        .filter_map(|&(section, field, gauge)| {
            let text = if section == "memory" { memory } else { stats };
            text.lines()
                .filter_map(|line| line.trim_end().split_once(':'))
                .find(|(name, _)| *name == field)
                .and_then(|(_, value)| value.parse::<f64>().ok())
                .map(|value| (gauge, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_become_gauges() {
        let memory = "# Memory\r\nused_memory:1024\r\nused_memory_human:1.00K\r\n\
                      maxmemory:0\r\nmem_fragmentation_ratio:1.52\r\n";
        let stats = "# Stats\r\nevicted_keys:7\r\nexpired_keys:3\r\n";
        let mut got = readings(memory, stats);
        got.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(
            got,
            [
                ("redis_evicted_keys", 7.0),
                ("redis_maxmemory_bytes", 0.0),
                ("redis_mem_fragmentation_ratio", 1.52),
                ("redis_used_memory_bytes", 1024.0),
            ]
        );
        assert!(readings("garbage", "evicted_keys:x").is_empty());
    }
}
