//! Writing JSON text directly, byte for byte what `serde_json` writes for the same values,
//! for the large responses (details pages, aggregates): in a debug build, serde's generic
//! machinery costs more than the query that produced the data.
//!
//! Objects are written field by field with [`put_key`], which adds the separating comma
//! unless the field is the object's first.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Writes one of the simulator's own literals (enum values, names: nothing to escape) as
/// a JSON string.
pub fn put_literal(out: &mut String, text: &'static str) {
    out.push('"');
    out.push_str(text);
    out.push('"');
}

/// Writes a whole number.
pub fn put_int(out: &mut String, value: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        {
            digits[at] = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

/// Writes `text` as a JSON string, escaped exactly as `serde_json` escapes it.
pub fn put_str(out: &mut String, text: &str) {
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(&serde_json::to_string(text).expect("a string serializes"));
    } else {
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
}

/// Writes `,"key":` (without the comma for the first field of an object).
pub fn put_key(out: &mut String, key: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

pub fn put_id(out: &mut String, id: Uuid) {
    out.push('"');
    out.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    out.push('"');
}

pub fn put_time(out: &mut String, at: DateTime<Utc>) {
    out.push('"');
    super::write_time(out, at);
    out.push('"');
}

pub fn put_list<T>(out: &mut String, items: &[T], mut put: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        put(out, item);
    }
    out.push(']');
}
