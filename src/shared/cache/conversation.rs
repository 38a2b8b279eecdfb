//! A cached conversation in the shared tier: Genesys' document and the view exactly as
//! served, the state, and the pushed view's document times when the view was pushed. A
//! replica reading it rebuilds the same [`Representations`] (same bytes, so the same
//! ETags), so every replica answers a conversation identically.
//!
//! Layout after the entry's header ([`super::codec`]): a tag (0 not found, 1 found); for a
//! found one the state (0 active, 1 ended), the document and the view (each with its
//! `u32` length), and a pushed flag followed, when set, by the document's three times in
//! Unix milliseconds and the TTL freshness in milliseconds.

use std::time::Duration;

use super::codec::{Reader, SharedValue, WallClock, put_bytes};
use crate::conversations::{ConversationEntry, ConversationState, PushedView, Representations};

impl SharedValue for ConversationEntry {
    fn encode(&self, clock: &WallClock, out: &mut Vec<u8>) {
        let Self::Found(r) = self else {
            out.push(0);
            return;
        };
        out.reserve(r.full.len() + r.view.len() + 48);
        out.push(1);
        out.push(match r.state {
            ConversationState::Active => 0,
            ConversationState::Ended => 1,
        });
        put_bytes(out, &r.full);
        put_bytes(out, &r.view);
        match r.pushed.as_deref() {
            None => out.push(0),
            Some(pushed) => {
                out.push(1);
                for instant in [
                    pushed.document_fetched_at,
                    pushed.document_fresh_until,
                    pushed.document_stale_until,
                ] {
                    out.extend_from_slice(&clock.to_unix(instant).to_le_bytes());
                }
                let ttl = u64::try_from(pushed.ttl.as_millis()).unwrap_or(u64::MAX);
                out.extend_from_slice(&ttl.to_le_bytes());
            }
        }
    }

    fn decode(bytes: &[u8], clock: &WallClock) -> Option<Self> {
        let mut reader = Reader(bytes);
        match reader.u8()? {
            0 => return reader.is_empty().then_some(Self::NotFound),
            1 => {}
            _ => return None,
        }
        let state = match reader.u8()? {
            0 => ConversationState::Active,
            1 => ConversationState::Ended,
            _ => return None,
        };
        let full = reader.bytes()?;
        let view = reader.bytes()?;
        let mut representations = Representations::new(full, view, state);
        match reader.u8()? {
            0 => {}
            1 => {
                representations.pushed = Some(Box::new(PushedView {
                    document_fetched_at: clock.to_instant(reader.i64()?),
                    document_fresh_until: clock.to_instant(reader.i64()?),
                    document_stale_until: clock.to_instant(reader.i64()?),
                    ttl: Duration::from_millis(reader.u64()?),
                }));
            }
            _ => return None,
        }
        reader.is_empty().then_some(Self::Found(representations))
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::cache::Cached;
    use crate::shared::cache::codec::{decode_entry, encode_entry};

    fn round_trip(entry: &Cached<ConversationEntry>) -> Cached<ConversationEntry> {
        let clock = WallClock::now();
        decode_entry(&encode_entry(entry, &clock), &clock).expect("decoded")
    }

    fn found(entry: &Cached<ConversationEntry>) -> &Representations {
        match &entry.value {
            ConversationEntry::Found(r) => r,
            ConversationEntry::NotFound => panic!("not found"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_found_conversation_comes_back_with_the_same_bytes_and_etags() {
        let now = Instant::now();
        let mut representations = Representations::new(
            br#"{"id":"c","participants":[]}"#,
            br#"{"id":"c","state":"ended"}"#,
            ConversationState::Ended,
        );
        for pushed in [None, Some(Duration::from_secs(45))] {
            representations.pushed = pushed.map(|ttl| {
                Box::new(PushedView {
                    document_fetched_at: now,
                    document_fresh_until: now + Duration::from_secs(10),
                    document_stale_until: now + Duration::from_secs(300),
                    ttl,
                })
            });
            let entry = Cached {
                value: ConversationEntry::Found(representations.clone()),
                fetched_at: now,
                fresh_until: now + Duration::from_secs(60),
                stale_until: now + Duration::from_secs(360),
            };
            let read = round_trip(&entry);
            let (original, copy) = (found(&entry), found(&read));
            assert_eq!(copy.full, original.full);
            assert_eq!(copy.view, original.view);
            assert_eq!(copy.full_etag, original.full_etag);
            assert_eq!(copy.view_etag, original.view_etag);
            assert_eq!(copy.state, original.state);
            assert_eq!(copy.pushed, original.pushed);
            assert_eq!(
                (read.fetched_at, read.fresh_until, read.stale_until),
                (entry.fetched_at, entry.fresh_until, entry.stale_until)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_remembered_not_found_comes_back_and_garbage_does_not() {
        let now = Instant::now();
        let entry = Cached {
            value: ConversationEntry::NotFound,
            fetched_at: now,
            fresh_until: now,
            stale_until: now,
        };
        assert!(matches!(
            round_trip(&entry).value,
            ConversationEntry::NotFound
        ));
        let clock = WallClock::now();
        for garbage in [
            &b"\x02"[..],
            b"\x01\x07",
            b"\x00\x00",
            b"\x01\x00\xff\xff\xff\xff",
        ] {
            assert!(ConversationEntry::decode(garbage, &clock).is_none());
        }
    }
}
