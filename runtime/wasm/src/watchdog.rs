//! The watchdog: notices a stage call that is still running well past its time limit. Owns the
//! calls-in-progress bookkeeping and the clock threads' sleep; it never stops a call.
//!
//! Epoch interruption stops guest code at its deadline, and the host's WASI waits (clocks and
//! polls) end there too (`deadline.rs`). A call can still overrun inside a host function neither
//! covers. The watchdog does not stop such a call (nothing can, safely, from another thread); it
//! makes it visible: one warning per overrunning call, and a count the engine can read
//! ([`crate::WasmHost::overdue_calls`]).
//!
//! It also counts the calls in progress ([`Activity`]), so that the host's clocks (the epoch
//! clock and the watchdog itself) sleep while no stage runs: an idle Weir wakes a few times a
//! second, not a thousand.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often the watchdog looks at the calls in progress.
pub const WATCHDOG_TICK: Duration = Duration::from_millis(10);

/// The least a call may overrun its limit before the watchdog reports it: the interruption
/// itself takes a tick of the epoch clock and a little more.
pub const MIN_GRACE: Duration = Duration::from_millis(20);

/// A call is overdue once it has run its limit plus this share of it (but at least
/// [`MIN_GRACE`] more): twice its limit.
fn overdue_after(timeout: Duration) -> Duration {
    timeout.saturating_add(timeout.max(MIN_GRACE))
}

#[derive(Debug)]
struct Active {
    started: Instant,
    timeout: Duration,
    overdue_at: Instant,
    reported: bool,
}

/// One store's view for the watchdog: the call in progress, if any.
#[derive(Debug)]
pub(crate) struct CallWatch {
    stage: Arc<str>,
    call: Mutex<Option<Active>>,
    activity: Arc<Activity>,
}

impl CallWatch {
    /// A call with a budget of `timeout` started at `started`.
    pub fn begin(&self, started: Instant, timeout: Duration) {
        let previous = self.call.lock().replace(Active {
            started,
            timeout,
            overdue_at: started + overdue_after(timeout),
            reported: false,
        });
        if previous.is_none() {
            self.activity.started();
        }
    }

    /// The call in progress has returned.
    pub fn end(&self) {
        if self.call.lock().take().is_some() {
            self.activity.ended();
        }
    }
}

impl Drop for CallWatch {
    /// A store dropped in the middle of a call (a trap that poisoned it) ends the call.
    fn drop(&mut self) {
        self.end();
    }
}

/// How long an idle clock sleeps before it looks again by itself; a call that starts wakes it
/// at once.
const IDLE_NAP: Duration = Duration::from_millis(500);

/// The stage calls in progress, and the clock threads to wake when the first one starts.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    calls: AtomicUsize,
    clocks: Mutex<Vec<thread::Thread>>,
}

impl Activity {
    fn started(&self) {
        if self.calls.fetch_add(1, Ordering::AcqRel) == 0 {
            for clock in self.clocks.lock().iter() {
                clock.unpark();
            }
        }
    }

    fn ended(&self) {
        self.calls.fetch_sub(1, Ordering::AcqRel);
    }

    /// Makes `clock` one of the threads woken when a call starts.
    pub fn register(&self, clock: thread::Thread) {
        self.clocks.lock().push(clock);
    }

    /// Starts clock thread `name`: every `tick` while calls are in progress it runs `tick_fn`,
    /// until `stop` is set or `tick_fn` returns `false`; between calls it sleeps.
    pub fn start_clock(
        self: &Arc<Self>,
        name: &str,
        tick: Duration,
        stop: Arc<AtomicBool>,
        mut tick_fn: impl FnMut() -> bool + Send + 'static,
    ) -> std::io::Result<()> {
        let activity = Arc::clone(self);
        let thread = thread::Builder::new().name(name.into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if !activity.busy_or_nap() {
                    continue;
                }
                thread::sleep(tick);
                if !tick_fn() {
                    break;
                }
            }
        })?;
        self.register(thread.thread().clone());
        Ok(())
    }

    /// For a clock thread: returns at once while calls are in progress; otherwise sleeps until
    /// one starts (or [`IDLE_NAP`] passes) and returns `false`, so the clock looks again.
    pub fn busy_or_nap(&self) -> bool {
        if self.calls.load(Ordering::Acquire) > 0 {
            return true;
        }
        // A call that starts between the load and the park leaves an unpark token: no wake-up
        // is lost.
        thread::park_timeout(IDLE_NAP);
        false
    }
}

/// Every store's [`CallWatch`], and what the watchdog found.
#[derive(Debug, Default)]
pub(crate) struct Watchdog {
    watches: Mutex<Vec<Weak<CallWatch>>>,
    overdue: AtomicU64,
    activity: Arc<Activity>,
}

impl Watchdog {
    /// A watch for a new store of `stage`, looked at until the store is dropped.
    pub fn watch(&self, stage: Arc<str>) -> Arc<CallWatch> {
        let watch = Arc::new(CallWatch {
            stage,
            call: Mutex::new(None),
            activity: Arc::clone(&self.activity),
        });
        self.watches.lock().push(Arc::downgrade(&watch));
        watch
    }

    /// The calls in progress, for the clocks.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Calls found running past twice their limit, since the host started.
    pub fn overdue(&self) -> u64 {
        self.overdue.load(Ordering::Relaxed)
    }

    /// One look at every call in progress: reports, once each, those past twice their limit,
    /// and forgets the watches of dropped stores.
    pub fn check(&self, now: Instant) {
        let mut watches = self.watches.lock();
        watches.retain(|w| {
            let Some(watch) = w.upgrade() else {
                return false;
            };
            let mut call = watch.call.lock();
            if let Some(c) = call.as_mut().filter(|c| !c.reported && now >= c.overdue_at) {
                c.reported = true;
                self.overdue.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    stage = &*watch.stage,
                    limit_ms = c.timeout.as_millis() as u64,
                    running_ms = now.saturating_duration_since(c.started).as_millis() as u64,
                    "Stage call still running at twice its time limit; a host call is holding it."
                );
            }
            true
        });
    }

    /// Starts the thread that checks every [`WATCHDOG_TICK`] while calls are in progress, until
    /// `stop` is set or the watchdog is dropped.
    pub fn start(this: &Arc<Self>, stop: Arc<AtomicBool>) -> std::io::Result<()> {
        let weak = Arc::downgrade(this);
        this.activity
            .start_clock("weir-watchdog", WATCHDOG_TICK, stop, move || {
                weak.upgrade().map(|w| w.check(Instant::now())).is_some()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overrunning_call_is_reported_once_and_a_prompt_one_never() {
        let dog = Watchdog::default();
        let slow = dog.watch("slow".into());
        let prompt = dog.watch("prompt".into());
        let start = Instant::now();
        slow.begin(start, Duration::from_millis(100));
        prompt.begin(start, Duration::from_millis(100));

        dog.check(start + Duration::from_millis(150));
        assert_eq!(dog.overdue(), 0, "past its limit, but within the grace");

        prompt.end();
        dog.check(start + Duration::from_millis(250));
        assert_eq!(dog.overdue(), 1, "the slow call, at twice its limit");
        dog.check(start + Duration::from_millis(500));
        assert_eq!(dog.overdue(), 1, "reported once per call");

        // The next call of the same store is a new call.
        slow.end();
        let next = Instant::now();
        slow.begin(next, Duration::from_millis(1));
        dog.check(next + Duration::from_millis(15));
        assert_eq!(
            dog.overdue(),
            1,
            "a short limit still gets the minimum grace"
        );
        dog.check(next + Duration::from_millis(25));
        assert_eq!(dog.overdue(), 2);
    }

    #[test]
    fn calls_in_progress_are_counted_once_each_and_a_dropped_store_ends_its_call() {
        let dog = Watchdog::default();
        let calls = || dog.activity.calls.load(Ordering::Acquire);
        let a = dog.watch("a".into());
        let b = dog.watch("b".into());
        a.begin(Instant::now(), Duration::from_millis(50));
        a.begin(Instant::now(), Duration::from_millis(50));
        assert_eq!(calls(), 1, "a store runs one call at a time");
        b.begin(Instant::now(), Duration::from_millis(50));
        assert_eq!(calls(), 2);
        a.end();
        a.end();
        assert_eq!(calls(), 1);
        drop(b);
        assert_eq!(calls(), 0, "idle: the clocks may sleep");
    }

    #[test]
    fn a_napping_clock_wakes_when_a_call_starts() {
        let dog = Arc::new(Watchdog::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let activity = Arc::clone(&dog.activity);
        let clock = thread::spawn(move || {
            let mut naps = 1;
            while !activity.busy_or_nap() {
                naps += 1;
            }
            tx.send((naps, Instant::now())).unwrap();
        });
        dog.activity.register(clock.thread().clone());
        thread::sleep(Duration::from_millis(50));
        let watch = dog.watch("a".into());
        let begun = Instant::now();
        watch.begin(begun, Duration::from_millis(50));
        let (naps, woke) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        clock.join().unwrap();
        // A clock that spun would have looked thousands of times in 50 ms; one that only napped
        // would have slept IDLE_NAP.
        assert!(naps <= 3, "it looked {naps} times instead of napping");
        assert!(
            woke.saturating_duration_since(begun) < IDLE_NAP / 2,
            "woken by the call, not by the end of its nap"
        );
    }

    #[test]
    fn watches_of_dropped_stores_are_forgotten() {
        let dog = Watchdog::default();
        let kept = dog.watch("a".into());
        drop(dog.watch("b".into()));
        dog.check(Instant::now());
        assert_eq!(dog.watches.lock().len(), 1);
        drop(kept);
        dog.check(Instant::now());
        assert!(dog.watches.lock().is_empty());
    }
}
