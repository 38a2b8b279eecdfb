//! The cache headers of an answer served from the cache: `Cache-Control`, `Age` and the
//! RFC 9211 `Cache-Status`. They change once a second at most, so an entry keeps the
//! values of its latest hit ([`HitHeaders`]) and the next hit in the same second reuses
//! them instead of formatting three values again.

use std::sync::Mutex;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use tokio::time::Instant;

use super::{CacheStatus, Cached};

const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The three values, and the whole seconds they were made for.
#[derive(Debug, Clone)]
struct Formatted {
    fresh_secs: u64,
    age_secs: u64,
    values: [HeaderValue; 3],
}

/// The cache header values of an entry's latest hit, reused for hits in the same second.
#[derive(Debug, Default)]
pub struct HitHeaders(Mutex<Option<Box<Formatted>>>);

impl Clone for HitHeaders {
    /// A copy starts empty (it is only a memo).
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Sets `Cache-Control`, `Age` and `Cache-Status` for an answer from `entry` served as
/// `status`; `memo` (the entry's) serves hits.
pub fn insert<V>(
    entry: &Cached<V>,
    status: CacheStatus,
    memo: Option<&HitHeaders>,
    headers: &mut HeaderMap,
) {
    let now = Instant::now();
    let (fresh_secs, age_secs) = (entry.fresh_secs(now), entry.age_secs(now));
    let memo = memo.filter(|_| status == CacheStatus::Hit);
    if let Some(HitHeaders(slot)) = memo {
        // `try_lock`: hits of one entry on other threads never wait for each other; a hit
        // that finds the memo busy formats its own values.
        let known = slot.try_lock().ok().and_then(|slot| {
            slot.as_ref()
                .filter(|f| f.fresh_secs == fresh_secs && f.age_secs == age_secs)
                .map(|f| f.values.clone())
        });
        if let Some(values) = known {
            put(headers, values);
            return;
        }
    }
    let ttl = if fresh_secs == 0 {
        -i64::try_from(now.saturating_duration_since(entry.fresh_until).as_secs()).unwrap_or(0)
    } else {
        i64::try_from(fresh_secs).unwrap_or(i64::MAX)
    };
    let (before, after) = status.header_parts();
    let (Some(cache_control), Some(age), Some(cache_status)) = (
        value(format_args!("private, max-age={fresh_secs}")),
        value(format_args!("{age_secs}")),
        value(format_args!("{before}{ttl}{after}")),
    ) else {
        return;
    };
    let values = [cache_control, age, cache_status];
    if let Some(HitHeaders(slot)) = memo {
        // Busy: another hit is storing the same second's values; nothing to wait for.
        if let Ok(mut slot) = slot.try_lock() {
            *slot = Some(Box::new(Formatted {
                fresh_secs,
                age_secs,
                values: values.clone(),
            }));
        }
    }
    put(headers, values);
}

fn put(headers: &mut HeaderMap, [cache_control, age, cache_status]: [HeaderValue; 3]) {
    headers.insert(header::CACHE_CONTROL, cache_control);
    headers.insert(header::AGE, age);
    headers.insert(CACHE_STATUS, cache_status);
}

/// A header value formatted on the stack: one allocation (the value itself) instead of a
/// `String` that grows and is then copied.
fn value(text: std::fmt::Arguments<'_>) -> Option<HeaderValue> {
    struct StackText {
        bytes: [u8; 96],
        len: usize,
    }
    impl std::fmt::Write for StackText {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            self.bytes
                .get_mut(self.len..end)
                .ok_or(std::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut out = StackText {
        bytes: [0; 96],
        len: 0,
    };
    std::fmt::write(&mut out, text).ok()?;
    HeaderValue::from_bytes(&out.bytes[..out.len]).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(fresh_for: Duration, age: Duration) -> Cached<()> {
        let now = Instant::now();
        Cached {
            value: (),
            fetched_at: now - age,
            fresh_until: now - age + fresh_for,
            stale_until: now - age + fresh_for + Duration::from_secs(60),
        }
    }

    fn written(entry: &Cached<()>, status: CacheStatus, memo: Option<&HitHeaders>) -> [String; 3] {
        let mut headers = HeaderMap::new();
        insert(entry, status, memo, &mut headers);
        ["cache-control", "age", "cache-status"]
            .map(|name| headers[name].to_str().expect("ascii").to_owned())
    }

    #[test]
    fn values_follow_the_entry_and_the_status() {
        let fresh = entry(Duration::from_secs(60), Duration::from_millis(10_500));
        assert_eq!(
            written(&fresh, CacheStatus::Hit, None),
            ["private, max-age=49", "10", "genesys-proxy; hit; ttl=49"]
        );
        let stale = entry(Duration::from_secs(5), Duration::from_millis(8_500));
        assert_eq!(
            written(&stale, CacheStatus::StaleIfError, None),
            [
                "private, max-age=0",
                "8",
                "genesys-proxy; hit; ttl=-3; detail=stale-if-error"
            ]
        );
        assert_eq!(
            written(&stale, CacheStatus::Collapsed, None)[2],
            "genesys-proxy; fwd=miss; collapsed; ttl=-3"
        );
    }

    #[test]
    fn a_hit_in_the_same_second_reuses_the_memo_and_other_answers_never_do() {
        let memo = HitHeaders::default();
        let fresh = entry(Duration::from_secs(3600), Duration::from_millis(500));
        let first = written(&fresh, CacheStatus::Hit, Some(&memo));
        assert_eq!(first, written(&fresh, CacheStatus::Hit, Some(&memo)));
        let kept = memo.0.lock().expect("lock").clone().expect("filled");
        assert_eq!((kept.fresh_secs, kept.age_secs), (3599, 0));
        // A miss or a stale answer is formatted for itself, whatever the memo holds.
        assert_eq!(
            written(&fresh, CacheStatus::Miss, Some(&memo))[2],
            "genesys-proxy; fwd=miss; stored; ttl=3599"
        );
        // A later second is formatted anew.
        let older = entry(Duration::from_secs(3600), Duration::from_millis(2_500));
        assert_eq!(written(&older, CacheStatus::Hit, Some(&memo))[1], "2");
    }

    #[test]
    fn values_are_formatted_whole_or_not_at_all() {
        assert_eq!(
            value(format_args!("private, max-age={}", u64::MAX)).expect("fits"),
            "private, max-age=18446744073709551615"
        );
        assert!(value(format_args!("{}", "x".repeat(97))).is_none());
    }
}
