//! The federation form of stored PDUs, for the answers that carry a room's whole state
//! (`send_join`, `state`): the stored JSON as it is, with the auth events read from it, and no
//! tree built. Before, each of a big room's thousands of state events was parsed into a tree,
//! copied into a `serde_json::Value` and written again (a third of a `send_join` answer's time).

use std::sync::Arc;

use ruma::{EventId, OwnedEventId, RoomId};
use serde::Deserialize;
use serde_json::{Value, value::RawValue};

use super::StoredEvent;
use crate::error::{Error, Result};

/// A stored PDU in its federation form, with what an auth chain walk needs.
#[derive(Debug)]
pub struct FederationPdu {
    pub event_id: OwnedEventId,
    pub json: Box<RawValue>,
    pub auth_events: Vec<OwnedEventId>,
}

/// The fields of a stored PDU read here.
#[derive(Deserialize)]
struct Head {
    /// Read as a value (a string with escapes cannot be borrowed).
    room_id: Option<Value>,
    /// Event IDs, or `[id, hashes]` pairs in room versions 1 and 2.
    #[serde(default)]
    auth_events: Vec<Value>,
}

/// The federation form of the stored PDU `stored` (event `event_id` of `room_id`); `None` when
/// the JSON is not of `room_id` (see [`super::pdu::json_in_room`]).
pub fn from_stored(
    stored: &[u8],
    event_id: &EventId,
    room_id: &RoomId,
) -> Result<Option<FederationPdu>> {
    let corrupt = || Error::internal("corrupt stored PDU");
    let text = std::str::from_utf8(stored).map_err(|_| corrupt())?;
    let head: Head = serde_json::from_str(text).map_err(|_| corrupt())?;
    if !super::pdu::value_in_room(head.room_id.as_ref(), event_id, room_id) {
        return Ok(None);
    }
    let auth_events = head
        .auth_events
        .iter()
        .filter_map(|a| match a {
            Value::String(id) => Some(id.as_str()),
            Value::Array(pair) => pair.first().and_then(Value::as_str),
            _ => None,
        })
        .filter_map(|id| OwnedEventId::try_from(id).ok())
        .collect();
    Ok(Some(FederationPdu {
        event_id: event_id.to_owned(),
        json: RawValue::from_string(text.to_owned()).map_err(|_| corrupt())?,
        auth_events,
    }))
}

/// The federation form of an event already parsed (from the event cache).
pub fn from_event(event: &Arc<StoredEvent>) -> Result<FederationPdu> {
    Ok(FederationPdu {
        event_id: event.pdu.event_id.clone(),
        json: serde_json::value::to_raw_value(&event.json)
            .map_err(|e| Error::internal(e.to_string()))?,
        auth_events: event.pdu.auth_events.clone(),
    })
}

#[cfg(test)]
mod tests {
    use ruma::{event_id, room_id};
    use serde_json::json;

    use super::from_stored;

    #[test]
    fn the_stored_json_is_served_as_it_is_with_its_auth_events() {
        let stored = json!({
            "room_id": "!r:x", "type": "m.room.topic", "state_key": "",
            "auth_events": ["$a", "$b"], "content": { "topic": "q\"uote" },
        })
        .to_string();
        let pdu = from_stored(stored.as_bytes(), event_id!("$e"), room_id!("!r:x"))
            .unwrap()
            .unwrap();
        assert_eq!(pdu.json.get(), stored);
        assert_eq!(pdu.auth_events, vec![event_id!("$a"), event_id!("$b")]);
        assert!(
            from_stored(stored.as_bytes(), event_id!("$e"), room_id!("!other:x"))
                .unwrap()
                .is_none(),
            "never served under another room"
        );
    }

    #[test]
    fn room_version_1_pairs_and_room_version_12_create_events_are_read() {
        let v1 = json!({ "room_id": "!r:x", "auth_events": [["$a:x", { "sha256": "h" }]] });
        let pdu = from_stored(
            v1.to_string().as_bytes(),
            event_id!("$e:x"),
            room_id!("!r:x"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(pdu.auth_events, vec![event_id!("$a:x")]);
        // A v12 create event has no room_id: its room's ID is its own event ID's hash.
        let create = json!({ "type": "m.room.create", "auth_events": [] }).to_string();
        assert!(
            from_stored(create.as_bytes(), event_id!("$abc"), room_id!("!abc"))
                .unwrap()
                .is_some()
        );
        assert!(
            from_stored(create.as_bytes(), event_id!("$abc"), room_id!("!abd"))
                .unwrap()
                .is_none()
        );
        assert!(from_stored(b"{", event_id!("$e"), room_id!("!r:x")).is_err());
    }
}
