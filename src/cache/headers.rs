//! The cache headers of an answer served from the cache: `Cache-Control`, `Age` and the
//! RFC 9211 `Cache-Status`. They change once a second at most, so an entry keeps the
//! values of its latest hit ([`HitHeaders`]) and the next hit in the same second reuses
//! them instead of formatting three values again.
//!
//! `max-age` and `Age` are a pair, read the way RFC 9111 §4.2 reads them: a cache takes
//! `max-age` as the freshness lifetime and `Age` as the time already spent, and the copy
//! is fresh while the lifetime exceeds the age. So `max-age` is the entry's whole
//! lifetime (from the fetch to `fresh_until`, the same in every answer from the entry)
//! and `Age` the time since the fetch: what a browser or an intermediary then computes
//! as left is what the proxy has left. (The other consistent pair, `max-age` = what is
//! left and no `Age`, would hide how old the data is, which clients of a cache in front
//! of Genesys want to know; DESIGN.md asks for `Age`.) `Age` is rounded *up* to whole
//! seconds, so no cache downstream takes a copy for younger than it is, and in every
//! answer `max-age` minus `Age` equals the whole seconds of freshness left, the `ttl`
//! of `Cache-Status`. A stale answer (served while revalidating, or because Genesys
//! failed) carries an `Age` past its `max-age`, so caches downstream see it as stale.
//! The proxy must not write a `max-age` that counts down: caches would subtract `Age`
//! from it a second time.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use tokio::time::Instant;

use super::{CacheStatus, Cached};

const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The three values, and the `Age` and `ttl` they were made for (an entry's `max-age`
/// never changes).
#[derive(Debug, Clone)]
struct Formatted {
    age_secs: u64,
    ttl: i64,
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

/// Whole seconds, rounded up: an `Age` never understates the time since the fetch.
fn ceil_secs(elapsed: Duration) -> u64 {
    elapsed.as_secs() + u64::from(elapsed.subsec_nanos() > 0)
}

/// The `Cache-Status` of a fresh hit whose data Genesys pushed (a notification updated
/// it after its fetch), around its `ttl`.
const PUSHED: (&str, &str) = ("genesys-proxy; hit; ttl=", "; detail=pushed");

/// Sets `Cache-Control`, `Age` and `Cache-Status` for an answer from `entry` served as
/// `status`; `memo` (the entry's) serves hits.
pub fn insert<V>(
    entry: &Cached<V>,
    status: CacheStatus,
    memo: Option<&HitHeaders>,
    headers: &mut HeaderMap,
) {
    let memo = memo.filter(|_| status == CacheStatus::Hit);
    write(entry, status.header_parts(), memo, headers);
}

/// As [`insert`] for a fresh hit of an entry a Genesys notification updated:
/// `Cache-Status: genesys-proxy; hit; ttl=N; detail=pushed`, `Age` counted from the
/// update. A pushed entry's answers are all of this kind, so the memo serves them.
pub fn insert_pushed<V>(entry: &Cached<V>, memo: Option<&HitHeaders>, headers: &mut HeaderMap) {
    write(entry, PUSHED, memo, headers);
}

fn write<V>(
    entry: &Cached<V>,
    (before, after): (&str, &str),
    memo: Option<&HitHeaders>,
    headers: &mut HeaderMap,
) {
    let now = Instant::now();
    let age_secs = ceil_secs(now.saturating_duration_since(entry.fetched_at));
    let fresh_secs = entry.fresh_secs(now);
    let ttl = if fresh_secs == 0 {
        -i64::try_from(now.saturating_duration_since(entry.fresh_until).as_secs()).unwrap_or(0)
    } else {
        i64::try_from(fresh_secs).unwrap_or(i64::MAX)
    };
    if let Some(HitHeaders(slot)) = memo {
        // `try_lock`: hits of one entry on other threads never wait for each other; a hit
        // that finds the memo busy formats its own values.
        let known = slot.try_lock().ok().and_then(|slot| {
            slot.as_ref()
                .filter(|f| f.age_secs == age_secs && f.ttl == ttl)
                .map(|f| f.values.clone())
        });
        if let Some(values) = known {
            put(headers, values);
            return;
        }
    }
    let lifetime_secs = entry
        .fresh_until
        .saturating_duration_since(entry.fetched_at)
        .as_secs();
    let (Some(cache_control), Some(age), Some(cache_status)) = (
        value(format_args!("private, max-age={lifetime_secs}")),
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
                age_secs,
                ttl,
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

    /// What an RFC 9111 cache receiving `headers` at once takes as left: the freshness
    /// lifetime (`max-age`, §4.2.1) minus the current age (`Age` plus a response delay
    /// of zero, §4.2.3), and whether the copy is fresh (lifetime > age, §4.2). The
    /// proxy's own whole seconds left must be the same.
    fn rfc9111_freshness_left([cache_control, age, _]: &[String; 3]) -> (u64, bool) {
        let max_age: u64 = cache_control
            .strip_prefix("private, max-age=")
            .expect("max-age")
            .parse()
            .expect("delta-seconds");
        let age: u64 = age.parse().expect("delta-seconds");
        (max_age.saturating_sub(age), max_age > age)
    }

    #[tokio::test(start_paused = true)]
    async fn an_rfc9111_cache_computes_the_freshness_the_proxy_has_left() {
        let lifetime = Duration::from_secs(60);
        for age_ms in [
            0, 1, 400, 1_000, 10_500, 30_000, 59_001, 59_999, 60_000, 75_250,
        ] {
            let cached = entry(lifetime, Duration::from_millis(age_ms));
            let proxy_left = cached.fresh_secs(Instant::now());
            for status in [CacheStatus::Hit, CacheStatus::Miss, CacheStatus::Collapsed] {
                let written = written(&cached, status, None);
                assert_eq!(
                    rfc9111_freshness_left(&written),
                    (proxy_left, proxy_left > 0),
                    "fetched {age_ms} ms ago, answered as {status:?}: {written:?}"
                );
                assert_eq!(
                    written[0], "private, max-age=60",
                    "the lifetime, every time"
                );
                let ttl = written[2].rsplit("ttl=").next().expect("ttl");
                if proxy_left > 0 {
                    assert_eq!(ttl, proxy_left.to_string(), "Cache-Status agrees");
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_answers_with_one_max_age_while_its_age_grows() {
        let cached = entry(Duration::from_secs(30), Duration::ZERO);
        let memo = HitHeaders::default();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(written(&cached, CacheStatus::Hit, Some(&memo)));
            tokio::time::advance(Duration::from_millis(7_300)).await;
        }
        let pairs: Vec<(&str, &str)> = seen.iter().map(|w| (&*w[0], &*w[1])).collect();
        assert_eq!(
            pairs,
            [
                ("private, max-age=30", "0"),
                ("private, max-age=30", "8"),
                ("private, max-age=30", "15"),
                ("private, max-age=30", "22"),
            ]
        );
        let ttls: Vec<&str> = seen.iter().map(|w| &*w[2]).collect();
        assert_eq!(
            ttls,
            [
                "genesys-proxy; hit; ttl=30",
                "genesys-proxy; hit; ttl=22",
                "genesys-proxy; hit; ttl=15",
                "genesys-proxy; hit; ttl=8",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn values_follow_the_entry_and_the_status() {
        let fresh = entry(Duration::from_secs(60), Duration::from_millis(10_500));
        assert_eq!(
            written(&fresh, CacheStatus::Hit, None),
            ["private, max-age=60", "11", "genesys-proxy; hit; ttl=49"]
        );
        let stale = entry(Duration::from_secs(5), Duration::from_millis(8_500));
        assert_eq!(
            written(&stale, CacheStatus::StaleIfError, None),
            [
                "private, max-age=5",
                "9",
                "genesys-proxy; hit; ttl=-3; detail=stale-if-error"
            ]
        );
        assert_eq!(
            written(&stale, CacheStatus::Collapsed, None)[2],
            "genesys-proxy; fwd=miss; collapsed; ttl=-3"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hit_in_the_same_second_reuses_the_memo_and_other_answers_never_do() {
        let memo = HitHeaders::default();
        let fresh = entry(Duration::from_secs(3600), Duration::from_millis(500));
        let first = written(&fresh, CacheStatus::Hit, Some(&memo));
        assert_eq!(first, written(&fresh, CacheStatus::Hit, Some(&memo)));
        let kept = memo.0.lock().expect("lock").clone().expect("filled");
        assert_eq!((kept.age_secs, kept.ttl), (1, 3599));
        // A miss or a stale answer is formatted for itself, whatever the memo holds.
        assert_eq!(
            written(&fresh, CacheStatus::Miss, Some(&memo))[2],
            "genesys-proxy; fwd=miss; stored; ttl=3599"
        );
        // A later second is formatted anew.
        let older = entry(Duration::from_secs(3600), Duration::from_millis(2_500));
        assert_eq!(written(&older, CacheStatus::Hit, Some(&memo))[1], "3");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pushed_hit_says_so_and_counts_its_age_from_the_update() {
        let pushed = entry(Duration::from_secs(300), Duration::from_millis(1_200));
        let memo = HitHeaders::default();
        let mut headers = HeaderMap::new();
        insert_pushed(&pushed, Some(&memo), &mut headers);
        assert_eq!(
            headers["cache-status"],
            "genesys-proxy; hit; ttl=298; detail=pushed"
        );
        assert_eq!(headers["age"], "2");
        // A later plain hit of another entry in the same second is not answered from it.
        assert_eq!(
            written(&pushed, CacheStatus::Miss, Some(&memo))[2],
            "genesys-proxy; fwd=miss; stored; ttl=298"
        );
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
