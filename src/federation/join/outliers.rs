//! Events we hold outside a room's timeline (outliers): the state and auth chain a resident
//! server answered to our join, invites to rooms we are not in, our rejections of them. An
//! outlier has `event_meta` with position 0 and no state snapshots.

use ruma::{
    UserId,
    events::{StateEventType, TimelineEventType},
};

use crate::{
    error::Result,
    federation::incoming::pdu_checks::CheckedPdu,
    services::{
        Services,
        globals::Commit,
        rooms::membership::Membership,
        timeline::{EVENT_META, EventMeta, PDUS, encode_meta},
    },
};

/// The short id of a room, created (without its version: the room is not joined) when needed.
pub fn room_short<'a>(s: &'a Services, c: &mut Commit<'a>, room_id: &ruma::RoomId) -> Result<u64> {
    Ok(match s.short.room(room_id)? {
        Some(short) => short,
        None => s.short.create_room(c, room_id),
    })
}

/// Writes one outlier into `c`; returns its short id. An event stored in another room is refused.
pub fn store(s: &Services, c: &mut Commit, short_room: u64, event: &CheckedPdu) -> Result<u64> {
    let short = match s.short.event(&event.event_id)? {
        Some(short) => {
            if let Some(meta) = s.timeline.meta(short)? {
                if meta.short_room != short_room {
                    return Err(crate::error::Error::forbidden(format!(
                        "{} is an event of another room",
                        event.event_id
                    )));
                }
                return Ok(short);
            }
            short
        }
        None => s.short.create_event(c, &event.event_id),
    };
    let bytes = serde_json::to_vec(&event.object)
        .map_err(|e| crate::error::Error::internal(e.to_string()))?;
    c.batch.put(PDUS, short.to_be_bytes(), bytes);
    let meta = EventMeta {
        short_room,
        pos: 0,
        state_before: 0,
        state_after: 0,
    };
    c.batch
        .put(EVENT_META, short.to_be_bytes(), encode_meta(&meta));
    Ok(short)
}

/// Stores a membership event of a room we are not in (an invite, our rejection) and records it
/// for the local user it concerns, so that /sync shows it: one batch.
pub fn store_membership(s: &Services, event: &CheckedPdu) -> Result<()> {
    let Some(user) = event
        .pdu
        .state_key
        .as_deref()
        .and_then(|k| UserId::parse(k).ok())
    else {
        return Ok(());
    };
    let Some(membership) = event
        .pdu
        .membership()
        .as_deref()
        .and_then(Membership::parse)
    else {
        return Ok(());
    };
    if event.pdu.kind != TimelineEventType::RoomMember {
        return Ok(());
    }
    let (short_room, _) = s.globals.commit(|c| {
        let short_room = room_short(s, c, &event.room_id)?;
        let short = store(s, c, short_room, event)?;
        let pos = c.next_pos();
        s.membership
            .record(c, &user, &event.room_id, short_room, membership, pos, short);
        Ok(short_room)
    })?;
    s.federation.sender.membership_changed(short_room);
    Ok(())
}

/// Records `user`'s membership from the state of a joined room, unless the index already holds
/// that event (a stale copy of a room we rejoin, an invite we stored): the user's rooms in /sync
/// do not move for a membership that did not change. A joined user's cached device list is
/// dropped either way (we shared no room meanwhile, so it may have missed updates).
#[allow(clippy::too_many_arguments)]
pub fn record_changed_membership(
    s: &Services,
    c: &mut Commit,
    user: &UserId,
    room_id: &ruma::RoomId,
    short_room: u64,
    membership: Membership,
    pos: u64,
    short_event: u64,
) -> Result<()> {
    if let Some(known) = s.membership.user_room(user, room_id)?
        && known.membership == membership
        && known.short_event == short_event
        && s.membership.membership(short_room, user)? == Some(membership)
    {
        if membership == Membership::Join {
            crate::services::keys::remote_cache::forget_on_join(&s.globals.db, c, user);
        }
        return Ok(());
    }
    s.membership
        .record(c, user, room_id, short_room, membership, pos, short_event);
    Ok(())
}

/// Records the membership a member event of a room's state gives its user (see
/// [`record_changed_membership`]); other events are left alone.
pub fn record_member_of_state(
    s: &Services,
    c: &mut Commit,
    event: &CheckedPdu,
    short_room: u64,
    pos: u64,
    short_event: u64,
) -> Result<()> {
    if let Some((StateEventType::RoomMember, state_key)) = state_key_of(event)
        && let Ok(member) = UserId::parse(&state_key)
        && let Some(m) = event
            .pdu
            .membership()
            .as_deref()
            .and_then(Membership::parse)
    {
        record_changed_membership(
            s,
            c,
            &member,
            &event.room_id,
            short_room,
            m,
            pos,
            short_event,
        )?;
    }
    Ok(())
}

/// The state key of a state event, for snapshots.
pub fn state_key_of(event: &CheckedPdu) -> Option<(StateEventType, String)> {
    event
        .pdu
        .state_key
        .clone()
        .map(|k| (StateEventType::from(event.pdu.kind.to_string()), k))
}
