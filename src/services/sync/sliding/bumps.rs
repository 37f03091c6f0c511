//! The position of each room's last bump event of [`lists::BUMP_TYPES`] (messages, the creation,
//! …), remembered per room with how far its timeline was read: a sliding sync request orders all
//! the user's rooms by recency, and reading each room's recent events again at every request made
//! it grow with the number of rooms (300 ms for 2,000 rooms). A room is read again only from the
//! position it was read up to. The user's own membership (join or invite) also bumps the room: it
//! is the position of the user's membership record. Bounded: emptied when it holds
//! [`MAX_ROOMS`] rooms.

use std::{collections::HashMap, sync::Mutex};

use super::lists;
use crate::{
    error::Result,
    services::{
        Services,
        rooms::{
            event_by_short,
            membership::{Membership, UserRoom},
        },
    },
    storage::Direction,
};

const MAX_ROOMS: usize = 200_000;

/// How far back a room's last bump event is looked for when it was never read.
const FIRST_SCAN: usize = 256;

#[derive(Default)]
pub struct Bumps {
    /// short room → (timeline read up to this position, its last bump event's position or 0).
    rooms: Mutex<HashMap<u64, (u64, u64)>>,
}

impl Bumps {
    /// The stream position of the room's last bump event at or before `upto` for the user of
    /// `user_room`.
    pub fn bump_stamp(&self, s: &Services, user_room: &UserRoom, upto: u64) -> Result<u64> {
        if matches!(user_room.membership, Membership::Invite | Membership::Knock) {
            return Ok(user_room.pos);
        }
        let Some(short_room) = s.short.room(&user_room.room_id)? else {
            return Ok(user_room.pos);
        };
        let own = if user_room.membership == Membership::Join && user_room.pos <= upto {
            user_room.pos
        } else {
            0
        };
        let known = self.rooms.lock().unwrap().get(&short_room).copied();
        let typed = match known {
            // Read up to `upto` already.
            Some((read, bump)) if read == upto => bump,
            // Read past `upto` (another request saw a later position): read again, not kept.
            Some((read, _)) if read > upto => last_typed_bump(s, user_room, short_room, upto, 0)?,
            _ => {
                let (read, bump) = known.unwrap_or((0, 0));
                let found = last_typed_bump(s, user_room, short_room, upto, read)?;
                let bump = found.max(bump);
                let mut rooms = self.rooms.lock().unwrap();
                if rooms.len() >= MAX_ROOMS {
                    rooms.clear();
                }
                let entry = rooms.entry(short_room).or_insert((0, 0));
                if entry.0 < upto {
                    *entry = (upto, bump);
                }
                bump
            }
        };
        let bump = typed.max(own);
        Ok(if bump == 0 { user_room.pos } else { bump })
    }
}

/// The last event of [`lists::BUMP_TYPES`] in `(after, upto]` (at most [`FIRST_SCAN`] events back
/// when `after` is 0): its position, or 0.
fn last_typed_bump(
    s: &Services,
    user_room: &UserRoom,
    short_room: u64,
    upto: u64,
    after: u64,
) -> Result<u64> {
    let mut cursor = upto;
    let mut seen = 0;
    loop {
        let batch = s
            .timeline
            .scan(short_room, cursor, Direction::Backward, 64)?;
        for (pos, short) in &batch {
            if *pos <= after {
                return Ok(0);
            }
            seen += 1;
            let Some(event) = event_by_short(s, *short, &user_room.room_id)? else {
                continue;
            };
            if lists::BUMP_TYPES.contains(&event.pdu.kind.to_string().as_str()) {
                return Ok(*pos);
            }
        }
        match batch.last() {
            Some((pos, _)) if batch.len() == 64 && *pos > 1 && (after > 0 || seen < FIRST_SCAN) => {
                cursor = pos - 1
            }
            _ => return Ok(0),
        }
    }
}
