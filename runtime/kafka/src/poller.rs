//! The thread that serves a producer's events (delivery reports, errors, logs).
//!
//! rdkafka's `ThreadedProducer` polls in rounds of 100 ms, and its poll loop passes the time left
//! to librdkafka truncated to whole milliseconds: every round ends with up to a millisecond of
//! non-blocking polls, about 1 % of a core per producer while nothing at all happens. Here each
//! round asks for whole milliseconds plus a little, so the wait librdkafka is given covers the
//! round and the loop ends on its first check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::producer::{BaseProducer, ProducerContext};

/// One round of polling: whole milliseconds plus the time it takes to start the wait.
const ROUND: Duration = Duration::from_micros(100_050);

/// Serves a producer's events until dropped; dropping it stops and joins the thread (within a
/// round).
pub(crate) struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    pub fn start<C: ProducerContext + 'static>(
        producer: &Arc<BaseProducer<C>>,
        name: &str,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (producer, stopping) = (Arc::clone(producer), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    producer.poll(ROUND);
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
