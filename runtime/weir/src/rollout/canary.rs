//! Canary rollouts: a stage's next module version runs on some partitions only, side by side
//! with the stable version on the others; an analyser compares the two cohorts over a sliding
//! window and rolls the canary back on regression (or promotes it after a clean period).
//!
//! The pieces: [`CanaryPlan`] (which partitions, what thresholds), [`CohortStats`] (what each
//! cohort did, fed by the [`Observed`] wrapper around every instance of a canaried stage), the
//! [`Rescue`] wrapper (a record that fails on the canary is re-run on the stable version before
//! anything is dead-lettered), and [`Analyser`] (the verdicts).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use weir_config::{CanaryCohort, Rollback};
use weir_core::{CallTrace, Record, Stage, StageOutcome};

/// Which partitions run a stage's canary, and when it is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryPlan {
    pub cohort: CanaryCohort,
    pub rollback: Rollback,
    pub promote_after: Option<Duration>,
    pub rescue: bool,
}

impl CanaryPlan {
    /// Whether source partition `partition` runs the canary. A share picks partitions by a hash
    /// of their number, so every instance of the pipeline makes the same choice.
    pub fn covers(&self, partition: i32) -> bool {
        match &self.cohort {
            CanaryCohort::Partitions(p) => p.contains(&partition),
            CanaryCohort::Share(share) => {
                let h = (partition as u32 as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                (h as f64 / (1u64 << 24) as f64) < *share
            }
        }
    }

    /// The partitions it covers, for status: explicit ones, or a description of the share.
    pub fn describe(&self) -> String {
        match &self.cohort {
            CanaryCohort::Partitions(p) => format!(
                "partitions {}",
                p.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
            ),
            CanaryCohort::Share(s) => format!("share {s}"),
        }
    }
}

/// Latency samples kept per cohort for the p99 (the most recent ones).
const MAX_SAMPLES: usize = 4096;

/// What one cohort of a stage did: cumulative counts, and recent call latencies.
#[derive(Debug, Default)]
pub struct CohortStats {
    records: AtomicU64,
    failures: AtomicU64,
    latencies: Mutex<VecDeque<(Instant, Duration)>>,
}

impl CohortStats {
    fn record(&self, records: usize, failures: usize, took: Duration) {
        self.records.fetch_add(records as u64, Ordering::Relaxed);
        self.failures.fetch_add(failures as u64, Ordering::Relaxed);
        let mut l = self.latencies.lock();
        if l.len() == MAX_SAMPLES {
            l.pop_front();
        }
        l.push_back((Instant::now(), took));
    }

    fn totals(&self) -> (u64, u64) {
        (
            self.records.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// The 99th percentile of the call latencies seen since `since`.
    fn p99_since(&self, since: Instant) -> Option<Duration> {
        let mut v: Vec<Duration> = self
            .latencies
            .lock()
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, d)| *d)
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        Some(v[((v.len() - 1) as f64 * 0.99).round() as usize])
    }
}

/// Both cohorts of one canaried stage.
#[derive(Debug, Default)]
pub struct CanaryStats {
    pub stable: CohortStats,
    pub canary: CohortStats,
}

/// Counts what an instance of a canaried stage does into its cohort's stats.
pub struct Observed {
    pub inner: Box<dyn Stage>,
    pub stats: Arc<CanaryStats>,
    pub canary: bool,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("canary", &self.canary)
            .finish_non_exhaustive()
    }
}

impl Stage for Observed {
    fn set_context(&mut self, context: &CallTrace) {
        self.inner.set_context(context);
    }

    fn process(&mut self, topic: &str, partition: i32, records: &[Record]) -> Vec<StageOutcome> {
        let started = Instant::now();
        let outcomes = self.inner.process(topic, partition, records);
        let failures = outcomes.iter().filter(|o| o.is_err()).count();
        let cohort = if self.canary {
            &self.stats.canary
        } else {
            &self.stats.stable
        };
        cohort.record(records.len(), failures, started.elapsed());
        outcomes
    }
}

/// A canary instance with a stable one behind it: records the canary fails are re-run on the
/// stable version, so a bad canary costs latency, not data. The failures still count against
/// the canary (the [`Observed`] wrapper inside sees them first).
pub struct Rescue {
    pub canary: Box<dyn Stage>,
    pub stable: Box<dyn Stage>,
    pub rescued: Arc<AtomicU64>,
}

impl std::fmt::Debug for Rescue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rescue").finish_non_exhaustive()
    }
}

impl Stage for Rescue {
    fn set_context(&mut self, context: &CallTrace) {
        self.canary.set_context(context);
        self.stable.set_context(context);
    }

    fn process(&mut self, topic: &str, partition: i32, records: &[Record]) -> Vec<StageOutcome> {
        let mut outcomes = self.canary.process(topic, partition, records);
        let failed: Vec<usize> = (0..outcomes.len())
            .filter(|&i| outcomes[i].is_err())
            .collect();
        if failed.is_empty() {
            return outcomes;
        }
        let again: Vec<Record> = failed.iter().map(|&i| records[i].clone()).collect();
        let retried = self.stable.process(topic, partition, &again);
        self.rescued.fetch_add(
            retried.iter().filter(|o| o.is_ok()).count() as u64,
            Ordering::Relaxed,
        );
        for (i, outcome) in failed.into_iter().zip(retried) {
            outcomes[i] = outcome;
        }
        outcomes
    }
}

/// What the analyser concluded about a canary.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Keep running and watching.
    Continue,
    /// Roll back, for this reason.
    Rollback(String),
    /// Promote: clean for the configured period.
    Promote,
}

/// One stage's window figures, for verdicts and for `weir canary status`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CohortWindow {
    pub records: u64,
    pub failures: u64,
    pub error_rate: f64,
    pub p99_ms: Option<f64>,
}

/// What an operator (or `weir canary`) asks of a stage's canary, and what a rollout decision
/// on the control topic says (`"start"`, `"promote"` or `"rollback"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// (Re)start the canary the pipeline file declares for the stage.
    Start,
    /// Make the canary the stable version on every partition.
    Promote,
    /// Stop the canary: every partition runs the stable version.
    Rollback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Promote => "promote",
            Self::Rollback => "rollback",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "start" => Some(Self::Start),
            "promote" => Some(Self::Promote),
            "rollback" => Some(Self::Rollback),
            _ => None,
        }
    }
}

/// One stage's canary as `weir canary status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CanaryStatus {
    pub stage: String,
    pub stable_version: String,
    pub canary_version: String,
    /// Which partitions run it.
    pub partitions: String,
    pub state: CanaryState,
    /// Why it was rolled back or promoted, and by whom.
    pub reason: Option<String>,
    /// Figures over the window, side by side.
    pub stable: CohortWindow,
    pub canary: CohortWindow,
    /// Records the canary failed that the stable version then handled.
    pub rescued: u64,
    pub running_seconds: u64,
}

/// Where a canary stands, as `weir canary status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryState {
    /// `running`: on its partitions, judged every second.
    Running,
    /// `promoted`: the stable version on every partition.
    Promoted,
    /// `rolled-back`: stopped; every partition runs the stable version.
    RolledBack,
}

impl CanaryState {
    /// The state a canary ends in after `action` (promote or rollback).
    pub fn after(action: Action) -> Self {
        match action {
            Action::Promote => Self::Promoted,
            Action::Rollback => Self::RolledBack,
            Action::Start => Self::Running,
        }
    }
}

/// (when, stable (records, failures), canary (records, failures)), cumulative.
type Sample = (Instant, (u64, u64), (u64, u64));

/// Judges one stage's canary over a sliding window of cumulative samples.
#[derive(Debug)]
pub struct Analyser {
    stats: Arc<CanaryStats>,
    plan: CanaryPlan,
    started: Instant,
    /// Cumulative figures over time, oldest first, covering the window.
    samples: VecDeque<Sample>,
}

impl Analyser {
    pub fn new(stats: Arc<CanaryStats>, plan: CanaryPlan) -> Self {
        let started = Instant::now();
        // The stats count from the canary's creation: the window starts from zero.
        Self {
            stats,
            plan,
            started,
            samples: VecDeque::from([(started, (0, 0), (0, 0))]),
        }
    }

    /// Takes a sample and returns the figures of both cohorts over the window.
    pub fn sample(&mut self) -> (CohortWindow, CohortWindow) {
        let now = Instant::now();
        let window = self.plan.rollback.window;
        self.samples
            .push_back((now, self.stats.stable.totals(), self.stats.canary.totals()));
        while self
            .samples
            .get(1)
            .is_some_and(|(at, _, _)| now.duration_since(*at) > window)
        {
            self.samples.pop_front();
        }
        let (since, s0, c0) = self.samples.front().copied().expect("never empty");
        let (s1, c1) = (self.stats.stable.totals(), self.stats.canary.totals());
        let figures = |(r0, f0): (u64, u64), (r1, f1): (u64, u64), cohort: &CohortStats| {
            let records = r1.saturating_sub(r0);
            let failures = f1.saturating_sub(f0);
            CohortWindow {
                records,
                failures,
                error_rate: if records == 0 {
                    0.0
                } else {
                    failures as f64 / records as f64
                },
                p99_ms: cohort.p99_since(since).map(|d| d.as_secs_f64() * 1000.0),
            }
        };
        (
            figures(s0, s1, &self.stats.stable),
            figures(c0, c1, &self.stats.canary),
        )
    }

    /// How long the canary has been watched.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// The verdict on the current window.
    pub fn verdict(&mut self) -> (Verdict, CohortWindow, CohortWindow) {
        let (stable, canary) = self.sample();
        let r = &self.plan.rollback;
        let verdict = if canary.records < r.min_records {
            Verdict::Continue
        } else if canary.error_rate > r.max_error_rate {
            Verdict::Rollback(format!(
                "canary error rate {:.4} over its last {} records exceeds {} (stable: {:.4})",
                canary.error_rate, canary.records, r.max_error_rate, stable.error_rate
            ))
        } else if let (Some(max), Some(p99)) = (r.max_p99, canary.p99_ms)
            && p99 > max.as_secs_f64() * 1000.0
        {
            Verdict::Rollback(format!(
                "canary p99 {p99:.2}ms exceeds {}ms (stable: {})",
                max.as_secs_f64() * 1000.0,
                stable
                    .p99_ms
                    .map_or("n/a".to_owned(), |p| format!("{p:.2}ms"))
            ))
        } else if self
            .plan
            .promote_after
            .is_some_and(|after| self.started.elapsed() >= after)
        {
            Verdict::Promote
        } else {
            Verdict::Continue
        };
        (verdict, stable, canary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::{Failure, FailureKind, Outputs};

    fn plan(min_records: u64) -> CanaryPlan {
        CanaryPlan {
            cohort: CanaryCohort::Partitions(vec![0]),
            rollback: Rollback {
                max_error_rate: 0.05,
                max_p99: Some(Duration::from_millis(50)),
                min_records,
                window: Duration::from_secs(60),
            },
            promote_after: None,
            rescue: true,
        }
    }

    #[test]
    fn a_share_picks_the_same_partitions_everywhere_and_about_that_many() {
        let p = CanaryPlan {
            cohort: CanaryCohort::Share(0.25),
            ..plan(1)
        };
        let chosen = (0..1000).filter(|&i| p.covers(i)).count();
        assert!((200..300).contains(&chosen), "{chosen}");
        assert_eq!(
            (0..64).map(|i| p.covers(i)).collect::<Vec<_>>(),
            (0..64).map(|i| p.clone().covers(i)).collect::<Vec<_>>()
        );
        assert!(plan(1).covers(0) && !plan(1).covers(1));
    }

    #[test]
    fn no_verdict_before_min_records_then_rollback_on_errors() {
        let stats = Arc::new(CanaryStats::default());
        let mut a = Analyser::new(Arc::clone(&stats), plan(100));
        stats.canary.record(50, 10, Duration::from_millis(1));
        assert_eq!(a.verdict().0, Verdict::Continue);
        stats.canary.record(50, 0, Duration::from_millis(1));
        stats.stable.record(100, 0, Duration::from_millis(1));
        let (v, stable, canary) = a.verdict();
        assert!(
            matches!(v, Verdict::Rollback(ref why) if why.contains("error rate")),
            "{v:?}"
        );
        assert_eq!((canary.records, canary.failures), (100, 10));
        assert_eq!(stable.error_rate, 0.0);
    }

    #[test]
    fn rollback_on_slow_calls_and_promotion_after_a_clean_period() {
        let stats = Arc::new(CanaryStats::default());
        let mut a = Analyser::new(Arc::clone(&stats), plan(10));
        stats.canary.record(10, 0, Duration::from_millis(80));
        assert!(matches!(a.verdict().0, Verdict::Rollback(ref why) if why.contains("p99")));

        let stats = Arc::new(CanaryStats::default());
        let mut p = plan(10);
        p.promote_after = Some(Duration::ZERO);
        let mut a = Analyser::new(Arc::clone(&stats), p);
        assert_eq!(a.verdict().0, Verdict::Continue, "not before min_records");
        stats.canary.record(10, 0, Duration::from_millis(1));
        assert_eq!(a.verdict().0, Verdict::Promote);
    }

    struct FailOdd;
    impl Stage for FailOdd {
        fn process(&mut self, _: &str, _: i32, records: &[Record]) -> Vec<StageOutcome> {
            records
                .iter()
                .map(|r| {
                    if r.offset % 2 == 1 {
                        Err(Failure::new(FailureKind::Trap, "odd"))
                    } else {
                        Ok(Outputs::Input)
                    }
                })
                .collect()
        }
    }
    struct Pass;
    impl Stage for Pass {
        fn process(&mut self, _: &str, _: i32, records: &[Record]) -> Vec<StageOutcome> {
            records.iter().map(|_| Ok(Outputs::Input)).collect()
        }
    }

    #[test]
    fn rescue_reruns_canary_failures_on_stable_and_they_still_count() {
        let stats = Arc::new(CanaryStats::default());
        let rescued = Arc::new(AtomicU64::new(0));
        let mut stage = Rescue {
            canary: Box::new(Observed {
                inner: Box::new(FailOdd),
                stats: Arc::clone(&stats),
                canary: true,
            }),
            stable: Box::new(Pass),
            rescued: Arc::clone(&rescued),
        };
        let batch: Vec<Record> = (0..4)
            .map(|offset| Record {
                offset,
                ..Record::default()
            })
            .collect();
        let out = stage.process("t", 0, &batch);
        assert!(out.iter().all(Result::is_ok));
        assert_eq!(rescued.load(Ordering::Relaxed), 2);
        assert_eq!(stats.canary.totals(), (4, 2));
    }
}
