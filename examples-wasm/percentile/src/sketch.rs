//! A mergeable quantile sketch: a log-bucketed histogram with a relative error bound.
//!
//! A value `x > 0` falls in bucket `i = ⌈ln x / ln γ⌉`, which holds the values in
//! `(γ^(i-1), γ^i]`, with `γ = (1 + α) / (1 − α)` and `α =` [`BUCKET_ERROR`]. The bucket's
//! representative value `γ^i · (1 − α)` is within `α` (relative) of every value in the bucket.
//! Negative values are counted by magnitude in a second set of buckets; zeros are counted apart.
//! The count, the minimum and the maximum are kept exactly.
//!
//! A quantile is the representative of the bucket holding the value of the wanted rank, rounded
//! to [`SIGNIFICANT_DIGITS`] significant digits (at most 0.05 % more) and clamped to
//! `[min, max]`, so it is within [`RELATIVE_ERROR`] (under 1 %) of the exact value of that rank.
//! The first and last ranks are the exact minimum and maximum.
//!
//! Size: each sign keeps at most [`MAX_BUCKETS`] consecutive bucket counts, whatever the number of
//! values, so a sketch holds at most `2 × 2048` counts besides six numbers (count, min, max, zeros
//! and the two first bucket indices). 2048 buckets span a ratio of `10^16` between the smallest
//! and the largest magnitude (a range of 1 ms to 10 s spans 512), so the cap only matters for
//! values more than 16 orders of magnitude apart: then the smallest magnitudes are folded into the
//! lowest kept bucket (and only the low quantiles lose accuracy). Measured: a million latencies of
//! 1 ms to 10 s encode in about 2.7 KB of JSON; 200 000 values spread over 616 orders of magnitude
//! of both signs, which fill both caps, in about 8 KB.
//!
//! Merging adds the bucket counts, so merging two sketches gives exactly the sketch of all their
//! values, in any order or grouping: the bucket a value ends in depends only on the set of values.

use serde::{Deserialize, Serialize};

/// The relative error of a bucket's representative value (`α`).
pub const BUCKET_ERROR: f64 = 0.009;

/// `ln γ = ln((1 + α) / (1 − α))` for `α =` [`BUCKET_ERROR`].
const LN_GAMMA: f64 = 0.018_000_486_023_620_966;

/// Significant digits of an emitted quantile.
pub const SIGNIFICANT_DIGITS: usize = 4;

/// The bound on the relative error of a quantile: the bucket's error, then the rounding
/// (`(1 + 0.009)(1 + 0.0005) − 1 ≈ 0.0095`).
pub const RELATIVE_ERROR: f64 = 0.0096;

/// The most bucket counts kept per sign.
pub const MAX_BUCKETS: usize = 2048;

/// Consecutive bucket counts: `counts[k]` is the count of bucket `offset + k`. Non-empty
/// `counts` start and end with a non-zero count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buckets {
    pub offset: i32,
    pub counts: Vec<u64>,
}

impl Buckets {
    /// Whether no value was counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    fn lo(&self) -> i64 {
        i64::from(self.offset)
    }

    fn hi(&self) -> i64 {
        self.lo() + self.counts.len() as i64 - 1
    }

    /// Counts `n` values in bucket `index`, keeping at most [`MAX_BUCKETS`] buckets (the lowest
    /// are folded into the lowest kept one).
    fn add(&mut self, index: i32, n: u64) {
        let i = i64::from(index);
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(n);
            return;
        }
        let hi = self.hi().max(i);
        let lo = self.lo().min(i).max(hi - MAX_BUCKETS as i64 + 1);
        if (lo, hi) != (self.lo(), self.hi()) {
            self.rebase(lo, hi);
        }
        let k = (i.max(self.lo()) - self.lo()) as usize;
        self.counts[k] = self.counts[k].saturating_add(n);
    }

    /// Spans `[lo, hi]` (which covers `hi()`), folding the buckets below `lo` into `lo`.
    fn rebase(&mut self, lo: i64, hi: i64) {
        let mut counts = vec![0u64; (hi - lo + 1) as usize];
        for (i, c) in self.iter() {
            let k = (i.max(lo) - lo) as usize;
            counts[k] = counts[k].saturating_add(c);
        }
        self.offset = lo as i32;
        self.counts = counts;
    }

    fn merge(&mut self, other: &Buckets) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            self.clone_from(other);
            return;
        }
        let hi = self.hi().max(other.hi());
        let lo = self.lo().min(other.lo()).max(hi - MAX_BUCKETS as i64 + 1);
        self.rebase(lo, hi);
        for (i, c) in other.iter() {
            let k = (i.max(lo) - lo) as usize;
            self.counts[k] = self.counts[k].saturating_add(c);
        }
    }

    /// The non-empty buckets, lowest first: (index, count).
    fn iter(&self) -> impl DoubleEndedIterator<Item = (i64, u64)> + '_ {
        let lo = self.lo();
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(move |(k, c)| (lo + k as i64, *c))
    }

    fn total(&self) -> u64 {
        self.counts.iter().fold(0, |a, c| a.saturating_add(*c))
    }

    fn is_valid(&self) -> bool {
        self.is_empty()
            || (self.counts.len() <= MAX_BUCKETS
                && self.counts.first() != Some(&0)
                && self.counts.last() != Some(&0)
                && self.hi() <= i64::from(i32::MAX))
    }
}

/// The sketch of the values of one key and window (the stage's accumulator).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// How many values.
    pub count: u64,
    /// The smallest value (0 while empty).
    pub min: f64,
    /// The largest value (0 while empty).
    pub max: f64,
    /// How many zeros.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub zero: u64,
    /// The positive values.
    #[serde(default, skip_serializing_if = "Buckets::is_empty")]
    pub pos: Buckets,
    /// The negative values, by magnitude.
    #[serde(default, skip_serializing_if = "Buckets::is_empty")]
    pub neg: Buckets,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The bucket of a magnitude `m > 0`.
fn index_of(m: f64) -> i32 {
    // |ln m| ≤ 745 for a finite m > 0, so the index fits an i32 with room to spare.
    (m.ln() / LN_GAMMA).ceil() as i32
}

/// The representative value of bucket `index` (`γ^index · (1 − α)`), before rounding.
fn value_of(index: i64) -> f64 {
    (index as f64 * LN_GAMMA).exp() * (1.0 - BUCKET_ERROR)
}

/// `x` rounded to [`SIGNIFICANT_DIGITS`] significant digits.
fn round_significant(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    format!("{:.*e}", SIGNIFICANT_DIGITS - 1, x)
        .parse()
        .unwrap_or(x)
}

/// The 1-based nearest rank of quantile `q` among `n` values: the smallest `k` such that at least
/// `q·n` of the values are at most the `k`-th smallest (`⌈q·n⌉`, at least 1). A `q·n` within
/// rounding error of an integer counts as that integer (`0.07 × 100` is 7, not 7.000…1).
pub fn nearest_rank(q: f64, n: u64) -> u64 {
    let x = q * n as f64;
    let r = x.round();
    let k = if (x - r).abs() <= x * 1e-12 {
        r
    } else {
        x.ceil()
    };
    (k as u64).clamp(1, n.max(1))
}

impl Sketch {
    /// Counts one value. `x` must be finite.
    pub fn insert(&mut self, x: f64) {
        debug_assert!(x.is_finite());
        let x = if x == 0.0 { 0.0 } else { x }; // -0 is 0
        if self.count == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count = self.count.saturating_add(1);
        if x > 0.0 {
            self.pos.add(index_of(x), 1);
        } else if x < 0.0 {
            self.neg.add(index_of(-x), 1);
        } else {
            self.zero = self.zero.saturating_add(1);
        }
    }

    /// Adds `other`'s values: the result is the sketch of both sets of values.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.clone_from(other);
            return;
        }
        self.count = self.count.saturating_add(other.count);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.zero = self.zero.saturating_add(other.zero);
        self.pos.merge(&other.pos);
        self.neg.merge(&other.neg);
    }

    /// Whether the sketch is one `insert` and `merge` can produce (a decoded accumulator may not
    /// be).
    pub fn is_valid(&self) -> bool {
        let buckets = self.pos.is_valid() && self.neg.is_valid();
        let counted = self
            .zero
            .saturating_add(self.pos.total())
            .saturating_add(self.neg.total());
        buckets
            && counted == self.count
            && self.min.is_finite()
            && self.max.is_finite()
            && self.min <= self.max
    }

    /// The number of bucket counts held (at most `2 ×` [`MAX_BUCKETS`]).
    pub fn buckets(&self) -> usize {
        self.pos.counts.len() + self.neg.counts.len()
    }

    /// The value of quantile `q` (in `(0, 1]`): an estimate of the value of nearest rank
    /// `⌈q·count⌉`, within [`RELATIVE_ERROR`] of it; `None` for an empty sketch.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = nearest_rank(q, self.count);
        if rank == 1 {
            return Some(self.min);
        }
        if rank == self.count {
            return Some(self.max);
        }
        let estimate = |v: f64| round_significant(v).clamp(self.min, self.max);
        let mut seen = 0u64;
        for (i, c) in self.neg.iter().rev() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return Some(estimate(-value_of(i)));
            }
        }
        seen = seen.saturating_add(self.zero);
        if seen >= rank {
            return Some(0.0_f64.clamp(self.min, self.max));
        }
        for (i, c) in self.pos.iter() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return Some(estimate(value_of(i)));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (splitmix64), so the tests need no dependency.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1].
        fn unit(&mut self) -> f64 {
            ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            let (u, v) = (self.unit(), self.unit());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
    }

    const QUANTILES: [f64; 12] = [
        0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0,
    ];

    fn sketch(values: &[f64]) -> Sketch {
        let mut s = Sketch::default();
        for &v in values {
            s.insert(v);
        }
        s
    }

    /// The largest relative error of the sketch's quantiles against the exact ones.
    fn worst_error(values: &[f64]) -> f64 {
        let s = sketch(values);
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut worst = 0.0_f64;
        for q in QUANTILES {
            let exact = sorted[nearest_rank(q, sorted.len() as u64) as usize - 1];
            let got = s.quantile(q).unwrap();
            let error = if exact == 0.0 {
                got.abs()
            } else {
                ((got - exact) / exact).abs()
            };
            assert!(
                error <= RELATIVE_ERROR,
                "q={q}: got {got}, exact {exact}, error {error}"
            );
            worst = worst.max(error);
        }
        worst
    }

    fn distributions() -> Vec<(&'static str, Vec<f64>)> {
        let mut rng = Rng(42);
        let n = 5000;
        let mut uniform = Vec::new();
        let mut lognormal = Vec::new();
        let mut pareto = Vec::new();
        let mut signed = Vec::new();
        for _ in 0..n {
            uniform.push(rng.unit() * 1000.0);
            lognormal.push((3.0 + 1.5 * rng.normal()).exp());
            // Pareto with shape 1.1 and scale 1: a tail of latencies up to ~10^3 and beyond.
            pareto.push(rng.unit().powf(-1.0 / 1.1));
            let x = rng.normal() * 50.0;
            signed.push(if rng.unit() < 0.05 { 0.0 } else { x });
        }
        let integers = (0..n).map(|_| (rng.unit() * 200.0).floor()).collect();
        vec![
            ("uniform (0, 1000]", uniform),
            ("log-normal", lognormal),
            ("Pareto 1.1", pareto),
            ("signed with zeros", signed),
            ("integers 0..200", integers),
        ]
    }

    #[test]
    fn quantiles_are_within_the_error_bound() {
        for (name, values) in distributions() {
            let worst = worst_error(&values);
            eprintln!("{name}: worst relative error {:.4} %", worst * 100.0);
        }
    }

    #[test]
    fn the_bound_composes_the_bucket_error_and_the_rounding() {
        let gamma = (1.0 + BUCKET_ERROR) / (1.0 - BUCKET_ERROR);
        assert!((gamma.ln() - LN_GAMMA).abs() < 1e-15);
        let rounding = 0.5 * 10f64.powi(1 - SIGNIFICANT_DIGITS as i32);
        assert!((1.0 + BUCKET_ERROR) * (1.0 + rounding) - 1.0 < RELATIVE_ERROR);
        const { assert!(RELATIVE_ERROR < 0.01) };
        // Every value of a bucket is within α of its representative, boundaries included.
        for i in [-2000i64, -1, 0, 1, 77, 1000, 30_000] {
            let (low, high) = ((i - 1) as f64 * LN_GAMMA, i as f64 * LN_GAMMA);
            for x in [
                low.exp() * (1.0 + 1e-9),
                ((low + high) / 2.0).exp(),
                high.exp() * (1.0 - 1e-9),
            ] {
                assert_eq!(i64::from(index_of(x)), i, "{x}");
                assert!(((value_of(i) - x) / x).abs() <= BUCKET_ERROR + 1e-8);
            }
        }
    }

    #[test]
    fn extremes_are_exact_and_small_sets_are_sensible() {
        let s = sketch(&[12.0, 20.0, 35.0, 48.0, 250.0]);
        assert_eq!(s.quantile(0.01), Some(12.0));
        assert_eq!(s.quantile(0.99), Some(250.0));
        assert_eq!(s.quantile(1.0), Some(250.0));
        let p50 = s.quantile(0.5).unwrap();
        assert!((p50 - 35.0).abs() / 35.0 <= RELATIVE_ERROR, "{p50}");
        assert_eq!(Sketch::default().quantile(0.5), None);
        let one = sketch(&[7.5]);
        assert_eq!(one.quantile(0.5), Some(7.5));
        assert_eq!(sketch(&[-0.0]).min.to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn nearest_ranks() {
        assert_eq!(nearest_rank(0.5, 5), 3);
        assert_eq!(nearest_rank(0.5, 4), 2);
        assert_eq!(nearest_rank(0.99, 5), 5);
        assert_eq!(nearest_rank(0.07, 100), 7);
        assert_eq!(nearest_rank(0.001, 10), 1);
        assert_eq!(nearest_rank(1.0, 1), 1);
    }

    #[test]
    fn merging_equals_one_sketch_of_all_values() {
        let mut rng = Rng(7);
        for (name, values) in distributions() {
            let all = sketch(&values);
            for parts in [2, 3, 10] {
                let mut chunks: Vec<Sketch> = vec![Sketch::default(); parts];
                for &v in &values {
                    chunks[(rng.next_u64() % parts as u64) as usize].insert(v);
                }
                let mut merged = Sketch::default();
                for c in chunks.iter().rev() {
                    merged.merge(c);
                }
                assert_eq!(merged, all, "{name}, {parts} parts");
                assert!(merged.is_valid());
            }
        }
    }

    #[test]
    fn merging_equals_one_sketch_past_the_bucket_cap() {
        // Magnitudes from 1e-300 to 1e300 are far more than MAX_BUCKETS apart: folding the lowest
        // buckets must not depend on how the values were grouped.
        let mut rng = Rng(3);
        let values: Vec<f64> = (0..20_000)
            .map(|_| {
                let m = 10f64.powf(rng.unit() * 600.0 - 300.0);
                if rng.unit() < 0.5 { m } else { -m }
            })
            .collect();
        let all = sketch(&values);
        let (a, b) = values.split_at(7_000);
        let mut merged = sketch(b);
        merged.merge(&sketch(a));
        assert_eq!(merged, all);
        // Values on one side only, far apart, in both orders.
        let mut low_then_high = sketch(&[1e-200, 1e-100]);
        low_then_high.merge(&sketch(&[1e100, 1e200]));
        let mut high_then_low = sketch(&[1e200, 1e100]);
        high_then_low.merge(&sketch(&[1e-100, 1e-200]));
        assert_eq!(low_then_high, high_then_low);
        assert_eq!(low_then_high, sketch(&[1e100, 1e-200, 1e200, 1e-100]));
    }

    #[test]
    fn the_sketch_stays_bounded() {
        let mut rng = Rng(11);
        let mut wide = Sketch::default();
        for _ in 0..200_000 {
            let m = 10f64.powf(rng.unit() * 616.0 - 308.0);
            wide.insert(if rng.unit() < 0.5 { m } else { -m });
        }
        assert_eq!(wide.pos.counts.len(), MAX_BUCKETS);
        assert_eq!(wide.neg.counts.len(), MAX_BUCKETS);
        assert!(wide.is_valid());
        let bytes = serde_json::to_vec(&wide).unwrap().len();
        eprintln!("200000 values over 616 orders of magnitude, both signs: {bytes} bytes");
        // 4096 counts of at most 20 digits and a comma, plus the fixed fields.
        assert!(bytes <= 2 * MAX_BUCKETS * 21 + 200, "{bytes}");

        // Latencies of 1 ms to 10 s: the size depends on the range, not on the count.
        let mut sizes = Vec::new();
        let mut s = Sketch::default();
        for n in 1..=300_000u64 {
            s.insert(10f64.powf(rng.unit() * 4.0));
            if [1_000, 30_000, 300_000].contains(&n) {
                let bytes = serde_json::to_vec(&s).unwrap().len();
                eprintln!(
                    "{n} latencies of 1 ms to 10 s: {} buckets, {bytes} bytes",
                    s.buckets()
                );
                assert!(s.buckets() <= 513);
                sizes.push(bytes);
            }
        }
        assert!(sizes.iter().all(|&b| b <= 4_500), "{sizes:?}");
    }

    #[test]
    fn decoded_sketches_are_checked() {
        let good = sketch(&[1.0, 2.0, 0.0, -3.0]);
        assert!(good.is_valid());
        assert!(Sketch::default().is_valid());
        let mut miscounted = good.clone();
        miscounted.count += 1;
        assert!(!miscounted.is_valid());
        let mut padded = good.clone();
        padded.pos.counts.push(0);
        assert!(!padded.is_valid());
        let mut huge = good;
        huge.pos.counts = vec![1; MAX_BUCKETS + 1];
        huge.count = MAX_BUCKETS as u64 + 3;
        assert!(!huge.is_valid());
    }
}
