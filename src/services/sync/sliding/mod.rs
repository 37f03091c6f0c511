//! Simplified sliding sync (MSC4186, `org.matrix.simplified_msc3575`): the rooms of the user in
//! lists sorted by recency, room subscriptions, and extensions, computed against what the
//! connection was already sent (`connection`).
//!
//! Files: `connection.rs` (per-connection memory and `pos` tokens), `lists.rs` (filters, sorting,
//! ranges), `required_state.rs` (which state events a room asks for), `room.rs` (one room of the
//! answer), `extensions.rs` (to_device, e2ee, account_data, receipts, typing).

pub mod bumps;
pub mod connection;
pub mod extensions;
pub mod lists;
pub mod required_state;
pub mod room;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ruma::{
    OwnedRoomId, OwnedUserId, UInt,
    api::client::sync::sync_events::v5::{self, response},
    events::StateEventType,
};

use self::{
    connection::Sent,
    extensions::{Context, Scope},
    lists::Candidate,
    required_state::RequiredState,
    room::{RoomConfig, RoomInput},
};
use crate::{
    error::Result,
    services::{
        Services,
        rooms::state_content,
        rooms::{
            event_by_short,
            membership::{Membership, UserRoom},
        },
        timeline::pdu::{ClientFormat, raw},
        timeline::visibility::may_read_room,
    },
};

pub struct SlidingRequest {
    pub user: OwnedUserId,
    pub device: String,
    pub body: v5::Request,
}

/// The user's rooms with their membership, sorted by room ID (a request looks up a few of them;
/// thousands of rooms are not put in a map at each request).
struct UserRooms(std::sync::Arc<Vec<UserRoom>>);

impl UserRooms {
    fn of(s: &Services, user: &ruma::UserId) -> Result<Self> {
        Ok(Self(s.membership.rooms_of_sorted(user)?))
    }

    fn get(&self, room_id: &ruma::RoomId) -> Option<&UserRoom> {
        self.0
            .binary_search_by(|r| r.room_id.as_str().cmp(room_id.as_str()))
            .ok()
            .map(|i| &self.0[i])
    }
}

/// The rooms the user has marked as direct chats (`m.direct` account data).
fn direct_rooms(s: &Services, user: &ruma::UserId) -> Result<BTreeSet<OwnedRoomId>> {
    let mut out = BTreeSet::new();
    if let Some(content) = s.account_data.get(user, None, "m.direct")?
        && let Some(map) = content.as_object()
    {
        for rooms in map.values() {
            for room in rooms.as_array().into_iter().flatten() {
                if let Some(id) = room.as_str().and_then(|r| OwnedRoomId::try_from(r).ok()) {
                    out.insert(id);
                }
            }
        }
    }
    Ok(out)
}

fn candidate<'a>(
    s: &Services,
    user_room: &'a UserRoom,
    now: u64,
    direct: &BTreeSet<OwnedRoomId>,
    details: bool,
) -> Result<Candidate<'a>> {
    let bump = s.sliding_sync.bumps.bump_stamp(s, user_room, now)?;
    // Encryption and room type are read only when a list's filters ask for them.
    let (is_encrypted, room_type) = if details && user_room.membership == Membership::Join {
        let encrypted =
            state_content(s, &user_room.room_id, &StateEventType::RoomEncryption, "")?.is_some();
        let room_type = state_content(s, &user_room.room_id, &StateEventType::RoomCreate, "")?
            .and_then(|c| c.get("type").and_then(|t| t.as_str()).map(str::to_owned));
        (encrypted, room_type)
    } else {
        (false, None)
    };
    Ok(Candidate {
        room_id: &user_room.room_id,
        bump,
        is_invite: user_room.membership == Membership::Invite,
        is_dm: direct.contains(&user_room.room_id),
        is_encrypted,
        room_type,
    })
}

/// Computes one answer against what the connection was sent (`prev`); returns it, what the
/// connection has been sent after it, and whether it carries anything new.
pub fn compute(
    s: &Services,
    req: &SlidingRequest,
    prev: Option<&Sent>,
) -> Result<(v5::Response, Sent, bool)> {
    let now = s.globals.current_pos();
    let typing = s.typing.counter();
    let user = &req.user;
    let direct = direct_rooms(s, user)?;
    let mut response = v5::Response::new(String::new());
    response.txn_id = req.body.txn_id.clone();

    let user_rooms = UserRooms::of(s, user)?;
    let details = req.body.lists.values().any(|l| {
        l.filters.as_ref().is_some_and(|f| {
            f.is_encrypted.is_some() || !f.room_types.is_empty() || !f.not_room_types.is_empty()
        })
    });
    s.sliding_sync.bumps.prefetch(s, &user_rooms.0, now)?;
    let mut candidates = Vec::new();
    for r in user_rooms.0.iter() {
        if matches!(
            r.membership,
            Membership::Join | Membership::Invite | Membership::Knock
        ) && r.pos <= now
        {
            candidates.push(candidate(s, r, now, &direct, details)?);
        }
    }
    lists::sort_by_recency(&mut candidates);

    let mut window: BTreeMap<OwnedRoomId, RoomConfig> = BTreeMap::new();
    // The bump stamps of the rooms in the lists' ranges.
    let mut bumps: HashMap<OwnedRoomId, u64> = HashMap::new();
    let mut scope = Scope::default();
    let mut list_counts = HashMap::new();
    for (name, list) in &req.body.lists {
        let matching: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| lists::matches(list.filters.as_ref(), c))
            .collect();
        let mut out = response::List::default();
        out.count = UInt::new_saturating(matching.len() as u64);
        response.lists.insert(name.clone(), out);
        list_counts.insert(name.clone(), matching.len() as u64);
        let mut in_range = Vec::new();
        for index in lists::indexes_in_ranges(matching.len(), &list.ranges) {
            let id = matching[index].room_id.to_owned();
            bumps.insert(id.clone(), matching[index].bump);
            let config = window.entry(id.clone()).or_default();
            config
                .required_state
                .extend(user, &list.room_details.required_state);
            config.timeline_limit = config
                .timeline_limit
                .max(u64::from(list.room_details.timeline_limit) as usize);
            in_range.push(id);
        }
        scope.lists.insert(name.clone(), in_range);
    }
    for (room_id, sub) in &req.body.room_subscriptions {
        let allowed = match user_rooms.get(room_id) {
            Some(r) if r.membership != Membership::Leave && r.membership != Membership::Ban => true,
            _ => s
                .short
                .room(room_id)?
                .map(|short| may_read_room(s, user, short))
                .transpose()?
                .unwrap_or(false),
        };
        if !allowed {
            continue;
        }
        let config = window.entry(room_id.clone()).or_default();
        config.required_state.extend(user, &sub.required_state);
        config.timeline_limit = config
            .timeline_limit
            .max(u64::from(sub.timeline_limit) as usize);
        scope.subscriptions.push(room_id.clone());
    }

    let mut sent = Sent {
        stream: now,
        typing,
        rooms: prev.map(|p| p.rooms.clone()).unwrap_or_default(),
        list_counts,
    };
    let sync_req = room::sync_request(user, &req.device);
    for (room_id, config) in &window {
        let since = prev.and_then(|p| p.rooms.get(room_id).copied());
        // A room the user can read without being in it (world-readable): its history as a
        // non-member, as /sync's visibility rules allow.
        let outsider;
        let user_room = match user_rooms.get(room_id) {
            Some(r) if !matches!(r.membership, Membership::Leave | Membership::Ban) => r,
            _ => {
                outsider = UserRoom {
                    room_id: room_id.clone(),
                    membership: Membership::Join,
                    pos: 0,
                    short_event: 0,
                    forgotten: false,
                };
                &outsider
            }
        };
        let bump = match bumps.get(room_id) {
            Some(b) => *b,
            None => s.sliding_sync.bumps.bump_stamp(s, user_room, now)?,
        };
        let input = RoomInput {
            user_room,
            config,
            since,
            now,
            bump,
            is_dm: direct.contains(room_id),
        };
        if let Some(data) = room::build(s, &sync_req, input)? {
            response.rooms.insert(room_id.clone(), data);
        }
        sent.rooms.insert(room_id.clone(), now);
    }
    // Rooms this connection was sent and that the user has left since: the leave, once.
    if let Some(prev) = prev {
        for (room_id, since) in &prev.rooms {
            let Some(user_room) = user_rooms.get(room_id) else {
                continue;
            };
            if !matches!(user_room.membership, Membership::Leave | Membership::Ban)
                || user_room.pos <= *since
            {
                continue;
            }
            let config = RoomConfig {
                required_state: RequiredState::default(),
                timeline_limit: 1,
            };
            let input = RoomInput {
                user_room,
                config: &config,
                since: Some(*since),
                now,
                bump: user_room.pos,
                is_dm: direct.contains(room_id),
            };
            let mut data = room::build(s, &sync_req, input)?.unwrap_or_default();
            // The leave itself, even when the timeline does not show it (a rejected invite to a
            // room of another server has no timeline here).
            if let Some(leave) = event_by_short(s, user_room.short_event, room_id)? {
                let in_timeline = data.timeline.iter().any(|e| {
                    e.get_field::<String>("event_id").ok().flatten().as_deref()
                        == Some(leave.pdu.event_id.as_str())
                });
                if !in_timeline {
                    data.required_state.push(raw(&leave.to_client(
                        &s.timeline,
                        ClientFormat::Sync,
                        None,
                    )?));
                }
            }
            response.rooms.insert(room_id.clone(), data);
            sent.rooms.remove(room_id);
        }
    }

    let room_since = |room: &OwnedRoomId| prev.and_then(|p| p.rooms.get(room).copied());
    let ctx = Context {
        user,
        device: &req.device,
        since: prev.map(|p| (p.stream, p.typing)),
        now,
        room_since: &room_since,
    };
    let extensions_changed = extensions::add(
        s,
        &ctx,
        &req.body.extensions,
        &scope,
        &mut response.extensions,
    )?;

    let lists_changed = prev.is_none_or(|p| p.list_counts != sent.list_counts);
    let changed = lists_changed || !response.rooms.is_empty() || extensions_changed;
    Ok((response, sent, changed))
}
