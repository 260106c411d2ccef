//! Medians and ranges of repeated measurements, and ratios between them.

use serde::Serialize;

/// One measured figure: every sample (in measurement order) and its summary.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub unit: &'static str,
    pub samples: Vec<f64>,
    pub summary: Summary,
}

impl Series {
    pub fn new(unit: &'static str, samples: Vec<f64>) -> Self {
        let summary = Summary::of(&samples);
        Self {
            unit,
            samples,
            summary,
        }
    }
}

/// Median with min and max. The median rather than the mean, because a shared machine adds
/// occasional long outliers that say nothing about the code under test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// Summary of `samples`; all NaN (and n = 0) when there are none.
    pub fn of(samples: &[f64]) -> Self {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let n = sorted.len();
        if n == 0 {
            return Self {
                n,
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            n,
            median,
            min: sorted[0],
            max: sorted[n - 1],
        }
    }

    /// `self` as a multiple of `baseline`, median to median.
    pub fn ratio_to(&self, baseline: &Summary) -> f64 {
        self.median / baseline.median
    }
}

/// Whether a ratio meets an "at most" target (NaN never does).
pub fn meets(ratio: f64, at_most: f64) -> bool {
    ratio.is_finite() && ratio <= at_most
}

/// Whether a ratio meets an "at least" target (NaN never does).
pub fn meets_at_least(ratio: f64, at_least: f64) -> bool {
    ratio.is_finite() && ratio >= at_least
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_and_even_medians() {
        let s = Summary::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(s.median, 2.5);
    }

    #[test]
    fn empty_and_nan_samples() {
        assert!(Summary::of(&[]).median.is_nan());
        let s = Summary::of(&[f64::NAN, 5.0]);
        assert_eq!((s.n, s.median), (1, 5.0));
    }

    #[test]
    fn ratios_and_targets() {
        let a = Summary::of(&[8.0]);
        let b = Summary::of(&[10.0]);
        assert!((a.ratio_to(&b) - 0.8).abs() < 1e-12);
        assert!(meets(0.8, 0.8));
        assert!(!meets(0.81, 0.8));
        assert!(!meets(f64::NAN, 0.8));
        assert!(meets_at_least(0.5, 0.5) && !meets_at_least(0.49, 0.5) && !meets_at_least(f64::NAN, 0.5));
    }
}
