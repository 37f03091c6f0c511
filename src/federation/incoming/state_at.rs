//! The state before a remote event (the state after its prev events, resolved when they differ)
//! and the room's current state across several forward extremities: state resolution v2 (and
//! v2.1 for room 12) by `ruma::state_res::resolve`.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use ruma::{
    EventId, OwnedEventId, RoomId,
    room_version_rules::{RoomVersionRules, StateResolutionVersion},
    state_res::{self, utils::event_id_set::EventIdSet},
};

use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{event_by_id, event_by_short, membership::Membership},
        state::{StateMap, diff},
        timeline::{
            StoredEvent,
            append::{BUILD_ATTEMPTS, RoomHead, is_room_changed},
            federation_json::FederationPdu,
        },
    },
};

/// Resolves several states (short maps) into one; identical states need no resolution.
pub fn resolve_states(
    s: &Services,
    _room_id: &RoomId,
    rules: &RoomVersionRules,
    states: &[Arc<StateMap>],
) -> Result<StateMap> {
    let Some(first) = states.first() else {
        return Ok(StateMap::new());
    };
    if states.iter().all(|m| m == first) {
        return Ok((**first).clone());
    }
    let StateResolutionVersion::V2(res_rules) = &rules.state_res else {
        return Err(Error::internal("state resolution v1 is not supported"));
    };
    let _permit = s.heavy_work.enter();
    let mut maps = Vec::new();
    let mut auth_chains = Vec::new();
    for state in states {
        let mut map = state_res::StateMap::new();
        let mut ids = Vec::new();
        for (key, short) in state.iter() {
            let (kind, state_key) = s.short.statekey_of(*key)?;
            let event_id = s.short.event_id(*short)?;
            ids.push(event_id.clone());
            map.insert((kind, state_key), event_id);
        }
        maps.push(map);
        auth_chains.push(
            auth_chain(s, ids)?
                .into_iter()
                .collect::<EventIdSet<OwnedEventId>>(),
        );
    }
    let fetch = |id: &EventId| -> Option<Arc<StoredEvent>> { event_by_id(s, id).ok().flatten() };
    let subgraph =
        |conflicted: &state_res::StateMap<Vec<OwnedEventId>>| -> Option<EventIdSet<OwnedEventId>> {
            conflicted_subgraph(s, conflicted.values().flatten().cloned().collect()).ok()
        };
    let resolved = state_res::resolve(
        &rules.authorization,
        res_rules,
        maps.iter(),
        auth_chains,
        fetch,
        subgraph,
    )
    .map_err(|e| Error::internal(format!("state resolution failed: {e}")))?;
    let mut out = StateMap::new();
    for ((kind, state_key), event_id) in resolved {
        if let (Some(key), Some(short)) = (
            s.short.statekey(&kind, &state_key)?,
            s.short.event(&event_id)?,
        ) {
            out.insert(key, short);
        }
    }
    Ok(out)
}

/// Every event reachable from `start` through `auth_events` (the start events included).
pub fn auth_chain(s: &Services, start: Vec<OwnedEventId>) -> Result<HashSet<OwnedEventId>> {
    Ok(walk_auth_events(s, &HashSet::new(), start)?.0)
}

/// The auth chain of `events` beyond them: the stored events reachable from their `auth_events`
/// (and from `more`) that are not among them, sorted by event ID. The walk starts from events
/// already read (a state answer's thousands), so that none of them is read again.
pub fn auth_chain_beyond(
    s: &Services,
    events: &[FederationPdu],
    more: &[OwnedEventId],
) -> Result<Vec<Arc<StoredEvent>>> {
    let skip: HashSet<&EventId> = events.iter().map(|e| &*e.event_id).collect();
    let start: Vec<OwnedEventId> = events
        .iter()
        .flat_map(|e| &e.auth_events)
        .chain(more)
        .cloned()
        .collect();
    let mut found = walk_auth_events(s, &skip, start)?.1;
    found.sort_by(|a, b| a.pdu.event_id.cmp(&b.pdu.event_id));
    Ok(found)
}

/// Walks `auth_events` from `start`, not into `skip`: the IDs walked (unknown ones included) and
/// the stored events among them.
fn walk_auth_events(
    s: &Services,
    skip: &HashSet<&EventId>,
    start: Vec<OwnedEventId>,
) -> Result<(HashSet<OwnedEventId>, Vec<Arc<StoredEvent>>)> {
    let _permit = s.heavy_work.enter();
    let mut walked: HashSet<OwnedEventId> = HashSet::new();
    let mut found = Vec::new();
    let mut todo = start;
    while let Some(id) = todo.pop() {
        if skip.contains(&*id) || !walked.insert(id.clone()) {
            continue;
        }
        if let Some(event) = event_by_id(s, &id)? {
            todo.extend(
                event
                    .pdu
                    .auth_events
                    .iter()
                    .filter(|a| !walked.contains(*a) && !skip.contains(&***a))
                    .cloned(),
            );
            found.push(event);
        }
    }
    Ok((walked, found))
}

/// The conflicted state subgraph (room version 12): the events on an `auth_events` path from
/// one conflicted event to another, the conflicted events included.
fn conflicted_subgraph(
    s: &Services,
    conflicted: HashSet<OwnedEventId>,
) -> Result<EventIdSet<OwnedEventId>> {
    // reaches[x]: x leads (through auth events) to a conflicted event.
    let mut reaches: HashMap<OwnedEventId, bool> = HashMap::new();
    fn visit(
        s: &Services,
        id: &OwnedEventId,
        conflicted: &HashSet<OwnedEventId>,
        reaches: &mut HashMap<OwnedEventId, bool>,
    ) -> Result<bool> {
        if let Some(r) = reaches.get(id) {
            return Ok(*r);
        }
        reaches.insert(id.clone(), false);
        let mut r = false;
        if let Some(event) = event_by_id(s, id)? {
            for parent in &event.pdu.auth_events {
                if conflicted.contains(parent) | visit(s, parent, conflicted, reaches)? {
                    r = true;
                }
            }
        }
        reaches.insert(id.clone(), r);
        Ok(r)
    }
    let mut out: EventIdSet<OwnedEventId> = conflicted.iter().cloned().collect();
    for id in &conflicted {
        visit(s, id, &conflicted, &mut reaches)?;
    }
    // Events reachable from a conflicted event that themselves reach one.
    let mut todo: Vec<OwnedEventId> = conflicted.iter().cloned().collect();
    let mut seen = HashSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(event) = event_by_id(s, &id)? {
            for parent in &event.pdu.auth_events {
                if reaches.get(parent).copied().unwrap_or(false) || conflicted.contains(parent) {
                    out.insert(parent.clone());
                    todo.push(parent.clone());
                }
            }
        }
    }
    Ok(out)
}

/// The state before an event whose prev events are all stored: the state after the single prev
/// event, or the resolution of the states after each. Returns a snapshot id (a new snapshot is
/// written when resolution produced a state no event has).
pub fn state_before(
    s: &Services,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    prev_events: &[OwnedEventId],
) -> Result<u64> {
    let short_room = s
        .short
        .room(room_id)?
        .ok_or_else(|| Error::not_found("Unknown room"))?;
    let mut snapshots = Vec::new();
    for prev in prev_events {
        let short = s
            .short
            .event(prev)?
            .ok_or_else(|| Error::internal(format!("missing prev event {prev}")))?;
        let meta = s
            .timeline
            .meta(short)?
            .ok_or_else(|| Error::internal(format!("missing prev event {prev}")))?;
        if meta.short_room != short_room {
            return Err(Error::forbidden(format!(
                "prev event {prev} is an event of another room"
            )));
        }
        if !snapshots.contains(&meta.state_after) {
            snapshots.push(meta.state_after);
        }
    }
    snapshot_of(s, room_id, rules, &snapshots)
}

/// One snapshot for the resolution of several.
pub fn snapshot_of(
    s: &Services,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    snapshots: &[u64],
) -> Result<u64> {
    match snapshots {
        [] => Ok(0),
        [one] => Ok(*one),
        several => {
            let states = several
                .iter()
                .map(|id| s.state.load(*id))
                .collect::<Result<Vec<_>>>()?;
            let resolved = resolve_states(s, room_id, rules, &states)?;
            if let Some(i) = states.iter().position(|st| **st == resolved) {
                return Ok(several[i]);
            }
            let base = several[0];
            let changes = diff(&states[0], &resolved);
            Ok(s.globals
                .commit(|c| Ok(s.state.create(c, base, &changes)?.0))?
                .0)
        }
    }
}

/// Sets the room's current state to the resolution of the states after its forward extremities.
/// In a group of processes another may append to the room while it is resolved: the commit then
/// fails, and the resolution starts again from the room's new head.
pub fn update_current(
    s: &Services,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    short_room: u64,
) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match update_current_once(s, room_id, rules, short_room) {
            Err(e) if is_room_changed(&e) && attempt < BUILD_ATTEMPTS => continue,
            done => return done,
        }
    }
}

fn update_current_once(
    s: &Services,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    short_room: u64,
) -> Result<()> {
    let head = RoomHead::read(s, short_room)?;
    let mut snapshots = Vec::new();
    for &short in &head.extremities {
        if let Some(meta) = s.timeline.meta(short)?
            && !snapshots.contains(&meta.state_after)
        {
            snapshots.push(meta.state_after);
        }
    }
    let snapshot = snapshot_of(s, room_id, rules, &snapshots)?;
    let old = head.snapshot;
    if snapshot == old {
        return Ok(());
    }
    // Memberships the resolution changed are recorded with the new current state.
    let mut members = Vec::new();
    for (key, short) in diff(&*s.state.load(old)?, &*s.state.load(snapshot)?) {
        let (kind, state_key) = s.short.statekey_of(key)?;
        if kind != ruma::events::StateEventType::RoomMember || short == 0 {
            continue;
        }
        let (Ok(user), Some(event)) = (
            ruma::UserId::parse(&state_key),
            event_by_short(s, short, room_id)?,
        ) else {
            continue;
        };
        if let Some(m) = event
            .pdu
            .membership()
            .as_deref()
            .and_then(Membership::parse)
        {
            members.push((user, m, short));
        }
    }
    s.globals.commit(|c| {
        if s.globals.shared() {
            head.check_unchanged(s, short_room)?;
        }
        s.state.set_current(c, short_room, snapshot);
        if !members.is_empty() {
            let pos = c.next_pos();
            for (user, m, short) in &members {
                s.membership
                    .record(c, user, room_id, short_room, *m, pos, *short);
            }
        }
        Ok(())
    })?;
    s.federation.sender.membership_changed(short_room);
    Ok(())
}
