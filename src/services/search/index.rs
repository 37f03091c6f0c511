//! What an event contributes to the index, and the encoding of postings.

use std::collections::BTreeMap;

use ruma::{CanonicalJsonObject, CanonicalJsonValue};

use super::tokenize::token_counts;
use crate::storage::keys::{Key, KeyReader, u64_from};

/// The indexed field of each indexed event type (the spec's `keys`).
pub fn indexed_field(kind: &str) -> Option<&'static str> {
    match kind {
        "m.room.message" => Some("body"),
        "m.room.name" => Some("name"),
        "m.room.topic" => Some("topic"),
        _ => None,
    }
}

/// The spec's key (`content.body`, …) of an event type, if it is indexed.
pub fn search_key(kind: &str) -> Option<String> {
    indexed_field(kind).map(|f| format!("content.{f}"))
}

/// The indexed text of an event (as stored, canonical JSON): None when the event is not indexed.
pub fn event_text(event: &CanonicalJsonObject) -> Option<&str> {
    let kind = event.get("type")?.as_str()?;
    let field = indexed_field(kind)?;
    let CanonicalJsonValue::Object(content) = event.get("content")? else {
        return None;
    };
    content.get(field)?.as_str()
}

/// The distinct tokens of an event's indexed text, with their occurrences.
pub fn event_tokens(event: &CanonicalJsonObject) -> BTreeMap<String, u32> {
    event_text(event).map(token_counts).unwrap_or_default()
}

pub fn posting_key(short_room: u64, token: &str, pos: u64) -> Vec<u8> {
    Key::new().u64(short_room).str(token).u64(pos).build()
}

pub fn posting_value(short_event: u64, count: u32) -> Vec<u8> {
    let mut value = short_event.to_be_bytes().to_vec();
    value.extend_from_slice(&count.to_be_bytes());
    value
}

/// The prefix of a room's postings of exactly `token`.
pub fn token_prefix(short_room: u64, token: &str) -> Vec<u8> {
    Key::new().u64(short_room).str(token).build()
}

/// The prefix of a room's postings of every token that starts with `start`.
pub fn token_start_prefix(short_room: u64, start: &str) -> Vec<u8> {
    let mut key = Key::new().u64(short_room).build();
    key.extend_from_slice(start.as_bytes());
    key
}

/// A decoded posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub token: String,
    pub pos: u64,
    pub short_event: u64,
    pub count: u32,
}

pub fn decode_posting(key: &[u8], value: &[u8]) -> Option<Posting> {
    let mut reader = KeyReader::new(key.get(8..)?);
    let token = reader.str()?.to_owned();
    let pos = reader.u64()?;
    let short_event = u64_from(value)?;
    let count = value
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or(1);
    Some(Posting {
        token,
        pos,
        short_event,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, content: serde_json::Value) -> CanonicalJsonObject {
        let value = serde_json::json!({ "type": kind, "content": content });
        match CanonicalJsonValue::try_from(value).unwrap() {
            CanonicalJsonValue::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn indexes_bodies_names_and_topics_only() {
        let message = event(
            "m.room.message",
            serde_json::json!({ "msgtype": "m.text", "body": "Lunch at noon, lunch!" }),
        );
        let tokens = event_tokens(&message);
        assert_eq!(tokens.get("lunch"), Some(&2));
        assert_eq!(tokens.get("noon"), Some(&1));
        assert_eq!(
            event_tokens(&event(
                "m.room.topic",
                serde_json::json!({ "topic": "Budget" })
            ))
            .get("budget"),
            Some(&1)
        );
        assert_eq!(
            event_tokens(&event("m.room.name", serde_json::json!({ "name": "Ops" }))).get("ops"),
            Some(&1)
        );
        assert!(
            event_tokens(&event(
                "m.room.member",
                serde_json::json!({ "membership": "join", "displayname": "x" })
            ))
            .is_empty()
        );
        assert!(event_tokens(&event("m.room.message", serde_json::json!({}))).is_empty());
    }

    #[test]
    fn postings_round_trip_and_prefixes_do_not_mix_tokens() {
        let key = posting_key(7, "lunch", 42);
        let posting = decode_posting(&key, &posting_value(9, 3)).unwrap();
        assert_eq!(
            posting,
            Posting {
                token: "lunch".into(),
                pos: 42,
                short_event: 9,
                count: 3
            }
        );
        assert!(key.starts_with(&token_prefix(7, "lunch")));
        assert!(!posting_key(7, "lunchbox", 1).starts_with(&token_prefix(7, "lunch")));
        assert!(posting_key(7, "lunchbox", 1).starts_with(&token_start_prefix(7, "lunch")));
        assert!(!posting_key(8, "lunch", 1).starts_with(&token_start_prefix(7, "lunch")));
    }
}
