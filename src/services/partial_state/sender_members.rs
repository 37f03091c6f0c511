//! Lazy-loaded members while a room's state is partial: the member event of a timeline event's
//! sender may be missing from the known state (the resident sent no member events). It is then
//! taken from the event's auth events, the membership that authorised it, so that a client sees
//! who wrote the message (as Synapse does for partial-state rooms).

use std::{collections::BTreeSet, sync::Arc};

use ruma::{
    EventId,
    events::{StateEventType, TimelineEventType},
    serde::Raw,
};

use crate::{
    error::Result,
    services::{
        Services,
        rooms::event_by_id,
        state::StateMap,
        timeline::{
            StoredEvent,
            pdu::{ClientFormat, raw},
        },
    },
};

/// The member events (in the client format of /sync), taken from their auth events, of the
/// senders of `events` (newest event first wins) whose member event `state` lacks; nothing when
/// the room's state is full.
pub fn from_auth_events<T>(
    s: &Services,
    short_room: u64,
    events: &[Arc<StoredEvent>],
    state: &StateMap,
) -> Result<Vec<Raw<T>>> {
    if !s.partial_state.is_partial(short_room)? {
        return Ok(Vec::new());
    }
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for event in events.iter().rev() {
        let sender = event.pdu.sender.as_str();
        if !done.insert(sender) {
            continue;
        }
        let in_state = s
            .short
            .statekey(&StateEventType::RoomMember, sender)?
            .is_some_and(|k| state.contains_key(&k));
        if in_state {
            continue;
        }
        if let Some(member) = member_in_auth_events(s, short_room, &event.pdu.auth_events, sender)?
        {
            out.push(raw(&member.to_client(
                &s.timeline,
                ClientFormat::Sync,
                None,
            )?));
        }
    }
    Ok(out)
}

fn member_in_auth_events(
    s: &Services,
    short_room: u64,
    auth_events: &[ruma::OwnedEventId],
    sender: &str,
) -> Result<Option<Arc<StoredEvent>>> {
    for id in auth_events {
        let id: &EventId = id;
        let Some(auth) = event_by_id(s, id)? else {
            continue;
        };
        if auth.pdu.kind == TimelineEventType::RoomMember
            && auth.pdu.state_key.as_deref() == Some(sender)
            && auth.meta.short_room == short_room
        {
            return Ok(Some(auth));
        }
    }
    Ok(None)
}
