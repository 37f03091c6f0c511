//! The position of each room's last bump event of [`lists::BUMP_TYPES`] (messages, the creation,
//! …), remembered per room: a sliding sync request orders all the user's rooms by recency, and
//! reading each room's recent events again at every request made it grow with the number of
//! rooms (300 ms for 2,000 rooms). The user's own membership (join or invite) also bumps the
//! room: it is the position of the user's membership record. Bounded: emptied when it holds
//! [`MAX_ROOMS`] rooms.
//!
//! A room read once is kept up to date by the timeline's append (`appended`, called after the
//! event's batch is written and before its position is served), so a request reads no timeline
//! for a room without new events. Such an entry is *live*. An entry is made live only when no
//! append after the position it was read up to had been reported yet; otherwise it records how
//! far it was read, and the next request reads the room from there. In a group of processes
//! (`[storage.postgres] shared`) the others' appends are not reported here: no entry is live, and
//! each request reads each room from where it was read up to (one short timeline read per room).
//! A purged event's room is forgotten (`forget`).

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

#[derive(Clone, Copy)]
struct Entry {
    /// The timeline was read up to this position.
    read: u64,
    /// Its last bump event's position, or 0.
    bump: u64,
    /// Every append to the room since it was read has been applied (`bump` may then be later
    /// than `read`).
    live: bool,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<u64, Entry>,
    /// The position of the last append reported (`appended`), if any was.
    last_appended: Option<u64>,
}

#[derive(Default)]
pub struct Bumps {
    inner: Mutex<Inner>,
}

impl Bumps {
    /// An event was appended to the room's timeline at `pos` (its batch is written, its position
    /// not served yet); `bumps`: it is one of [`lists::BUMP_TYPES`]. Called in position order
    /// (under the commit lock).
    pub fn appended(&self, short_room: u64, pos: u64, bumps: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.last_appended = Some(inner.last_appended.unwrap_or(0).max(pos));
        if let Some(entry) = inner.rooms.get_mut(&short_room)
            && entry.live
            && bumps
        {
            entry.bump = entry.bump.max(pos);
        }
    }

    /// Events of the room were purged: it is read again when next asked for.
    pub fn forget(&self, short_room: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.rooms.remove(&short_room);
    }

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
        let known = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rooms
            .get(&short_room)
            .copied();
        let typed = match known {
            // Up to date, and its last bump is not after `upto`.
            Some(e) if e.live && e.bump <= upto => e.bump,
            // Read up to `upto` exactly.
            Some(e) if !e.live && e.read == upto => e.bump,
            // A later bump (or a later reading) than `upto`: read again, not kept.
            Some(e) if e.live || e.read > upto => {
                last_typed_bump(s, user_room, short_room, upto, 0)?
            }
            _ => {
                let (read, bump) = known.map_or((0, 0), |e| (e.read, e.bump));
                let found = last_typed_bump(s, user_room, short_room, upto, read)?;
                let bump = found.max(bump);
                let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                // Live only if no append after `upto` was reported before this insertion (every
                // later one will be applied to it).
                let live = inner.last_appended.is_some_and(|last| last <= upto);
                if inner.rooms.len() >= MAX_ROOMS {
                    inner.rooms.clear();
                }
                let entry = inner.rooms.entry(short_room).or_insert(Entry {
                    read: 0,
                    bump: 0,
                    live: false,
                });
                if !entry.live && entry.read < upto {
                    *entry = Entry {
                        read: upto,
                        bump,
                        live,
                    };
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
