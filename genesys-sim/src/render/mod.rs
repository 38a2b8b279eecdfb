//! Renders a [`ConversationRecord`](crate::data::ConversationRecord) as Genesys would show
//! it at a given instant: the real-time `Conversation` document and the analytics
//! `AnalyticsConversationWithoutAttributes` record. What has not happened yet at that
//! instant (a later participant, an end time, a metric) is simply absent.

pub mod analytics;
pub mod flat;
pub mod json;
pub mod realtime;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The pattern of [`format_time`], in chrono's terms.
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Genesys' timestamp format: RFC 3339, UTC, milliseconds, `Z`
/// (`2025-03-12T09:30:00.000Z`). Written digit by digit: responses carry dozens of
/// timestamps per conversation, and chrono's general formatter is slow in debug builds.
#[must_use]
pub fn format_time(at: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(24);
    write_time(&mut out, at);
    out
}

/// Appends [`format_time`]'s text to `out`.
pub fn write_time(out: &mut String, at: DateTime<Utc>) {
    let naive = at.naive_utc();
    let year = naive.year();
    let Some(year) = u32::try_from(year).ok().filter(|&y| y <= 9999) else {
        out.push_str(&at.format(TIME_FORMAT).to_string());
        return;
    };
    // As chrono prints them: a leap second reads as second 60.
    let nanos = naive.nanosecond();
    let second = naive.second() + nanos / 1_000_000_000;
    let millis = (nanos % 1_000_000_000) / 1_000_000;
    let mut text = *b"0000-00-00T00:00:00.000Z";
    for (at, width, value) in [
        (0, 4, year),
        (5, 2, naive.month()),
        (8, 2, naive.day()),
        (11, 2, naive.hour()),
        (14, 2, naive.minute()),
        (17, 2, second),
        (20, 3, millis),
    ] {
        let mut value = value;
        for digit in text[at..at + width].iter_mut().rev() {
            {
                *digit = b'0' + (value % 10) as u8;
            }
            value /= 10;
        }
    }
    out.push_str(std::str::from_utf8(&text).expect("digits and separators are ASCII"));
}

/// serde helpers writing timestamps in [`format_time`]'s form.
pub mod timestamp {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    /// Serializes a timestamp.
    pub fn required<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*at))
    }

    /// Serializes an optional timestamp (use with `skip_serializing_if = "Option::is_none"`).
    pub fn optional<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => required(at, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, NaiveDate};

    use super::*;

    #[test]
    fn timestamps_read_as_chrono_prints_them() {
        let mut at = DateTime::parse_from_rfc3339("1999-12-31T23:59:58.987654Z")
            .expect("valid")
            .with_timezone(&Utc);
        for _ in 0..2_000 {
            assert_eq!(format_time(at), at.format(TIME_FORMAT).to_string());
            at += Duration::microseconds(7_919_113_457);
        }
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_250))
            .expect("a leap second")
            .and_utc();
        assert_eq!(format_time(leap), "2016-12-31T23:59:60.250Z");
        let far = NaiveDate::from_ymd_opt(12_345, 1, 2)
            .and_then(|d| d.and_hms_opt(3, 4, 5))
            .expect("valid")
            .and_utc();
        assert_eq!(format_time(far), far.format(TIME_FORMAT).to_string());
    }
}
