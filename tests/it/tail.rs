//! A background reader of a topic, for tests that watch output while weir runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::Rec;

/// Reads a topic from the beginning on a thread until dropped.
pub struct Tail {
    records: Arc<Mutex<Vec<Rec>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Tail {
    pub fn start(topic: &str) -> Self {
        let records = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, topic) = (Arc::clone(&records), Arc::clone(&stop), topic.to_owned());
        let thread = std::thread::spawn(move || {
            crate::harness::follow(&topic, &s, |rec| r.lock().unwrap().push(rec));
        });
        Self {
            records,
            stop,
            thread: Some(thread),
        }
    }

    pub fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    pub fn snapshot(&self) -> Vec<Rec> {
        self.records.lock().unwrap().clone()
    }

    /// Waits until `done(records)` holds; panics with `what` after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&[Rec]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.records.lock().unwrap()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({} records read)",
                self.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
