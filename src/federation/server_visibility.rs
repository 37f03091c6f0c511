//! History visibility for other servers, applied to the events `/backfill`, `get_missing_events`
//! and `/event` give them. With `joined` history visibility in the state before an event, a server
//! sees it when one of its users was joined then; with `invited`, joined or invited; with
//! `shared` or `world_readable`, any server in the room does. An event a server may not see is
//! given redacted, so that the room's graph stays whole (as Synapse does).

use std::collections::HashMap;

use ruma::{ServerName, UserId, canonical_json::redact, events::StateEventType};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    services::{Services, rooms::event_by_short, timeline::StoredEvent},
};

/// Answers for the events of one request: results are cached by state snapshot.
pub struct ServerView<'a> {
    s: &'a Services,
    server: &'a ServerName,
    by_snapshot: HashMap<u64, Visibility>,
}

#[derive(Clone, Copy)]
enum Visibility {
    All,
    Joined { joined: bool },
    Invited { joined_or_invited: bool },
}

impl<'a> ServerView<'a> {
    pub fn new(s: &'a Services, server: &'a ServerName) -> Self {
        Self {
            s,
            server,
            by_snapshot: HashMap::new(),
        }
    }

    /// Whether the server may see the event.
    pub fn can_see(&mut self, event: &StoredEvent) -> Result<bool> {
        // A membership event of the server's own user is its business.
        if let Some(key) = event.pdu.state_key.as_deref()
            && event.pdu.kind == ruma::events::TimelineEventType::RoomMember
            && UserId::parse(key).is_ok_and(|u| u.server_name() == self.server)
        {
            return Ok(true);
        }
        let snapshot = event.meta.state_before;
        let visibility = match self.by_snapshot.get(&snapshot) {
            Some(v) => *v,
            None => {
                let v = self.visibility_at(snapshot, event)?;
                self.by_snapshot.insert(snapshot, v);
                v
            }
        };
        Ok(match visibility {
            Visibility::All => true,
            Visibility::Joined { joined } => joined,
            Visibility::Invited { joined_or_invited } => joined_or_invited,
        })
    }

    /// The event as the server is given it: whole, or redacted.
    pub fn json(&mut self, event: &StoredEvent) -> Result<Value> {
        let object = if self.can_see(event)? {
            event.json.clone()
        } else {
            let version = self
                .s
                .timeline
                .room_version(&event.pdu.room_id)?
                .ok_or_else(|| Error::not_found("Unknown room"))?;
            let rules = crate::services::rooms::version::rules(&version)?;
            redact(event.json.clone(), &rules.redaction, None)
                .map_err(|e| Error::internal(e.to_string()))?
        };
        serde_json::to_value(object).map_err(|e| Error::internal(e.to_string()))
    }

    fn visibility_at(&self, snapshot: u64, event: &StoredEvent) -> Result<Visibility> {
        let s = self.s;
        let state = s.state.load(snapshot)?;
        let room_id = &event.pdu.room_id;
        let history = match s
            .short
            .statekey(&StateEventType::RoomHistoryVisibility, "")?
            .and_then(|k| state.get(&k).copied())
        {
            Some(short) => event_by_short(s, short, room_id)?
                .and_then(|e| e.pdu.content_field("history_visibility"))
                .and_then(|v| v.as_str().map(str::to_owned)),
            None => None,
        };
        let invited_counts = match history.as_deref() {
            Some("joined") => false,
            Some("invited") => true,
            _ => return Ok(Visibility::All),
        };
        let mut seen = false;
        for (key, short) in state.iter() {
            let (kind, state_key) = s.short.statekey_of(*key)?;
            if kind != StateEventType::RoomMember
                || !UserId::parse(&state_key).is_ok_and(|u| u.server_name() == self.server)
            {
                continue;
            }
            let membership = event_by_short(s, *short, room_id)?.and_then(|e| e.pdu.membership());
            if membership.as_deref() == Some("join")
                || invited_counts && membership.as_deref() == Some("invite")
            {
                seen = true;
                break;
            }
        }
        Ok(if invited_counts {
            Visibility::Invited {
                joined_or_invited: seen,
            }
        } else {
            Visibility::Joined { joined: seen }
        })
    }
}
