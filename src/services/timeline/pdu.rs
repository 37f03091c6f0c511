//! A persistent data unit: a signed room event as stored and as sent over federation.

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId,
    OwnedRoomId, OwnedUserId, RoomId, UInt, UserId, events::TimelineEventType, serde::Raw,
};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, value::RawValue as RawJsonValue};

use crate::error::{Error, Result};

/// The fields of a PDU that the server reads; the full signed JSON is kept beside it.
#[derive(Clone, Debug, Deserialize)]
pub struct Pdu {
    #[serde(default = "placeholder_event_id")]
    pub event_id: OwnedEventId,
    #[serde(default = "placeholder_room_id")]
    pub room_id: OwnedRoomId,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    pub kind: TimelineEventType,
    pub content: Box<RawJsonValue>,
    #[serde(default)]
    pub state_key: Option<String>,
    #[serde(deserialize_with = "event_refs")]
    pub prev_events: Vec<OwnedEventId>,
    pub depth: UInt,
    #[serde(deserialize_with = "event_refs")]
    pub auth_events: Vec<OwnedEventId>,
    #[serde(default)]
    pub redacts: Option<OwnedEventId>,
    /// Whether the JSON has a `room_id` (a v12 create event has none: its id names the room).
    #[serde(skip)]
    pub room_id_in_json: bool,
}

fn placeholder_event_id() -> OwnedEventId {
    EventId::parse("$placeholder").expect("valid")
}

fn placeholder_room_id() -> OwnedRoomId {
    OwnedRoomId::try_from("!placeholder").expect("valid")
}

/// Accepts both event reference formats: `"$id"` (room v3+) and `["$id", {hashes}]` (v1, v2).
fn event_refs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OwnedEventId>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ref {
        Id(OwnedEventId),
        Pair(OwnedEventId, serde::de::IgnoredAny),
    }
    Ok(Vec::<Ref>::deserialize(d)?
        .into_iter()
        .map(|r| match r {
            Ref::Id(id) | Ref::Pair(id, _) => id,
        })
        .collect())
}

/// Whether an event's JSON belongs to `room_id`: its `room_id` field, or for a room 12 create
/// event (which has none) the hash its event id and the room id share. Nothing a peer sends is
/// read as an event of another room than the one it names (pure).
pub fn json_in_room(object: &CanonicalJsonObject, event_id: &EventId, room_id: &RoomId) -> bool {
    match object.get("room_id") {
        Some(CanonicalJsonValue::String(r)) => r == room_id.as_str(),
        Some(_) => false,
        None => event_id
            .as_str()
            .get(1..)
            .is_some_and(|hash| room_id.as_str().get(1..) == Some(hash)),
    }
}

/// [`json_in_room`] for a PDU read without a tree: `room_id` is its `room_id` field, if any.
pub fn value_in_room(
    room_id_field: Option<&serde_json::Value>,
    event_id: &EventId,
    room_id: &RoomId,
) -> bool {
    match room_id_field {
        Some(serde_json::Value::String(r)) => r == room_id.as_str(),
        Some(_) => false,
        None => event_id
            .as_str()
            .get(1..)
            .is_some_and(|hash| room_id.as_str().get(1..) == Some(hash)),
    }
}

impl Pdu {
    /// Parses a stored or received PDU; `event_id` and `room_id` are given where the JSON lacks them.
    pub fn from_canonical(
        object: &CanonicalJsonObject,
        event_id: &EventId,
        room_id: &RoomId,
    ) -> Result<Self> {
        // Through text: the content is kept as raw JSON, which a `Value` would have to re-serialize.
        let text = serde_json::to_string(object).map_err(|e| Error::bad_json(e.to_string()))?;
        let mut pdu: Pdu = serde_json::from_str(&text)
            .map_err(|e| Error::bad_json(format!("invalid event: {e}")))?;
        pdu.event_id = event_id.to_owned();
        pdu.room_id_in_json = object.contains_key("room_id");
        pdu.room_id = room_id.to_owned();
        Ok(pdu)
    }

    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    pub fn content_value(&self) -> Value {
        serde_json::from_str(self.content.get()).unwrap_or(Value::Null)
    }

    /// A field of the content, as JSON.
    pub fn content_field(&self, field: &str) -> Option<Value> {
        match self.content_value() {
            Value::Object(mut map) => map.remove(field),
            _ => None,
        }
    }

    pub fn membership(&self) -> Option<String> {
        self.content_field("membership")
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// The redacted `event_id` of an `m.room.redaction`: from `content.redacts` (v11+) or the top level.
    pub fn redacted_event(&self) -> Option<OwnedEventId> {
        self.redacts.clone().or_else(|| {
            self.content_field("redacts")
                .and_then(|v| v.as_str().and_then(|s| OwnedEventId::try_from(s).ok()))
        })
    }
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }

    fn room_id(&self) -> Option<&RoomId> {
        self.room_id_in_json.then_some(&*self.room_id)
    }

    fn sender(&self) -> &UserId {
        &self.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }

    fn content(&self) -> &RawJsonValue {
        &self.content
    }

    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }

    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        false
    }
}

/// Which shape of client event to produce.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ClientFormat {
    /// With `room_id` (/messages, /context, /event, /state).
    Room,
    /// Without `room_id` (inside /sync's per-room sections).
    Sync,
}

/// Turns a stored PDU into the client-server event format.
pub fn client_event(
    object: &CanonicalJsonObject,
    event_id: &EventId,
    room_id: &RoomId,
    format: ClientFormat,
    unsigned: serde_json::Map<String, Value>,
) -> Value {
    let mut out = serde_json::Map::with_capacity(9);
    for field in [
        "content",
        "origin_server_ts",
        "sender",
        "state_key",
        "type",
        "redacts",
    ] {
        if let Some(v) = object.get(field) {
            out.insert(field.to_owned(), canonical_to_value(v));
        }
    }
    out.insert("event_id".into(), Value::String(event_id.to_string()));
    if format == ClientFormat::Room {
        out.insert("room_id".into(), Value::String(room_id.to_string()));
    }
    if !unsigned.is_empty() {
        out.insert("unsigned".into(), Value::Object(unsigned));
    }
    Value::Object(out)
}

pub fn canonical_to_value(v: &CanonicalJsonValue) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Wraps JSON as a ruma `Raw<T>`.
pub fn raw<T>(value: &Value) -> Raw<T> {
    Raw::from_json(serde_json::value::to_raw_value(value).expect("JSON values serialize"))
}
