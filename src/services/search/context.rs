//! `event_context` of a search result: the events just before and after it in its room's
//! timeline that the user may see, pagination tokens around them (usable with `/messages`), and
//! optionally the senders' profiles in the room.

use std::{collections::BTreeMap, sync::Arc};

use ruma::{
    OwnedMxcUri, OwnedUserId, RoomId, UserId,
    api::client::search::search_events::v3::{EventContextResult, UserProfile},
    events::StateEventType,
};

use crate::{
    error::Result,
    services::{
        Services,
        rooms::event_by_short,
        timeline::{
            StoredEvent,
            order::Place,
            pdu::{ClientFormat, raw},
            visibility::user_can_see,
        },
    },
    storage::Direction,
};

/// At most this many events on each side.
pub const MAX_CONTEXT: usize = 100;

/// Up to `limit` visible events next to `event` in `direction`, nearest first, reading at most a
/// bounded number of timeline entries.
fn neighbours(
    s: &Services,
    user: &UserId,
    room_id: &RoomId,
    event: &StoredEvent,
    direction: Direction,
    limit: usize,
) -> Result<Vec<Arc<StoredEvent>>> {
    let mut out = Vec::new();
    let mut budget = limit * 4 + 32;
    let mut from = match direction {
        Direction::Backward => event.meta.pos.saturating_sub(1),
        Direction::Forward => event.meta.pos,
    };
    while out.len() < limit && budget > 0 {
        let chunk = s
            .timeline
            .scan(event.meta.short_room, from, direction, 32.min(budget))?;
        if chunk.is_empty() {
            break;
        }
        budget = budget.saturating_sub(chunk.len());
        for (pos, short) in chunk {
            from = match direction {
                Direction::Backward => pos.saturating_sub(1),
                Direction::Forward => pos,
            };
            let Some(neighbour) = event_by_short(s, short, room_id)? else {
                continue;
            };
            if user_can_see(s, user, &neighbour)? {
                out.push(neighbour);
                if out.len() == limit {
                    break;
                }
            }
        }
        if direction == Direction::Backward && from == 0 {
            break;
        }
    }
    Ok(out)
}

/// The context of one result.
pub fn around(
    s: &Services,
    user: &UserId,
    device: &str,
    event: &StoredEvent,
    before_limit: usize,
    after_limit: usize,
    include_profile: bool,
) -> Result<EventContextResult> {
    let room_id = &event.pdu.room_id;
    let before = neighbours(
        s,
        user,
        room_id,
        event,
        Direction::Backward,
        before_limit.min(MAX_CONTEXT),
    )?;
    let after = neighbours(
        s,
        user,
        room_id,
        event,
        Direction::Forward,
        after_limit.min(MAX_CONTEXT),
    )?;
    let format = |e: &Arc<StoredEvent>| -> Result<_> {
        Ok(raw(&crate::services::relations::bundle::to_client(
            s,
            e,
            ClientFormat::Room,
            user,
            Some(device),
        )?))
    };
    let mut context = EventContextResult::new();
    let start = before
        .last()
        .map_or(event.meta.pos, |e| e.meta.pos)
        .saturating_sub(1);
    let end = after.last().map_or(event.meta.pos, |e| e.meta.pos);
    context.start = Some(Place::Main(start).encode());
    context.end = Some(Place::Main(end).encode());
    context.events_before = before.iter().map(format).collect::<Result<_>>()?;
    context.events_after = after.iter().map(format).collect::<Result<_>>()?;
    if include_profile {
        let senders: std::collections::BTreeSet<OwnedUserId> = before
            .iter()
            .chain(after.iter())
            .map(|e| e.pdu.sender.clone())
            .chain([event.pdu.sender.clone()])
            .collect();
        context.profile_info = profiles(s, event, senders)?;
    }
    Ok(context)
}

/// The senders' display names and avatars in the room, as of the result event.
fn profiles(
    s: &Services,
    event: &StoredEvent,
    senders: std::collections::BTreeSet<OwnedUserId>,
) -> Result<BTreeMap<OwnedUserId, UserProfile>> {
    let state = s.state.load(event.meta.state_after)?;
    let mut out = BTreeMap::new();
    for sender in senders {
        let Some(key) = s
            .short
            .statekey(&StateEventType::RoomMember, sender.as_str())?
        else {
            continue;
        };
        let Some(short) = state.get(&key) else {
            continue;
        };
        let Some(member) = event_by_short(s, *short, &event.pdu.room_id)? else {
            continue;
        };
        let mut profile = UserProfile::new();
        profile.displayname = member
            .pdu
            .content_field("displayname")
            .and_then(|v| v.as_str().map(str::to_owned));
        profile.avatar_url = member
            .pdu
            .content_field("avatar_url")
            .and_then(|v| v.as_str().map(str::to_owned))
            .map(OwnedMxcUri::from);
        if !profile.is_empty() {
            out.insert(sender, profile);
        }
    }
    Ok(out)
}
