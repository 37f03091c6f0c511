//! The per-room sections of /sync: joined, left, invited and knocked rooms.

use std::{collections::BTreeSet, sync::Arc};

use ruma::{
    OwnedUserId, UInt,
    api::client::sync::sync_events::v3 as sync,
    events::{AnyStrippedStateEvent, StateEventType, TimelineEventType},
    serde::Raw,
};
use serde_json::{Map, Value, json};

use super::{SyncRequest, SyncToken, filter};
use crate::{
    error::Result,
    services::{
        Services,
        partial_state::sender_members,
        rooms::{client_events_by_short, event_by_short, membership::UserRoom},
        state::diff,
        timeline::{
            StoredEvent,
            pdu::{ClientFormat, raw},
            visibility::user_can_see,
        },
    },
};

const DEFAULT_TIMELINE_LIMIT: usize = 10;
const MAX_TIMELINE_LIMIT: usize = 200;

/// Up to `limit` visible events of a room with positions in `(after, upto]`, oldest first, and
/// whether more were left out.
pub fn recent_events(
    s: &Services,
    req: &SyncRequest,
    room: &UserRoom,
    short_room: u64,
    after: u64,
    upto: u64,
    limit: usize,
) -> Result<(Vec<Arc<StoredEvent>>, bool)> {
    // No event was appended since `after`: nothing to read.
    if after > 0
        && !s
            .globals
            .stream_changes
            .timeline
            .may_have_changed_since(&short_room, after)
    {
        return Ok((Vec::new(), false));
    }
    let filter = &req.filter.room.timeline;
    let mut events = Vec::new();
    let mut cursor = upto;
    let mut limited = false;
    'scan: loop {
        let batch = s.timeline.scan_back_after(short_room, after, cursor, 64)?;
        for (_, short) in &batch {
            let Some(event) = event_by_short(s, *short, &room.room_id)? else {
                continue;
            };
            if !filter::room_event_matches(
                filter,
                &event.pdu.kind.to_string(),
                Some(&event.pdu.sender),
                None,
            ) || !req.relations.matches(s, &event)?
                || !user_can_see(s, &req.user, &event)?
            {
                continue;
            }
            if events.len() == limit {
                limited = true;
                break 'scan;
            }
            events.push(event);
        }
        match batch.last() {
            Some((pos, _)) if batch.len() == 64 && *pos > after + 1 => cursor = pos - 1,
            _ => break,
        }
    }
    events.reverse();
    Ok((events, limited))
}

/// The client form of the state events `entries` (state key, short event) that the filter and the
/// lazy-loaded senders let through, and whether a member event is among them.
fn state_events(
    s: &Services,
    req: &SyncRequest,
    room: &UserRoom,
    entries: impl IntoIterator<Item = (u64, u64)>,
    lazy_senders: Option<&BTreeSet<OwnedUserId>>,
) -> Result<(Vec<Raw<ruma::events::AnySyncStateEvent>>, bool)> {
    let filter = &req.filter.room.state;
    let mut wanted = Vec::new();
    for (key, short) in entries {
        if short == 0 {
            continue;
        }
        let (kind, state_key) = s.short.statekey_of(key)?;
        let is_member = kind == StateEventType::RoomMember;
        if let Some(senders) = lazy_senders
            && is_member
            && !senders.iter().any(|u| u.as_str() == state_key)
        {
            continue;
        }
        if !filter::room_event_matches(filter, &kind.to_string(), None, None) {
            continue;
        }
        wanted.push((short, is_member));
    }
    // Read together and written from the stored text: a big room's full state is thousands of
    // events.
    let shorts: Vec<u64> = wanted.iter().map(|(short, _)| *short).collect();
    let mut has_member = false;
    let mut out = Vec::with_capacity(wanted.len());
    for ((_, is_member), event) in wanted.iter().zip(client_events_by_short(
        s,
        &shorts,
        &room.room_id,
        ClientFormat::Sync,
    )?) {
        if let Some(event) = event {
            has_member |= is_member;
            out.push(event);
        }
    }
    Ok((out, has_member))
}

fn timeline_json(
    s: &Services,
    req: &SyncRequest,
    events: &[Arc<StoredEvent>],
) -> Result<Vec<Raw<ruma::events::AnySyncTimelineEvent>>> {
    events
        .iter()
        .map(|e| {
            Ok(raw(&crate::services::relations::bundle::to_client(
                s,
                e,
                ClientFormat::Sync,
                &req.user,
                Some(req.device.as_str()),
            )?))
        })
        .collect()
}

pub fn joined(
    s: &Services,
    req: &SyncRequest,
    room: &UserRoom,
    since: Option<SyncToken>,
    now: SyncToken,
    account_data: &[crate::services::account_data::Entry],
) -> Result<Option<sync::JoinedRoom>> {
    let Some(short_room) = s.short.room(&room.room_id)? else {
        return Ok(None);
    };
    let since_pos = since.map_or(0, |t| t.pos);
    let newly_joined = since.is_none() || room.pos > since_pos;
    let after = if newly_joined { 0 } else { since_pos };
    let limit = req
        .filter
        .room
        .timeline
        .limit
        .map_or(DEFAULT_TIMELINE_LIMIT, |l| u64::from(l) as usize)
        .min(MAX_TIMELINE_LIMIT);

    let (events, limited) = recent_events(s, req, room, short_room, after, now.pos, limit)?;

    let mut joined = sync::JoinedRoom::new();
    // Ephemeral: typing and receipts.
    let typing_since = since.map_or(0, |t| t.typing);
    if let Some(users) = s.typing.typing_since(&room.room_id, typing_since)
        && (since.is_some() || !users.is_empty())
    {
        joined.ephemeral.events.push(raw(
            &json!({ "type": "m.typing", "content": { "user_ids": users } }),
        ));
    }
    let mut receipts: Map<String, Value> = Map::new();
    for (kind, user, receipt) in s.receipts.changed_since_known(
        &s.globals.stream_changes,
        short_room,
        if newly_joined { 0 } else { since_pos },
    )? {
        if receipt.pos > now.pos || (kind == "m.read.private" && user != req.user) {
            continue;
        }
        let mut entry = json!({ "ts": receipt.ts });
        if let Some(thread) = &receipt.thread_id {
            entry["thread_id"] = json!(thread);
        }
        let by_event = receipts
            .entry(receipt.event_id.to_string())
            .or_insert_with(|| json!({}));
        by_event[&kind][user.as_str()] = entry;
    }
    if !receipts.is_empty() {
        joined
            .ephemeral
            .events
            .push(raw(&json!({ "type": "m.receipt", "content": receipts })));
    }
    for entry in account_data
        .iter()
        .filter(|e| e.room.as_deref() == Some(&*room.room_id))
    {
        joined.account_data.events.push(raw(
            &json!({ "type": entry.kind, "content": entry.content }),
        ));
    }

    // Nothing else to show: the room is shown only if its counts changed, and they are read only
    // if they may have.
    let quiet = !newly_joined
        && !req.full_state
        && events.is_empty()
        && joined.ephemeral.events.is_empty()
        && joined.account_data.events.is_empty();
    if quiet
        && !s
            .globals
            .stream_changes
            .counts
            .may_have_changed_since(&short_room, since_pos)
    {
        return Ok(None);
    }
    let counts_changed =
        super::notifications::unread_counts(s, req, short_room, &mut joined)? > since_pos;
    if quiet && !counts_changed {
        return Ok(None);
    }

    // State between `since` and the start of the timeline.
    let start_state = match events.first() {
        Some(first) => s.state.load(first.meta.state_before)?,
        None => crate::services::rooms::state_at_pos(s, short_room, now.pos)?,
    };
    let lazy = filter::lazy_members(&req.filter.room.state).then(|| {
        let mut senders: BTreeSet<OwnedUserId> =
            events.iter().map(|e| e.pdu.sender.clone()).collect();
        senders.insert(req.user.clone());
        senders
    });
    let (mut state, mut state_has_member) = if newly_joined || req.full_state {
        state_events(
            s,
            req,
            room,
            start_state.iter().map(|(k, v)| (*k, *v)),
            lazy.as_ref(),
        )?
    } else if limited || lazy.is_some() {
        let mut entries = if limited {
            diff(
                &*crate::services::rooms::state_at_pos(s, short_room, since_pos)?,
                &start_state,
            )
        } else {
            Vec::new()
        };
        // With lazy-loaded members, the member events of the timeline's senders come along even when
        // they did not change, since the client may never have received them.
        for sender in lazy.iter().flatten() {
            if let Some(key) = s
                .short
                .statekey(&StateEventType::RoomMember, sender.as_str())?
                && let Some(event) = start_state.get(&key)
                && !entries.iter().any(|(k, _)| *k == key)
            {
                entries.push((key, *event));
            }
        }
        state_events(s, req, room, entries, lazy.as_ref())?
    } else {
        (Vec::new(), false)
    };
    if lazy.is_some() {
        // While the room's state is partial, senders the known state lacks.
        let missing = sender_members::from_auth_events(s, short_room, &events, &start_state)?;
        state_has_member |= !missing.is_empty();
        state.extend(missing);
    }
    joined.state = sync::State::Before(sync::StateEvents::with_events(state));

    joined.timeline.limited = limited;
    joined.timeline.prev_batch = Some(
        SyncToken {
            pos: events.first().map_or(now.pos, |e| e.meta.pos - 1),
            typing: 0,
        }
        .encode(),
    );
    joined.timeline.events = timeline_json(s, req, &events)?;

    // The summary (member counts and heroes) only when the membership may have changed since
    // `since` (the spec lets an unchanged summary be left out): a big room's incremental /sync
    // then reads none of its members.
    let members_changed = newly_joined
        || req.full_state
        || events
            .iter()
            .any(|e| e.pdu.kind == TimelineEventType::RoomMember)
        || state_has_member;
    if members_changed {
        let has_name = s
            .short
            .statekey(&StateEventType::RoomName, "")?
            .is_some_and(|k| start_state.contains_key(&k));
        let summary = s
            .membership
            .summary(short_room, &req.user, if has_name { 0 } else { 5 })?;
        joined.summary.joined_member_count = UInt::new(summary.joined);
        joined.summary.invited_member_count = UInt::new(summary.invited);
        if !has_name {
            joined.summary.heroes = summary.heroes;
        }
    }
    Ok(Some(joined))
}

pub fn left(
    s: &Services,
    req: &SyncRequest,
    room: &UserRoom,
    since: Option<SyncToken>,
) -> Result<sync::LeftRoom> {
    let mut left = sync::LeftRoom::new();
    let Some(short_room) = s.short.room(&room.room_id)? else {
        return Ok(left);
    };
    let since_pos = since.map_or(0, |t| t.pos);
    let limit = req
        .filter
        .room
        .timeline
        .limit
        .map_or(DEFAULT_TIMELINE_LIMIT, |l| u64::from(l) as usize)
        .min(MAX_TIMELINE_LIMIT);
    let (events, limited) = recent_events(s, req, room, short_room, since_pos, room.pos, limit)?;
    left.timeline.limited = limited;
    left.timeline.prev_batch = Some(
        SyncToken {
            pos: events.first().map_or(room.pos, |e| e.meta.pos - 1),
            typing: 0,
        }
        .encode(),
    );
    left.timeline.events = timeline_json(s, req, &events)?;
    if since.is_none() {
        let start = match events.first() {
            Some(first) => s.state.load(first.meta.state_before)?,
            None => crate::services::rooms::state_at_pos(s, short_room, room.pos)?,
        };
        let (state, _) = state_events(s, req, room, start.iter().map(|(k, v)| (*k, *v)), None)?;
        left.state = sync::State::Before(sync::StateEvents::with_events(state));
    }
    Ok(left)
}

/// Stripped state shown to invitees and knockers, with their own membership event.
pub fn stripped_state(s: &Services, room: &UserRoom) -> Result<Vec<Raw<AnyStrippedStateEvent>>> {
    let mut out = Vec::new();
    let mut push = |event: &StoredEvent| {
        out.push(raw(&json!({
            "type": event.pdu.kind.to_string(),
            "state_key": event.pdu.state_key,
            "sender": event.pdu.sender,
            "content": event.pdu.content_value(),
        })));
    };
    let Some(short_room) = s.short.room(&room.room_id)? else {
        return Ok(out);
    };
    let Some(meta) = s.timeline.meta(room.short_event)? else {
        return Ok(out);
    };
    let state = s.state.load(meta.state_after)?;
    // An invite over federation to a room this server is not in: the state the inviting server sent.
    let mut sent_state = Vec::new();
    if meta.state_after == 0
        && let Some(json) = s.timeline.json(room.short_event)?
        && let Some(ruma::CanonicalJsonValue::Object(unsigned)) = json.get("unsigned")
        && let Some(ruma::CanonicalJsonValue::Array(events)) = unsigned.get("invite_room_state")
    {
        for e in events {
            let v = serde_json::to_value(e).unwrap_or_default();
            let (Some(kind), Some(content)) = (v.get("type"), v.get("content")) else {
                continue;
            };
            sent_state.push(raw(&json!({
                "type": kind,
                "state_key": v.get("state_key").cloned().unwrap_or(json!("")),
                "sender": v.get("sender").cloned().unwrap_or_default(),
                "content": content,
            })));
        }
    }
    for kind in [
        StateEventType::RoomCreate,
        StateEventType::RoomJoinRules,
        StateEventType::RoomName,
        StateEventType::RoomAvatar,
        StateEventType::RoomCanonicalAlias,
        StateEventType::RoomEncryption,
        StateEventType::RoomTopic,
    ] {
        if let Some(key) = s.short.statekey(&kind, "")?
            && let Some(short) = state.get(&key)
            && let Some(event) = event_by_short(s, *short, &room.room_id)?
        {
            push(&event);
        }
    }
    let own = event_by_short(s, room.short_event, &room.room_id)?;
    // The inviter's own member event (its display name and avatar), as Synapse sends it: clients
    // (matrix-rust-sdk's `invite_details`, Element X's invite screen) read the inviter from it.
    if let Some(event) = &own
        && event.pdu.state_key.as_deref() != Some(event.pdu.sender.as_str())
        && let Some(key) = s
            .short
            .statekey(&StateEventType::RoomMember, event.pdu.sender.as_str())?
        && let Some(short) = state.get(&key)
        && let Some(inviter) = event_by_short(s, *short, &room.room_id)?
    {
        push(&inviter);
    }
    out.extend(sent_state);
    let _ = short_room;
    if let Some(event) = own
        && event.pdu.kind == TimelineEventType::RoomMember
    {
        let mut full = event.to_client(&s.timeline, ClientFormat::Sync, None)?;
        full.as_object_mut().map(|o| o.remove("unsigned"));
        out.push(raw(&full));
    }
    Ok(out)
}
