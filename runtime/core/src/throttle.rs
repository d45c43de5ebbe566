//! Log lines for errors that repeat: one line per kind per interval, with how many were not
//! logged since, so a failure that repeats twice a second neither floods the log nor goes quiet.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The longest an error kind goes unlogged while it keeps happening.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

/// Admits one log line per kind per [`LOG_EVERY`].
#[derive(Debug, Default)]
pub struct Throttle {
    /// Per kind: when it was last logged, and how often it happened since.
    kinds: HashMap<String, (Instant, u64)>,
}

impl Throttle {
    /// Whether an error of `kind` is to be logged now; if so, how many of its kind were not
    /// logged since the last line.
    pub fn admit(&mut self, kind: &str, now: Instant) -> Option<u64> {
        match self.kinds.get_mut(kind) {
            None => {
                self.kinds.insert(kind.to_owned(), (now, 0));
                Some(0)
            }
            Some((last, quiet)) if now.duration_since(*last) >= LOG_EVERY => {
                let repeats = *quiet;
                *last = now;
                *quiet = 0;
                Some(repeats)
            }
            Some((_, quiet)) => {
                *quiet += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_logged_once_per_interval_with_its_repeats() {
        let mut throttle = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(throttle.admit("bad_compression", t0), Some(0));
        for i in 1..=59 {
            let at = t0 + Duration::from_millis(500 * i);
            assert_eq!(throttle.admit("bad_compression", at), None, "at {i}");
        }
        // Another kind has its own interval.
        assert_eq!(throttle.admit("not_implemented", t0), Some(0));
        assert_eq!(throttle.admit("bad_compression", t0 + LOG_EVERY), Some(59));
        assert_eq!(throttle.admit("bad_compression", t0 + LOG_EVERY), None);
    }
}
