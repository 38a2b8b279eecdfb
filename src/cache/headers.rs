//! The cache headers of an answer served from the cache: `Cache-Control`, `Age` and the
//! RFC 9211 `Cache-Status`. They change once a second at most, so an entry keeps the
//! values of its latest hit ([`HitHeaders`]) and the next hit in the same second reuses
//! them instead of formatting three values again. A fresh hit answered early (the hit
//! path) goes further: the memo keeps that answer's whole header block
//! ([`hit_block`]), and the next hits in the same second clone it instead of inserting
//! each header (hashing its name) again.
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

/// The three values, the `Age` and `ttl` they were made for (an entry's `max-age` never
/// changes) and whether for a pushed hit; with them, the header block of a fresh hit's
/// answer made of them ([`hit_block`]).
#[derive(Debug, Clone)]
struct Formatted {
    age_secs: u64,
    ttl: i64,
    pushed: bool,
    values: [HeaderValue; 3],
    block: Option<HitBlock>,
}

/// A fresh hit's header block, for one kind of answer (as the caller of [`hit_block`]
/// numbers them), and the times it is right for: from the time it was made for to the
/// last instant with the same `Age` and `ttl` (both move monotonically, so they are the
/// same at every time in between).
#[derive(Debug, Clone)]
struct HitBlock {
    kind: u8,
    from: Instant,
    until: Instant,
    headers: HeaderMap,
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

/// The whole header block of a fresh hit's answer from `entry` at `now` (`pushed`: a
/// hit of pushed data, as [`insert_pushed`] answers it), for the kind of answer `kind`:
/// the memo's copy when it was made for the same `kind`, `Age` and `ttl` (checked by
/// comparing `now` with the times it is right for: no time arithmetic); else the block
/// `build` makes around the cache header values it is given (see [`put`]), which the
/// memo then keeps. `None` if a value cannot be formatted (it always can).
pub fn hit_block<V>(
    entry: &Cached<V>,
    pushed: bool,
    HitHeaders(memo): &HitHeaders,
    kind: u8,
    now: Instant,
    build: impl FnOnce([HeaderValue; 3]) -> HeaderMap,
) -> Option<HeaderMap> {
    // `try_lock`, as in `write`: a hit that finds the memo busy makes its own block.
    let mut slot = memo.try_lock().ok();
    let formatted = slot.as_deref().and_then(Option::as_deref);
    if let Some(block) = formatted
        .and_then(|f| f.block.as_ref())
        .filter(|b| b.kind == kind && b.from <= now && now <= b.until)
    {
        return Some(block.headers.clone());
    }
    let (age_secs, ttl) = age_and_ttl(entry, now);
    let parts = if pushed {
        PUSHED
    } else {
        CacheStatus::Hit.header_parts()
    };
    let (values, _) = memo_or_format(entry, formatted, parts, age_secs, ttl)?;
    let headers = build(values.clone());
    if let Some(slot) = slot.as_deref_mut() {
        let block = right_until(entry, age_secs, ttl).map(|until| HitBlock {
            kind,
            from: now,
            until,
            headers: headers.clone(),
        });
        *slot = Some(Box::new(Formatted {
            age_secs,
            ttl,
            pushed,
            values,
            block,
        }));
    }
    Some(headers)
}

/// The last instant at which an answer from `entry` has the `Age` `age_secs` and the
/// `ttl` `ttl` it has now (`None` for a `ttl` under 1: the last second of freshness, not
/// worth a block). `Age` is rounded up: it is `age_secs` until `fetched_at + age_secs`
/// inclusive, then grows; `ttl` is rounded down: it is `ttl` until `fresh_until - ttl`
/// inclusive, then shrinks.
fn right_until<V>(entry: &Cached<V>, age_secs: u64, ttl: i64) -> Option<Instant> {
    let ttl = u64::try_from(ttl).ok().filter(|&ttl| ttl > 0)?;
    let age_ends = entry
        .fetched_at
        .checked_add(Duration::from_secs(age_secs))?;
    let ttl_ends = entry.fresh_until.checked_sub(Duration::from_secs(ttl))?;
    Some(age_ends.min(ttl_ends))
}

/// The `Age` of an answer from `entry` at `now`, and the `ttl` of its `Cache-Status`.
fn age_and_ttl<V>(entry: &Cached<V>, now: Instant) -> (u64, i64) {
    let age_secs = ceil_secs(now.saturating_duration_since(entry.fetched_at));
    let fresh_secs = entry.fresh_secs(now);
    let ttl = if fresh_secs == 0 {
        -i64::try_from(now.saturating_duration_since(entry.fresh_until).as_secs()).unwrap_or(0)
    } else {
        i64::try_from(fresh_secs).unwrap_or(i64::MAX)
    };
    (age_secs, ttl)
}

/// `Cache-Control`, `Age` and `Cache-Status` (`before` and `after` the `ttl`).
fn format<V>(
    entry: &Cached<V>,
    (before, after): (&str, &str),
    age_secs: u64,
    ttl: i64,
) -> Option<[HeaderValue; 3]> {
    let lifetime_secs = entry
        .fresh_until
        .saturating_duration_since(entry.fetched_at)
        .as_secs();
    Some([
        value(format_args!("private, max-age={lifetime_secs}"))?,
        value(format_args!("{age_secs}"))?,
        value(format_args!("{before}{ttl}{after}"))?,
    ])
}

/// The three values of an answer with `parts` at `age_secs` and `ttl`: those `known` (the
/// memo's) when they were made for the same, else formatted now (then `true`: worth
/// keeping in the memo).
fn memo_or_format<V>(
    entry: &Cached<V>,
    known: Option<&Formatted>,
    parts: (&str, &str),
    age_secs: u64,
    ttl: i64,
) -> Option<([HeaderValue; 3], bool)> {
    let pushed = parts == PUSHED;
    match known.filter(|f| f.age_secs == age_secs && f.ttl == ttl && f.pushed == pushed) {
        Some(known) => Some((known.values.clone(), false)),
        None => Some((format(entry, parts, age_secs, ttl)?, true)),
    }
}

fn write<V>(
    entry: &Cached<V>,
    parts: (&str, &str),
    memo: Option<&HitHeaders>,
    headers: &mut HeaderMap,
) {
    let (age_secs, ttl) = age_and_ttl(entry, Instant::now());
    // `try_lock`: hits of one entry on other threads never wait for each other; a hit
    // that finds the memo busy formats its own values (and leaves the memo as it is).
    let mut slot = memo.and_then(|HitHeaders(slot)| slot.try_lock().ok());
    let known = slot.as_deref().and_then(Option::as_deref);
    let Some((values, made)) = memo_or_format(entry, known, parts, age_secs, ttl) else {
        return;
    };
    if let Some(slot) = slot.as_deref_mut().filter(|_| made) {
        *slot = Some(Box::new(Formatted {
            age_secs,
            ttl,
            pushed: parts == PUSHED,
            values: values.clone(),
            block: None,
        }));
    }
    put(headers, values);
}

/// Inserts the three values (as [`format`] makes them) into `headers`.
pub fn put(headers: &mut HeaderMap, [cache_control, age, cache_status]: [HeaderValue; 3]) {
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

    #[tokio::test(start_paused = true)]
    async fn a_hit_block_is_made_once_a_second_per_kind_and_carries_the_hit_values() {
        let memo = HitHeaders::default();
        let fresh = entry(Duration::from_secs(60), Duration::from_millis(500));
        let builds = std::cell::Cell::new(0);
        let block = |kind: u8| {
            hit_block(&fresh, false, &memo, kind, Instant::now(), |values| {
                builds.set(builds.get() + 1);
                let mut block = HeaderMap::new();
                block.insert(header::ETAG, HeaderValue::from(u16::from(kind)));
                put(&mut block, values);
                block
            })
            .expect("formatted")
        };
        let first = block(0);
        let mut plain = HeaderMap::new();
        insert(&fresh, CacheStatus::Hit, None, &mut plain);
        for name in ["cache-control", "age", "cache-status"] {
            assert_eq!(first[name], plain[name], "{name} as a plain hit's");
        }
        assert_eq!(first["etag"], "0");
        assert_eq!(block(0), first);
        assert_eq!(builds.get(), 1, "reused within the second");
        assert_eq!(block(1)["etag"], "1", "another kind is built anew");
        assert_eq!(block(0)["etag"], "0");
        assert_eq!(builds.get(), 3);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(block(0)["age"], "2");
        assert_eq!(builds.get(), 4, "a new second, a new block");
        // A pushed hit's block says so.
        let pushed = hit_block(
            &fresh,
            true,
            &HitHeaders::default(),
            0,
            Instant::now(),
            |values| {
                let mut block = HeaderMap::new();
                put(&mut block, values);
                block
            },
        )
        .expect("formatted");
        assert_eq!(
            pushed["cache-status"],
            "genesys-proxy; hit; ttl=58; detail=pushed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hit_block_is_reused_only_while_its_age_and_ttl_hold() {
        // `Age` changes at each whole second after the fetch, `ttl` at each whole second
        // before the end of freshness: at different instants unless the lifetime is whole.
        for (fresh_ms, age_ms) in [(60_000, 250), (10_000, 0), (5_500, 1_000), (3_000, 999)] {
            let memo = HitHeaders::default();
            let cached = entry(
                Duration::from_millis(fresh_ms),
                Duration::from_millis(age_ms),
            );
            // Steps of 125 ms, and 1 ns either side of each whole second since the fetch
            // and of each whole second before the end of freshness.
            let start = Instant::now();
            let mut times: Vec<Instant> = (0..80)
                .map(|i| start + Duration::from_millis(125 * i))
                .collect();
            for s in 0..12 {
                let second = Duration::from_secs(s);
                for edge in [
                    cached.fetched_at + second,
                    cached.fresh_until.checked_sub(second).expect("after start"),
                ] {
                    for at in [
                        edge - Duration::from_nanos(1),
                        edge,
                        edge + Duration::from_nanos(1),
                    ] {
                        if at >= start {
                            times.push(at);
                        }
                    }
                }
            }
            times.sort();
            let (mut builds, mut pairs) = (0, std::collections::BTreeSet::new());
            for at in times.into_iter().filter(|&at| at < cached.fresh_until) {
                tokio::time::advance(at.saturating_duration_since(Instant::now())).await;
                assert_eq!(Instant::now(), at);
                let built = std::cell::Cell::new(false);
                let block = hit_block(&cached, false, &memo, 0, at, |values| {
                    built.set(true);
                    let mut block = HeaderMap::new();
                    put(&mut block, values);
                    block
                })
                .expect("formatted");
                let mut plain = HeaderMap::new();
                insert(&cached, CacheStatus::Hit, None, &mut plain);
                assert_eq!(
                    block, plain,
                    "{fresh_ms} ms fresh, {age_ms} ms old, at {at:?}"
                );
                // Outside the last second of freshness, a block is made once per pair.
                if cached.fresh_secs(at) >= 1 {
                    builds += usize::from(built.get());
                    pairs.insert((plain["age"].clone(), plain["cache-status"].clone()));
                }
            }
            assert_eq!(builds, pairs.len(), "{fresh_ms} ms fresh, {age_ms} ms old");
            assert!(pairs.len() >= 2, "boundaries were crossed: {pairs:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hit_block_made_later_is_not_served_to_an_earlier_hit() {
        let memo = HitHeaders::default();
        let cached = entry(Duration::from_secs(60), Duration::from_millis(900));
        let earlier = Instant::now();
        tokio::time::advance(Duration::from_millis(200)).await;
        let make = |at| {
            hit_block(&cached, false, &memo, 0, at, |values| {
                let mut block = HeaderMap::new();
                put(&mut block, values);
                block
            })
            .expect("formatted")
        };
        assert_eq!(make(Instant::now())["age"], "2");
        // A hit that arrived before the second ticked (answered after) says so.
        assert_eq!(make(earlier)["age"], "1");
        assert_eq!(make(Instant::now())["age"], "2");
    }

    #[tokio::test(start_paused = true)]
    async fn memoised_values_of_a_pushed_hit_are_not_reused_for_a_plain_one() {
        let memo = HitHeaders::default();
        let cached = entry(Duration::from_secs(60), Duration::from_millis(500));
        let mut headers = HeaderMap::new();
        insert_pushed(&cached, Some(&memo), &mut headers);
        assert!(
            headers["cache-status"]
                .to_str()
                .expect("ascii")
                .ends_with("pushed")
        );
        assert_eq!(
            written(&cached, CacheStatus::Hit, Some(&memo))[2],
            "genesys-proxy; hit; ttl=59"
        );
        let block = hit_block(&cached, false, &memo, 0, Instant::now(), |values| {
            let mut block = HeaderMap::new();
            put(&mut block, values);
            block
        })
        .expect("formatted");
        assert_eq!(block["cache-status"], "genesys-proxy; hit; ttl=59");
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
