//! Typing notifications (in memory, with their own counter) and presence.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    services::globals::Globals,
    storage::{Db, Direction, Map, db::encode_json, keys::Key},
    util::now_ms,
};

#[derive(Default)]
struct RoomTyping {
    users: HashMap<OwnedUserId, Instant>,
    changed: u64,
}

/// Who is typing where. Positions of this counter appear in sync tokens after the stream position.
pub struct Typing {
    rooms: Mutex<HashMap<OwnedRoomId, RoomTyping>>,
    counter: AtomicU64,
}

impl Default for Typing {
    /// The counter starts at the clock, so that it keeps growing across restarts and a client's
    /// token from before a restart does not hide new typing notifications.
    fn default() -> Self {
        Self {
            rooms: Default::default(),
            counter: AtomicU64::new(now_ms()),
        }
    }
}

impl Typing {
    pub fn set(
        &self,
        globals: &Globals,
        room: &RoomId,
        user: &UserId,
        typing: bool,
        timeout: Duration,
    ) {
        let mut rooms = self.rooms.lock().unwrap();
        let entry = rooms.entry(room.to_owned()).or_default();
        let changed = if typing {
            entry
                .users
                .insert(
                    user.to_owned(),
                    Instant::now() + timeout.min(Duration::from_secs(120)),
                )
                .is_none()
        } else {
            entry.users.remove(user).is_some()
        };
        if changed || typing {
            entry.changed = self.counter.fetch_add(1, Ordering::AcqRel) + 1;
            drop(rooms);
            globals.wake();
        }
    }

    pub fn counter(&self) -> u64 {
        self.counter.load(Ordering::Acquire)
    }

    /// Users typing in `room` if it changed after `since`; expired entries are dropped.
    pub fn typing_since(&self, room: &RoomId, since: u64) -> Option<Vec<OwnedUserId>> {
        let mut rooms = self.rooms.lock().unwrap();
        let entry = rooms.get_mut(room)?;
        let now = Instant::now();
        let before = entry.users.len();
        entry.users.retain(|_, until| *until > now);
        if entry.users.len() != before {
            entry.changed = self.counter.fetch_add(1, Ordering::AcqRel) + 1;
        }
        (entry.changed > since).then(|| entry.users.keys().cloned().collect())
    }

    /// The earliest expiry, so that a long-poll can wake up when someone stops typing.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.rooms
            .lock()
            .unwrap()
            .values()
            .flat_map(|r| r.users.values().copied())
            .min()
    }
}

/// user → [`PresenceRecord`].
pub const PRESENCE: Map = Map("presence");
/// position → user.
pub const PRESENCE_STREAM: Map = Map("presence_stream");
pub const MAPS: &[Map] = &[PRESENCE, PRESENCE_STREAM];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceRecord {
    pub presence: String,
    pub status_msg: Option<String>,
    pub last_active_ts: u64,
    pub pos: u64,
}

pub struct Presence {
    db: Db,
}

impl Presence {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn get(&self, user: &UserId) -> Result<Option<PresenceRecord>> {
        Ok(self.db.get_json(PRESENCE, user.as_bytes())?)
    }

    /// Stores a presence change (skipped when nothing changes but activity); the new record when
    /// something changed.
    pub fn set(
        &self,
        globals: &Globals,
        user: &UserId,
        presence: &str,
        status_msg: Option<Option<String>>,
    ) -> Result<Option<PresenceRecord>> {
        let old = self.get(user)?;
        let status_msg = match status_msg {
            Some(msg) => msg,
            None => old.as_ref().and_then(|o| o.status_msg.clone()),
        };
        if let Some(o) = &old
            && o.presence == presence
            && o.status_msg == status_msg
        {
            return Ok(None);
        }
        let (record, _) = globals.commit(|c| {
            if let Some(o) = &old {
                c.batch.delete(PRESENCE_STREAM, o.pos.to_be_bytes());
            }
            let pos = c.next_pos();
            let record = PresenceRecord {
                presence: presence.to_owned(),
                status_msg,
                last_active_ts: now_ms(),
                pos,
            };
            c.batch.put(PRESENCE, user.as_bytes(), encode_json(&record));
            c.batch
                .put(PRESENCE_STREAM, pos.to_be_bytes(), user.as_bytes());
            Ok(record)
        })?;
        Ok(Some(record))
    }

    /// Users whose presence changed after `since`.
    pub fn changed_since(&self, since: u64) -> Result<Vec<(OwnedUserId, PresenceRecord)>> {
        let mut out = Vec::new();
        let from = Key::new().u64(since + 1).build();
        for entry in self
            .db
            .scan_from(PRESENCE_STREAM, &[], &from, Direction::Forward)
        {
            let (_, user) = entry?;
            let Ok(user) = OwnedUserId::try_from(String::from_utf8_lossy(&user).as_ref()) else {
                continue;
            };
            if let Some(record) = self.get(&user)? {
                out.push((user, record));
            }
        }
        Ok(out)
    }
}
