//! /sync: what changed for a user since a token, computed from the stream positions of every
//! change (timeline, memberships, account data, receipts, presence) and the typing counter.

pub mod e2ee;
pub mod filter;
pub(crate) mod notifications;
pub(crate) mod rooms;
pub mod sliding;

use ruma::{
    OwnedUserId, UserId,
    api::client::{filter::FilterDefinition, sync::sync_events::v3 as sync},
    events::presence::PresenceEvent,
    serde::Raw,
};
use serde_json::json;

use crate::{
    error::{Error, Result},
    services::{Services, rooms::membership::Membership, timeline::pdu::raw},
};

/// A /sync position: the stream position and the typing counter (`s<pos>_<typing>`; a third
/// component, the to-device mark, is read by `e2ee::to_device_mark`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncToken {
    pub pos: u64,
    pub typing: u64,
}

impl SyncToken {
    pub fn parse(token: &str) -> Result<Self> {
        let body = token.strip_prefix('s').unwrap_or(token);
        let (pos, rest) = body.split_once('_').unwrap_or((body, "0"));
        let typing = rest.split('_').next().unwrap_or(rest);
        match (pos.parse(), typing.parse()) {
            (Ok(pos), Ok(typing)) => Ok(Self { pos, typing }),
            _ => Err(Error::invalid_param("Invalid sync token")),
        }
    }

    pub fn encode(&self) -> String {
        format!("s{}_{}", self.pos, self.typing)
    }
}

pub struct SyncRequest {
    pub user: OwnedUserId,
    pub device: String,
    pub since: Option<SyncToken>,
    /// The to-device mark of `since` (`e2ee::to_device_mark`).
    pub to_device_since: Option<u64>,
    pub full_state: bool,
    pub filter: FilterDefinition,
    /// The relation fields of the timeline filter (`relations::filter`).
    pub relations: crate::services::relations::filter::RelationFilter,
}

/// When a long-polling sync that found nothing looks again: at `deadline`, or when someone's
/// typing ends before it (not sooner than 5 ms from `now`); a new stream position or typing
/// change wakes it earlier.
pub fn wake_at(
    s: &Services,
    deadline: tokio::time::Instant,
    now: tokio::time::Instant,
) -> tokio::time::Instant {
    match s.typing.next_expiry().map(tokio::time::Instant::from_std) {
        Some(t) => t
            .min(deadline)
            .max(now + std::time::Duration::from_millis(5)),
        None => deadline,
    }
}

/// Computes one /sync answer at the current position; `None` means nothing changed.
pub fn compute(s: &Services, req: &SyncRequest) -> Result<(sync::Response, bool)> {
    let now = SyncToken {
        pos: s.globals.current_pos(),
        typing: s.typing.counter(),
    };
    let since = req.since;
    let since_pos = since.map_or(0, |t| t.pos);
    let mut response = sync::Response::new(now.encode());
    let mut changed = false;
    let mut account_data =
        s.account_data
            .changes_since_known(&s.globals.stream_changes, &req.user, since_pos)?;
    if since.is_none() {
        notifications::add_default_push_rules(s, &req.user, &mut account_data)?;
    }

    let room_filter = &req.filter.room;
    // Cached; read once for the rooms and the device lists.
    let rooms = s.membership.rooms_of_sorted(&req.user)?;
    for room in rooms.iter() {
        if room_filter.not_rooms.contains(&room.room_id)
            || room_filter
                .rooms
                .as_ref()
                .is_some_and(|r| !r.contains(&room.room_id))
        {
            continue;
        }
        match room.membership {
            Membership::Join => {
                if let Some(joined) = rooms::joined(s, req, &room, since, now, &account_data)? {
                    response.rooms.join.insert(room.room_id.clone(), joined);
                    changed = true;
                }
            }
            Membership::Invite if room.pos > since_pos => {
                let mut invited = sync::InvitedRoom::new();
                invited.invite_state.events = rooms::stripped_state(s, &room)?;
                response.rooms.invite.insert(room.room_id.clone(), invited);
                changed = true;
            }
            Membership::Knock if room.pos > since_pos => {
                let mut knocked = sync::KnockedRoom::new();
                knocked.knock_state.events = rooms::stripped_state(s, &room)?;
                response.rooms.knock.insert(room.room_id.clone(), knocked);
                changed = true;
            }
            Membership::Leave | Membership::Ban
                if !room.forgotten
                    && room.pos <= now.pos
                    && (since.is_some() && room.pos > since_pos
                        || since.is_none() && room_filter.include_leave) =>
            {
                let left = rooms::left(s, req, &room, since)?;
                response.rooms.leave.insert(room.room_id.clone(), left);
                changed = true;
            }
            _ => {}
        }
    }

    for entry in account_data {
        if entry.room.is_some()
            || !filter::event_matches(&req.filter.account_data, &entry.kind, None)
        {
            continue;
        }
        response.account_data.events.push(raw(
            &json!({ "type": entry.kind, "content": entry.content }),
        ));
        changed = true;
    }

    let presence = if s
        .globals
        .stream_changes
        .presence
        .may_have_changed_since(&(), since_pos)
    {
        s.presence.changed_since(since_pos)?
    } else {
        Vec::new()
    };
    for (user, record) in presence {
        if (user != req.user && !shares_room(s, &req.user, &user)?)
            || !filter::event_matches(&req.filter.presence, "m.presence", Some(&user))
        {
            continue;
        }
        let mut content = json!({
            "presence": record.presence,
            "last_active_ago": crate::util::now_ms().saturating_sub(record.last_active_ts),
            "currently_active": record.presence == "online",
        });
        if let Some(msg) = record.status_msg {
            content["status_msg"] = json!(msg);
        }
        let event: Raw<PresenceEvent> =
            raw(&json!({ "type": "m.presence", "sender": user, "content": content }));
        response.presence.events.push(event);
        changed = true;
    }

    changed |= e2ee::add(s, req, &rooms, since.map(|t| t.pos), now.pos, &mut response)?;
    Ok((response, changed))
}

/// Users who share a joined room with `user` (for presence).
pub fn shares_room(s: &Services, user: &UserId, other: &UserId) -> Result<bool> {
    for room in s.membership.rooms_of(user)? {
        if room.membership == Membership::Join
            && let Some(short) = s.short.room(&room.room_id)?
            && s.membership.is_joined(short, other)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}
