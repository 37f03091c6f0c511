//! The end-to-end encryption parts of /sync: one-time key counts and unused fallback key types of
//! the device, its to-device messages (those at or before the `since` token are acknowledged and
//! deleted first), and `device_lists`: users sharing a room with us whose devices or keys changed
//! (or who newly share a room), and users we no longer share a room with.

use std::collections::BTreeSet;

use ruma::{DeviceId, OwnedUserId, api::client::sync::sync_events::v3 as sync};

use super::{SyncRequest, shares_room};
use crate::storage::Direction;
use crate::{
    error::Result,
    services::{Services, keys, rooms::membership::Membership, timeline::pdu::raw, to_device},
};

/// Fills the e2ee fields of `response`; whether something new is in them.
pub fn add(s: &Services, req: &SyncRequest, since: Option<u64>, now: u64, response: &mut sync::Response) -> Result<bool> {
    let db = &s.globals.db;
    let device: &DeviceId = req.device.as_str().into();
    if let Some(since) = since {
        to_device::acknowledge(db, &req.user, device.as_str(), since)?;
    }
    response.device_one_time_keys_count = keys::one_time::counts(db, &req.user, device)?;
    response.device_unused_fallback_key_types = Some(keys::one_time::unused_fallback_types(db, &req.user, device)?);

    let mut changed = false;
    for (pos, event) in to_device::pending(db, &req.user, device.as_str(), now)? {
        changed |= since.is_none_or(|since| pos > since);
        response.to_device.events.push(raw(&event));
    }

    if let Some(since) = since {
        let (lists_changed, left) = device_lists(s, &req.user, since, now)?;
        changed |= !lists_changed.is_empty() || !left.is_empty();
        response.device_lists.changed = lists_changed;
        response.device_lists.left = left;
    }
    Ok(changed)
}

/// `device_lists.changed` and `left` between `since` and `now`.
pub fn device_lists(s: &Services, me: &OwnedUserId, since: u64, now: u64) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>)> {
    let mut changed = BTreeSet::new();
    for user in keys::changes::changed_between(&s.globals.db, since, now)? {
        if &user == me || shares_room(s, me, &user)? {
            changed.insert(user);
        }
    }
    let mut left = BTreeSet::new();
    for room in s.membership.rooms_of(me)? {
        let Some(short) = s.short.room(&room.room_id)? else { continue };
        // Membership changes are timeline events: a room without events since the token has none.
        let quiet = room.pos <= since
            && s.timeline.scan(short, since, Direction::Forward, 1)?.first().is_none_or(|(pos, _)| *pos > now);
        if quiet {
            continue;
        }
        if room.membership == Membership::Join {
            let i_joined_since = room.pos > since && room.pos <= now;
            for member in s.membership.members(short, Membership::Join)? {
                if &member == me {
                    continue;
                }
                let joined_since = s.membership.user_room(&member, &room.room_id)?.is_some_and(|r| r.pos > since && r.pos <= now);
                if i_joined_since || joined_since {
                    changed.insert(member);
                }
            }
            for gone in [Membership::Leave, Membership::Ban] {
                for member in s.membership.members(short, gone)? {
                    let left_since = s.membership.user_room(&member, &room.room_id)?.is_some_and(|r| r.pos > since && r.pos <= now);
                    if left_since && !shares_room(s, me, &member)? {
                        left.insert(member);
                    }
                }
            }
        } else if matches!(room.membership, Membership::Leave | Membership::Ban) && room.pos > since && room.pos <= now {
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
