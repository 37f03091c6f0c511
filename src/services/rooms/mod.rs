//! Rooms: reading state, creating rooms and changing memberships.

pub mod create;
pub mod hierarchy;
pub mod membership;
pub mod power;
pub mod restricted;
pub mod upgrade;
pub mod upgrade_levels;
pub mod upgrade_user_state;
pub mod version;

use std::sync::Arc;

use ruma::{EventId, OwnedEventId, RoomId, UserId, events::StateEventType, serde::Raw};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    services::{
        Services,
        timeline::{
            StoredEvent,
            append::{NewEvent, Target, append_local},
            federation_json::{self, FederationPdu},
            pdu::{ClientFormat, raw},
        },
    },
};

/// Loads an event by id (with its room).
pub fn event_by_id(s: &Services, event_id: &EventId) -> Result<Option<Arc<StoredEvent>>> {
    let Some(short) = s.short.event(event_id)? else {
        return Ok(None);
    };
    let Some(meta) = s.timeline.meta(short)? else {
        return Ok(None);
    };
    let room_id = s.short.room_id(meta.short_room)?;
    s.timeline.load(short, event_id, &room_id)
}

/// Loads the event of short id `short` in `room_id`.
pub fn event_by_short(
    s: &Services,
    short: u64,
    room_id: &RoomId,
) -> Result<Option<Arc<StoredEvent>>> {
    if let Some(cached) = s.timeline.cached(short, room_id) {
        return Ok(cached);
    }
    let event_id = s.short.event_id(short)?;
    s.timeline.load(short, &event_id, room_id)
}

/// Many events of one room by their short ids, read together (`None` where one is unknown or of
/// another room); in the order of `shorts`.
pub fn events_by_short(
    s: &Services,
    shorts: &[u64],
    room_id: &RoomId,
) -> Result<Vec<Option<Arc<StoredEvent>>>> {
    cached_or_stored(
        s,
        shorts,
        room_id,
        |event| Ok(event.clone()),
        |wanted| s.timeline.load_many(wanted, room_id),
    )
}

/// The federation form of many events of one room by their short ids, in the order of `shorts`
/// (`None` where one is unknown or of another room): cached events from the cache, the others
/// their stored JSON as it is (nothing parsed into a tree, nothing cached).
pub fn federation_events_by_short(
    s: &Services,
    shorts: &[u64],
    room_id: &RoomId,
) -> Result<Vec<Option<FederationPdu>>> {
    cached_or_stored(s, shorts, room_id, federation_json::from_event, |wanted| {
        s.timeline.federation_many(wanted, room_id)
    })
}

/// The client form of many events of one room by their short ids, in the order of `shorts`
/// (`None` where one is unknown or of another room): cached events from the cache, the others written
/// straight from their stored JSON (nothing parsed into a tree, nothing cached).
pub fn client_events_by_short<T>(
    s: &Services,
    shorts: &[u64],
    room_id: &RoomId,
    format: ClientFormat,
) -> Result<Vec<Option<Raw<T>>>> {
    cached_or_stored(
        s,
        shorts,
        room_id,
        |event| Ok(raw(&event.to_client(&s.timeline, format, None)?)),
        |wanted| {
            Ok(s.timeline
                .client_many(wanted, room_id, format)?
                .into_iter()
                .map(|json| json.map(Raw::from_json))
                .collect())
        },
    )
}

/// Many events of one room by their short ids, each in the form `cached` makes of a cached event
/// or `stored` of the others (given their short and event ids, read together; answering in their
/// order), in the order of `shorts`; `None` where one is unknown or of another room.
fn cached_or_stored<T>(
    s: &Services,
    shorts: &[u64],
    room_id: &RoomId,
    cached: impl Fn(&Arc<StoredEvent>) -> Result<T>,
    stored: impl FnOnce(&[(u64, OwnedEventId)]) -> Result<Vec<Option<T>>>,
) -> Result<Vec<Option<T>>> {
    let mut out: Vec<Option<T>> = Vec::with_capacity(shorts.len());
    let mut missing = Vec::new();
    for (i, short) in shorts.iter().enumerate() {
        match s.timeline.cached(*short, room_id) {
            Some(Some(event)) => out.push(Some(cached(&event)?)),
            Some(None) => out.push(None),
            None => {
                out.push(None);
                missing.push(i);
            }
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let missing_shorts: Vec<u64> = missing.iter().map(|&i| shorts[i]).collect();
    let (slots, wanted): (Vec<usize>, Vec<(u64, OwnedEventId)>) = missing
        .iter()
        .zip(s.short.event_ids(&missing_shorts)?)
        .filter_map(|(&i, id)| Some((i, (shorts[i], id?))))
        .unzip();
    for (slot, value) in slots.into_iter().zip(stored(&wanted)?) {
        out[slot] = value;
    }
    Ok(out)
}

/// The current state event `(kind, state_key)` of a room.
pub fn state_event(
    s: &Services,
    room_id: &RoomId,
    kind: &StateEventType,
    state_key: &str,
) -> Result<Option<Arc<StoredEvent>>> {
    let Some(short_room) = s.short.room(room_id)? else {
        return Ok(None);
    };
    let state = s.state.current_state(short_room)?;
    let Some(key) = s.short.statekey(kind, state_key)? else {
        return Ok(None);
    };
    let Some(short) = state.get(&key) else {
        return Ok(None);
    };
    event_by_short(s, *short, room_id)
}

/// The content of a current state event, as JSON.
pub fn state_content(
    s: &Services,
    room_id: &RoomId,
    kind: &StateEventType,
    state_key: &str,
) -> Result<Option<Value>> {
    Ok(state_event(s, room_id, kind, state_key)?.map(|e| e.pdu.content_value()))
}

/// The state after the room's last event at or before stream position `pos`.
pub fn state_at_pos(
    s: &Services,
    short_room: u64,
    pos: u64,
) -> Result<Arc<crate::services::state::StateMap>> {
    let Some((_, short)) = s
        .timeline
        .scan(short_room, pos, crate::storage::Direction::Backward, 1)?
        .into_iter()
        .next()
    else {
        return Ok(Default::default());
    };
    let snapshot = s.timeline.meta(short)?.map_or(0, |m| m.state_after);
    s.state.load(snapshot)
}

pub fn is_world_readable(s: &Services, short_room: u64) -> Result<bool> {
    let room_id = s.short.room_id(short_room)?;
    Ok(
        state_content(s, &room_id, &StateEventType::RoomHistoryVisibility, "")?
            .and_then(|c| {
                c.get("history_visibility")
                    .and_then(Value::as_str)
                    .map(|v| v == "world_readable")
            })
            .unwrap_or(false),
    )
}

pub fn short_room(s: &Services, room_id: &RoomId) -> Result<u64> {
    s.short
        .room(room_id)?
        .ok_or_else(|| Error::not_found("Unknown room"))
}

/// Sends a state or message event in an existing room.
pub fn send(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    event: NewEvent,
) -> Result<ruma::OwnedEventId> {
    Ok(append_local(s, Target::Room(room_id), sender, event, None)?.0)
}

/// Changes `target`'s membership, keeping their profile in join events.
pub fn set_membership(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    membership: &str,
    reason: Option<&str>,
    extra: Option<serde_json::Map<String, Value>>,
) -> Result<ruma::OwnedEventId> {
    if !s.timeline.room_exists(room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    let mut content = json!({ "membership": membership });
    if membership == "join" || membership == "invite" {
        if let Some(profile) = s.users.profile(target)? {
            if let Some(name) = profile.displayname {
                content["displayname"] = json!(name);
            }
            if let Some(avatar) = profile.avatar_url {
                content["avatar_url"] = json!(avatar);
            }
        }
    }
    if let Some(reason) = reason {
        content["reason"] = json!(reason);
    }
    if let Some(extra) = extra {
        for (k, v) in extra {
            content[k] = v;
        }
    }
    send(
        s,
        room_id,
        sender,
        NewEvent::state(StateEventType::RoomMember, target.as_str(), content),
    )
}
