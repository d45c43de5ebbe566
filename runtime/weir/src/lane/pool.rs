//! The pool of lane workers: a bounded number of threads, each serving many lanes.
//!
//! A worker owns the lanes placed on it and steps them in turn, one batch per lane per round,
//! so a partition's records stay in order (one lane, one worker, one batch at a time) while a
//! busy partition cannot starve the others on its worker. A worker with nothing to do blocks on
//! its [`Signal`], which a lane's feed raises when its partition's queue goes from empty to
//! holding something (`PartitionFeed::on_arrival`), and which the engine raises when it stops a
//! lane. It wakes on its own every [`TEND`] for the lanes that tend state without records
//! (aggregate windows, transactions).
//!
//! Owns: the worker threads, their signals, and the hand-over of new lanes to them. Touches a
//! lane only through [`Task::step`] and the flags of its [`Lane`](super::Lane) handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use weir_core::Record;

use super::Task;
use crate::shared::Shared;

/// How often a worker wakes without a signal, so that lanes which tend state without records
/// (aggregate windows, checkpoints, transactions) do so when their partition is idle.
pub(super) const TEND: Duration = Duration::from_millis(100);

/// A worker's wake-up call: raised by feeds when records arrive and by the engine when it stops
/// a lane; the worker clears it before each round and sleeps only while it stays clear.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    raised: AtomicBool,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Signal {
    /// Wakes the worker, or has its next wait return at once. Cheap when already raised: a
    /// feed's callback may call it for every arrival.
    pub fn raise(&self) {
        if !self.raised.swap(true, Ordering::AcqRel) {
            let _held = self.lock.lock();
            self.cond.notify_one();
        }
    }

    /// Clears the signal before a round: what is raised from now on wakes the next wait.
    fn clear(&self) {
        self.raised.store(false, Ordering::Release);
    }

    /// Sleeps up to `timeout` unless raised since the last [`Self::clear`].
    fn wait(&self, timeout: Duration) {
        let mut held = self.lock.lock();
        if !self.raised.load(Ordering::Acquire) {
            self.cond.wait_for(&mut held, timeout);
        }
    }
}

/// What a lane's step asks of its worker.
pub(crate) enum Step {
    /// The lane's batch was full: records are waiting, come back without sleeping.
    Again,
    /// The lane took what there was; its feed's signal says when there is more.
    Idle,
    /// The lane has finished (stopped, or failed): drop it.
    Done,
}

/// The engine's hold on one worker.
struct Worker {
    inbox: mpsc::Sender<Task>,
    signal: Arc<Signal>,
    /// Lanes placed on the worker and not yet finished.
    load: Arc<AtomicUsize>,
}

/// The lane workers of a running pipeline.
pub(crate) struct Pool {
    workers: Vec<Worker>,
    closed: Arc<AtomicBool>,
}

impl Pool {
    /// Starts `size` workers (at least one). Each runs inside [`crate::shared::Fatal::guarded`]:
    /// a panic in a lane fails the pipeline rather than leaving its partitions unserved.
    pub fn start(size: usize, shared: &Arc<Shared>) -> std::io::Result<Self> {
        let closed = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(size.max(1));
        for n in 0..size.max(1) {
            let (inbox, tasks) = mpsc::channel();
            let signal = Arc::new(Signal::default());
            let load = Arc::new(AtomicUsize::new(0));
            let round = Round {
                tasks,
                signal: Arc::clone(&signal),
                load: Arc::clone(&load),
                closed: Arc::clone(&closed),
                batch_size: shared.settings.batch_size.max(1),
            };
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name(format!("weir-lanes-{n}"))
                .spawn(move || {
                    shared
                        .fatal
                        .guarded(&format!("lane worker {n}"), || round.run());
                })?;
            workers.push(Worker {
                inbox,
                signal,
                load,
            });
        }
        Ok(Self { workers, closed })
    }

    /// The number of workers.
    pub fn size(&self) -> usize {
        self.workers.len()
    }

    /// The signal of the worker with the fewest lanes, where the next lane goes, and its index.
    pub(super) fn least_loaded(&self) -> (usize, Arc<Signal>) {
        let (n, worker) = self
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.load.load(Ordering::Relaxed))
            .expect("a pool has at least one worker");
        (n, Arc::clone(&worker.signal))
    }

    /// Hands `task` to worker `n`. False when that worker is gone (it panicked, and the
    /// pipeline is failing).
    pub(super) fn place(&self, n: usize, task: Task) -> bool {
        let worker = &self.workers[n];
        worker.load.fetch_add(1, Ordering::Relaxed);
        if worker.inbox.send(task).is_err() {
            worker.load.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        worker.signal.raise();
        true
    }
}

impl Drop for Pool {
    /// Workers end once they have no lane left; the engine drains the lanes before this.
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        for worker in &self.workers {
            worker.signal.raise();
        }
    }
}

/// A worker's thread and what it owns.
struct Round {
    tasks: mpsc::Receiver<Task>,
    signal: Arc<Signal>,
    load: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    batch_size: usize,
}

impl Round {
    fn run(self) {
        let mut lanes: Vec<Task> = Vec::new();
        // One batch buffer for all the worker's lanes: a lane's batch is delivered before the
        // next lane runs.
        let mut batch: Vec<Record> = Vec::with_capacity(self.batch_size);
        loop {
            self.signal.clear();
            lanes.extend(self.tasks.try_iter());
            let now = Instant::now();
            let mut again = false;
            let mut i = 0;
            while i < lanes.len() {
                match lanes[i].step(now, &mut batch) {
                    Step::Again => again = true,
                    Step::Idle => {}
                    Step::Done => {
                        // Dropped before it is reported done: its feed's queue (and wake-up
                        // callback) must be released before the partition can be assigned
                        // again.
                        let lane = lanes.remove(i);
                        let done = lane.done();
                        drop(lane);
                        done.store(true, Ordering::Release);
                        self.load.fetch_sub(1, Ordering::Relaxed);
                        continue;
                    }
                }
                i += 1;
            }
            if lanes.is_empty() && self.closed.load(Ordering::Acquire) {
                return;
            }
            if !again {
                self.signal.wait(TEND);
            }
        }
    }
}

/// The number of workers when the pipeline does not say: one per core the process may use.
pub(crate) fn default_size() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_signal_ends_the_next_wait_at_once() {
        let signal = Signal::default();
        signal.raise();
        let started = Instant::now();
        signal.wait(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(1));
        signal.clear();
        let started = Instant::now();
        signal.wait(Duration::from_millis(30));
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_signal_raised_from_another_thread_wakes_the_waiter() {
        let signal = Arc::new(Signal::default());
        let raiser = Arc::clone(&signal);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            raiser.raise();
        });
        let started = Instant::now();
        signal.wait(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(4));
        thread.join().unwrap();
    }
}
