//! Percentiles and summaries of latency samples.

use std::time::Duration;

/// The nearest-rank percentile `p` (0 < p ≤ 100) of samples sorted in ascending order: the smallest sample such
/// that at least `p` % of the samples are less than or equal to it. `None` for no samples.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A summary of latency samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// Summarises samples given in milliseconds; `None` for no samples.
    pub fn of_ms(samples: &[f64]) -> Option<Summary> {
        let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        Some(Summary {
            n: s.len(),
            min: s[0],
            median: percentile(&s, 50.0)?,
            p99: percentile(&s, 99.0)?,
            max: s[s.len() - 1],
            mean: s.iter().sum::<f64>() / s.len() as f64,
        })
    }

    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        Summary::of_ms(&ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.5), Some(1.0));
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 50.0), Some(3.0));
        assert_eq!(percentile(&v, 99.0), Some(5.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&v, 0.0), None);
        assert_eq!(percentile(&v, 101.0), None);
    }

    #[test]
    fn p99_of_200_is_the_198th() {
        // With 200 samples the p99 is the 198th smallest: the two largest are outliers it may ignore.
        let mut v: Vec<f64> = (1..=200).map(f64::from).collect();
        v.reverse();
        let s = Summary::of_ms(&v).expect("summary");
        assert_eq!(s.n, 200);
        assert_eq!(s.p99, 198.0);
        assert_eq!(s.median, 100.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 200.0);
        assert!((s.mean - 100.5).abs() < 1e-9);
    }

    #[test]
    fn unsorted_durations_and_nan() {
        let d = [
            Duration::from_micros(3000),
            Duration::from_micros(1000),
            Duration::from_micros(2000),
        ];
        let s = Summary::of(&d).expect("summary");
        assert_eq!(s.median, 2.0);
        assert_eq!(s.p99, 3.0);
        assert_eq!(Summary::of_ms(&[f64::NAN]), None);
        assert_eq!(Summary::of(&[]), None);
    }
}
