//! The client form of a stored PDU, written straight from its stored JSON.
//!
//! [`super::pdu::client_event`] builds the same event from a parsed `CanonicalJsonObject`; this
//! path copies the fields a client sees as raw text and builds no tree, for the bulk reads of
//! /sync (a big room's state is thousands of member events).

use std::{collections::BTreeMap, fmt::Write};

use ruma::{EventId, RoomId};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::pdu::ClientFormat;
use crate::error::{Error, Result};

/// The fields of a stored PDU that its client form carries, borrowed from the stored text.
#[derive(Deserialize)]
struct Stored<'a> {
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    origin_server_ts: Option<i64>,
    #[serde(borrow)]
    sender: Option<&'a RawValue>,
    #[serde(borrow)]
    state_key: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    redacts: Option<&'a RawValue>,
    /// Read as a string (not borrowed: a value with escapes cannot be).
    room_id: Option<serde_json::Value>,
    #[serde(borrow)]
    unsigned: Option<BTreeMap<String, &'a RawValue>>,
}

/// The client form of the stored PDU `stored` (event `event_id` of `room_id`), with its `age` as of
/// `now_ms`; `None` when the JSON is not of `room_id` (see [`super::pdu::json_in_room`]). The same
/// fields as [`super::pdu::client_event`] with [`super::append::unsigned_for`], in the same order.
pub fn client_event_from_stored(
    stored: &[u8],
    event_id: &EventId,
    room_id: &RoomId,
    format: ClientFormat,
    now_ms: u64,
) -> Result<Option<Box<RawValue>>> {
    let fields: Stored<'_> =
        serde_json::from_slice(stored).map_err(|_| Error::internal("corrupt stored PDU"))?;
    if !super::pdu::value_in_room(fields.room_id.as_ref(), event_id, room_id) {
        return Ok(None);
    }
    let mut out = String::with_capacity(stored.len() / 2 + 128);
    let mut first = true;
    let mut field = |out: &mut String, name: &str, value: &str| {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        out.push_str(value);
    };
    // Keys in sorted order, as a `serde_json::Map` writes them.
    if let Some(content) = fields.content {
        field(&mut out, "content", content.get());
    }
    field(&mut out, "event_id", &json_string(event_id.as_str()));
    if let Some(ts) = fields.origin_server_ts {
        field(&mut out, "origin_server_ts", &ts.to_string());
    }
    if let Some(redacts) = fields.redacts {
        field(&mut out, "redacts", redacts.get());
    }
    if format == ClientFormat::Room {
        field(&mut out, "room_id", &json_string(room_id.as_str()));
    }
    if let Some(sender) = fields.sender {
        field(&mut out, "sender", sender.get());
    }
    if let Some(state_key) = fields.state_key {
        field(&mut out, "state_key", state_key.get());
    }
    if let Some(kind) = fields.kind {
        field(&mut out, "type", kind.get());
    }
    let age = fields.origin_server_ts.map(|ts| {
        now_ms
            .saturating_sub(u64::try_from(ts).unwrap_or_default())
            .to_string()
    });
    let stored_unsigned = fields.unsigned.unwrap_or_default();
    let mut unsigned: Vec<(&str, &str)> = stored_unsigned
        .iter()
        .filter(|(k, _)| !(age.is_some() && k.as_str() == "age"))
        .map(|(k, v)| (k.as_str(), v.get()))
        .collect();
    if let Some(age) = &age {
        unsigned.push(("age", age));
        unsigned.sort_unstable_by_key(|(k, _)| *k);
    }
    if !unsigned.is_empty() {
        let mut text = String::new();
        for (i, (k, v)) in unsigned.iter().enumerate() {
            let _ = write!(
                text,
                "{}{}:{}",
                if i == 0 { '{' } else { ',' },
                json_string(k),
                v
            );
        }
        text.push('}');
        field(&mut out, "unsigned", &text);
    }
    if first {
        out.push('{');
    }
    out.push('}');
    RawValue::from_string(out)
        .map_err(|_| Error::internal("client event is not JSON"))
        .map(Some)
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

#[cfg(test)]
mod tests {
    use ruma::{CanonicalJsonObject, event_id, room_id};
    use serde_json::{Value, json};

    use super::*;
    use crate::services::timeline::{append::unsigned_for, pdu::client_event};

    /// What the tree-building path gives, `age` left out (it reads the clock).
    fn by_tree(
        stored: &Value,
        event_id: &EventId,
        room_id: &RoomId,
        format: ClientFormat,
    ) -> Value {
        let object: CanonicalJsonObject = serde_json::from_value(stored.clone()).unwrap();
        let mut unsigned = unsigned_for(&object, None);
        unsigned.remove("age");
        let mut v = client_event(&object, event_id, room_id, format, unsigned);
        if v["unsigned"].as_object().is_some_and(|u| u.is_empty()) {
            v.as_object_mut().unwrap().remove("unsigned");
        }
        v
    }

    fn by_text(
        stored: &Value,
        event_id: &EventId,
        room_id: &RoomId,
        format: ClientFormat,
        now: u64,
    ) -> Option<Value> {
        let bytes = serde_json::to_vec(stored).unwrap();
        let raw = client_event_from_stored(&bytes, event_id, room_id, format, now).unwrap()?;
        Some(serde_json::from_str(raw.get()).unwrap())
    }

    #[test]
    fn the_stored_text_gives_the_same_client_event_as_the_tree() {
        let room = room_id!("!r:example.org");
        let id = event_id!("$abc");
        let member = json!({
            "auth_events": ["$a", "$b"], "prev_events": ["$c"], "depth": 7,
            "content": {"membership": "join", "displayname": "Zoë \"q\" \\ \u{1F600}"},
            "hashes": {"sha256": "x"}, "signatures": {"example.org": {"ed25519:1": "y"}},
            "origin_server_ts": 1_000, "room_id": room.as_str(), "sender": "@u:example.org",
            "state_key": "@u:example.org", "type": "m.room.member",
            "unsigned": {"age": 5, "prev_content": {"membership": "invite"}, "replaces_state": "$old"},
        });
        let redaction = json!({
            "auth_events": [], "prev_events": [], "depth": 9, "content": {},
            "origin_server_ts": 2_000, "room_id": room.as_str(), "sender": "@u:example.org",
            "type": "m.room.redaction", "redacts": "$gone",
        });
        for stored in [&member, &redaction] {
            for format in [ClientFormat::Sync, ClientFormat::Room] {
                let mut fast = by_text(stored, id, room, format, 10_000).unwrap();
                let ts = stored["origin_server_ts"].as_u64().unwrap();
                assert_eq!(fast["unsigned"]["age"], json!(10_000 - ts));
                fast["unsigned"].as_object_mut().unwrap().remove("age");
                if fast["unsigned"].as_object().unwrap().is_empty() {
                    fast.as_object_mut().unwrap().remove("unsigned");
                }
                assert_eq!(fast, by_tree(stored, id, room, format));
            }
        }
        // The room's id is in the text, escaped or not.
        let mut escaped = String::from_utf8(serde_json::to_vec(&member).unwrap()).unwrap();
        escaped = escaped.replace("\"!r:example.org\"", "\"\\u0021r:example.org\"");
        let raw = client_event_from_stored(escaped.as_bytes(), id, room, ClientFormat::Sync, 0);
        assert!(raw.unwrap().is_some());
    }

    #[test]
    fn an_event_of_another_room_is_not_given() {
        let stored = json!({
            "content": {}, "origin_server_ts": 1, "room_id": "!other:example.org",
            "sender": "@u:example.org", "type": "m.room.message",
        });
        let room = room_id!("!r:example.org");
        assert!(by_text(&stored, event_id!("$e"), room, ClientFormat::Sync, 5).is_none());
        // Without a room id (a room 12 create event), the event id must name the room.
        let create = json!({"content": {}, "origin_server_ts": 1, "sender": "@u:example.org",
            "state_key": "", "type": "m.room.create"});
        let room12 = room_id!("!hash");
        assert!(by_text(&create, event_id!("$hash"), room12, ClientFormat::Sync, 5).is_some());
        assert!(by_text(&create, event_id!("$other"), room12, ClientFormat::Sync, 5).is_none());
        // Stored text that is not an event is an error, not an empty event.
        assert!(
            client_event_from_stored(b"[1]", event_id!("$e"), room, ClientFormat::Sync, 5).is_err()
        );
    }
}
