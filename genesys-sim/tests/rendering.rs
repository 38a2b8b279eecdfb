//! The rendered documents of a fixed-seed org, pinned: a refactoring of the renderers
//! (`render::realtime`, `render::analytics`, `render::flat`) must leave every byte as it was.
//!
//! Each conversation of the org is rendered, in both views (the real-time `Conversation`
//! and the analytics details record), at instants from before its first event to after its
//! last; the SHA-256 of those documents is compared with the committed
//! `tests/golden/rendered.sha256`. The contract tests say the documents are valid; this
//! test says they did not change. After an intended change to the wire format, rewrite the
//! file with `UPDATE_GOLDEN=1 cargo test -p genesys-sim --test rendering`.

use chrono::{DateTime, Duration, Utc};
use genesys_sim::data::Dataset;
use genesys_sim::render::{analytics, realtime};
use sha2::{Digest, Sha256};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/rendered.sha256");

/// One line per conversation: its id and the digest of everything rendered for it.
fn rendered_digests() -> String {
    let anchor = DateTime::parse_from_rfc3339("2025-03-12T09:30:00Z")
        .expect("valid")
        .with_timezone(&Utc);
    let data = Dataset::generate(7, anchor, 2, 120, 8);
    let mut lines = String::new();
    for record in &data.conversations {
        let span = (record.last_event() - record.start).num_milliseconds();
        let mut digest = Sha256::new();
        for step in 0..=10 {
            let now = record.start + Duration::milliseconds(span * step / 10 - 1 + step % 3);
            if now >= record.start {
                let document = realtime::at(record, &data.org, now);
                digest.update(serde_json::to_string(&document).expect("serializes"));
            }
            let mut details = String::new();
            analytics::at(record, &data.org, now).write_json(&mut details);
            digest.update(details);
        }
        let hex: String = digest
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        lines.push_str(&format!("{} {hex}\n", record.id));
    }
    lines
}

#[test]
fn rendered_documents_are_byte_for_byte_the_pinned_ones() {
    let rendered = rendered_digests();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &rendered).expect("writes the golden file");
        return;
    }
    let pinned = std::fs::read_to_string(GOLDEN).expect("the golden file is committed");
    let changed: Vec<&str> = rendered
        .lines()
        .zip(pinned.lines())
        .filter(|(now, then)| now != then)
        .map(|(now, _)| now.split(' ').next().unwrap_or_default())
        .collect();
    assert!(
        changed.is_empty() && rendered.lines().count() == pinned.lines().count(),
        "the rendering of {} conversation(s) changed (first: {:?}); if intended, \
         UPDATE_GOLDEN=1 cargo test -p genesys-sim --test rendering",
        changed.len().max(1),
        changed.first()
    );
}
