//! One room of an answer: its timeline, `required_state`, name, avatar, heroes, counts,
//! `bump_stamp`, unread counts, `invite_state`. The timeline and history visibility are those of
//! /sync (`sync::rooms::recent_events`).

use std::collections::BTreeSet;

use ruma::{
    OwnedMxcUri, UInt,
    api::client::{
        filter::FilterDefinition,
        sync::sync_events::v5::response::{Hero, Room},
    },
    events::StateEventType,
    serde::Raw,
};

use super::required_state::RequiredState;
use crate::{
    error::Result,
    services::{
        Services,
        partial_state::sender_members,
        push::counts_store::room_counts,
        rooms::{
            event_by_short,
            membership::{Membership, UserRoom},
            state_at_pos,
        },
        state::{StateMap, diff},
        sync::{
            SyncRequest, SyncToken,
            rooms::{recent_events, stripped_state},
        },
        timeline::pdu::{ClientFormat, raw},
    },
};

/// How a room is asked for: the union of its lists' and subscription's settings.
#[derive(Debug, Clone, Default)]
pub struct RoomConfig {
    pub required_state: RequiredState,
    pub timeline_limit: usize,
}

pub const MAX_TIMELINE_LIMIT: usize = 200;

pub struct RoomInput<'a> {
    pub user_room: &'a UserRoom,
    pub config: &'a RoomConfig,
    /// Where the room was sent up to on this connection; `None`: never (an `initial` answer).
    pub since: Option<u64>,
    pub now: u64,
    pub bump: u64,
    pub is_dm: bool,
}

fn state_value(
    s: &Services,
    room: &UserRoom,
    state: &StateMap,
    kind: StateEventType,
    key: &str,
) -> Result<Option<serde_json::Value>> {
    let Some(sk) = s.short.statekey(&kind, key)? else {
        return Ok(None);
    };
    let Some(short) = state.get(&sk) else {
        return Ok(None);
    };
    Ok(event_by_short(s, *short, &room.room_id)?.map(|e| e.pdu.content_value()))
}

/// Builds the room; `None` when nothing changed since `since`.
pub fn build(s: &Services, sync_req: &SyncRequest, input: RoomInput<'_>) -> Result<Option<Room>> {
    let user_room = input.user_room;
    let mut room = Room::new();
    room.bump_stamp = Some(UInt::new_saturating(input.bump));
    room.is_dm = Some(input.is_dm);
    if matches!(user_room.membership, Membership::Invite | Membership::Knock) {
        if input.since.is_some_and(|since| user_room.pos <= since) {
            return Ok(None);
        }
        room.initial = Some(true);
        room.invite_state = Some(stripped_state(s, user_room)?);
        return Ok(Some(room));
    }
    let Some(short_room) = s.short.room(&user_room.room_id)? else {
        return Ok(None);
    };
    // A room the user left is shown up to the leave, once.
    let upto = match user_room.membership {
        Membership::Leave | Membership::Ban => user_room.pos.min(input.now),
        _ => input.now,
    };
    // A join after the room was last sent makes the room new again.
    let since = input
        .since
        .filter(|since| !(user_room.membership == Membership::Join && user_room.pos > *since));
    let limit = input.config.timeline_limit.min(MAX_TIMELINE_LIMIT);
    let (events, limited) = recent_events(
        s,
        sync_req,
        user_room,
        short_room,
        since.unwrap_or(0),
        upto,
        limit,
    )?;
    let end_state = state_at_pos(s, short_room, upto)?;
    let state_entries: Vec<(u64, u64)> = match since {
        None => end_state.iter().map(|(k, v)| (*k, *v)).collect(),
        Some(since) => diff(&*state_at_pos(s, short_room, since)?, &end_state),
    };
    // Nothing else to show: the room is shown only if its counts changed, and they are read only
    // if they may have.
    let quiet = since.filter(|_| events.is_empty() && state_entries.is_empty());
    if let Some(since) = quiet
        && !s
            .globals
            .stream_changes
            .counts
            .may_have_changed_since(&short_room, since)
    {
        return Ok(None);
    }
    let counts = room_counts(s, &sync_req.user, short_room)?;
    if quiet.is_some_and(|since| counts.pos <= since) {
        return Ok(None);
    }

    let senders: BTreeSet<&str> = events.iter().map(|e| e.pdu.sender.as_str()).collect();
    let mut required = Vec::new();
    let mut members_changed = since.is_none();
    let mut listed = BTreeSet::new();
    for (key, short) in &state_entries {
        let (kind, state_key) = s.short.statekey_of(*key)?;
        members_changed |= kind == StateEventType::RoomMember;
        if *short != 0
            && input
                .config
                .required_state
                .wants(&kind.to_string(), &state_key, &senders)
        {
            listed.insert(*key);
            if let Some(event) = event_by_short(s, *short, &user_room.room_id)? {
                required.push(raw(&event.to_client(
                    &s.timeline,
                    ClientFormat::Sync,
                    None,
                )?));
            }
        }
    }
    // $LAZY: the member events of the timeline's senders come along even when they did not
    // change, since the connection may never have sent them.
    if input.config.required_state.lazy_members && since.is_some() {
        for sender in &senders {
            if let Some(key) = s.short.statekey(&StateEventType::RoomMember, sender)?
                && !listed.contains(&key)
                && let Some(short) = end_state.get(&key)
                && let Some(event) = event_by_short(s, *short, &user_room.room_id)?
            {
                required.push(raw(&event.to_client(
                    &s.timeline,
                    ClientFormat::Sync,
                    None,
                )?));
            }
        }
    }
    if input.config.required_state.lazy_members {
        // While the room's state is partial, senders the known state lacks.
        required.extend(sender_members::from_auth_events(
            s, short_room, &events, &end_state,
        )?);
    }
    room.required_state = required;

    let name_changed = since.is_none()
        || state_entries.iter().any(|(k, _)| {
            s.short.statekey_of(*k).is_ok_and(|(kind, _)| {
                matches!(kind, StateEventType::RoomName | StateEventType::RoomAvatar)
            })
        });
    let name = state_value(s, user_room, &end_state, StateEventType::RoomName, "")?
        .and_then(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .filter(|n| !n.is_empty());
    if name_changed {
        room.name = name.clone();
        if let Some(avatar) = state_value(s, user_room, &end_state, StateEventType::RoomAvatar, "")?
        {
            room.avatar = match avatar.get("url").and_then(|u| u.as_str()) {
                Some(url) if !url.is_empty() => ruma::JsOption::Some(OwnedMxcUri::from(url)),
                _ => ruma::JsOption::Null,
            };
        }
    }
    if members_changed {
        // One scan of the room's members, only when they may have changed.
        let summary = s.membership.summary(
            short_room,
            &sync_req.user,
            if name.is_none() { 5 } else { 0 },
        )?;
        room.joined_count = Some(UInt::new_saturating(summary.joined));
        room.invited_count = Some(UInt::new_saturating(summary.invited));
        if name.is_none() {
            let mut heroes = Vec::new();
            for user in &summary.heroes {
                let mut hero = Hero::new(user.clone());
                if let Some(member) = state_value(
                    s,
                    user_room,
                    &end_state,
                    StateEventType::RoomMember,
                    user.as_str(),
                )? {
                    hero.name = member
                        .get("displayname")
                        .and_then(|n| n.as_str())
                        .map(str::to_owned);
                    hero.avatar = member
                        .get("avatar_url")
                        .and_then(|n| n.as_str())
                        .map(OwnedMxcUri::from);
                }
                heroes.push(hero);
            }
            room.heroes = Some(heroes);
        }
    }

    let total = counts.total();
    room.unread_notifications.notification_count = Some(UInt::new_saturating(total.notify));
    room.unread_notifications.highlight_count = Some(UInt::new_saturating(total.highlight));
    room.initial = since.is_none().then_some(true);
    room.num_live = Some(UInt::new_saturating(if since.is_some() {
        events.len() as u64
    } else {
        0
    }));
    room.limited = limited;
    room.prev_batch = Some(
        SyncToken {
            pos: events.first().map_or(upto, |e| e.meta.pos - 1),
            typing: 0,
        }
        .encode(),
    );
    room.timeline = events
        .iter()
        .map(|e| {
            Ok(raw(&crate::services::relations::bundle::to_client(
                s,
                e,
                ClientFormat::Sync,
                &sync_req.user,
                Some(sync_req.device.as_str()),
            )?))
        })
        .collect::<Result<Vec<Raw<_>>>>()?;
    Ok(Some(room))
}

/// The /sync request whose helpers (timeline, visibility) a sliding sync room uses.
pub fn sync_request(user: &ruma::UserId, device: &str) -> SyncRequest {
    SyncRequest {
        user: user.to_owned(),
        device: device.to_owned(),
        since: None,
        to_device_since: None,
        full_state: false,
        filter: FilterDefinition::default(),
        relations: Default::default(),
    }
}
