//! The walk against an in-memory upstream that answers details queries as Genesys
//! documents (whole touched UTC days) or exactly, and counts the distinct pages it was asked
//! for (the proxy caches pages, so a page read twice costs once).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::reports::cursor::{MAX_TIE_IDS, walk_settings};
use crate::upstream::models::AnalyticsConversation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matching {
    TouchedDay,
    Exact,
}

#[derive(Debug)]
struct FakeUpstream {
    /// (start, id), sorted by start then id.
    /// (start, id) sorted by (start, id), and by (start descending, id) as the simulator
    /// sorts; more may arrive during a walk.
    lists: Mutex<(Vec<Record>, Vec<Record>)>,
    matching: Matching,
    page_size: u32,
    asked: Mutex<HashSet<(String, u32)>>,
}

type Record = (DateTime<Utc>, String);

const UNUSABLE: &str = "unusable-";

fn sorted_both_ways(records: &[Record]) -> (Vec<Record>, Vec<Record>) {
    let mut asc = records.to_vec();
    asc.sort();
    let mut desc = records.to_vec();
    desc.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    (asc, desc)
}

impl FakeUpstream {
    /// Conversations that arrive now.
    fn arrive(&self, more: &[Record]) {
        let mut lists = self.lists.lock().expect("lock");
        let mut all = lists.0.clone();
        all.extend_from_slice(more);
        *lists = sorted_both_ways(&all);
    }

    fn distinct_pages(&self) -> usize {
        self.asked.lock().expect("lock").len()
    }

    fn answer(&self, chunk: &Interval, order: Order, number: u32) -> DetailsResponse {
        let (from, to) = match self.matching {
            Matching::Exact => (chunk.from, chunk.to),
            Matching::TouchedDay => {
                let days = touched_days(chunk);
                (days.from, days.to)
            }
        };
        let lists = self.lists.lock().expect("lock");
        let (list, range) = match order {
            Order::Asc => {
                let lo = lists.0.partition_point(|(start, _)| *start < from);
                let hi = lists.0.partition_point(|(start, _)| *start < to);
                (&lists.0, lo..hi)
            }
            Order::Desc => {
                let lo = lists.1.partition_point(|(start, _)| *start >= to);
                let hi = lists.1.partition_point(|(start, _)| *start >= from);
                (&lists.1, lo..hi)
            }
        };
        let size = self.page_size as usize;
        let skip = (number as usize - 1) * size;
        let conversations: Vec<AnalyticsConversation> = list[range.clone()]
            .iter()
            .skip(skip)
            .take(size)
            .map(|(start, id)| AnalyticsConversation {
                conversation_id: id.clone(),
                conversation_start: *start,
                conversation_end: None,
                originating_direction: None,
                division_ids: Vec::new(),
                participants: Vec::new(),
            })
            .collect();
        // Records named `unusable-…` stand for those the decoder drops (no id or start):
        // counted in the page, not in its hits.
        let records = conversations.len();
        let conversations = conversations
            .into_iter()
            .filter(|c| !c.conversation_id.starts_with(UNUSABLE))
            .collect();
        DetailsResponse {
            total_hits: range.len() as u64,
            records,
            conversations,
        }
    }
}

#[derive(Debug)]
struct Page(DetailsResponse);

impl Deref for Page {
    type Target = DetailsResponse;
    fn deref(&self) -> &DetailsResponse {
        &self.0
    }
}

impl UpstreamPages for FakeUpstream {
    type Page = Page;

    fn page(
        &self,
        chunk: &Interval,
        order: Order,
        number: u32,
    ) -> impl Future<Output = Result<Page, ApiError>> + Send {
        // `WALK_TRACE=1 cargo test --lib reports::search -- --nocapture` prints each read.
        if std::env::var_os("WALK_TRACE").is_some() {
            println!("  read {} {order:?} page {number}", chunk.wire());
        }
        self.asked
            .lock()
            .expect("lock")
            .insert((format!("{} {order:?}", chunk.wire()), number));
        let page = Page(self.answer(chunk, order, number));
        async move { Ok(page) }
    }

    fn list_key(&self, chunk: &Interval, order: Order) -> String {
        format!("{} {order:?}", touched_days(chunk).wire())
    }
}

/// The position of a walk that has not begun.
fn start_of(window: Interval) -> Position {
    Position {
        v: crate::reports::cursor::VERSION,
        q: String::new(),
        s: walk_settings(100, 31),
        from: window.from,
        to: window.to,
        chunk: 0,
        page: 0,
        reversed: false,
        last_start: None,
        last_ids: Vec::new(),
        returned: 0,
        total: None,
    }
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// About `per_day` conversations a day (up to a tenth fewer, so that a day's count is
/// not a multiple of the page size, as real days seldom are) over `days` days ending at
/// `end`, busier in office hours (08:00–18:00 UTC holds about three quarters of them),
/// none after `end`.
fn contact_centre(
    seed: u64,
    days: i64,
    per_day: u64,
    end: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, String)> {
    let mut rng = Rng(seed);
    let first_day = day_start(end) - Duration::days(days - 1);
    let mut out = Vec::new();
    for day in 0..days {
        let midnight = first_day + Duration::days(day);
        let count = per_day - rng.below(per_day / 10 + 1);
        for n in 0..count {
            let ms = if rng.below(4) == 0 {
                rng.below(86_400_000)
            } else {
                8 * 3_600_000 + rng.below(10 * 3_600_000)
            };
            let start = midnight + Duration::milliseconds(i64::try_from(ms).expect("ms"));
            if start < end {
                out.push((start, format!("{day:03}-{n:06}-{:04x}", rng.below(65_536))));
            }
        }
    }
    out.sort();
    out
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

struct WalkResult {
    ids: Vec<String>,
    pages: usize,
    distinct_upstream: usize,
    hits: usize,
    totals: Vec<Option<u64>>,
}

#[allow(clippy::too_many_arguments)] // a test helper: each argument is one axis of the matrix
async fn walk_all(
    records: &[(DateTime<Utc>, String)],
    window: Interval,
    order: Order,
    matching: Matching,
    now: DateTime<Utc>,
    client_page: usize,
    widens: &AtomicBool,
    late: &[Record],
) -> WalkResult {
    let upstream = FakeUpstream {
        lists: Mutex::new(sorted_both_ways(records)),
        matching,
        page_size: 100,
        asked: Mutex::new(HashSet::new()),
    };
    let mut chunks = window.walk_chunks(31, order == Order::Asc);
    if order == Order::Desc {
        chunks.reverse();
    }
    let walk = Walk {
        pages: &upstream,
        chunks: &chunks,
        order,
        upstream_page_size: 100,
        now,
        widens,
        hints: &PageHints::default(),
    };
    let mut position = start_of(window);
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut totals = Vec::new();
    loop {
        let outcome = walk
            .next_page(&mut position, client_page)
            .await
            .expect("page");
        pages += 1;
        assert!(position.last_ids.len() <= MAX_TIE_IDS, "a cursor too long");
        assert!(
            !outcome.results.is_empty() || outcome.finished,
            "an empty page with a cursor (page {pages})"
        );
        totals.push(outcome.finished.then_some(position.returned));
        ids.extend(outcome.results.into_iter().map(|r| r.id));
        if pages == 1 {
            upstream.arrive(late);
        }
        if outcome.finished {
            break;
        }
        assert!(pages < 10_000, "the walk ends");
    }
    let mut expected: Vec<&(DateTime<Utc>, String)> = records
        .iter()
        .filter(|(start, id)| window.contains(*start) && !id.starts_with(UNUSABLE))
        .collect();
    if order == Order::Desc {
        expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    }
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(
        ids.len(),
        expected.len(),
        "{window:?} {order:?} {matching:?}"
    );
    assert_eq!(ids, expected, "{window:?} {order:?} {matching:?}");
    WalkResult {
        ids,
        pages,
        distinct_upstream: upstream.distinct_pages(),
        hits: expected.len(),
        totals,
    }
}

fn bound(hits: usize) -> usize {
    hits.div_ceil(100) + 2
}

/// Windows ending at `now` (dashboards' `last=`), at three times of day, in both orders and
/// both interval matchings, over 40 days of about 3,000 conversations a day; with the proxy
/// assuming whole-day matching (the default) and learning it.
#[tokio::test]
async fn relative_windows_cost_their_hits_pages_plus_two_at_any_hour() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    // One flag per (upstream, setting), kept across the matrix as a process keeps it.
    let assumed_on_touched = AtomicBool::new(true);
    let learning_on_touched = AtomicBool::new(false);
    let assumed_on_exact = AtomicBool::new(true);
    let learning_on_exact = AtomicBool::new(false);
    for now in [
        "2025-03-12T00:07:00Z",
        "2025-03-12T13:55:00Z",
        "2025-03-12T23:52:00Z",
    ] {
        let now = at(now);
        let records = contact_centre(7, 42, 3_000, now);
        for length in [
            Duration::minutes(15),
            Duration::hours(1),
            Duration::days(1),
            Duration::days(40),
        ] {
            let window = Interval {
                from: now - length,
                to: now,
            };
            for order in [Order::Asc, Order::Desc] {
                for (matching, setting, widens) in [
                    (Matching::TouchedDay, "touched-day", &assumed_on_touched),
                    (Matching::TouchedDay, "learn", &learning_on_touched),
                    (Matching::Exact, "touched-day", &assumed_on_exact),
                    (Matching::Exact, "learn", &learning_on_exact),
                ] {
                    let learning =
                        matching == Matching::TouchedDay && !widens.load(Ordering::Relaxed);
                    let r =
                        walk_all(&records, window, order, matching, now, 500, widens, &[]).await;
                    report.push(format!(
                        "{now} {length} {order:?} upstream {matching:?}, setting {setting}: {} hits, {} upstream pages (bound {}{})",
                        r.hits,
                        r.distinct_upstream,
                        bound(r.hits),
                        if learning { " + 1, learning" } else { "" }
                    ));
                    // Under `learn`, the walk that finds out that Genesys widens to whole
                    // days may read one page more (page 1, which teaches it).
                    let allowed = bound(r.hits) + usize::from(learning);
                    if r.distinct_upstream > allowed {
                        failures.push(report.last().expect("line").clone());
                    }
                }
            }
        }
    }
    println!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "over the bound:\n{}",
        failures.join("\n")
    );
}

/// Absolute windows inside past days, where neither end of the day is near.
#[tokio::test]
async fn windows_inside_a_past_day_are_found_without_reading_the_day() {
    let now = at("2025-03-12T10:00:00Z");
    let records = contact_centre(11, 5, 3_000, now);
    let mut worst = 0;
    for (from, to) in [
        ("2025-03-10T12:00:00Z", "2025-03-10T13:00:00Z"),
        ("2025-03-10T03:10:00Z", "2025-03-10T03:40:00Z"),
        ("2025-03-09T17:59:00Z", "2025-03-10T08:01:00Z"),
        ("2025-03-11T09:00:00Z", "2025-03-11T09:15:00Z"),
        ("2025-03-11T00:00:00Z", "2025-03-12T00:00:00Z"),
    ] {
        let window = Interval {
            from: at(from),
            to: at(to),
        };
        for order in [Order::Asc, Order::Desc] {
            for matching in [Matching::TouchedDay, Matching::Exact] {
                let widens = AtomicBool::new(matching == Matching::TouchedDay);
                let r = walk_all(&records, window, order, matching, now, 50, &widens, &[]).await;
                let extra = r.distinct_upstream.saturating_sub(r.hits.div_ceil(100));
                println!(
                    "{from}..{to} {order:?} {matching:?}: {} hits, {} pages ({extra} beyond the hits)",
                    r.hits, r.distinct_upstream
                );
                worst = worst.max(extra);
                // Measured worst: 6 look-up pages for a 15-minute window in the busiest
                // hours of a past day (the day's profile defeats the first guesses).
                assert!(r.distinct_upstream <= bound(r.hits) + 5, "{from}..{to}");
            }
        }
    }
    println!("worst: {worst} pages beyond the hits' own");
}

#[tokio::test]
async fn the_last_page_counts_the_window_and_earlier_ones_do_not_guess() {
    let now = at("2025-03-12T13:55:00Z");
    let records = contact_centre(3, 2, 3_000, now);
    let window = Interval {
        from: now - Duration::hours(1),
        to: now,
    };
    let widens = AtomicBool::new(true);
    let r = walk_all(
        &records,
        window,
        Order::Asc,
        Matching::TouchedDay,
        now,
        50,
        &widens,
        &[],
    )
    .await;
    assert!(r.pages > 1);
    assert_eq!(r.totals.last().copied().flatten(), Some(r.ids.len() as u64));
    assert!(r.totals[..r.totals.len() - 1].iter().all(Option::is_none));
}

#[tokio::test]
async fn a_long_tie_group_never_makes_a_cursor_list_more_than_it_can_hold() {
    let now = at("2025-03-12T13:55:00Z");
    let instant = at("2025-03-12T10:00:00.123Z");
    let mut records: Vec<(DateTime<Utc>, String)> =
        (0..250).map(|i| (instant, format!("tie-{i:04}"))).collect();
    records.extend((0..40).map(|i| {
        (
            Utc.timestamp_millis_opt(instant.timestamp_millis() - 1000 * (i + 1))
                .single()
                .expect("time"),
            format!("before-{i:02}"),
        )
    }));
    records.extend((0..40).map(|i| (instant + Duration::seconds(i + 1), format!("after-{i:02}"))));
    records.sort();
    let window = Interval {
        from: day_start(now),
        to: now,
    };
    for order in [Order::Asc, Order::Desc] {
        let widens = AtomicBool::new(false);
        let r = walk_all(
            &records,
            window,
            order,
            Matching::TouchedDay,
            now,
            50,
            &widens,
            &[],
        )
        .await;
        assert_eq!(r.ids.len(), 330);
    }
}

/// A window served from the first page in the other order, when more conversations arrive
/// after it between two report pages (its cached page was refetched): nothing is skipped.
#[tokio::test]
async fn arrivals_after_a_reversed_window_do_not_push_its_hits_out_of_the_walk() {
    let now = at("2025-03-12T13:55:00Z");
    let records = contact_centre(5, 2, 3_000, now);
    let window = Interval {
        from: now - Duration::minutes(15),
        to: now,
    };
    let late: Vec<Record> = (0..150)
        .map(|i| (now + Duration::seconds(i + 1), format!("late-{i:03}")))
        .collect();
    let widens = AtomicBool::new(true);
    let r = walk_all(
        &records,
        window,
        Order::Asc,
        Matching::TouchedDay,
        now + Duration::minutes(3),
        10,
        &widens,
        &late,
    )
    .await;
    assert!(r.pages > 2, "several report pages ({})", r.pages);
}

/// A full upstream page that held records the decoder dropped is still a full page: the
/// walk goes on past it.
#[tokio::test]
async fn records_dropped_on_decoding_do_not_end_a_walk_early() {
    let now = at("2025-03-12T13:55:00Z");
    let mut records = contact_centre(9, 2, 3_000, now);
    for (i, record) in records.iter_mut().enumerate() {
        if i % 37 == 0 {
            record.1 = format!("{UNUSABLE}{i}");
        }
    }
    records.sort();
    let window = Interval {
        from: now - Duration::hours(3),
        to: now,
    };
    for order in [Order::Asc, Order::Desc] {
        let widens = AtomicBool::new(true);
        let r = walk_all(
            &records,
            window,
            order,
            Matching::TouchedDay,
            now,
            100,
            &widens,
            &[],
        )
        .await;
        assert!(r.hits > 500, "{} hits", r.hits);
    }
}

/// Dashboards poll the first page of `last=P1D` every minute: once a walk has found the
/// window's edge, the next minute's poll reads the page that holds it, without searching.
#[tokio::test]
async fn a_poll_a_minute_later_finds_its_edge_from_the_last_polls_pages() {
    let start = at("2025-03-12T13:55:00Z");
    let records = contact_centre(21, 3, 3_000, start + Duration::minutes(10));
    let upstream = FakeUpstream {
        lists: Mutex::new(sorted_both_ways(&records)),
        matching: Matching::TouchedDay,
        page_size: 100,
        asked: Mutex::new(HashSet::new()),
    };
    let widens = AtomicBool::new(true);
    let hints = PageHints::default();
    let mut costs = Vec::new();
    let mut needed = Vec::new();
    for minute in 0..5 {
        let now = start + Duration::minutes(minute);
        let window = Interval {
            from: now - Duration::days(1),
            to: now,
        };
        let chunks = window.walk_chunks(31, true);
        let walk = Walk {
            pages: &upstream,
            chunks: &chunks,
            order: Order::Asc,
            upstream_page_size: 100,
            now,
            widens: &widens,
            hints: &hints,
        };
        let mut position = start_of(window);
        let before = upstream.distinct_pages();
        let outcome = walk.next_page(&mut position, 50).await.expect("page");
        let first_expected = records
            .iter()
            .find(|(start, _)| window.contains(*start))
            .map(|(_, id)| id.clone());
        assert_eq!(
            outcome.results.first().map(|r| r.id.clone()),
            first_expected
        );
        assert_eq!(outcome.results.len(), 50);
        // The pages of the first day's list (Genesys answers the whole day) that hold the
        // window's first 50 hits: what a poll cannot do without.
        let day = day_start(window.from);
        let first = records
            .iter()
            .filter(|(start, _)| day_start(*start) == day)
            .position(|(start, _)| *start >= window.from)
            .expect("a hit");
        needed.push((first + 49) / 100 - first / 100 + 1);
        costs.push(upstream.distinct_pages() - before);
    }
    println!("upstream pages per poll: {costs:?}, holding the first 50 hits: {needed:?}");
    assert_eq!(
        costs[1..],
        needed[1..],
        "later polls read only the pages that hold the window's first hits"
    );
}
