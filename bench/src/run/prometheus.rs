//! Reading the proxy's Prometheus text (`/metrics`): the sum of a metric's samples, a
//! histogram's cumulative buckets, and a quantile of what was observed between two scrapes.

/// The sum of every sample of `name` whose labels contain all of `labels`.
pub(crate) fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Cumulative bucket counts of a histogram (`le` -> count) for one label set.
pub(crate) fn buckets(text: &str, name: &str, label: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(label))
    {
        let Some(le) = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::NAN)
        };
        if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse().ok()) {
            out.push((le, v));
        }
    }
    out
}

/// Quantile `q` of the difference of two cumulative histograms: the upper bound of the
/// bucket it falls in (and the bound below it). None when nothing was observed.
pub(crate) fn bucket_quantile(
    before: &[(f64, f64)],
    after: &[(f64, f64)],
    q: f64,
) -> Option<(f64, f64, f64)> {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, v)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, x)| *x);
            (*le, v - b)
        })
        .collect();
    let total = diff.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let mut lower = 0.0;
    for (le, cumulative) in &diff {
        if *cumulative >= target {
            return Some((lower, *le, total));
        }
        lower = *le;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_quantile_is_the_bucket_of_the_difference_between_two_scrapes() {
        // Cumulative buckets before and after: 10 observations <= 0.1, 5 more <= 1, 5 more <= 10,
        // observed between the two scrapes (the 3 before are left out).
        let before = [(0.1, 3.0), (1.0, 3.0), (10.0, 3.0), (f64::INFINITY, 3.0)];
        let after = [
            (0.1, 13.0),
            (1.0, 18.0),
            (10.0, 23.0),
            (f64::INFINITY, 23.0),
        ];
        assert_eq!(
            bucket_quantile(&before, &after, 0.5),
            Some((0.0, 0.1, 20.0))
        );
        assert_eq!(
            bucket_quantile(&before, &after, 0.75),
            Some((0.1, 1.0, 20.0))
        );
        assert_eq!(
            bucket_quantile(&before, &after, 0.99),
            Some((1.0, 10.0, 20.0))
        );
    }

    #[test]
    fn no_observation_between_two_scrapes_has_no_quantile() {
        let same = [(0.1, 3.0), (f64::INFINITY, 3.0)];
        assert_eq!(bucket_quantile(&same, &same, 0.5), None);
    }
}
