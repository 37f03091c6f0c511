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

/// The joined members of big rooms, as [`MembershipIndex::joined`] read them: push evaluation
/// reads a room's members for every event, and a room of 10,000 was 10,000 entries read and
/// parsed per message and per join. Only rooms of at least [`CACHED_FROM`] members; at most
/// [`CACHED_USERS`] user IDs in all (emptied when full). Forgotten at each membership change of the
/// room (after its batch is written); not used by a process in a group (another process's change
/// is not seen here).
#[derive(Default)]
struct JoinedCache {
    rooms: Mutex<(HashMap<u64, Arc<Vec<OwnedUserId>>>, usize)>,
    /// Bumped by every membership change: a reading that began before one is not cached.
    generation: AtomicU64,
}

const CACHED_FROM: usize = 100;
const CACHED_USERS: usize = 200_000;

impl JoinedCache {
    fn get(&self, short_room: u64) -> Option<Arc<Vec<OwnedUserId>>> {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.0.get(&short_room).cloned()
    }

    fn put(&self, short_room: u64, members: Arc<Vec<OwnedUserId>>, generation: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if rooms.1 + members.len() > CACHED_USERS {
            *rooms = Default::default();
        }
        rooms.1 += members.len();
        if let Some(old) = rooms.0.insert(short_room, members) {
            rooms.1 -= old.len();
        }
    }

    fn changed(&self, short_room: u64) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = rooms.0.remove(&short_room) {
            rooms.1 -= old.len();
        }
    }
}

/// The rooms of users in many rooms (at least [`CACHED_FROM`]), sorted by room ID, as
/// [`MembershipIndex::rooms_of_sorted`] read them: sliding sync reads all of a user's rooms at
/// every request. At most [`CACHED_USER_ROOMS`] rooms in all (emptied when full); forgotten at
/// each membership change of the user; not used by a process in a group.
#[derive(Default)]
struct UserRoomsCache {
    users: Mutex<(HashMap<OwnedUserId, Arc<Vec<UserRoom>>>, usize)>,
    generation: AtomicU64,
}

const CACHED_USER_ROOMS: usize = 100_000;

impl UserRoomsCache {
    fn get(&self, user: &UserId) -> Option<Arc<Vec<UserRoom>>> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.0.get(user).cloned()
    }

    fn put(&self, user: &UserId, rooms: Arc<Vec<UserRoom>>, generation: u64) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if users.1 + rooms.len() > CACHED_USER_ROOMS {
            *users = Default::default();
        }
        users.1 += rooms.len();
        if let Some(old) = users.0.insert(user.to_owned(), rooms) {
            users.1 -= old.len();
        }
    }

    fn changed(&self, user: &UserId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = users.0.remove(user) {
            users.1 -= old.len();
        }
    }
}

pub struct MembershipIndex {
    db: Db,
    /// `None` in a group of processes.
    joined: Option<Arc<JoinedCache>>,
    /// `None` in a group of processes.
    user_rooms: Option<Arc<UserRoomsCache>>,
}

impl MembershipIndex {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            joined: Some(Arc::default()),
            user_rooms: Some(Arc::default()),
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

    /// The joined members of a room ([`Self::members`] with `Join`), from the cache for big rooms.
    pub fn joined(&self, short_room: u64) -> Result<Arc<Vec<OwnedUserId>>> {
        let Some(cache) = &self.joined else {
            return Ok(Arc::new(self.members(short_room, Membership::Join)?));
        };
        if let Some(members) = cache.get(short_room) {
            return Ok(members);
        }
        let generation = cache.generation.load(Ordering::Acquire);
        let members = Arc::new(self.members(short_room, Membership::Join)?);
        if members.len() >= CACHED_FROM {
            cache.put(short_room, members.clone(), generation);
        }
        Ok(members)
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
            cache.changed(short_room);
            let cache = cache.clone();
            commit.after_write(move || cache.changed(short_room));
        }
        if let Some(cache) = &self.user_rooms {
            cache.changed(user);
            let (cache, user) = (cache.clone(), user.to_owned());
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
                cache.changed(user);
            }
            self.db.put(USER_ROOMS, key, value)?;
            if let Some(cache) = &self.user_rooms {
                cache.changed(user);
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

    /// The user's rooms ([`Self::rooms_of`]) sorted by room ID, from the cache for users in many
    /// rooms.
    pub fn rooms_of_sorted(&self, user: &UserId) -> Result<Arc<Vec<UserRoom>>> {
        let read = || {
            let mut rooms = self.rooms_of(user)?;
            rooms.sort_by(|a, b| a.room_id.as_str().cmp(b.room_id.as_str()));
            Ok::<_, crate::error::Error>(Arc::new(rooms))
        };
        let Some(cache) = &self.user_rooms else {
            return read();
        };
        if let Some(rooms) = cache.get(user) {
            return Ok(rooms);
        }
        let generation = cache.generation.load(Ordering::Acquire);
        let rooms = read()?;
        if rooms.len() >= CACHED_FROM {
            cache.put(user, rooms.clone(), generation);
        }
        Ok(rooms)
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
