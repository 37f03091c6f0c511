//! Making a partial room's state full, in one batch: the full state before our join (fetched by
//! `federation::join::resync`) is stored as outliers; the members it adds are added to every full
//! snapshot record of the room since the join (the join's own state before it among them; the
//! records that are diffs against them inherit them), where a later event did not set the key;
//! the membership index learns the added members; our users' memberships are recorded again at
//! the batch's position, so that their next `/sync` shows the room as newly joined, with its whole
//! state; the partial record goes. The events appended while partial are checked again against
//! their state as now known (those that fail are logged: see spec/federation.md).

use std::collections::{BTreeSet, HashMap};

use ruma::{OwnedUserId, events::StateEventType};

use super::PartialRoom;
use crate::{
    error::{Error, Result},
    federation::{incoming::pdu_checks::CheckedPdu, join::outliers},
    services::{
        Services,
        rooms::{event_by_short, membership::Membership, version},
        state::StateMap,
        timeline::append::authorise,
    },
    storage::Direction,
};

/// What completing a room did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Completed {
    /// State entries the full state added (members, mostly).
    pub added: usize,
    /// Snapshot records rewritten.
    pub records: usize,
    /// Events appended while partial that the full state does not allow.
    pub not_allowed: Vec<ruma::OwnedEventId>,
}

/// Completes `room` with `state` (the full state before our join) and `auth_chain`, both checked
/// (signatures, hashes, room) and authorised against their own auth events. Returns None when the
/// room was completed already (by another process, or an earlier attempt).
pub fn complete(
    s: &Services,
    room: &PartialRoom,
    state: Vec<CheckedPdu>,
    auth_chain: Vec<CheckedPdu>,
) -> Result<Option<Completed>> {
    let rules = version::rules(
        &s.timeline
            .room_version(&room.room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?,
    )?;
    let short_room = room.short_room;
    let lock = s.timeline.room_lock(&room.room_id);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    let join_short = s
        .short
        .event(&room.join_event)?
        .ok_or_else(|| Error::internal("the join of a partial room is not stored"))?;
    let join_meta = s
        .timeline
        .meta(join_short)?
        .ok_or_else(|| Error::internal("the join of a partial room is not stored"))?;
    let ours = s.globals.server_name().clone();
    let (completed, _) = s.globals.commit(|c| {
        // Under the commit lock (the database's, in a group): completed once.
        if s.partial_state.read(short_room)?.is_none() {
            return Ok(None);
        }
        for event in &auth_chain {
            outliers::store(s, c, short_room, event)?;
        }
        let mut full_before = StateMap::new();
        let mut by_short: HashMap<u64, &CheckedPdu> = HashMap::new();
        for event in &state {
            let short = outliers::store(s, c, short_room, event)?;
            let Some((kind, state_key)) = outliers::state_key_of(event) else {
                continue;
            };
            let key = s.short.get_or_create_statekey(c, &kind, &state_key)?;
            full_before.insert(key, short);
            by_short.insert(short, event);
        }
        let partial_before = s.state.load(join_meta.state_before)?;
        let missing: StateMap = full_before
            .iter()
            .filter(|(k, _)| !partial_before.contains_key(k))
            .map(|(k, v)| (*k, *v))
            .collect();
        // The room's snapshots since the join: of its timeline events and its current state.
        let mut since_join = Vec::new();
        let mut snapshots = BTreeSet::from([join_meta.state_before]);
        let current_snapshot = s.state.current_snapshot(short_room)?;
        snapshots.insert(current_snapshot);
        let mut from = join_meta.pos.saturating_sub(1);
        loop {
            let page = s.timeline.scan(short_room, from, Direction::Forward, 512)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            from = *last;
            for (_, short) in page {
                if let Some(meta) = s.timeline.meta(short)? {
                    snapshots.insert(meta.state_before);
                    snapshots.insert(meta.state_after);
                    if short != join_short {
                        since_join.push((short, meta.state_before));
                    }
                }
            }
        }
        let records = s.state.fill_full_records(c, &snapshots, &missing)?;
        // Events appended while partial, checked against their state before as now known.
        let with_missing = |old: &StateMap| {
            let mut map = old.clone();
            for (k, v) in &missing {
                map.entry(*k).or_insert(*v);
            }
            map
        };
        let mut not_allowed = Vec::new();
        for (short, before) in since_join {
            let Some(event) = event_by_short(s, short, &room.room_id)? else {
                continue;
            };
            let state_before = with_missing(&*s.state.load(before)?);
            if authorise(s, &rules, &event.pdu, &state_before).is_err() {
                not_allowed.push(event.pdu.event_id.clone());
            }
        }
        // Members the full state adds, unless a later event of the room changed them.
        let current = s.state.load(current_snapshot)?;
        let pos = c.next_pos();
        for (key, short) in &missing {
            if current.contains_key(key) {
                continue;
            }
            let Some(event) = by_short.get(short) else {
                continue;
            };
            outliers::record_member_of_state(s, c, event, short_room, pos, *short)?;
        }
        // Our joined users see the room again as newly joined, with its whole state.
        let locals: Vec<OwnedUserId> = s
            .membership
            .members(short_room, Membership::Join)?
            .into_iter()
            .filter(|u| u.server_name() == ours)
            .collect();
        for user in locals {
            let Some(key) = s
                .short
                .statekey(&StateEventType::RoomMember, user.as_str())?
            else {
                continue;
            };
            if let Some(short) = current.get(&key) {
                s.membership.record(
                    c,
                    &user,
                    &room.room_id,
                    short_room,
                    Membership::Join,
                    pos,
                    *short,
                );
            }
        }
        c.invalidate(crate::services::cluster::Invalidation::RoomStateCompleted { short_room });
        // The caches of the partial state go before the room is known full: a reader that waited
        // for the full state must not be answered from them.
        c.after_write(move || forget_after_completion(s, short_room));
        s.partial_state.clear(c, short_room);
        Ok(Some(Completed {
            added: missing.len(),
            records,
            not_allowed,
        }))
    })?;
    Ok(completed)
}

/// What a process forgets when a room's state became full (here or, through the invalidation,
/// on another process of the group).
pub fn forget_after_completion(s: &Services, short_room: u64) {
    s.state.forget_all();
    s.federation.sender.membership_changed(short_room);
    s.partial_state.changed();
}
