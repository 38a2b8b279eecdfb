//! Figures over rounds: the order of the targets within a round, and ratios taken within
//! each round, summarised as median and minimum over the rounds.
//!
//! Rounds of one run spread by 20-30% on a shared virtual machine, more than the margins
//! of the targets, so a ratio of each target's best round mixes rounds. Here every round
//! runs every target once, in an order shuffled per round (so no target always runs first,
//! or always right after the same one), and a ratio is computed from two runs of the same
//! round before it is summarised. This module only does the arithmetic; it runs nothing.

/// The order in which round `round` runs `targets` targets: a permutation of
/// `0..targets`, shuffled by a generator seeded with `seed` and the round, so a run can be
/// repeated in the same order.
#[must_use]
pub fn round_order(targets: usize, round: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..targets).collect();
    let mut rng =
        fastrand::Rng::with_seed(seed ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.shuffle(&mut order);
    order
}

/// The median of the values that are numbers (NaN when there are none); the mean of the
/// two middle values when their count is even.
#[must_use]
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        f64::midpoint(v[mid - 1], v[mid])
    }
}

/// The smallest of the values that are numbers (NaN when there are none).
#[must_use]
pub fn minimum(values: &[f64]) -> f64 {
    values
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .reduce(f64::min)
        .unwrap_or(f64::NAN)
}

/// The largest of the values that are numbers (NaN when there are none).
#[must_use]
pub fn maximum(values: &[f64]) -> f64 {
    values
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .reduce(f64::max)
        .unwrap_or(f64::NAN)
}

/// `numerator[r] / denominator[r]` for every round `r` both have (NaN where the
/// denominator is missing or not positive).
#[must_use]
pub fn per_round_ratios(numerator: &[f64], denominator: &[f64]) -> Vec<f64> {
    numerator
        .iter()
        .zip(denominator)
        .map(|(n, d)| if *d > 0.0 { n / d } else { f64::NAN })
        .collect()
}

/// A ratio measured once per round, against a target it should reach.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioSummary {
    /// The ratio of each round, in round order.
    pub rounds: Vec<f64>,
    pub median: f64,
    pub min: f64,
    /// Rounds whose ratio reached the target.
    pub met: usize,
    /// The value the ratio should reach.
    pub target: f64,
}

impl RatioSummary {
    /// Summarises the per-round ratios `rounds` against `target`.
    #[must_use]
    pub fn new(rounds: Vec<f64>, target: f64) -> Self {
        Self {
            median: median(&rounds),
            min: minimum(&rounds),
            met: rounds.iter().filter(|r| **r >= target).count(),
            rounds,
            target,
        }
    }

    /// Rounds with a ratio (not NaN).
    #[must_use]
    pub fn measured(&self) -> usize {
        self.rounds.iter().filter(|r| !r.is_nan()).count()
    }

    /// "1.02x median, 0.95x min (met in 4 of 5 rounds)"; the verdict is the median's.
    #[must_use]
    pub fn verdict(&self) -> String {
        if self.median.is_nan() {
            return "n/a".to_owned();
        }
        format!(
            "{:.2}x median, {:.2}x min ({}; {} of {} rounds >= {})",
            self.median,
            self.min,
            if self.median >= self.target {
                "met"
            } else {
                "NOT met"
            },
            self.met,
            self.measured(),
            self.target
        )
    }

    /// The ratio of each round, "0.98 / 1.01 / 1.03".
    #[must_use]
    pub fn each(&self) -> String {
        self.rounds
            .iter()
            .map(|r| {
                if r.is_nan() {
                    "-".to_owned()
                } else {
                    format!("{r:.2}")
                }
            })
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_an_odd_count_is_the_middle_value() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert!((median(&[4.0, 1.0, 3.0, 2.0]) - 2.5).abs() < f64::EPSILON);
    }

    #[test]
    fn median_and_minimum_ignore_missing_rounds_and_are_nan_without_any() {
        assert!((median(&[f64::NAN, 5.0, 1.0]) - 3.0).abs() < f64::EPSILON);
        assert!((minimum(&[f64::NAN, 5.0, 1.0]) - 1.0).abs() < f64::EPSILON);
        assert!((maximum(&[f64::NAN, 5.0, 1.0]) - 5.0).abs() < f64::EPSILON);
        assert!(median(&[]).is_nan());
        assert!(minimum(&[f64::NAN]).is_nan());
    }

    #[test]
    fn ratios_are_taken_within_each_round_not_between_best_rounds() {
        // Target A is best in round 1, B in round 2: best-of-rounds would say 100/90 = 1.11,
        // yet A never beat B by more than 1.05 within a round.
        let a = [100.0, 70.0];
        let b = [95.0, 90.0];
        let ratios = per_round_ratios(&a, &b);
        assert!((ratios[0] - 100.0 / 95.0).abs() < 1e-12);
        assert!((ratios[1] - 70.0 / 90.0).abs() < 1e-12);
        let summary = RatioSummary::new(ratios, 0.9);
        assert!((summary.min - 70.0 / 90.0).abs() < 1e-12);
        assert_eq!(summary.met, 1);
        assert_eq!(summary.measured(), 2);
    }

    #[test]
    fn a_round_without_a_denominator_gives_no_ratio() {
        let ratios = per_round_ratios(&[1.0, 2.0], &[0.0, 1.0]);
        assert!(ratios[0].is_nan());
        let summary = RatioSummary::new(ratios, 1.5);
        assert_eq!(summary.measured(), 1);
        assert_eq!(summary.each(), "- / 2.00");
        assert_eq!(
            summary.verdict(),
            "2.00x median, 2.00x min (met; 1 of 1 rounds >= 1.5)"
        );
    }

    #[test]
    fn the_verdict_follows_the_median_and_counts_the_rounds_that_met_the_target() {
        let summary = RatioSummary::new(vec![0.95, 0.85, 0.92], 0.9);
        assert_eq!(
            summary.verdict(),
            "0.92x median, 0.85x min (met; 2 of 3 rounds >= 0.9)"
        );
        let summary = RatioSummary::new(vec![0.8, 0.95, 0.85], 0.9);
        assert!(summary.verdict().contains("NOT met"));
    }

    #[test]
    fn every_round_runs_every_target_once_in_a_repeatable_order() {
        let mut orders = std::collections::BTreeSet::new();
        for round in 0..20 {
            let order = round_order(3, round, 14);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2]);
            assert_eq!(order, round_order(3, round, 14));
            orders.insert(order);
        }
        assert!(orders.len() > 1, "the order changes between rounds");
    }
}
