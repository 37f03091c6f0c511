//! Reading rooms over federation, for servers in the room: `state_ids`, `state`, `event`,
//! `event_auth`, `backfill`, `get_missing_events`; and `query/directory` for our aliases.

use std::{
    collections::{BTreeSet, HashSet},
    sync::Arc,
};

use ruma::{EventId, OwnedEventId, OwnedRoomAliasId, RoomId, ServerName};
use serde_json::{Value, json, value::RawValue};

use crate::{
    error::{Error, Result},
    federation::{
        incoming::state_at::{auth_chain, auth_chain_beyond},
        join::resident::pdus_of,
        server_visibility::ServerView,
    },
    services::{
        Services,
        rooms::{event_by_id, federation_events_by_short, short_room},
        timeline::{StoredEvent, federation_json::FederationPdu},
    },
};

/// Refuses servers without a joined member in the room.
pub fn require_in_room(s: &Services, origin: &ServerName, room_id: &RoomId) -> Result<u64> {
    let short = short_room(s, room_id).map_err(|_| Error::not_found("Unknown room"))?;
    crate::federation::acl::check(s, room_id, origin)?;
    if !crate::federation::sender::servers_in_room(s, short)?
        .iter()
        .any(|n| n == origin)
    {
        return Err(Error::forbidden(format!("{origin} is not in the room")));
    }
    Ok(short)
}

fn event_in_room(
    s: &Services,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<std::sync::Arc<StoredEvent>> {
    match event_by_id(s, event_id)? {
        Some(e) if e.pdu.room_id == room_id => Ok(e),
        _ => Err(Error::not_found("Unknown event")),
    }
}

/// The state before `event_id` (its events as stored) and the auth chain beyond it.
fn state_at(
    s: &Services,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<(Vec<FederationPdu>, Vec<Arc<StoredEvent>>)> {
    let event = event_in_room(s, room_id, event_id)?;
    let state = s.state.load(event.meta.state_before)?;
    let shorts: Vec<u64> = state.values().copied().collect();
    let pdus: Vec<FederationPdu> = federation_events_by_short(s, &shorts, room_id)?
        .into_iter()
        .flatten()
        .collect();
    let chain = auth_chain_beyond(s, &pdus, &[])?;
    Ok((pdus, chain))
}

pub fn state_ids(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<Value> {
    require_in_room(s, origin, room_id)?;
    crate::services::partial_state::refuse_while_partial(s, room_id)?;
    let (state, chain) = state_at(s, room_id, event_id)?;
    let state: Vec<&OwnedEventId> = state.iter().map(|e| &e.event_id).collect();
    let chain: Vec<&OwnedEventId> = chain.iter().map(|e| &e.pdu.event_id).collect();
    Ok(json!({ "pdu_ids": state, "auth_chain_ids": chain }))
}

/// The body of a `state` answer, written without building a tree.
#[derive(serde::Serialize)]
struct StateAnswer<'a> {
    pdus: Vec<&'a RawValue>,
    auth_chain: Vec<&'a ruma::CanonicalJsonObject>,
}

pub fn state(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<Box<RawValue>> {
    require_in_room(s, origin, room_id)?;
    crate::services::partial_state::refuse_while_partial(s, room_id)?;
    let (state, chain) = state_at(s, room_id, event_id)?;
    let answer = StateAnswer {
        pdus: state.iter().map(|e| &*e.json).collect(),
        auth_chain: chain.iter().map(|e| &e.json).collect(),
    };
    serde_json::value::to_raw_value(&answer).map_err(|e| Error::internal(e.to_string()))
}

fn envelope(s: &Services, pdus: Vec<Value>) -> Value {
    json!({ "origin": s.globals.server_name().as_str(), "origin_server_ts": crate::util::now_ms(), "pdus": pdus })
}

pub fn event(s: &Services, origin: &ServerName, event_id: &EventId) -> Result<Value> {
    let event = event_by_id(s, event_id)?.ok_or_else(|| Error::not_found("Unknown event"))?;
    require_in_room(s, origin, &event.pdu.room_id)
        .map_err(|_| Error::not_found("Unknown event"))?;
    Ok(envelope(s, vec![ServerView::new(s, origin).json(&event)?]))
}

pub fn event_auth(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<Value> {
    require_in_room(s, origin, room_id)?;
    let event = event_in_room(s, room_id, event_id)?;
    let chain = auth_chain(s, event.pdu.auth_events.clone())?;
    Ok(json!({ "auth_chain": pdus_of(s, chain.iter())? }))
}

/// Walks `prev_events` backwards from `from`, newest (deepest) first, skipping `stop`; at most `limit`.
fn walk_back(
    s: &Services,
    room_id: &RoomId,
    from: Vec<OwnedEventId>,
    stop: &HashSet<OwnedEventId>,
    limit: usize,
) -> Result<Vec<std::sync::Arc<StoredEvent>>> {
    let mut queue: BTreeSet<(u64, OwnedEventId)> = BTreeSet::new();
    let mut seen: HashSet<OwnedEventId> = HashSet::new();
    for id in from {
        if let Some(e) = event_by_id(s, &id)?
            && e.pdu.room_id == room_id
            && seen.insert(id.clone())
        {
            queue.insert((u64::from(e.pdu.depth), id));
        }
    }
    let mut out = Vec::new();
    while let Some((_, id)) = queue.pop_last() {
        if out.len() >= limit {
            break;
        }
        let Some(event) = event_by_id(s, &id)? else {
            continue;
        };
        if stop.contains(&id) {
            continue;
        }
        for prev in &event.pdu.prev_events {
            if seen.insert(prev.clone())
                && let Some(p) = event_by_id(s, prev)?
            {
                queue.insert((u64::from(p.pdu.depth), prev.clone()));
            }
        }
        out.push(event);
    }
    Ok(out)
}

pub fn backfill(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    from: Vec<OwnedEventId>,
    limit: usize,
) -> Result<Value> {
    require_in_room(s, origin, room_id)?;
    let events = walk_back(s, room_id, from, &HashSet::new(), limit.min(100))?;
    let mut view = ServerView::new(s, origin);
    Ok(envelope(
        s,
        events.iter().map(|e| view.json(e)).collect::<Result<_>>()?,
    ))
}

pub fn missing_events(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    earliest: Vec<OwnedEventId>,
    latest: Vec<OwnedEventId>,
    limit: usize,
    min_depth: u64,
) -> Result<Value> {
    require_in_room(s, origin, room_id)?;
    let mut start = Vec::new();
    for id in &latest {
        if let Some(e) = event_by_id(s, id)? {
            start.extend(e.pdu.prev_events.iter().cloned());
        }
    }
    let stop: HashSet<OwnedEventId> = earliest.into_iter().chain(latest).collect();
    let mut events = walk_back(s, room_id, start, &stop, limit.min(100))?;
    events.retain(|e| u64::from(e.pdu.depth) >= min_depth);
    events.reverse();
    let mut view = ServerView::new(s, origin);
    Ok(json!({ "events": events.iter().map(|e| view.json(e)).collect::<Result<Vec<_>>>()? }))
}

/// `query/directory`: the room of one of our aliases and the servers in it.
pub fn directory(s: &Services, alias: &OwnedRoomAliasId) -> Result<Value> {
    if alias.server_name() != s.globals.server_name() {
        return Err(Error::not_found("Room alias not found"));
    }
    let entry = s
        .directory
        .resolve(alias)?
        .ok_or_else(|| Error::not_found("Room alias not found"))?;
    let mut servers = vec![s.globals.server_name().to_string()];
    if let Some(short) = s.short.room(&entry.room_id)? {
        servers.extend(
            crate::federation::sender::servers_in_room(s, short)?
                .iter()
                .map(|n| n.to_string()),
        );
    }
    Ok(json!({ "room_id": entry.room_id, "servers": servers }))
}

/// `timestamp_to_event`: the event of the room closest to `ts` in direction `dir` (`f`: the first
/// at or after it, `b`: the last at or before it), among the events of our timeline (the time index).
pub fn timestamp_to_event(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    ts: u64,
    forward: bool,
) -> Result<Value> {
    let short = require_in_room(s, origin, room_id)?;
    match crate::services::time_index::lookup::closest(s, short, room_id, ts, forward)? {
        Some(found) => {
            Ok(json!({ "event_id": found.event_id, "origin_server_ts": found.origin_server_ts }))
        }
        None => Err(Error::not_found("No event found")),
    }
}

/// `user/devices/{userId}`: a local user's devices with their keys, the stream id of the last
/// `m.device_list_update` sent for them, and the master and self-signing keys.
pub fn user_devices(s: &Services, user: &ruma::UserId) -> Result<Value> {
    if user.server_name() != s.globals.server_name() {
        return Err(Error::invalid_param("User is not local to this server"));
    }
    crate::services::keys::query::user_devices_answer(s, user)
}

/// `publicRooms`: our room directory, for other servers (403 when
/// `federation.public_rooms_over_federation` is off).
pub fn public_rooms(
    s: &Services,
    limit: Option<u64>,
    since: Option<&str>,
    term: Option<&str>,
) -> Result<Value> {
    if !s.config().federation.public_rooms_over_federation {
        return Err(Error::forbidden(
            "This server does not share its room directory over federation",
        ));
    }
    let limit = limit.and_then(|l| ruma::UInt::new(l));
    let r = crate::services::directory_listing::public_rooms(s, limit, since, term)?;
    let mut out = json!({ "chunk": r.chunk, "total_room_count_estimate": r.total });
    if let Some(next) = r.next_batch {
        out["next_batch"] = json!(next);
    }
    if let Some(prev) = r.prev_batch {
        out["prev_batch"] = json!(prev);
    }
    Ok(out)
}

/// `openid/userinfo`: the user an OpenID token of ours names (401 `M_UNKNOWN_TOKEN` when the token
/// is unknown or expired).
pub fn openid_userinfo(s: &Services, token: &str) -> Result<Value> {
    match s.users.openid_user(token, crate::util::now_ms())? {
        Some(user) => Ok(json!({ "sub": user })),
        None => Err(Error::unknown_token()),
    }
}
