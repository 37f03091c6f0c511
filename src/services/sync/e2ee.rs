//! The end-to-end encryption parts of /sync: one-time key counts and unused fallback key types of
//! the device, its to-device messages (those the `since` token acknowledges are deleted first; at
//! most `to_device::SYNC_LIMIT` per answer, the next ones in the next answer), and `device_lists`: users sharing a room with us whose devices or keys changed
//! (or who newly share a room), and users we no longer share a room with.

use std::collections::BTreeSet;

use ruma::{DeviceId, OwnedUserId, api::client::sync::sync_events::v3 as sync};

use super::{SyncRequest, shares_room};
use crate::storage::Direction;
use crate::{
    error::{Error, Result},
    services::{
        Services, keys,
        rooms::membership::{Membership, UserRoom},
        timeline::pdu::raw,
        to_device,
    },
};

/// Fills the e2ee fields of `response`; whether something new is in them.
pub fn add(
    s: &Services,
    req: &SyncRequest,
    rooms: &[UserRoom],
    since: Option<u64>,
    now: u64,
    response: &mut sync::Response,
) -> Result<bool> {
    let db = &s.globals.db;
    let device: &DeviceId = req.device.as_str().into();
    // The messages the client received: up to the token's to-device mark (a token without one
    // acknowledges everything up to its position).
    let acknowledged = since.map(|pos| req.to_device_since.map_or(pos, |mark| mark.min(pos)));
    if let Some(acknowledged) = acknowledged {
        to_device::acknowledge_seen(s, &req.user, device.as_str(), acknowledged)?;
    }
    let counts = s.users.key_counts.get(db, &req.user, device)?;
    response.device_one_time_keys_count = counts.one_time;
    response.device_unused_fallback_key_types = Some(counts.unused_fallback);

    let mut changed = false;
    let mut messages = to_device::pending_seen(
        s,
        &req.user,
        device.as_str(),
        acknowledged.unwrap_or(0),
        now,
        to_device::SYNC_LIMIT + 1,
    )?;
    if messages.len() > to_device::SYNC_LIMIT {
        // More than one answer holds: the token says which were given.
        messages.truncate(to_device::SYNC_LIMIT);
        let mark = messages.last().map_or(0, |(pos, _)| *pos);
        response.next_batch = with_to_device_mark(&response.next_batch, mark);
    }
    for (_, event) in messages {
        changed = true;
        response.to_device.events.push(raw(&event));
    }

    if let Some(since) = since {
        let (lists_changed, left) = device_lists_in(s, &req.user, rooms, since, now)?;
        changed |= !lists_changed.is_empty() || !left.is_empty();
        response.device_lists.changed = lists_changed;
        response.device_lists.left = left;
    }
    Ok(changed)
}

/// The to-device mark of a /sync token `s<pos>_<typing>_<mark>`: the position of the last
/// to-device message the answer gave (more were pending). `None` when the token has none (every
/// message at or before `pos` was given).
pub fn to_device_mark(token: &str) -> Result<Option<u64>> {
    let body = token.strip_prefix('s').unwrap_or(token);
    match body.splitn(3, '_').nth(2) {
        None => Ok(None),
        Some(mark) => mark
            .parse()
            .map(Some)
            .map_err(|_| Error::invalid_param("Invalid sync token")),
    }
}

/// `next_batch` with a to-device mark.
fn with_to_device_mark(token: &str, mark: u64) -> String {
    format!("{token}_{mark}")
}

/// `device_lists.changed` and `left` between `since` and `now`.
pub fn device_lists(
    s: &Services,
    me: &OwnedUserId,
    since: u64,
    now: u64,
) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>)> {
    device_lists_in(s, me, &s.membership.rooms_of_sorted(me)?, since, now)
}

/// [`device_lists`] with the user's rooms already read.
pub fn device_lists_in(
    s: &Services,
    me: &OwnedUserId,
    rooms: &[UserRoom],
    since: u64,
    now: u64,
) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>)> {
    let mut changed = BTreeSet::new();
    let keys_changed = s
        .globals
        .stream_changes
        .device_keys
        .may_have_changed_since(&(), since);
    let changed_keys = if keys_changed {
        keys::changes::changed_between(&s.globals.db, since, now)?
    } else {
        Vec::new()
    };
    for user in changed_keys {
        if &user == me || shares_room(s, me, &user)? {
            changed.insert(user);
        }
    }
    let mut left = BTreeSet::new();
    for room in rooms {
        let Some(short) = s.short.room(&room.room_id)? else {
            continue;
        };
        // Membership changes are timeline events: a room without a member event since the token
        // has none, and its members are not read (a big room's messages would read them all).
        if room.pos <= since && !member_event_between(s, short, &room.room_id, since, now)? {
            continue;
        }
        if room.membership == Membership::Join {
            let i_joined_since = room.pos > since && room.pos <= now;
            for member in s.membership.members(short, Membership::Join)? {
                if &member == me {
                    continue;
                }
                let joined_since = s
                    .membership
                    .user_room(&member, &room.room_id)?
                    .is_some_and(|r| r.pos > since && r.pos <= now);
                if i_joined_since || joined_since {
                    changed.insert(member);
                }
            }
            for gone in [Membership::Leave, Membership::Ban] {
                for member in s.membership.members(short, gone)? {
                    let left_since = s
                        .membership
                        .user_room(&member, &room.room_id)?
                        .is_some_and(|r| r.pos > since && r.pos <= now);
                    if left_since && !shares_room(s, me, &member)? {
                        left.insert(member);
                    }
                }
            }
        } else if matches!(room.membership, Membership::Leave | Membership::Ban)
            && room.pos > since
            && room.pos <= now
        {
            for member in s.membership.members(short, Membership::Join)? {
                if &member != me && !shares_room(s, me, &member)? {
                    left.insert(member);
                }
            }
        }
    }
    let changed: Vec<_> = changed.into_iter().filter(|u| !left.contains(u)).collect();
    Ok((changed, left.into_iter().collect()))
}

/// Whether the room has a member event in `(since, now]`; also true when it has more events than
/// are worth reading one by one.
fn member_event_between(
    s: &Services,
    short_room: u64,
    room_id: &ruma::RoomId,
    since: u64,
    now: u64,
) -> Result<bool> {
    const READ_AT_MOST: usize = 256;
    if !s
        .globals
        .stream_changes
        .member_events
        .may_have_changed_since(&short_room, since)
    {
        return Ok(false);
    }
    let (mut cursor, mut seen) = (since, 0);
    loop {
        let batch = s
            .timeline
            .scan(short_room, cursor, Direction::Forward, 64)?;
        for (pos, short_event) in &batch {
            if *pos > now {
                return Ok(false);
            }
            seen += 1;
            if seen > READ_AT_MOST {
                return Ok(true);
            }
            if crate::services::rooms::event_by_short(s, *short_event, room_id)?
                .is_some_and(|e| e.pdu.kind == ruma::events::TimelineEventType::RoomMember)
            {
                return Ok(true);
            }
        }
        match batch.last() {
            Some((pos, _)) if batch.len() == 64 => cursor = *pos,
            _ => return Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::sync::SyncToken;

    #[test]
    fn to_device_mark_in_sync_tokens() {
        let marked = with_to_device_mark("s42_3", 17);
        assert_eq!(marked, "s42_3_17");
        assert_eq!(to_device_mark(&marked).unwrap(), Some(17));
        let parsed = SyncToken::parse(&marked).unwrap();
        assert_eq!((parsed.pos, parsed.typing), (42, 3));
        // Old tokens: no mark.
        assert_eq!(to_device_mark("s42_3").unwrap(), None);
        assert_eq!(to_device_mark("s42").unwrap(), None);
        assert!(to_device_mark("s42_3_x").is_err());
    }
}
