//! Counters and histograms stages report through the `host` import, and what the host dropped
//! of their log lines. Owns the metric values and their kinds; exporting them is the runtime's.
//!
//! Every stage's metrics are exported as `weir_guest_<name>`, all stages' series of one name in
//! one family, so a name must mean one kind of metric across the whole host: the first stage to
//! use a name as a counter (or a histogram) claims it for that kind, and a later use as the
//! other kind is refused (and logged once per module). A name is released when the last module
//! that used it is dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// Upper bounds of the buckets of guest histograms (the last is `+Inf`). Guests report values
/// in units of their choosing, so the buckets span many orders of magnitude.
pub const GUEST_BUCKETS: [f64; 16] = [
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    50.0,
    100.0,
    500.0,
    1000.0,
    5000.0,
    10000.0,
    f64::INFINITY,
];

/// The longest metric name a guest may use.
const MAX_METRIC_NAME: usize = 64;
/// The most distinct counter names, and histogram names, one module may create (so a guest
/// cannot blow up the registry).
const MAX_METRICS: usize = 64;

/// The two kinds of guest metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Histogram,
}

impl MetricKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Histogram => "histogram",
        }
    }
}

/// Why a guest's metric update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Empty, too long, or not `[a-z0-9_]`.
    BadName,
    /// Not a finite number (histograms).
    BadValue,
    /// The module has [`MAX_METRICS`] names of this kind already.
    TooMany,
    /// The name is a metric of the other kind; `first` is true the first time this module is
    /// told so for this name.
    Clash { other: MetricKind, first: bool },
}

/// The kind each guest metric name has across every module of one host.
#[derive(Debug, Default)]
pub(crate) struct MetricKinds {
    /// Kind, and how many modules use the name.
    names: Mutex<HashMap<String, (MetricKind, usize)>>,
}

impl MetricKinds {
    /// Claims `name` as a `kind` for one more module, or says which kind it already is.
    fn claim(&self, name: &str, kind: MetricKind) -> Result<(), MetricKind> {
        let mut names = self.names.lock();
        match names.get_mut(name) {
            Some((k, users)) if *k == kind => {
                *users += 1;
                Ok(())
            }
            Some((k, _)) => Err(*k),
            None => {
                names.insert(name.to_owned(), (kind, 1));
                Ok(())
            }
        }
    }

    fn release(&self, name: &str) {
        let mut names = self.names.lock();
        if let Some((_, users)) = names.get_mut(name) {
            *users -= 1;
            if *users == 0 {
                names.remove(name);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Series {
    counters: BTreeMap<String, u64>,
    histograms: BTreeMap<String, HistogramSummary>,
    /// Names refused for a kind clash, told once each (at most [`MAX_METRICS`] remembered).
    clashed: BTreeSet<String>,
}

/// Counters and histograms one module reports through the `host` import, across all its
/// instances, and the log lines and fields the host dropped of it.
#[derive(Debug)]
pub struct GuestMetrics {
    kinds: Arc<MetricKinds>,
    series: Mutex<Series>,
    log_lines_dropped: AtomicU64,
    log_fields_dropped: AtomicU64,
    /// Whether dropped log lines have been reported at warning level yet.
    pub(crate) logs_dropped_told: AtomicBool,
}

/// Count, sum and bucket counts of a guest histogram's observations.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct HistogramSummary {
    pub count: u64,
    pub sum: f64,
    /// Observations per bucket of [`GUEST_BUCKETS`] (not cumulative).
    pub buckets: [u64; GUEST_BUCKETS.len()],
}

fn valid_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_METRIC_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl GuestMetrics {
    pub(crate) fn new(kinds: Arc<MetricKinds>) -> Self {
        Self {
            kinds,
            series: Mutex::default(),
            log_lines_dropped: AtomicU64::new(0),
            log_fields_dropped: AtomicU64::new(0),
            logs_dropped_told: AtomicBool::new(false),
        }
    }

    /// Current counter values.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.series.lock().counters.clone()
    }

    /// Current histogram summaries.
    pub fn histograms(&self) -> BTreeMap<String, HistogramSummary> {
        self.series.lock().histograms.clone()
    }

    /// Log lines the host dropped because a call went past its log caps.
    pub fn log_lines_dropped(&self) -> u64 {
        self.log_lines_dropped.load(Ordering::Relaxed)
    }

    /// Fields the host dropped from log lines that had too many.
    pub fn log_fields_dropped(&self) -> u64 {
        self.log_fields_dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped_logs(&self, lines: u64, fields: u64) {
        self.log_lines_dropped.fetch_add(lines, Ordering::Relaxed);
        self.log_fields_dropped.fetch_add(fields, Ordering::Relaxed);
    }

    /// Claims a new `name` of `kind` for this module, or says why not.
    fn admit(&self, s: &mut Series, name: &str, kind: MetricKind) -> Result<(), Refused> {
        if !valid_metric_name(name) {
            return Err(Refused::BadName);
        }
        let held = match kind {
            MetricKind::Counter => s.counters.len(),
            MetricKind::Histogram => s.histograms.len(),
        };
        if held >= MAX_METRICS {
            return Err(Refused::TooMany);
        }
        self.kinds.claim(name, kind).map_err(|other| {
            let first = s.clashed.len() < MAX_METRICS && s.clashed.insert(name.to_owned());
            Refused::Clash { other, first }
        })
    }

    pub(crate) fn counter_add(&self, name: &str, delta: u64) -> Result<(), Refused> {
        let mut s = self.series.lock();
        if let Some(v) = s.counters.get_mut(name) {
            *v = v.saturating_add(delta);
            return Ok(());
        }
        self.admit(&mut s, name, MetricKind::Counter)?;
        s.counters.insert(name.to_owned(), delta);
        Ok(())
    }

    pub(crate) fn histogram_record(&self, name: &str, value: f64) -> Result<(), Refused> {
        if !value.is_finite() {
            return Err(Refused::BadValue);
        }
        let mut s = self.series.lock();
        if !s.histograms.contains_key(name) {
            self.admit(&mut s, name, MetricKind::Histogram)?;
            s.histograms
                .insert(name.to_owned(), HistogramSummary::default());
        }
        let h = s.histograms.get_mut(name).expect("admitted above");
        h.count += 1;
        h.sum += value;
        let bucket = GUEST_BUCKETS
            .iter()
            .position(|&le| value <= le)
            .unwrap_or(GUEST_BUCKETS.len() - 1);
        h.buckets[bucket] += 1;
        Ok(())
    }
}

impl Drop for GuestMetrics {
    fn drop(&mut self) {
        let s = self.series.get_mut();
        for name in s.counters.keys().chain(s.histograms.keys()) {
            self.kinds.release(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> GuestMetrics {
        GuestMetrics::new(Arc::default())
    }

    #[test]
    fn guest_metric_names_are_checked_and_bounded() {
        let m = metrics();
        assert_eq!(m.counter_add("hits", 2), Ok(()));
        assert_eq!(m.counter_add("hits", 3), Ok(()));
        assert_eq!(m.counter_add("Bad-Name", 1), Err(Refused::BadName));
        assert_eq!(m.counter_add("", 1), Err(Refused::BadName));
        assert_eq!(m.counters().get("hits"), Some(&5));
        for i in 0..MAX_METRICS {
            let _ = m.counter_add(&format!("c{i}"), 1);
        }
        assert_eq!(m.counter_add("one_too_many", 1), Err(Refused::TooMany));
        assert_eq!(
            m.counter_add("hits", 1),
            Ok(()),
            "existing names keep working"
        );
        assert_eq!(m.histogram_record("lat", f64::NAN), Err(Refused::BadValue));
        assert_eq!(m.histogram_record("lat", 1.5), Ok(()));
        let lat = m.histograms()["lat"];
        assert_eq!((lat.count, lat.sum), (1, 1.5));
        assert_eq!(
            lat.buckets[GUEST_BUCKETS.iter().position(|&b| b == 5.0).unwrap()],
            1
        );
        assert_eq!(lat.buckets.iter().sum::<u64>(), 1);
    }

    #[test]
    fn a_name_is_one_kind_within_a_module_and_told_once() {
        let m = metrics();
        m.counter_add("clash", 1).unwrap();
        assert_eq!(
            m.histogram_record("clash", 1.0),
            Err(Refused::Clash {
                other: MetricKind::Counter,
                first: true
            })
        );
        assert_eq!(
            m.histogram_record("clash", 2.0),
            Err(Refused::Clash {
                other: MetricKind::Counter,
                first: false
            })
        );
        assert!(
            m.histograms().is_empty(),
            "nothing of the refused kind is kept"
        );
        assert_eq!(m.counters()["clash"], 1);
    }

    #[test]
    fn a_name_is_one_kind_across_modules_until_its_last_user_goes() {
        let kinds = Arc::<MetricKinds>::default();
        let a = GuestMetrics::new(Arc::clone(&kinds));
        let b = GuestMetrics::new(Arc::clone(&kinds));
        let c = GuestMetrics::new(Arc::clone(&kinds));
        a.histogram_record("size", 3.0).unwrap();
        b.histogram_record("size", 4.0).unwrap();
        assert!(matches!(
            c.counter_add("size", 1),
            Err(Refused::Clash {
                other: MetricKind::Histogram,
                ..
            })
        ));
        drop(a);
        assert!(c.counter_add("size", 1).is_err(), "b still uses it");
        drop(b);
        assert_eq!(c.counter_add("size", 1), Ok(()), "released");
        assert_eq!(c.counters()["size"], 1);
    }
}
