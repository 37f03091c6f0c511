//! The position of each room's last bump event of [`lists::BUMP_TYPES`] (messages, the creation,
//! …): a sliding sync request orders all the user's rooms by recency. The user's own membership
//! (join or invite) also bumps the room: it is the position of the user's membership record.
//!
//! Stored: [`ROOM_LAST_BUMP`], one record per room, written in the commit of each bump event
//! (`event_committed`), so that finding a room's last bump is one read, not a walk back through
//! its timeline (5,000 rooms took 700 ms to order the first time). A room without a record (last
//! bumped before the record existed) is read back from its timeline, at most [`FIRST_SCAN`]
//! events.
//!
//! Remembered: each room's bump, kept up to date by the timeline's append (`appended`, called
//! after the event's batch is written and before its position is served), so a request reads
//! nothing for a room without new events. Such an entry is *live*. An entry is made live only
//! when no append was reported between its reading and its insertion (nor after the position it
//! was read at); otherwise it records the position it was read at, and the next request at a later
//! position reads the room again. In a group of processes (`[storage.postgres] shared`) the
//! others' appends are not reported here: no entry is live, and each request reads each room's
//! record. Bounded: emptied when it holds [`MAX_ROOMS`] rooms. A purged event's room is
//! forgotten (`forget`); its record may still name the purged event (the room keeps its place).

use std::{collections::HashMap, sync::Mutex};

use super::lists;
use crate::{
    error::Result,
    services::{
        Services,
        globals::Commit,
        rooms::{
            event_by_short,
            membership::{Membership, UserRoom},
        },
    },
    storage::{Direction, Map, keys::u64_from},
};

/// short room u64 → the position of the room's last event of [`lists::BUMP_TYPES`] u64.
pub const ROOM_LAST_BUMP: Map = Map("room_last_bump");
pub const MAPS: &[Map] = &[ROOM_LAST_BUMP];

const MAX_ROOMS: usize = 200_000;

/// How far back a room's last bump event is looked for when it has no record.
const FIRST_SCAN: usize = 256;

pub use lists::is_bump_type;

/// In the commit of a timeline event at `pos` (not soft-failed): the room's record, when the event
/// bumps it.
pub fn event_committed(c: &mut Commit, short_room: u64, pos: u64, kind: &str) {
    if is_bump_type(kind) {
        c.batch
            .put(ROOM_LAST_BUMP, short_room.to_be_bytes(), pos.to_be_bytes());
    }
}

#[derive(Clone, Copy)]
struct Entry {
    /// The room was read at this position.
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
    /// How many appends were reported.
    appends: u64,
}

#[derive(Default)]
pub struct Bumps {
    inner: Mutex<Inner>,
}

impl Bumps {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An event was appended to the room's timeline at `pos` (its batch is written, its position
    /// not served yet); `bumps`: it is one of [`lists::BUMP_TYPES`]. Called in position order
    /// (under the commit lock).
    pub fn appended(&self, short_room: u64, pos: u64, bumps: bool) {
        let mut inner = self.lock();
        inner.last_appended = Some(inner.last_appended.unwrap_or(0).max(pos));
        inner.appends += 1;
        if let Some(entry) = inner.rooms.get_mut(&short_room)
            && entry.live
            && bumps
        {
            entry.bump = entry.bump.max(pos);
        }
    }

    /// Events of the room were purged: it is read again when next asked for.
    pub fn forget(&self, short_room: u64) {
        self.lock().rooms.remove(&short_room);
    }

    /// Reads in one batch the records of the joined rooms among `rooms` that are not remembered
    /// up to date at `upto`, and remembers those recorded at or before `upto`, as
    /// [`Bumps::bump_stamp`] would one by one (the first request of a user in thousands of rooms
    /// after a start read each record alone).
    pub fn prefetch(&self, s: &Services, rooms: &[UserRoom], upto: u64) -> Result<()> {
        // Short ids first: a lookup may read storage, which the lock (taken by every append)
        // must not wait for.
        let mut joined = Vec::new();
        for room in rooms {
            if room.membership == Membership::Join
                && let Some(short_room) = s.short.room(&room.room_id)?
            {
                joined.push(short_room);
            }
        }
        let (wanted, appends) = {
            let inner = self.lock();
            let wanted: Vec<u64> = joined
                .into_iter()
                .filter(|r| !inner.rooms.get(r).is_some_and(|e| e.live || e.read == upto))
                .collect();
            (wanted, inner.appends)
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = wanted.iter().map(|r| r.to_be_bytes().to_vec()).collect();
        let records = s.globals.db.multi_get(ROOM_LAST_BUMP, &keys)?;
        for (short_room, record) in wanted.into_iter().zip(records) {
            if let Some(last) = record.as_deref().and_then(u64_from)
                && last <= upto
            {
                self.keep(short_room, upto, last, appends);
            }
        }
        Ok(())
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
        let (known, appends) = {
            let inner = self.lock();
            (inner.rooms.get(&short_room).copied(), inner.appends)
        };
        let typed = match known {
            // Up to date, and its last bump is not after `upto`.
            Some(e) if e.live && e.bump <= upto => e.bump,
            // Read at `upto` exactly.
            Some(e) if !e.live && e.read == upto => e.bump,
            _ => {
                let recorded = s
                    .globals
                    .db
                    .get(ROOM_LAST_BUMP, &short_room.to_be_bytes())?
                    .and_then(|v| u64_from(&v));
                let bump = match recorded {
                    Some(last) if last <= upto => last,
                    // Bumped after `upto`: the last bump before it, not kept.
                    Some(_) => {
                        let bump = last_typed_bump(s, user_room, short_room, upto, 0)?;
                        return Ok(with_own(user_room, bump.max(own)));
                    }
                    // No record: the timeline, from where it was read up to before.
                    None => {
                        let (read, bump) = match known {
                            Some(e) if !e.live && e.read < upto => (e.read, e.bump),
                            _ => (0, 0),
                        };
                        last_typed_bump(s, user_room, short_room, upto, read)?.max(bump)
                    }
                };
                self.keep(short_room, upto, bump, appends);
                bump
            }
        };
        Ok(with_own(user_room, typed.max(own)))
    }

    /// Remembers the room's last bump as read at `upto`, while `appends` appends had been
    /// reported: live if none was reported since (nor one after `upto`).
    fn keep(&self, short_room: u64, upto: u64, bump: u64, appends: u64) {
        let mut inner = self.lock();
        let live = inner.appends == appends && inner.last_appended.is_some_and(|last| last <= upto);
        if inner.rooms.len() >= MAX_ROOMS {
            inner.rooms.clear();
        }
        let entry = inner.rooms.entry(short_room).or_insert(Entry {
            read: 0,
            bump: 0,
            live: false,
        });
        if !entry.live && entry.read <= upto {
            *entry = Entry {
                read: upto,
                bump,
                live,
            };
        }
    }
}

/// The bump stamp: the room's last bump, or the user's membership position when it has none.
fn with_own(user_room: &UserRoom, bump: u64) -> u64 {
    if bump == 0 { user_room.pos } else { bump }
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
            if is_bump_type(&event.pdu.kind.to_string()) {
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
