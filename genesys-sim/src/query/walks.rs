//! Memoized details walks: page after page of one details query without rescanning its
//! interval for each page.
//!
//! A walk is keyed by what decides a query's hits and their order (its matching window,
//! filters and ordering), not by its paging. It remembers, as of the instant it last
//! looked (`as_of`), the ordered hits among the conversations that were over then
//! ("settled": an ended conversation, wrap-up included, never changes again) and which
//! candidates were still running. A later page at `now >= as_of` re-reads only those
//! running conversations and the ones that started since, settles the ones that are now
//! over, and merges the still-running hits (read at `now`) into the settled ones. So each
//! page is exactly what [`DetailsQuery::run`] computes from scratch at `now`, for any
//! movement of the clock, real time or `/sim/clock/advance`; a clock that went backwards
//! starts the walk again.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use super::details::{DetailsPage, DetailsQuery, Hit, OrderBy, Scratch};
use super::filter::Filter;
use super::time::Interval;
use crate::config::IntervalMatching;
use crate::data::Dataset;

/// How many walks are remembered (the least recently used is forgotten first).
const WALKS: usize = 8;

/// What decides a query's hits and their order.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    window: Interval,
    descending: bool,
    order_by: OrderBy,
    conversation_filters: Vec<Filter>,
    segment_filters: Vec<Filter>,
}

/// A walk's knowledge as of one instant.
#[derive(Debug)]
struct Progress {
    as_of: DateTime<Utc>,
    /// Ordered hits among the candidates that were over at `as_of`.
    settled: Vec<Hit>,
    /// Candidates (dataset indexes) that had started but were not over at `as_of`.
    running: Vec<usize>,
    /// Dataset index of the first candidate not looked at yet (it started after `as_of`).
    next: usize,
}

/// A remembered walk: its key and (under its own lock, so that walks of different queries
/// proceed at the same time) its progress.
type Walk = (Key, Arc<Mutex<Option<Progress>>>);

/// The remembered walks of one simulated org.
#[derive(Debug, Default)]
pub struct Walks {
    /// Least recently used first.
    walks: Mutex<Vec<Walk>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Merges two lists ordered by `order` into one.
fn merge(a: Vec<Hit>, b: Vec<Hit>, order: impl Fn(&Hit, &Hit) -> Ordering) -> Vec<Hit> {
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut b = b.into_iter().peekable();
    for hit in a {
        while let Some(next) = b.next_if(|next| order(next, &hit) == Ordering::Less) {
            out.push(next);
        }
        out.push(hit);
    }
    out.extend(b);
    out
}

impl Walks {
    /// The page `query` asks for, over `data` as it stands at `now`: the same body as
    /// [`DetailsQuery::run`].
    pub fn page(
        &self,
        query: &DetailsQuery,
        data: &Dataset,
        now: DateTime<Utc>,
        matching: IntervalMatching,
    ) -> DetailsPage {
        self.page_now(query, data, || now, matching)
    }

    /// [`Walks::page`] at the instant `clock` reads once the walk is free: requests of one
    /// walk then meet increasing instants, so none of them has to start the walk again.
    pub fn page_now(
        &self,
        query: &DetailsQuery,
        data: &Dataset,
        clock: impl FnOnce() -> DateTime<Utc>,
        matching: IntervalMatching,
    ) -> DetailsPage {
        let key = Key {
            window: query.window(matching),
            descending: query.descending,
            order_by: query.order_by,
            conversation_filters: query.conversation_filters.clone(),
            segment_filters: query.segment_filters.clone(),
        };
        let window = key.window;
        let progress = {
            let mut walks = lock(&self.walks);
            let walk = match walks.iter().position(|(k, _)| *k == key) {
                Some(position) => walks.remove(position),
                None => (key, Arc::default()),
            };
            let progress = walk.1.clone();
            walks.push(walk);
            if walks.len() > WALKS {
                walks.remove(0);
            }
            progress
        };
        let mut progress = lock(&progress);
        let now = clock();
        let running = advance(&mut progress, query, data, window, now);
        let settled = &progress.as_ref().expect("advanced").settled;
        page(query, data, now, settled, &running)
    }
}

/// Brings `progress` to `now`; returns the ordered hits among the running candidates.
fn advance(
    progress: &mut Option<Progress>,
    query: &DetailsQuery,
    data: &Dataset,
    window: Interval,
    now: DateTime<Utc>,
) -> Vec<Hit> {
    let candidates = data.visible_between(window.start, window.end, now);
    if progress.as_ref().is_none_or(|p| now < p.as_of) {
        *progress = Some(Progress {
            as_of: now,
            settled: Vec::new(),
            running: Vec::new(),
            next: candidates.start,
        });
    }
    let progress = progress.as_mut().expect("just set");
    let order = |a: &Hit, b: &Hit| query.order(a, b);
    let mut scratch = Scratch::default();
    let mut settled_now = Vec::new();
    let mut running = Vec::new();
    let mut running_hits = Vec::new();
    let fresh = progress.next.max(candidates.start)..candidates.end.max(progress.next);
    let looked_at = std::mem::take(&mut progress.running);
    for index in looked_at.into_iter().chain(fresh) {
        let over = data.conversations[index].is_over_at(now);
        let hit = query.evaluate(data, index, now, &mut scratch);
        if over {
            settled_now.extend(hit);
        } else {
            running.push(index);
            running_hits.extend(hit);
        }
    }
    progress.next = progress.next.max(candidates.end);
    progress.running = running;
    progress.as_of = now;
    if !settled_now.is_empty() {
        settled_now.sort_by(order);
        let settled = std::mem::take(&mut progress.settled);
        progress.settled = merge(settled, settled_now, order);
    }
    running_hits.sort_by(order);
    running_hits
}

/// The requested page of the merge of two ordered hit lists.
fn page(
    query: &DetailsQuery,
    data: &Dataset,
    now: DateTime<Utc>,
    settled: &[Hit],
    running: &[Hit],
) -> DetailsPage {
    let total = settled.len() + running.len();
    // Where each running hit falls in the merged order.
    let ranks: Vec<usize> = running
        .iter()
        .enumerate()
        .map(|(j, hit)| j + settled.partition_point(|s| query.order(s, hit) == Ordering::Less))
        .collect();
    let skip = query.skip();
    let end = total.min(skip.saturating_add(query.page_size as usize));
    let mut j = ranks.partition_point(|&rank| rank < skip);
    let hits = (skip..end).map(|position| {
        if ranks.get(j) == Some(&position) {
            j += 1;
            running[j - 1]
        } else {
            settled[position - j]
        }
    });
    DetailsPage::render(data, now, hits, total)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::{Value, json};

    use super::*;
    use crate::config::AnalyticsLimits;
    use crate::data::Arrivals;
    use crate::render::format_time;

    fn anchor() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-12T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc)
    }

    /// 1,500 conversations a day arriving continuously: many run and end as the clock moves.
    fn busy() -> Dataset {
        let arrivals = Arrivals {
            continuous: true,
            diurnal: false,
        };
        Dataset::generate_with(21, anchor(), 2, (3_000, 0), arrivals)
    }

    fn query(mut body: Value, page: u32) -> DetailsQuery {
        body["paging"] = json!({"pageSize": 40, "pageNumber": page});
        DetailsQuery::parse(&body, &AnalyticsLimits::default()).expect("a valid query")
    }

    #[test]
    fn memoized_pages_equal_fresh_ones_as_the_clock_moves() {
        let data = busy();
        let interval = format!(
            "{}/{}",
            format_time(anchor() - Duration::hours(3)),
            format_time(anchor() + Duration::hours(2))
        );
        let queue = data.org.queues[1].id.to_string();
        let bodies = [
            json!({"interval": interval}),
            json!({"interval": interval, "order": "desc", "orderBy": "conversationEnd"}),
            json!({"interval": interval, "orderBy": "segmentEnd", "segmentFilters": [
                {"type": "or", "predicates": [
                    {"dimension": "queueId", "value": queue},
                    {"dimension": "segmentType", "value": "hold"}
                ]}
            ]}),
            json!({"interval": interval, "order": "desc", "orderBy": "segmentStart",
            "conversationFilters": [{"type": "and", "predicates": [
                {"type": "metric", "metric": "tTalk", "range": {"gt": 200_000}}
            ]}]}),
        ];
        // Forward in uneven steps (conversations arrive, run and end between them), then
        // back (the walk starts again), then forward again.
        let steps = [
            0, 1, 13, 60, 61, 300, 299, 900, 2_400, 2_401, 5_000, 30, 7_200,
        ];
        for matching in [
            IntervalMatching::StartedOnTouchedDay,
            IntervalMatching::StartedInInterval,
        ] {
            let walks = Walks::default();
            for seconds in steps {
                let now =
                    anchor() + Duration::seconds(seconds) + Duration::milliseconds(seconds % 997);
                for body in &bodies {
                    for page in [1, 2, 5, 30] {
                        let query = query(body.clone(), page);
                        let memo = walks.page(&query, &data, now, matching);
                        let fresh = query.run(&data, now, matching);
                        assert_eq!(
                            memo.to_json(),
                            fresh.to_json(),
                            "{body} page {page} at {now} ({matching:?})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_walk_sees_conversations_arrive_run_and_end() {
        let data = busy();
        let interval = format!(
            "{}/{}",
            format_time(anchor()),
            format_time(anchor() + Duration::hours(1))
        );
        let walks = Walks::default();
        let count = |now| {
            let page = walks.page(
                &query(json!({"interval": interval}), 1),
                &data,
                now,
                IntervalMatching::StartedInInterval,
            );
            let running = page
                .conversations
                .iter()
                .filter(|c| c.conversation_end.is_none())
                .count();
            (page.total_hits, running)
        };
        let (at_anchor, _) = count(anchor());
        let (later, running) = count(anchor() + Duration::minutes(30));
        let (after, still) = count(anchor() + Duration::hours(6));
        assert!(at_anchor <= 1, "nothing has arrived yet: {at_anchor}");
        assert!(
            later > 10 && running > 0,
            "{later} arrived, {running} running"
        );
        assert!(after > later + 10, "{after} arrived within the hour");
        assert_eq!(still, 0, "all over hours later");
    }
}
