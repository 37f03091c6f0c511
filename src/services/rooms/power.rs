//! Power levels as the client-server API needs them (the authorization rules proper are ruma's).

use std::sync::Arc;

use ruma::{RoomId, UserId, events::StateEventType, room_version_rules::RoomVersionRules};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{state_content, state_event, version},
        timeline::StoredEvent,
    },
};

fn number(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    })
}

/// A state event looked up by type and state key, in some state of the room.
pub trait StateLookup: Fn(&StateEventType, &str) -> Result<Option<Arc<StoredEvent>>> {}
impl<F: Fn(&StateEventType, &str) -> Result<Option<Arc<StoredEvent>>>> StateLookup for F {}

/// The current state of `room_id` as a `StateLookup`.
fn current<'a>(s: &'a Services, room_id: &'a RoomId) -> impl StateLookup + 'a {
    move |kind: &StateEventType, key: &str| state_event(s, room_id, kind, key)
}

/// Whether `user` created the room in a version where creators have unlimited power.
pub fn is_privileged_creator(s: &Services, room_id: &RoomId, user: &UserId) -> Result<bool> {
    let version = s
        .timeline
        .room_version(room_id)?
        .ok_or_else(|| Error::not_found("Unknown room"))?;
    is_privileged_creator_in(&version::rules(&version)?, user, current(s, room_id))
}

fn is_privileged_creator_in(
    rules: &RoomVersionRules,
    user: &UserId,
    state: impl StateLookup,
) -> Result<bool> {
    if !rules.authorization.explicitly_privilege_room_creators {
        return Ok(false);
    }
    let Some(create) = state(&StateEventType::RoomCreate, "")? else {
        return Ok(false);
    };
    let additional = create
        .pdu
        .content_field("additional_creators")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    Ok(create.pdu.sender == user || additional.iter().any(|c| c.as_str() == Some(user.as_str())))
}

/// The user's power level (`i64::MAX` for privileged creators).
pub fn user_level(s: &Services, room_id: &RoomId, user: &UserId) -> Result<i64> {
    let version = s
        .timeline
        .room_version(room_id)?
        .ok_or_else(|| Error::not_found("Unknown room"))?;
    user_level_in(&version::rules(&version)?, user, current(s, room_id))
}

/// The user's power level in the state `state` looks up.
pub fn user_level_in(
    rules: &RoomVersionRules,
    user: &UserId,
    state: impl StateLookup,
) -> Result<i64> {
    if is_privileged_creator_in(rules, user, &state)? {
        return Ok(i64::MAX);
    }
    let Some(pl) = state(&StateEventType::RoomPowerLevels, "")? else {
        // Without power levels the creator has 100, everyone else 0.
        let create = state(&StateEventType::RoomCreate, "")?;
        return Ok(if create.is_some_and(|c| c.pdu.sender == user) {
            100
        } else {
            0
        });
    };
    let pl = pl.pdu.content_value();
    Ok(number(pl.get("users").and_then(|u| u.get(user.as_str())))
        .or(number(pl.get("users_default")))
        .unwrap_or(0))
}

/// The level a power-levels field (`redact`, `kick`, `ban`, `invite`) requires.
pub fn action_level(s: &Services, room_id: &RoomId, action: &str) -> Result<i64> {
    action_level_in(action, current(s, room_id))
}

/// `action_level` in the state `state` looks up.
pub fn action_level_in(action: &str, state: impl StateLookup) -> Result<i64> {
    let default = if action == "invite" { 0 } else { 50 };
    let pl = state(&StateEventType::RoomPowerLevels, "")?.map(|e| e.pdu.content_value());
    Ok(pl.and_then(|pl| number(pl.get(action))).unwrap_or(default))
}

/// The level needed to send a state event of `kind`.
pub fn state_level(s: &Services, room_id: &RoomId, kind: &str) -> Result<i64> {
    let Some(pl) = state_content(s, room_id, &StateEventType::RoomPowerLevels, "")? else {
        return Ok(0);
    };
    Ok(number(pl.get("events").and_then(|e| e.get(kind)))
        .or(number(pl.get("state_default")))
        .unwrap_or(50))
}

pub fn can_send_state(s: &Services, room_id: &RoomId, user: &UserId, kind: &str) -> Result<bool> {
    Ok(user_level(s, room_id, user)? >= state_level(s, room_id, kind)?)
}

pub fn can(s: &Services, room_id: &RoomId, user: &UserId, action: &str) -> Result<bool> {
    Ok(user_level(s, room_id, user)? >= action_level(s, room_id, action)?)
}
