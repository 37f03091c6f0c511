//! Membership indexes derived from `m.room.member` events: the rooms of each user and the members
//! of each room, with the stream position of the last change (what /sync reads).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};

use crate::{
    error::Result,
    services::globals::Commit,
    storage::{
        Db, Map,
        keys::{Key, KeyReader, u64_from},
    },
};

/// user, room → membership byte, position, short event id.
pub const USER_ROOMS: Map = Map("user_rooms");
/// short room, user → membership byte.
pub const ROOM_MEMBERS: Map = Map("room_members");
pub const MAPS: &[Map] = &[USER_ROOMS, ROOM_MEMBERS];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Join,
    Invite,
    Leave,
    Ban,
    Knock,
}

impl Membership {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "join" => Self::Join,
            "invite" => Self::Invite,
            "leave" => Self::Leave,
            "ban" => Self::Ban,
            "knock" => Self::Knock,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Invite => "invite",
            Self::Leave => "leave",
            Self::Ban => "ban",
            Self::Knock => "knock",
        }
    }

    fn byte(self) -> u8 {
        self as u8
    }

    fn from_byte(b: u8) -> Option<Self> {
        [
            Self::Join,
            Self::Invite,
            Self::Leave,
            Self::Ban,
            Self::Knock,
        ]
        .get(b as usize)
        .copied()
    }
}

#[derive(Debug, Clone)]
pub struct UserRoom {
    pub room_id: OwnedRoomId,
    pub membership: Membership,
    /// Stream position of the membership event.
    pub pos: u64,
    pub short_event: u64,
    /// The user chose to forget this room (hidden from /sync's leave section).
    pub forgotten: bool,
}

/// A room's member counts and heroes ([`MembershipIndex::summary`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RoomSummary {
    pub joined: u64,
    pub invited: u64,
    pub heroes: Vec<OwnedUserId>,
}

/// Lists read from the membership maps, kept with at most `max_entries` units in all (a list
/// counts its length and one for its key; emptied when full). A key is forgotten at each
/// membership change that concerns it (`changed`, before and after the change's batch is
/// written); a reading that began before a change is not kept (the generation moved). Not used by
/// a process in a group (another process's change is not seen here).
///
/// Two of them: the joined members of rooms (push evaluation read a room's members for every
/// event: 10,000 entries read and parsed per message and per join in a big room, an iterator over
/// the map in a small one), and the rooms of users, sorted by room ID (/sync and sliding sync read
/// all of a user's rooms at every request). Every list is kept, small ones too: opening a storage
/// iterator costs more than the few entries it reads.
struct ListCache<K, V> {
    lists: Mutex<(HashMap<K, Arc<Vec<V>>>, usize)>,
    generation: AtomicU64,
    max_entries: usize,
}

impl<K: std::hash::Hash + Eq, V> ListCache<K, V> {
    fn new(max_entries: usize) -> Self {
        Self {
            lists: Mutex::new((HashMap::new(), 0)),
            generation: AtomicU64::new(0),
            max_entries,
        }
    }

    /// The kept list of `key`, or `read`'s (kept when long enough and no change came meanwhile).
    fn get_or_read(
        &self,
        key: &K,
        read: impl FnOnce() -> Result<Vec<V>>,
        owned: impl FnOnce() -> K,
    ) -> Result<Arc<Vec<V>>>
    where
        K: Clone,
    {
        if let Some(list) = self.lock().0.get(key) {
            return Ok(list.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let list = Arc::new(read()?);
        let mut lists = self.lock();
        if self.generation.load(Ordering::Acquire) == generation {
            if lists.1 + list.len() + 1 > self.max_entries {
                *lists = (HashMap::new(), 0);
            }
            lists.1 += list.len() + 1;
            if let Some(old) = lists.0.insert(owned(), list.clone()) {
                lists.1 -= old.len() + 1;
            }
        }
        Ok(list)
    }

    fn changed(&self, key: &K) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut lists = self.lock();
        if let Some(old) = lists.0.remove(key) {
            lists.1 -= old.len() + 1;
        }
    }

    #[allow(clippy::type_complexity)]
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<K, Arc<Vec<V>>>, usize)> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct MembershipIndex {
    db: Db,
    /// Joined members by short room (200,000 user IDs in all); `None` in a group of processes.
    joined: Option<Arc<ListCache<u64, OwnedUserId>>>,
    /// Rooms by user, sorted (100,000 rooms in all); `None` in a group of processes.
    user_rooms: Option<Arc<ListCache<OwnedUserId, UserRoom>>>,
}

impl MembershipIndex {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            joined: Some(Arc::new(ListCache::new(200_000))),
            user_rooms: Some(Arc::new(ListCache::new(100_000))),
        }
    }

    /// Without the joined-members cache when `shared` (a process in a group).
    pub fn uncached(mut self, shared: bool) -> Self {
        if shared {
            self.joined = None;
            self.user_rooms = None;
        }
        self
    }

    /// The joined members of a room ([`Self::members`] with `Join`), from the cache.
    pub fn joined(&self, short_room: u64) -> Result<Arc<Vec<OwnedUserId>>> {
        let read = || self.members(short_room, Membership::Join);
        match &self.joined {
            Some(cache) => cache.get_or_read(&short_room, read, || short_room),
            None => Ok(Arc::new(read()?)),
        }
    }

    /// Records a membership change in `commit`.
    pub fn record(
        &self,
        commit: &mut Commit,
        user: &UserId,
        room: &RoomId,
        short_room: u64,
        membership: Membership,
        pos: u64,
        short_event: u64,
    ) {
        let mut value = vec![membership.byte()];
        value.extend_from_slice(&pos.to_be_bytes());
        value.extend_from_slice(&short_event.to_be_bytes());
        commit.batch.put(
            USER_ROOMS,
            Key::new().str(user.as_str()).str(room.as_str()).build(),
            value,
        );
        commit.batch.put(
            ROOM_MEMBERS,
            Key::new().u64(short_room).str(user.as_str()).build(),
            vec![membership.byte()],
        );
        if membership == Membership::Join {
            crate::services::keys::remote_cache::forget_on_join(&self.db, commit, user);
        }
        // Before the batch is written and after: a reading that began before the write and ends
        // after it is not cached (the generation moved).
        if let Some(cache) = &self.joined {
            cache.changed(&short_room);
            let cache = cache.clone();
            commit.after_write(move || cache.changed(&short_room));
        }
        if let Some(cache) = &self.user_rooms {
            let user = user.to_owned();
            cache.changed(&user);
            let cache = cache.clone();
            commit.after_write(move || cache.changed(&user));
        }
    }

    /// Hides a left room from the user's /sync.
    pub fn forget(&self, user: &UserId, room: &RoomId) -> Result<()> {
        let key = Key::new().str(user.as_str()).str(room.as_str()).build();
        if let Some(mut value) = self.db.get(USER_ROOMS, &key)? {
            value.truncate(17);
            value.push(1);
            if let Some(cache) = &self.user_rooms {
                cache.changed(&user.to_owned());
            }
            self.db.put(USER_ROOMS, key, value)?;
            if let Some(cache) = &self.user_rooms {
                cache.changed(&user.to_owned());
            }
        }
        Ok(())
    }

    /// The rooms `user` is joined to.
    pub fn joined_room_ids(&self, user: &UserId) -> Result<Vec<OwnedRoomId>> {
        Ok(self
            .rooms_of(user)?
            .into_iter()
            .filter(|r| r.membership == Membership::Join)
            .map(|r| r.room_id)
            .collect())
    }

    pub fn rooms_of(&self, user: &UserId) -> Result<Vec<UserRoom>> {
        let prefix = Key::new().str(user.as_str()).build();
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(USER_ROOMS, &prefix) {
            let (key, value) = entry?;
            let mut reader = KeyReader::new(&key[prefix.len()..]);
            let (Some(room), Some(membership)) = (
                reader.str(),
                value.first().copied().and_then(Membership::from_byte),
            ) else {
                continue;
            };
            let Ok(room_id) = OwnedRoomId::try_from(room) else {
                continue;
            };
            out.push(UserRoom {
                room_id,
                membership,
                pos: value.get(1..9).and_then(u64_from).unwrap_or(0),
                short_event: value.get(9..17).and_then(u64_from).unwrap_or(0),
                forgotten: value.get(17) == Some(&1),
            });
        }
        Ok(out)
    }

    /// The user's rooms ([`Self::rooms_of`]) sorted by room ID, from the cache.
    pub fn rooms_of_sorted(&self, user: &UserId) -> Result<Arc<Vec<UserRoom>>> {
        let read = || {
            let mut rooms = self.rooms_of(user)?;
            rooms.sort_by(|a, b| a.room_id.as_str().cmp(b.room_id.as_str()));
            Ok(rooms)
        };
        match &self.user_rooms {
            Some(cache) => cache.get_or_read(&user.to_owned(), read, || user.to_owned()),
            None => Ok(Arc::new(read()?)),
        }
    }

    pub fn user_room(&self, user: &UserId, room: &RoomId) -> Result<Option<UserRoom>> {
        let key = Key::new().str(user.as_str()).str(room.as_str()).build();
        Ok(self.db.get(USER_ROOMS, &key)?.and_then(|value| {
            Some(UserRoom {
                room_id: room.to_owned(),
                membership: Membership::from_byte(*value.first()?)?,
                pos: value.get(1..9).and_then(u64_from).unwrap_or(0),
                short_event: value.get(9..17).and_then(u64_from).unwrap_or(0),
                forgotten: value.get(17) == Some(&1),
            })
        }))
    }

    pub fn membership(&self, short_room: u64, user: &UserId) -> Result<Option<Membership>> {
        let key = Key::new().u64(short_room).str(user.as_str()).build();
        Ok(self
            .db
            .get(ROOM_MEMBERS, &key)?
            .and_then(|v| v.first().copied().and_then(Membership::from_byte)))
    }

    pub fn is_joined(&self, short_room: u64, user: &UserId) -> Result<bool> {
        Ok(self.membership(short_room, user)? == Some(Membership::Join))
    }

    /// Whether a user of `server` is joined to the room (stops at the first one).
    pub fn has_joined_member_of(&self, short_room: u64, server: &ruma::ServerName) -> Result<bool> {
        let prefix = Key::new().u64(short_room).build();
        for entry in self.db.scan_prefix(ROOM_MEMBERS, &prefix) {
            let (key, value) = entry?;
            if value.first().copied().and_then(Membership::from_byte) == Some(Membership::Join)
                && let Some(user) = KeyReader::new(&key[8..])
                    .str()
                    .and_then(|u| <&UserId>::try_from(u).ok())
                && user.server_name() == server
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What a room summary needs, in one scan of the room's members: how many are joined and
    /// invited, and up to `heroes` members other than `except` (the joined ones first, then the
    /// invited, each in user id order).
    pub fn summary(&self, short_room: u64, except: &UserId, heroes: usize) -> Result<RoomSummary> {
        let prefix = Key::new().u64(short_room).build();
        let mut out = RoomSummary::default();
        let mut invited_heroes = Vec::new();
        for entry in self.db.scan_prefix(ROOM_MEMBERS, &prefix) {
            let (key, value) = entry?;
            let (count, names) = match value.first().copied().and_then(Membership::from_byte) {
                Some(Membership::Join) => (&mut out.joined, &mut out.heroes),
                Some(Membership::Invite) => (&mut out.invited, &mut invited_heroes),
                _ => continue,
            };
            *count += 1;
            if names.len() < heroes
                && let Some(user) = KeyReader::new(&key[prefix.len()..])
                    .str()
                    .and_then(|u| OwnedUserId::try_from(u).ok())
                && &*user != except
            {
                names.push(user);
            }
        }
        out.heroes.extend(invited_heroes);
        out.heroes.truncate(heroes);
        Ok(out)
    }

    /// Members of a room with the given membership.
    pub fn members(&self, short_room: u64, wanted: Membership) -> Result<Vec<OwnedUserId>> {
        let prefix = Key::new().u64(short_room).build();
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(ROOM_MEMBERS, &prefix) {
            let (key, value) = entry?;
            if value.first().copied().and_then(Membership::from_byte) != Some(wanted) {
                continue;
            }
            if let Some(user) = KeyReader::new(&key[8..])
                .str()
                .and_then(|u| OwnedUserId::try_from(u).ok())
            {
                out.push(user);
            }
        }
        Ok(out)
    }
}
