//! Window kinds and the configuration of an aggregate stage's windows: which windows an event
//! time falls in, and why a configuration (or a snapshot) is refused.
//!
//! Owns the plain values; may not touch [`super::WindowState`] or any accumulator.

/// Most windows one record may belong to (`ceil(size / every)` for hopping windows).
pub const MAX_WINDOWS_PER_RECORD: i64 = 1024;

/// How records are grouped in time. All durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowSpec {
    /// Back-to-back windows `[n*size, (n+1)*size)`.
    Tumbling { size_ms: i64 },
    /// Windows `[n*every, n*every + size)`: a record is in every one containing its time.
    Hopping { size_ms: i64, every_ms: i64 },
    /// Per key, records less than `gap` apart share a window `[first, last + gap)`.
    Session { gap_ms: i64 },
}

impl WindowSpec {
    /// Checks the durations: sizes, hops and gaps positive, `every <= size`, and at most
    /// [`MAX_WINDOWS_PER_RECORD`] windows per record.
    pub fn validate(&self) -> Result<(), WindowError> {
        match *self {
            WindowSpec::Tumbling { size_ms } => {
                if size_ms <= 0 {
                    return Err(WindowError::NonPositiveSize(size_ms));
                }
            }
            WindowSpec::Hopping { size_ms, every_ms } => {
                if size_ms <= 0 {
                    return Err(WindowError::NonPositiveSize(size_ms));
                }
                if every_ms <= 0 {
                    return Err(WindowError::NonPositiveEvery(every_ms));
                }
                if every_ms > size_ms {
                    return Err(WindowError::EveryExceedsSize { every_ms, size_ms });
                }
                let hops = (i128::from(size_ms) + i128::from(every_ms) - 1) / i128::from(every_ms);
                if hops > i128::from(MAX_WINDOWS_PER_RECORD) {
                    return Err(WindowError::TooManyHops { hops: hops as i64 });
                }
            }
            WindowSpec::Session { gap_ms } => {
                if gap_ms <= 0 {
                    return Err(WindowError::NonPositiveGap(gap_ms));
                }
            }
        }
        Ok(())
    }

    /// `(size, every)` of a fixed (tumbling or hopping) spec.
    pub(super) fn fixed(&self) -> Option<(i64, i64)> {
        match *self {
            WindowSpec::Tumbling { size_ms } => Some((size_ms, size_ms)),
            WindowSpec::Hopping { size_ms, every_ms } => Some((size_ms, every_ms)),
            WindowSpec::Session { .. } => None,
        }
    }

    /// The windows a record at `t` belongs to, ascending by start. For sessions, the record's own
    /// window `[t, t + gap)` before any merge.
    pub fn windows_of(&self, t: i64) -> Vec<Window> {
        match self.fixed() {
            Some((size, every)) => fixed_windows(size, every, t).collect(),
            None => {
                let WindowSpec::Session { gap_ms } = *self else {
                    unreachable!()
                };
                vec![Window::new(t, t.saturating_add(gap_ms))]
            }
        }
    }
}

/// The windows `[s, s + size)` with `s` a multiple of `every` that contain `t`, ascending.
pub(super) fn fixed_windows(size: i64, every: i64, t: i64) -> impl Iterator<Item = Window> {
    let last = i128::from(t.div_euclid(every)) * i128::from(every);
    let (t, size, every) = (i128::from(t), i128::from(size), i128::from(every));
    // Starts in (t - size, last], stepping by `every`.
    let count =
        (last - (t - size)).div_euclid(every) + i128::from((last - (t - size)) % every != 0);
    let first = last - (count - 1) * every;
    (0..count).map(move |i| {
        let s = first + i * every;
        let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        Window::new(clamp(s), clamp(s + size))
    })
}

/// A half-open window of event time `[start_ms, end_ms)`. Ordered by start, then end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    pub fn new(start_ms: i64, end_ms: i64) -> Self {
        Window { start_ms, end_ms }
    }

    /// Whether `t` lies in `[start, end)`.
    pub fn contains(&self, t: i64) -> bool {
        self.start_ms <= t && t < self.end_ms
    }
}

/// What to do when a batch would leave more than `max_entries` open windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// Refuse the batch with [`WindowError::TooManyEntries`].
    #[default]
    Fail,
    /// Hand out the open windows that end first as early results.
    EvictOldest,
}

/// The configuration of one aggregate stage's windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    pub spec: WindowSpec,
    /// How far behind the largest event time seen a record may be and still count (ms, >= 0).
    pub lateness_ms: i64,
    /// Quiet time after which [`WindowState::on_idle`](super::WindowState::on_idle) advances
    /// the watermark (ms, > 0); `None`: never.
    pub idle_timeout_ms: Option<i64>,
    /// Most open `(key, window)` entries per partition (> 0).
    pub max_entries: usize,
    pub on_full: OnFull,
}

impl WindowConfig {
    /// No lateness, no idle timeout, 100 000 entries, [`OnFull::Fail`].
    pub fn new(spec: WindowSpec) -> Self {
        WindowConfig {
            spec,
            lateness_ms: 0,
            idle_timeout_ms: None,
            max_entries: 100_000,
            on_full: OnFull::Fail,
        }
    }

    pub fn validate(&self) -> Result<(), WindowError> {
        self.spec.validate()?;
        if self.lateness_ms < 0 {
            return Err(WindowError::NegativeLateness(self.lateness_ms));
        }
        if let Some(d) = self.idle_timeout_ms
            && d <= 0
        {
            return Err(WindowError::NonPositiveIdleTimeout(d));
        }
        if self.max_entries == 0 {
            return Err(WindowError::ZeroMaxEntries);
        }
        Ok(())
    }
}

/// Why a window configuration, a batch or a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("window size must be positive, got {0} ms")]
    NonPositiveSize(i64),
    #[error("window hop must be positive, got {0} ms")]
    NonPositiveEvery(i64),
    #[error("window hop ({every_ms} ms) must not exceed the window size ({size_ms} ms)")]
    EveryExceedsSize { every_ms: i64, size_ms: i64 },
    #[error(
        "a record would belong to {hops} hopping windows; at most {MAX_WINDOWS_PER_RECORD} allowed"
    )]
    TooManyHops { hops: i64 },
    #[error("session gap must be positive, got {0} ms")]
    NonPositiveGap(i64),
    #[error("lateness must not be negative, got {0} ms")]
    NegativeLateness(i64),
    #[error("idle timeout must be positive, got {0} ms")]
    NonPositiveIdleTimeout(i64),
    #[error("max_entries must be positive")]
    ZeroMaxEntries,
    #[error("the batch would leave {needed} open windows; the limit is {limit}")]
    TooManyEntries { limit: usize, needed: usize },
    #[error("the plan was made against an older version of the window state")]
    StalePlan,
    #[error("the plan has {expected} groups but {got} accumulators came back")]
    ResultCount { expected: usize, got: usize },
    #[error("window state snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// Why a snapshot could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a window state snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported snapshot version {0}")]
    UnsupportedVersion(u8),
    #[error("snapshot ends early")]
    Truncated,
    #[error("malformed snapshot: {0}")]
    Malformed(&'static str),
    #[error("snapshot was taken with {snapshot:?} but the stage is configured with {config:?}")]
    SpecMismatch {
        snapshot: WindowSpec,
        config: WindowSpec,
    },
    #[error("{0} bytes left over after the snapshot")]
    TrailingBytes(usize),
}

/// `max_event - lateness`: windows ending at or before it are closed.
pub(super) fn watermark(max_event: Option<i64>, lateness_ms: i64) -> Option<i64> {
    max_event.map(|m| m.saturating_sub(lateness_ms))
}

pub(super) fn union(a: Window, b: Window) -> Window {
    Window::new(a.start_ms.min(b.start_ms), a.end_ms.max(b.end_ms))
}
