//! ISO-8601 intervals (`start/end`) and periods (`PT30M`, `P1D`) as analytics queries use
//! them.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use crate::error_body::ApiError;

/// A half-open time range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    // Genesys' own example omits the zone ("YYYY-MM-DDThh:mm:ss"): read it as UTC.
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}

impl Interval {
    /// Parses `field`'s value `start/end`; the end must follow the start.
    ///
    /// # Errors
    /// A 400 ErrorBody (`invalid.date` or `bad.request`) naming `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::bad_field(
                "invalid.date",
                field,
                format!(
                    "Dates must be specified as ISO-8601 strings. For example: yyyy-MM-ddTHH:mm:ss.SSSZ/yyyy-MM-ddTHH:mm:ss.SSSZ; {field} was [{text}]"
                ),
            )
        };
        let (start, end) = text.split_once('/').ok_or_else(invalid)?;
        let start = instant(start).ok_or_else(invalid)?;
        let end = instant(end).ok_or_else(invalid)?;
        if end <= start {
            return Err(ApiError::bad_field(
                "bad.request",
                field,
                format!("{field} [{text}] ends before it starts"),
            ));
        }
        Ok(Self { start, end })
    }

    /// Length of the interval.
    #[must_use]
    pub fn span(&self) -> Duration {
        self.end - self.start
    }

    /// Whether `at` lies in `[start, end)`.
    #[must_use]
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    /// The interval widened to whole UTC days (start floored, end ceiled).
    #[must_use]
    pub fn whole_days(&self) -> Self {
        let floor = |at: DateTime<Utc>| {
            at.date_naive()
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
        };
        let end_floor = floor(self.end);
        Self {
            start: floor(self.start),
            end: if end_floor == self.end {
                end_floor
            } else {
                end_floor + Duration::days(1)
            },
        }
    }

    /// The interval in Genesys' wire form.
    #[must_use]
    pub fn wire(&self) -> String {
        format!(
            "{}/{}",
            crate::render::format_time(self.start),
            crate::render::format_time(self.end)
        )
    }
}

/// Parses an ISO-8601 period of fixed length (`PnW`, `PnD`, `PTnHnMnS`). Months and years
/// have no fixed length and are refused.
///
/// # Errors
/// A 400 ErrorBody naming `field`.
pub fn period(field: &str, text: &str) -> Result<Duration, ApiError> {
    let invalid = || {
        ApiError::bad_field(
            "invalid.value",
            field,
            format!("{field} [{text}] is not an ISO-8601 period such as PT30M or P1D"),
        )
    };
    let rest = text.strip_prefix('P').ok_or_else(invalid)?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    if rest.is_empty() || (rest.contains('T') && time.is_empty()) {
        return Err(invalid());
    }
    let mut total = Duration::zero();
    for (part, units) in [(date, "WD"), (time, "HMS")] {
        let mut number = String::new();
        for ch in part.chars() {
            if ch.is_ascii_digit() {
                number.push(ch);
                continue;
            }
            let value: i64 = number.parse().map_err(|_| invalid())?;
            number.clear();
            if !units.contains(ch) {
                return Err(invalid());
            }
            total += match ch {
                'W' => Duration::weeks(value),
                'D' => Duration::days(value),
                'H' => Duration::hours(value),
                'M' => Duration::minutes(value),
                _ => Duration::seconds(value),
            };
        }
        if !number.is_empty() {
            return Err(invalid());
        }
    }
    if total <= Duration::zero() {
        return Err(invalid());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_and_without_zone() {
        let a = Interval::parse(
            "interval",
            "2025-03-11T00:00:00.000Z/2025-03-12T00:00:00.000Z",
        )
        .expect("valid");
        let b =
            Interval::parse("interval", "2025-03-11T00:00:00/2025-03-12T00:00:00").expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.span(), Duration::days(1));
    }

    #[test]
    fn bad_intervals_name_the_field() {
        for text in [
            "yesterday",
            "2025-03-12T00:00:00Z",
            "2025-03-12T00:00:00Z/2025-03-11T00:00:00Z",
        ] {
            let error = Interval::parse("interval", text).expect_err("invalid");
            assert_eq!(error.details[0].field_name, "interval");
        }
    }

    #[test]
    fn whole_days_widen_to_midnights() {
        let i = Interval::parse("i", "2025-03-11T10:00:00Z/2025-03-12T01:00:00Z").expect("valid");
        assert_eq!(
            i.whole_days().wire(),
            "2025-03-11T00:00:00.000Z/2025-03-13T00:00:00.000Z"
        );
    }

    #[test]
    fn periods_parse_fixed_lengths_only() {
        assert_eq!(period("g", "PT30M").expect("valid"), Duration::minutes(30));
        assert_eq!(period("g", "P1DT1H").expect("valid"), Duration::hours(25));
        assert_eq!(period("g", "P1W").expect("valid"), Duration::days(7));
        for bad in ["P1M", "30M", "PT", "P", "PT0S", "PTxM"] {
            assert!(period("g", bad).is_err(), "{bad} should be refused");
        }
    }
}
