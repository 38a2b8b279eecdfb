//! The staleness arithmetic of the wallboard run, kept apart from the I/O so that it is
//! unit-tested: what an answer shows, which change of the simulator it is missing, and the
//! quantiles of the result.
//!
//! Definitions (wall-clock milliseconds throughout):
//!
//! - The **changes** of a conversation are the instants `/sim/changes` lists for it
//!   (`changes_since`, converted from the simulated clock with `clock_offset_ms`).
//! - The **bodies** of a conversation are the distinct summaries the proxy served for it,
//!   in the order they were first served; body `k + 1` *first seen* at `s(k+1)` is
//!   attributed to the latest change at or before `s(k+1)` (`cause(k+1)`).
//! - An answer at `t` showing body `k` is **stale** when body `k + 1` exists and its cause
//!   happened before `t`; its staleness is then `t - cause(k+1)`, else 0.
//!
//! Why bodies and not versions: the summary does not show every change (a hold, a segment
//! boundary), so an answer cannot name the version it shows, and counting every change it
//! does not reflect would count invisible ones as staleness. Attributing a new body to the
//! *latest* change before it is a lower bound, exact unless two changes of one conversation
//! fall between its last two bodies (counted as `ambiguous` and reported). Changes after the
//! last body of the run count as nothing (a lower bound too).

use std::collections::HashMap;

/// The answers and bodies of one conversation.
#[derive(Debug, Default, Clone)]
pub(crate) struct Timeline {
    /// Distinct bodies by digest: their index, in order of first appearance.
    bodies: HashMap<u64, usize>,
    /// When each body was first served.
    first_seen: Vec<i64>,
    /// Every answer: (wall ms, body index).
    answers: Vec<(i64, usize)>,
}

impl Timeline {
    /// Records an answer at `at_ms` whose body has `digest`.
    pub(crate) fn answer(&mut self, at_ms: i64, digest: u64) {
        let next = self.first_seen.len();
        let index = *self.bodies.entry(digest).or_insert(next);
        if index == next {
            self.first_seen.push(at_ms);
        }
        self.answers.push((at_ms, index));
    }

    /// The staleness (ms) of every answer, given the conversation's sorted `changes`, and
    /// how many body transitions had more than one candidate change.
    pub(crate) fn staleness(&self, changes: &[i64]) -> (Vec<i64>, u64) {
        let mut ambiguous = 0;
        // cause[k] for k >= 1: the latest change at or before first_seen[k].
        let causes: Vec<Option<i64>> = (0..self.first_seen.len())
            .map(|k| {
                if k == 0 {
                    return None;
                }
                let upto = changes.partition_point(|&c| c <= self.first_seen[k]);
                let from = changes.partition_point(|&c| c <= self.first_seen[k - 1]);
                if upto > from + 1 {
                    ambiguous += 1;
                }
                (upto > 0).then(|| changes[upto - 1])
            })
            .collect();
        let out = self
            .answers
            .iter()
            .map(|&(t, k)| match causes.get(k + 1).copied().flatten() {
                Some(cause) if cause < t => t - cause,
                _ => 0,
            })
            .collect();
        (out, ambiguous)
    }
}

/// The `q` quantile (nearest rank) of `values` sorted ascending; 0 when empty.
pub(crate) fn quantile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Upstream calls per minute as a percentage of `budget` calls per minute.
pub(crate) fn share_of_budget(calls: u64, secs: f64, budget: u32) -> f64 {
    if secs <= 0.0 || budget == 0 {
        return 0.0;
    }
    calls as f64 * 60.0 / secs * 100.0 / f64::from(budget)
}

/// A stable digest of a body (FNV-1a).
pub(crate) fn digest(body: &[u8]) -> u64 {
    body.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_stale_from_the_change_its_successor_shows() {
        let mut t = Timeline::default();
        t.answer(1_000, 1); // body 0
        t.answer(3_000, 1); // still body 0; the change at 2_500 is not shown yet
        t.answer(3_200, 2); // body 1, caused by the change at 2_500
        t.answer(4_000, 2);
        let (s, ambiguous) = t.staleness(&[500, 2_500]);
        assert_eq!(s, vec![0, 500, 0, 0]);
        assert_eq!(ambiguous, 0);
    }

    #[test]
    fn an_answer_before_the_change_is_not_stale() {
        let mut t = Timeline::default();
        t.answer(1_000, 1);
        t.answer(2_000, 1);
        t.answer(5_000, 2);
        let (s, _) = t.staleness(&[4_000]);
        assert_eq!(s, vec![0, 0, 0], "the change came after both old answers");
    }

    #[test]
    fn invisible_changes_and_changes_after_the_last_body_count_nothing() {
        let mut t = Timeline::default();
        t.answer(1_000, 7);
        t.answer(9_000, 7);
        let (s, _) = t.staleness(&[2_000, 3_000]);
        assert_eq!(s, vec![0, 0]);
    }

    #[test]
    fn two_changes_before_one_new_body_are_ambiguous_and_the_later_one_counts() {
        let mut t = Timeline::default();
        t.answer(1_000, 1);
        t.answer(4_000, 1);
        t.answer(5_000, 2);
        let (s, ambiguous) = t.staleness(&[2_000, 3_000]);
        assert_eq!(s, vec![0, 1_000, 0]);
        assert_eq!(ambiguous, 1);
    }

    #[test]
    fn a_body_seen_again_keeps_its_index() {
        let mut t = Timeline::default();
        t.answer(1_000, 1);
        t.answer(2_000, 2);
        t.answer(3_000, 1);
        assert_eq!(t.first_seen, vec![1_000, 2_000]);
        assert_eq!(t.answers[2], (3_000, 0));
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(quantile(&[7], 0.01), 7);
    }

    #[test]
    fn share_of_the_budget_per_minute() {
        assert!((share_of_budget(60, 120.0, 300) - 10.0).abs() < 1e-9);
        assert!((share_of_budget(300, 60.0, 300) - 100.0).abs() < 1e-9);
        assert_eq!(share_of_budget(5, 0.0, 300), 0.0);
    }

    #[test]
    fn digests_differ_for_different_bodies() {
        assert_ne!(digest(b"{\"a\":1}"), digest(b"{\"a\":2}"));
        assert_eq!(digest(b"x"), digest(b"x"));
    }
}
