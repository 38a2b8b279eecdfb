//! Report intervals: absolute (`from`/`to`, RFC 3339) or relative (`last`, an ISO-8601
//! duration such as `PT15M`). A relative interval ends at "now" floored to the configured
//! bucket, so every dashboard polling the same report asks the same question and shares one
//! cache entry. Long intervals are split into chunks no longer than Genesys' per-query
//! limit.

use std::sync::LazyLock;

use chrono::{DateTime, Duration, DurationRound, Utc};
use regex::Regex;

/// A half-open interval `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Interval {
    /// Genesys' wire form: `start/end` in RFC 3339 with milliseconds.
    #[must_use]
    pub fn wire(&self) -> String {
        format!("{}/{}", timestamp(self.from), timestamp(self.to))
    }

    /// Whether `at` lies inside.
    #[must_use]
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }

    /// Consecutive chunks covering the interval, earliest first, each starting at a UTC
    /// midnight (but the first) and none longer than `max_days`: Genesys widens a details
    /// query to the UTC days it touches, so a chunk boundary inside a day would make both
    /// neighbours read that whole day.
    #[must_use]
    pub fn day_chunks(&self, max_days: u32) -> Vec<Self> {
        let max = Duration::days(i64::from(max_days.max(1)));
        let mut out = Vec::new();
        let mut from = self.from;
        while from < self.to {
            let to = (day_start(from) + max).min(self.to);
            out.push(Self { from, to });
            from = to;
        }
        out
    }

    /// The chunks a search walks, earliest first: [`Interval::day_chunks`], except that the
    /// partial UTC day at the walk's near edge (the first day for `asc`, the last for
    /// `desc`, named by `near_edge_first`) is a chunk of its own. Under whole-day matching
    /// that day's list then ends (or starts) exactly at the chunk's far edge, so the chunk
    /// is the list's tail: read from the list's other end, it needs no search through the
    /// days before it. Under exact matching it costs at most one partial page more.
    #[must_use]
    pub fn walk_chunks(&self, max_days: u32, near_edge_first: bool) -> Vec<Self> {
        let mut chunks = self.day_chunks(max_days);
        if near_edge_first {
            let midnight = day_start(self.from) + Duration::days(1);
            if let Some(first) = chunks.first_mut()
                && first.from != day_start(first.from)
                && first.to > midnight
            {
                let rest = Self {
                    from: midnight,
                    to: first.to,
                };
                first.to = midnight;
                chunks.insert(1, rest);
            }
        } else {
            let midnight = day_start(self.to);
            if let Some(last) = chunks.last_mut()
                && last.to != midnight
                && last.from < midnight
            {
                let rest = Self {
                    from: midnight,
                    to: last.to,
                };
                last.to = midnight;
                chunks.push(rest);
            }
        }
        chunks
    }

    /// Whether the interval is made of whole UTC days.
    #[must_use]
    pub fn is_whole_days(&self) -> bool {
        day_start(self.from) == self.from && day_start(self.to) == self.to
    }

    /// Consecutive chunks of at most `max` covering the interval, earliest first.
    #[must_use]
    pub fn chunks(&self, max: Duration) -> Vec<Self> {
        let mut out = Vec::new();
        let mut from = self.from;
        while from < self.to {
            let to = (from + max).min(self.to);
            out.push(Self { from, to });
            from = to;
        }
        out
    }
}

/// The UTC midnight at or before `at`.
#[must_use]
pub fn day_start(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::days(1)).unwrap_or(at)
}

/// RFC 3339 with milliseconds and `Z`.
#[must_use]
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses an RFC 3339 instant: the `date-time` of JSON Schema, exactly (no surrounding
/// space, `T` between date and time).
///
/// # Errors
/// A reason naming the expected form.
pub fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    let separated = matches!(text.as_bytes().get(10), Some(b'T' | b't'));
    separated
        .then(|| DateTime::parse_from_rfc3339(text).ok())
        .flatten()
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| {
            format!(
                "must be an RFC 3339 time such as 2025-03-11T00:00:00Z, not {:?}",
                clip(text)
            )
        })
}

/// A client-supplied text shortened for an error message.
#[must_use]
pub fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The pattern of a duration's date part and time part: weeks, days, then after `T`
/// hours, minutes and (in the time part given) seconds, each at most once, in that order,
/// at least one; each a whole number from 1 to 999999 without leading zeros (a zero part
/// says nothing, and no pattern could otherwise refuse "all zero").
macro_rules! duration_pattern {
    ($time:literal) => {
        concat!(
            "^P(?:(?:[1-9][0-9]{0,5}W(?:[1-9][0-9]{0,5}D)?|[1-9][0-9]{0,5}D)(?:T",
            $time,
            ")?|T",
            $time,
            ")$"
        )
    };
}

/// The form of a duration [`duration`] accepts, as a regular expression (ECMA-262 and the
/// `regex` crate alike), which the OpenAPI document gives as the fields' `pattern`:
/// `P2W`, `P1D`, `PT15M`, `P1DT12H`, `PT90S`.
pub const DURATION_PATTERN: &str = duration_pattern!(
    "(?:[1-9][0-9]{0,5}H(?:[1-9][0-9]{0,5}M)?(?:[1-9][0-9]{0,5}S)?|[1-9][0-9]{0,5}M(?:[1-9][0-9]{0,5}S)?|[1-9][0-9]{0,5}S)"
);

/// [`DURATION_PATTERN`] without seconds: a duration of whole minutes, as
/// [`minutes_duration`] accepts it.
pub const MINUTES_PATTERN: &str =
    duration_pattern!("(?:[1-9][0-9]{0,5}H(?:[1-9][0-9]{0,5}M)?|[1-9][0-9]{0,5}M)");

/// [`DURATION_PATTERN`], compiled.
static DURATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(DURATION_PATTERN).expect("the duration pattern compiles"));

/// [`MINUTES_PATTERN`], compiled.
static MINUTES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(MINUTES_PATTERN).expect("the minutes pattern compiles"));

/// Parses a duration of whole minutes, of the form [`MINUTES_PATTERN`] (`PT30M`, `PT1H`,
/// `P1D`).
///
/// # Errors
/// A reason naming the expected form.
pub fn minutes_duration(text: &str) -> Result<Duration, String> {
    if MINUTES.is_match(text) {
        duration(text)
    } else {
        Err(format!(
            "must be an ISO-8601 duration of whole minutes such as PT30M, PT1H or P1D, not {:?}",
            clip(text)
        ))
    }
}

/// Parses an ISO-8601 duration of fixed length, of the form [`DURATION_PATTERN`]: `PnW`,
/// `PnD`, `PTnH`, `PTnM`, `PTnS` and combinations (`P1DT12H`). Months and years have no
/// fixed length and are refused.
///
/// # Errors
/// A reason naming the expected form.
pub fn duration(text: &str) -> Result<Duration, String> {
    if !DURATION.is_match(text) {
        return Err(format!(
            "must be an ISO-8601 duration such as PT15M, PT1H or P7D (months and years are not fixed lengths), not {:?}",
            clip(text)
        ));
    }
    let mut total = Duration::zero();
    let mut number: i64 = 0;
    for ch in text.chars().skip(1) {
        match ch {
            '0'..='9' => number = number * 10 + i64::from(u32::from(ch) - u32::from('0')),
            'T' => {}
            unit => {
                total += match unit {
                    'W' => Duration::weeks(number),
                    'D' => Duration::days(number),
                    'H' => Duration::hours(number),
                    'M' => Duration::minutes(number),
                    _ => Duration::seconds(number),
                };
                number = 0;
            }
        }
    }
    Ok(total)
}

/// The ISO-8601 text of a duration in whole seconds (for Genesys' `granularity`).
#[must_use]
pub fn iso_duration(d: Duration) -> String {
    let secs = d.num_seconds();
    if secs % 86_400 == 0 {
        format!("P{}D", secs / 86_400)
    } else if secs % 3_600 == 0 {
        format!("PT{}H", secs / 3_600)
    } else if secs % 60 == 0 {
        format!("PT{}M", secs / 60)
    } else {
        format!("PT{secs}S")
    }
}

/// The interval `last` before `now` floored to `bucket`.
#[must_use]
pub fn relative(last: Duration, now: DateTime<Utc>, bucket: Duration) -> Interval {
    let to = now.duration_trunc(bucket).unwrap_or(now);
    Interval {
        from: to - last,
        to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_fixed_lengths() {
        assert_eq!(duration("PT15M").expect("ok"), Duration::minutes(15));
        assert_eq!(duration("P1DT12H").expect("ok"), Duration::hours(36));
        assert_eq!(duration("P2W").expect("ok"), Duration::days(14));
        for bad in [
            "15m",
            "P1M",
            "P1Y",
            "PT",
            "P",
            "PT0M",
            "P0W",
            "PT01M",
            "P1DT0H",
            "PTM",
            "P1DT",
            "P9999999D",
            " PT15M",
            "PT15M ",
            "P1D1W",
            "PT1M1H",
            "P1D1D",
            "P١D",
            "p1d",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants_are_json_schema_date_times_exactly() {
        assert!(instant("2025-03-11T10:07:42.5+01:00").is_ok());
        assert!(instant("2025-03-11t10:07:42z").is_ok());
        for bad in [
            " 2025-03-11T10:07:42Z",
            "2025-03-11 10:07:42Z",
            "2025-03-11T10:07:42Z ",
        ] {
            assert!(instant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn minute_durations_have_no_seconds() {
        assert_eq!(
            minutes_duration("P1DT1H1M").expect("ok"),
            Duration::minutes(1501)
        );
        assert!(minutes_duration("PT60S").is_err());
        assert!(minutes_duration("PT1M1S").is_err());
    }

    #[test]
    fn relative_intervals_end_on_a_bucket_boundary() {
        let now = instant("2025-03-11T10:07:42Z").expect("time");
        let interval = relative(Duration::minutes(15), now, Duration::minutes(1));
        assert_eq!(
            interval.wire(),
            "2025-03-11T09:52:00.000Z/2025-03-11T10:07:00.000Z"
        );
    }

    #[test]
    fn long_intervals_split_into_bounded_chunks() {
        let interval = Interval {
            from: instant("2025-01-01T00:00:00Z").expect("time"),
            to: instant("2025-04-01T00:00:00Z").expect("time"),
        };
        let chunks = interval.chunks(Duration::days(31));
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].from, interval.from);
        assert_eq!(chunks[2].to, interval.to);
        assert!(chunks.windows(2).all(|w| w[0].to == w[1].from));
    }

    #[test]
    fn day_chunks_break_at_midnights_and_stay_within_the_limit() {
        let interval = Interval {
            from: instant("2025-01-01T13:55:00Z").expect("time"),
            to: instant("2025-02-10T13:55:00Z").expect("time"),
        };
        let chunks = interval.day_chunks(31);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].from, interval.from);
        assert_eq!(chunks[0].to, instant("2025-02-01T00:00:00Z").expect("time"));
        assert_eq!(chunks[1].to, interval.to);
        assert!(chunks.iter().all(|c| c.to - c.from <= Duration::days(31)));
        let short = Interval {
            from: instant("2025-01-01T23:50:00Z").expect("time"),
            to: instant("2025-01-02T00:05:00Z").expect("time"),
        };
        assert_eq!(short.day_chunks(31), vec![short]);
        assert_eq!(short.day_chunks(1).len(), 2);
        assert!(!short.is_whole_days());
        assert!(chunks[0].to == day_start(chunks[0].to));
    }

    #[test]
    fn iso_durations_round_trip() {
        for text in ["PT30M", "PT1H", "P1D", "PT45S"] {
            assert_eq!(iso_duration(duration(text).expect("ok")), text);
        }
    }
}
