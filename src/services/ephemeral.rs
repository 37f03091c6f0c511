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
    services::{cluster::Invalidation, globals::Globals},
    storage::{Db, Direction, Map, db::encode_json, keys::Key},
    util::now_ms,
};

#[derive(Default)]
struct RoomTyping {
    users: HashMap<OwnedUserId, Instant>,
    changed: u64,
}

/// In a group of processes, typing changes are stamped with their commit's stream position plus
/// this: above any stamp of a lone server (milliseconds since the epoch), so a client's token from
/// before the server joined a group hides nothing.
pub const SHARED_STAMP_BASE: u64 = 1 << 48;

/// How far a typing notification's timeout reaches at most.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// Who is typing where. Positions of this counter appear in sync tokens after the stream position.
///
/// Alone, a process keeps typing in memory and stamps changes with its own counter. In a group
/// (`[storage.postgres] shared`), a change is a commit that records an
/// [`Invalidation::Typing`](crate::services::cluster::Invalidation) at its stream position: every
/// process applies it (stamped with that position) before it serves the position, so a token
/// from one process shows the same typing on any other; the process holding the background
/// lease commits the ends of timed-out notifications ([`expire_periodically`]).
pub struct Typing {
    rooms: Mutex<HashMap<OwnedRoomId, RoomTyping>>,
    counter: AtomicU64,
    shared: bool,
}

impl Default for Typing {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Typing {
    /// Alone, the counter starts at the clock, so that it keeps growing across restarts and a
    /// client's token from before a restart does not hide new typing notifications.
    pub fn new(shared: bool) -> Self {
        Self {
            rooms: Default::default(),
            counter: AtomicU64::new(if shared { SHARED_STAMP_BASE } else { now_ms() }),
            shared,
        }
    }

    pub fn set(
        &self,
        globals: &Globals,
        room: &RoomId,
        user: &UserId,
        typing: bool,
        timeout: Duration,
    ) -> Result<()> {
        if self.shared {
            return self.set_shared(globals, room, user, typing, timeout);
        }
        let mut rooms = self.rooms.lock().unwrap();
        let entry = rooms.entry(room.to_owned()).or_default();
        let changed = if typing {
            entry
                .users
                .insert(user.to_owned(), Instant::now() + timeout.min(MAX_TIMEOUT))
                .is_none()
        } else {
            entry.users.remove(user).is_some()
        };
        if changed || typing {
            entry.changed = self.counter.fetch_add(1, Ordering::AcqRel) + 1;
            drop(rooms);
            globals.wake();
        }
        Ok(())
    }

    /// A change in a group: committed with its invalidation, applied here before the commit's
    /// position is served.
    fn set_shared(
        &self,
        globals: &Globals,
        room: &RoomId,
        user: &UserId,
        typing: bool,
        timeout: Duration,
    ) -> Result<()> {
        let known = self
            .rooms
            .lock()
            .unwrap()
            .get(room)
            .is_some_and(|r| r.users.contains_key(user));
        if !typing && !known {
            return Ok(());
        }
        let until_ms = typing.then(|| now_ms() + timeout.min(MAX_TIMEOUT).as_millis() as u64);
        globals.commit(|c| {
            let pos = c.next_pos();
            c.invalidate(Invalidation::Typing {
                room: room.to_owned(),
                user: user.to_owned(),
                until_ms,
            });
            c.after_write(move || self.apply(room, user, until_ms, pos));
            Ok(())
        })?;
        Ok(())
    }

    /// Applies a typing change of a group, committed at `pos`: `until_ms` None ends it.
    pub fn apply(&self, room: &RoomId, user: &UserId, until_ms: Option<u64>, pos: u64) {
        let mut rooms = self.rooms.lock().unwrap();
        let entry = rooms.entry(room.to_owned()).or_default();
        match until_ms {
            Some(until) => {
                let left = Duration::from_millis(until.saturating_sub(now_ms()));
                entry.users.insert(user.to_owned(), Instant::now() + left);
            }
            None => {
                entry.users.remove(user);
            }
        }
        let stamp = SHARED_STAMP_BASE + pos;
        entry.changed = entry.changed.max(stamp);
        self.counter.fetch_max(stamp, Ordering::AcqRel);
    }

    pub fn counter(&self) -> u64 {
        self.counter.load(Ordering::Acquire)
    }

    /// Users typing in `room` if it changed after `since`; expired entries are dropped (in a
    /// group, left out: their end is a commit of the lease holder's).
    pub fn typing_since(&self, room: &RoomId, since: u64) -> Option<Vec<OwnedUserId>> {
        let mut rooms = self.rooms.lock().unwrap();
        let entry = rooms.get_mut(room)?;
        let now = Instant::now();
        if self.shared {
            return (entry.changed > since).then(|| {
                entry
                    .users
                    .iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(user, _)| user.clone())
                    .collect()
            });
        }
        let before = entry.users.len();
        entry.users.retain(|_, until| *until > now);
        if entry.users.len() != before {
            entry.changed = self.counter.fetch_add(1, Ordering::AcqRel) + 1;
        }
        (entry.changed > since).then(|| entry.users.keys().cloned().collect())
    }

    /// The earliest expiry, so that a long-poll can wake up when someone stops typing (in a
    /// group, the commit that ends it wakes the long-polls).
    pub fn next_expiry(&self) -> Option<Instant> {
        if self.shared {
            return None;
        }
        self.rooms
            .lock()
            .unwrap()
            .values()
            .flat_map(|r| r.users.values().copied())
            .min()
    }

    /// Typing notifications whose timeout passed.
    fn expired(&self) -> Vec<(OwnedRoomId, OwnedUserId)> {
        let now = Instant::now();
        self.rooms
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(room, r)| {
                r.users
                    .iter()
                    .filter(move |(_, until)| **until <= now)
                    .map(move |(user, _)| (room.clone(), user.clone()))
            })
            .collect()
    }
}

/// In a group, on the process holding the background lease: ends the typing notifications whose
/// timeout passed, every second, with commits that every process applies.
pub async fn expire_periodically(
    services: std::sync::Arc<crate::services::Services>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if !services.typing.shared {
        return;
    }
    loop {
        let ended = services
            .run(|s| {
                let expired = s.typing.expired();
                for (room, user) in &expired {
                    s.typing
                        .set(&s.globals, room, user, false, Duration::ZERO)?;
                }
                Ok(expired.len())
            })
            .await;
        if let Err(e) = ended {
            tracing::warn!("ending timed-out typing notifications: {}", e.message);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
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
            c.stream_changed(crate::services::stream_changes::StreamChange::Presence);
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
