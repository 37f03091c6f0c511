//! History visibility: may a user see an event? Applied on every read path.

use ruma::{UserId, events::StateEventType};

use super::{EventMeta, StoredEvent};
use crate::{
    error::Result,
    services::{Services, rooms::membership::Membership},
};

/// The room's `history_visibility` and the user's membership in the state before `meta`.
fn visibility_at(
    s: &Services,
    meta: &EventMeta,
    user: &UserId,
) -> Result<(String, Option<String>)> {
    let room_id = s.short.room_id(meta.short_room)?;
    let visibility_key = s
        .short
        .statekey(&StateEventType::RoomHistoryVisibility, "")?;
    let member_key = s
        .short
        .statekey(&StateEventType::RoomMember, user.as_str())?;
    let keys: Vec<u64> = [visibility_key, member_key].into_iter().flatten().collect();
    let found = s.state.get_many(meta.state_before, &keys)?;
    let short_of = |key: Option<u64>| {
        let key = key?;
        keys.iter().position(|k| *k == key).and_then(|i| found[i])
    };
    let read = |short: Option<u64>, field: &str| -> Result<Option<String>> {
        let Some(short) = short else {
            return Ok(None);
        };
        let Some(event) = crate::services::rooms::event_by_short(s, short, &room_id)? else {
            return Ok(None);
        };
        Ok(event
            .pdu
            .content_field(field)
            .and_then(|v| v.as_str().map(str::to_owned)))
    };
    let visibility = read(short_of(visibility_key), "history_visibility")?
        .unwrap_or_else(|| "shared".to_owned());
    let membership = read(short_of(member_key), "membership")?;
    Ok((visibility, membership))
}

/// Whether `user` was joined to the room just before `event`.
pub fn joined_at(s: &Services, user: &UserId, event: &StoredEvent) -> Result<bool> {
    Ok(visibility_at(s, &event.meta, user)?.1.as_deref() == Some("join"))
}

/// Retention first (an expired event is seen by nobody), then the spec's rules: world_readable; joined at the time; shared and joined since; invited and
/// visibility `invited`. An event that changes the user's own membership is always visible to them.
pub fn user_can_see(s: &Services, user: &UserId, event: &StoredEvent) -> Result<bool> {
    // Expired under the room's retention policy: nobody sees it (state events never expire).
    if crate::services::retention::expired(s, event, crate::util::now_ms())? {
        return Ok(false);
    }
    if event.pdu.state_key.as_deref() == Some(user.as_str()) {
        return Ok(true);
    }
    let (visibility, membership) = visibility_at(s, &event.meta, user)?;
    if visibility == "world_readable" || membership.as_deref() == Some("join") {
        return Ok(true);
    }
    if visibility == "invited" && membership.as_deref() == Some("invite") {
        return Ok(true);
    }
    if visibility == "shared" {
        // Joined at any point after the event: currently joined, or left/banned later on.
        if let Some(current) = s.membership.user_room(user, &event.pdu.room_id)? {
            return Ok(match current.membership {
                Membership::Join => true,
                Membership::Leave | Membership::Ban => {
                    current.pos > event.meta.pos && was_joined_before_leaving(s, user, &current)
                }
                Membership::Invite | Membership::Knock => false,
            });
        }
    }
    Ok(false)
}

fn was_joined_before_leaving(
    s: &Services,
    user: &UserId,
    current: &crate::services::rooms::membership::UserRoom,
) -> bool {
    let Ok(Some(meta)) = s.timeline.meta(current.short_event) else {
        return false;
    };
    visibility_at(s, &meta, user)
        .map(|(_, m)| m.as_deref() == Some("join"))
        .unwrap_or(false)
}

/// Whether a user may read the room's current state and timeline at all (/state, /members).
pub fn may_read_room(s: &Services, user: &UserId, short_room: u64) -> Result<bool> {
    if s.membership.is_joined(short_room, user)? {
        return Ok(true);
    }
    crate::services::rooms::is_world_readable(s, short_room)
}
