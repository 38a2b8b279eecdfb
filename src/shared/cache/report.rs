//! Report pages in the shared tier: an upstream details page or aggregates response as
//! the proxy parsed it, in a compact binary record, so that a replica reading it holds
//! the very model the fetching replica holds (and derives the same answers, counts and
//! cursors from it).
//!
//! The record is the parsed model, not Genesys' JSON: the replicas' moka tiers keep only
//! the model (no second copy of the body for the sake of Redis), the record leaves out
//! what the proxy ignores (most of a details page), and it is exact where a JSON round
//! trip is not (floats are their bits, instants their seconds and nanoseconds; a details
//! page keeps how many records Genesys sent, which its JSON form would recount).
//!
//! Layout after the entry's header ([`super::codec`]): the response's size as Genesys
//! sent it (`u64`, its cache weight), then the model field by field in declaration order:
//! integers little-endian, strings and lists as a `u32` length then their items, an
//! optional value as a flag byte (0 absent, 1 present) then the value, an instant as `i64`
//! seconds and `u32` nanoseconds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::codec::{Reader, SharedValue, WallClock, put_bytes};
use crate::reports::CachedResponse;
use crate::upstream::models::{
    AggregateBucket, AggregateGroup, AggregateMetric, AggregatesResponse, AnalyticsConversation,
    AnalyticsMetric, AnalyticsParticipant, AnalyticsSegment, AnalyticsSession, DetailsResponse,
    Stats,
};

/// A part of a report record: written to the end of a record, read from a [`Reader`].
trait Field: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn read(reader: &mut Reader<'_>) -> Option<Self>;
}

impl Field for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(reader: &mut Reader<'_>) -> Option<Self> {
        reader.u64()
    }
}

impl Field for usize {
    fn put(&self, out: &mut Vec<u8>) {
        u64::try_from(*self).unwrap_or(u64::MAX).put(out);
    }
    fn read(reader: &mut Reader<'_>) -> Option<Self> {
        usize::try_from(reader.u64()?).ok()
    }
}

impl Field for i64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read(reader: &mut Reader<'_>) -> Option<Self> {
        reader.i64()
    }
}

impl Field for f64 {
    fn put(&self, out: &mut Vec<u8>) {
        self.to_bits().put(out);
    }
    fn read(reader: &mut Reader<'_>) -> Option<Self> {
        Some(f64::from_bits(reader.u64()?))
    }
}

impl Field for String {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(out, self.as_bytes());
    }
    fn read(reader: &mut Reader<'_>) -> Option<Self> {
        String::from_utf8(reader.bytes()?.to_vec()).ok()
    }
}

impl Field for DateTime<Utc> {
    fn put(&self, out: &mut Vec<u8>) {
        self.timestamp().put(out);
        out.extend_from_slice(&self.timestamp_subsec_nanos().to_le_bytes());
    }
    fn read(reader: &mut Reader<'_>) -> Option<Self> {
        let seconds = reader.i64()?;
        let nanos = u32::from_le_bytes(reader.take(4)?.try_into().ok()?);
        DateTime::from_timestamp(seconds, nanos)
    }
}

impl<T: Field> Field for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.put(out);
            }
        }
    }
    fn read(reader: &mut Reader<'_>) -> Option<Self> {
        match reader.u8()? {
            0 => Some(None),
            1 => Some(Some(T::read(reader)?)),
            _ => None,
        }
    }
}

/// The `u32` length of a list or map.
fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

/// A list or map length; never trusted beyond the bytes left for allocating (every item
/// takes at least one byte).
fn read_len(reader: &mut Reader<'_>) -> Option<(usize, usize)> {
    let len = usize::try_from(u32::from_le_bytes(reader.take(4)?.try_into().ok()?)).ok()?;
    Some((len, len.min(reader.0.len())))
}

impl<T: Field> Field for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        put_len(out, self.len());
        for item in self {
            item.put(out);
        }
    }
    fn read(reader: &mut Reader<'_>) -> Option<Self> {
        let (len, capacity) = read_len(reader)?;
        let mut items = Vec::with_capacity(capacity);
        for _ in 0..len {
            items.push(T::read(reader)?);
        }
        Some(items)
    }
}

impl Field for BTreeMap<String, String> {
    fn put(&self, out: &mut Vec<u8>) {
        put_len(out, self.len());
        for (key, value) in self {
            key.put(out);
            value.put(out);
        }
    }
    fn read(reader: &mut Reader<'_>) -> Option<Self> {
        let (len, _) = read_len(reader)?;
        let mut map = BTreeMap::new();
        for _ in 0..len {
            map.insert(String::read(reader)?, String::read(reader)?);
        }
        Some(map)
    }
}

/// `Field` for a model struct: its fields in declaration order.
macro_rules! record {
    ($model:ident { $($field:ident),+ $(,)? }) => {
        impl Field for $model {
            fn put(&self, out: &mut Vec<u8>) {
                $(self.$field.put(out);)+
            }
            fn read(reader: &mut Reader<'_>) -> Option<Self> {
                Some(Self { $($field: Field::read(reader)?,)+ })
            }
        }
    };
}

record!(DetailsResponse {
    conversations,
    total_hits,
    records
});
record!(AnalyticsConversation {
    conversation_id,
    conversation_start,
    conversation_end,
    originating_direction,
    division_ids,
    participants,
});
record!(AnalyticsParticipant {
    participant_id,
    participant_name,
    purpose,
    user_id,
    sessions,
});
record!(AnalyticsSession {
    media_type,
    direction,
    metrics,
    segments
});
record!(AnalyticsMetric {
    name,
    value,
    emit_date
});
record!(AnalyticsSegment {
    segment_start,
    segment_end,
    segment_type,
    queue_id,
    wrap_up_code,
});
record!(AggregatesResponse { results });
record!(AggregateGroup { group, data });
record!(AggregateBucket { interval, metrics });
record!(AggregateMetric { metric, stats });
record!(Stats {
    max,
    min,
    count,
    sum
});

/// `SharedValue` for the cached responses of a model: its size, then the model.
macro_rules! shared_response {
    ($model:ty) => {
        impl SharedValue for CachedResponse<$model> {
            fn encode(&self, _clock: &WallClock, out: &mut Vec<u8>) {
                out.reserve(self.size / 2);
                self.size.put(out);
                self.body.put(out);
            }

            fn decode(bytes: &[u8], _clock: &WallClock) -> Option<Self> {
                let mut reader = Reader(bytes);
                let size = usize::read(&mut reader)?;
                let body = <$model>::read(&mut reader)?;
                reader.is_empty().then_some(Self { body, size })
            }
        }
    };
}

shared_response!(DetailsResponse);
shared_response!(AggregatesResponse);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::cache::Cached;
    use crate::shared::cache::codec::{decode_entry, encode_entry};

    fn round_trip<T>(entry: &Cached<CachedResponse<T>>) -> Cached<CachedResponse<T>>
    where
        CachedResponse<T>: SharedValue,
    {
        let clock = WallClock::now();
        decode_entry(&encode_entry(entry, &clock), &clock).expect("decoded")
    }

    fn entry<T>(body: T, size: usize) -> Cached<CachedResponse<T>> {
        let now = Instant::now();
        Cached {
            value: CachedResponse { body, size },
            fetched_at: now,
            fresh_until: now + Duration::from_secs(60),
            stale_until: now + Duration::from_secs(360),
        }
    }

    /// A details page as Genesys sends one: sparse records, odd instants, a dropped one.
    fn details() -> DetailsResponse {
        let page = serde_json::json!({
            "totalHits": 1234,
            "conversations": [
                {
                    "conversationId": "c1",
                    "conversationStart": "2026-03-01T10:00:00.123456789Z",
                    "conversationEnd": "2026-03-01T10:05:00Z",
                    "originatingDirection": "inbound",
                    "divisionIds": ["d1", "d2"],
                    "participants": [{
                        "participantId": "p1",
                        "purpose": "agent",
                        "userId": "u1",
                        "sessions": [{
                            "mediaType": "voice",
                            "direction": "inbound",
                            "metrics": [
                                {"name": "tHandle", "value": 61234, "emitDate": "2026-03-01T10:06:00Z"},
                                {"name": "nOffered"}
                            ],
                            "segments": [{
                                "segmentStart": "2026-03-01T10:00:01Z",
                                "segmentType": "interact",
                                "queueId": "q1",
                                "wrapUpCode": "w"
                            }]
                        }]
                    }, {}]
                },
                {"conversationId": "no start"},
                {"conversationId": "c2", "conversationStart": "1969-12-31T23:59:59.5Z"}
            ]
        });
        serde_json::from_value(page).expect("a details page")
    }

    fn aggregates() -> AggregatesResponse {
        let response = serde_json::json!({
            "results": [{
                "group": {"queueId": "q1", "mediaType": "voice"},
                "data": [{
                    "interval": "2026-03-01T00:00:00Z/2026-03-02T00:00:00Z",
                    "metrics": [
                        {"metric": "tHandle", "stats": {"max": 0.1, "min": 1e-300, "count": 3, "sum": 123_456.789_012_345_6}},
                        {"metric": "nOffered", "stats": {"count": 7}},
                        {"stats": {}}
                    ]
                }]
            }, {"group": {}, "data": []}]
        });
        serde_json::from_value(response).expect("an aggregates response")
    }

    #[tokio::test(start_paused = true)]
    async fn a_details_page_comes_back_as_the_same_model_with_its_record_count() {
        let page = details();
        assert_eq!((page.conversations.len(), page.records), (2, 3));
        let stored = entry(page.clone(), 4_321);
        let read = round_trip(&stored);
        assert_eq!(read.value.body, page, "the very model");
        assert_eq!(
            read.value.size, 4_321,
            "weighed as the fetching replica weighs it"
        );
        assert_eq!(
            (read.fetched_at, read.fresh_until, read.stale_until),
            (stored.fetched_at, stored.fresh_until, stored.stale_until)
        );
        let empty = DetailsResponse::default();
        assert_eq!(round_trip(&entry(empty.clone(), 2)).value.body, empty);
    }

    #[tokio::test(start_paused = true)]
    async fn aggregates_come_back_with_every_float_bit_for_bit() {
        let response = aggregates();
        let read = round_trip(&entry(response.clone(), 999));
        assert_eq!(read.value.body, response);
        let stats = |r: &AggregatesResponse| r.results[0].data[0].metrics[0].stats.clone();
        let (want, got) = (stats(&response), stats(&read.value.body));
        assert_eq!(
            got.sum.map(f64::to_bits),
            want.sum.map(f64::to_bits),
            "exact, where a JSON round trip may not be"
        );
    }

    #[test]
    fn truncated_or_padded_records_and_hostile_lengths_do_not_decode() {
        let clock = WallClock::now();
        let mut record = Vec::new();
        CachedResponse {
            body: details(),
            size: 10,
        }
        .encode(&clock, &mut record);
        for cut in 0..record.len() {
            assert!(
                CachedResponse::<DetailsResponse>::decode(&record[..cut], &clock).is_none(),
                "{cut}"
            );
        }
        let mut padded = record.clone();
        padded.push(0);
        assert!(CachedResponse::<DetailsResponse>::decode(&padded, &clock).is_none());
        // A list that claims four billion items, then ends: refused without allocating them.
        let mut hostile = 10u64.to_le_bytes().to_vec();
        hostile.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(CachedResponse::<AggregatesResponse>::decode(&hostile, &clock).is_none());
    }
}
