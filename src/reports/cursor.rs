//! Report cursors: where the next page starts, opaque to clients, signed so that a tampered
//! cursor is refused (400) rather than answered with a wrong page, and self-contained so
//! they survive a proxy restart. The signing key comes from the settings or, by default,
//! is derived from the Genesys client secret (stable across restarts, never shown).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Format version of [`Position`]: cursors of another version are refused by name.
pub const VERSION: u8 = 2;
/// Most ids of conversations that started at one instant a cursor lists (the walk never
/// ends a page inside a longer tie group), so that an issued cursor always fits
/// [`MAX_CURSOR_LEN`].
pub const MAX_TIE_IDS: usize = 32;
/// Longest cursor accepted (and issued).
pub const MAX_CURSOR_LEN: usize = 4096;

/// Where a search continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Format version.
    pub v: u8,
    /// The fingerprint of the query the cursor belongs to.
    pub q: String,
    /// The report settings that shape the walk (chunking and upstream page size), as
    /// [`walk_settings`] writes them: a cursor issued under others is refused.
    pub s: String,
    /// The resolved interval (pinned, so a relative `last` query pages through one
    /// interval).
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Index of the chunk, in walk order.
    pub chunk: usize,
    /// Upstream page number within the chunk; 0 when the walk has not located the chunk's
    /// first page yet.
    pub page: u32,
    /// Whether the chunk is served from the first upstream page in the opposite order
    /// (it held all of the chunk's hits).
    #[serde(default)]
    pub reversed: bool,
    /// Start of the last conversation returned.
    pub last_start: Option<DateTime<Utc>>,
    /// Ids returned so far that started exactly at `last_start` (ties).
    pub last_ids: Vec<String>,
    /// Conversations returned on earlier pages.
    pub returned: u64,
    /// The number of conversations in the interval, when known.
    pub total: Option<u64>,
}

/// The settings stamp of cursors: what must not change between two pages of one walk
/// (the page size and the chunking settings, and `w2`: the chunk layout of
/// [`super::interval::Interval::walk_chunks`], so cursors of the earlier layout are refused).
#[must_use]
pub fn walk_settings(upstream_page_size: u32, max_interval_days: u32) -> String {
    format!("p{upstream_page_size}d{max_interval_days}w2")
}

/// Signs and checks cursors.
#[derive(Clone)]
pub struct CursorSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for CursorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorSigner([REDACTED])")
    }
}

const BLOCK: usize = 64;

fn hmac(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut padded = [0u8; BLOCK];
    padded[..32].copy_from_slice(key);
    let mut inner = Sha256::new();
    inner.update(padded.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(padded.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

impl CursorSigner {
    /// A signer whose key is derived from `secret`.
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"genesys-proxy report cursor v1\0");
        hasher.update(secret);
        Self {
            key: hasher.finalize().into(),
        }
    }

    /// The opaque cursor for `position`.
    #[must_use]
    pub fn encode(&self, position: &Position) -> String {
        let payload = serde_json::to_vec(position).unwrap_or_default();
        let mac = hmac(&self.key, &payload);
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}", engine.encode(&payload), engine.encode(&mac[..16]))
    }

    /// The position of a cursor, if it is intact and was made by this signer.
    ///
    /// # Errors
    /// A reason for the client (no detail of what was wrong with the signature).
    pub fn decode(&self, cursor: &str) -> Result<Position, String> {
        let invalid = || {
            "is not a cursor this proxy issued (it may have been altered or truncated)".to_owned()
        };
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(invalid());
        }
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (payload, mac) = cursor.split_once('.').ok_or_else(invalid)?;
        let payload = engine.decode(payload).map_err(|_| invalid())?;
        let mac = engine.decode(mac).map_err(|_| invalid())?;
        let expected = hmac(&self.key, &payload);
        if mac.len() != 16 || !bool::from(expected[..16].ct_eq(&mac)) {
            return Err(invalid());
        }
        let version = serde_json::from_slice::<serde_json::Value>(&payload)
            .ok()
            .and_then(|v| v.get("v").and_then(serde_json::Value::as_u64));
        if version.is_some_and(|v| v != u64::from(VERSION)) {
            return Err(
                "was issued by an earlier version of this proxy: start the search again without a cursor"
                    .into(),
            );
        }
        serde_json::from_slice(&payload).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> Position {
        let at = DateTime::parse_from_rfc3339("2025-03-11T10:00:00.123Z")
            .expect("time")
            .with_timezone(&Utc);
        Position {
            v: VERSION,
            q: "abc".into(),
            s: walk_settings(100, 31),
            from: at,
            to: at + chrono::Duration::days(3),
            chunk: 1,
            page: 3,
            reversed: false,
            last_start: Some(at + chrono::Duration::hours(1)),
            last_ids: vec!["x".into()],
            returned: 150,
            total: Some(42),
        }
    }

    #[test]
    fn a_cursor_round_trips_across_signers_with_the_same_secret() {
        let cursor = CursorSigner::new(b"secret").encode(&position());
        assert_eq!(
            CursorSigner::new(b"secret").decode(&cursor).expect("valid"),
            position()
        );
    }

    #[test]
    fn altered_or_foreign_cursors_are_refused() {
        let signer = CursorSigner::new(b"secret");
        let cursor = signer.encode(&position());
        let (payload, mac) = cursor.split_once('.').expect("two parts");
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut tampered: Position =
            serde_json::from_slice(&engine.decode(payload).expect("b64")).expect("json");
        tampered.page = 4;
        let forged = format!(
            "{}.{mac}",
            engine.encode(serde_json::to_vec(&tampered).expect("json"))
        );
        assert!(signer.decode(&forged).is_err());
        assert!(CursorSigner::new(b"other").decode(&cursor).is_err());
        assert!(signer.decode("garbage").is_err());
        assert!(signer.decode(&cursor[..cursor.len() - 2]).is_err());
    }

    #[test]
    fn a_cursor_with_the_most_tied_ids_fits_the_accepted_length() {
        let signer = CursorSigner::new(b"secret");
        let mut full = position();
        full.q = "f".repeat(32);
        full.s = walk_settings(u32::MAX, u32::MAX);
        full.chunk = usize::MAX;
        full.page = u32::MAX;
        full.returned = u64::MAX;
        full.total = Some(u64::MAX);
        full.last_ids = (0..MAX_TIE_IDS)
            .map(|i| format!("{i:08}-0000-4000-8000-000000000000"))
            .collect();
        let cursor = signer.encode(&full);
        assert!(cursor.len() <= MAX_CURSOR_LEN, "{} bytes", cursor.len());
        assert_eq!(signer.decode(&cursor).expect("accepted"), full);
    }

    #[test]
    fn a_cursor_of_another_version_is_refused_by_name() {
        let signer = CursorSigner::new(b"secret");
        let mut old = serde_json::to_value(position()).expect("json");
        old["v"] = serde_json::json!(1);
        let payload = serde_json::to_vec(&old).expect("json");
        let mac = hmac(&signer.key, &payload);
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let cursor = format!("{}.{}", engine.encode(&payload), engine.encode(&mac[..16]));
        let reason = signer.decode(&cursor).expect_err("refused");
        assert!(reason.contains("earlier version"), "{reason}");
    }
}
