//! Short numeric ids for event ids, room ids and `(type, state_key)` pairs, so that timeline,
//! state and index keys are 8 bytes instead of long strings.

use std::{collections::HashMap, sync::RwLock};

use ruma::{EventId, OwnedEventId, OwnedRoomId, RoomId, events::StateEventType};

use crate::{
    error::{Error, Result},
    services::globals::{Commit, read_u64},
    storage::{Db, Map, keys::Key},
};

pub const EVENT_TO_SHORT: Map = Map("event_to_short");
pub const SHORT_TO_EVENT: Map = Map("short_to_event");
pub const ROOM_TO_SHORT: Map = Map("room_to_short");
pub const SHORT_TO_ROOM: Map = Map("short_to_room");
pub const STATEKEY_TO_SHORT: Map = Map("statekey_to_short");
pub const SHORT_TO_STATEKEY: Map = Map("short_to_statekey");
pub const MAPS: &[Map] = &[
    EVENT_TO_SHORT,
    SHORT_TO_EVENT,
    ROOM_TO_SHORT,
    SHORT_TO_ROOM,
    STATEKEY_TO_SHORT,
    SHORT_TO_STATEKEY,
];

pub struct ShortIds {
    db: Db,
    statekeys: RwLock<HashMap<(StateEventType, String), u64>>,
    statekeys_rev: RwLock<HashMap<u64, (StateEventType, String)>>,
    rooms: RwLock<HashMap<OwnedRoomId, u64>>,
    rooms_rev: RwLock<HashMap<u64, OwnedRoomId>>,
}

fn statekey_bytes(kind: &StateEventType, state_key: &str) -> Vec<u8> {
    Key::new().str(&kind.to_string()).str(state_key).build()
}

impl ShortIds {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            statekeys: Default::default(),
            statekeys_rev: Default::default(),
            rooms: Default::default(),
            rooms_rev: Default::default(),
        }
    }

    pub fn event(&self, event_id: &EventId) -> Result<Option<u64>> {
        Ok(self.db.get_u64(EVENT_TO_SHORT, event_id.as_bytes())?)
    }

    /// The short ids of many events, with one read (`None`: unknown).
    pub fn events(&self, event_ids: &[&EventId]) -> Result<Vec<Option<u64>>> {
        let keys: Vec<Vec<u8>> = event_ids.iter().map(|id| id.as_bytes().to_vec()).collect();
        self.db
            .multi_get(EVENT_TO_SHORT, &keys)?
            .into_iter()
            .map(|bytes| bytes.map(|b| short_from(&b)).transpose())
            .collect()
    }

    pub fn event_id(&self, short: u64) -> Result<OwnedEventId> {
        let bytes = self
            .db
            .get(SHORT_TO_EVENT, &short.to_be_bytes())?
            .ok_or_else(|| Error::internal(format!("unknown short event id {short}")))?;
        OwnedEventId::try_from(String::from_utf8_lossy(&bytes).as_ref())
            .map_err(|_| Error::internal("corrupt event id"))
    }

    /// The event ids of many short ids, with one read (`None`: unknown).
    pub fn event_ids(&self, shorts: &[u64]) -> Result<Vec<Option<OwnedEventId>>> {
        let keys: Vec<Vec<u8>> = shorts.iter().map(|s| s.to_be_bytes().to_vec()).collect();
        self.db
            .multi_get(SHORT_TO_EVENT, &keys)?
            .into_iter()
            .map(|bytes| {
                bytes
                    .map(|b| {
                        OwnedEventId::try_from(String::from_utf8_lossy(&b).as_ref())
                            .map_err(|_| Error::internal("corrupt event id"))
                    })
                    .transpose()
            })
            .collect()
    }

    /// Assigns a short id to a new event in `commit`.
    pub fn create_event(&self, commit: &mut Commit, event_id: &EventId) -> u64 {
        let short = commit.short_id();
        commit
            .batch
            .put(EVENT_TO_SHORT, event_id.as_bytes(), short.to_be_bytes());
        commit
            .batch
            .put(SHORT_TO_EVENT, short.to_be_bytes(), event_id.as_bytes());
        short
    }

    pub fn room(&self, room_id: &RoomId) -> Result<Option<u64>> {
        if let Some(s) = self.rooms.read().unwrap().get(room_id) {
            return Ok(Some(*s));
        }
        let short = self.db.get_u64(ROOM_TO_SHORT, room_id.as_bytes())?;
        if let Some(s) = short {
            self.rooms.write().unwrap().insert(room_id.to_owned(), s);
        }
        Ok(short)
    }

    pub fn room_id(&self, short: u64) -> Result<OwnedRoomId> {
        if let Some(room_id) = self.rooms_rev.read().unwrap().get(&short) {
            return Ok(room_id.clone());
        }
        let bytes = self
            .db
            .get(SHORT_TO_ROOM, &short.to_be_bytes())?
            .ok_or_else(|| Error::internal(format!("unknown short room id {short}")))?;
        let room_id = OwnedRoomId::try_from(String::from_utf8_lossy(&bytes).as_ref())
            .map_err(|_| Error::internal("corrupt room id"))?;
        self.rooms_rev
            .write()
            .unwrap()
            .insert(short, room_id.clone());
        Ok(room_id)
    }

    pub fn create_room<'a>(&'a self, commit: &mut Commit<'a>, room_id: &RoomId) -> u64 {
        let short = commit.short_id();
        commit
            .batch
            .put(ROOM_TO_SHORT, room_id.as_bytes(), short.to_be_bytes());
        commit
            .batch
            .put(SHORT_TO_ROOM, short.to_be_bytes(), room_id.as_bytes());
        let room_id = room_id.to_owned();
        commit.after_write(move || {
            self.rooms.write().unwrap().insert(room_id, short);
        });
        short
    }

    pub fn statekey(&self, kind: &StateEventType, state_key: &str) -> Result<Option<u64>> {
        let cache_key = (kind.clone(), state_key.to_owned());
        if let Some(s) = self.statekeys.read().unwrap().get(&cache_key) {
            return Ok(Some(*s));
        }
        let short = self
            .db
            .get_u64(STATEKEY_TO_SHORT, &statekey_bytes(kind, state_key))?;
        if let Some(s) = short {
            self.remember_statekey(cache_key, s);
        }
        Ok(short)
    }

    /// The short id of `(kind, state_key)`, created in `commit` when new.
    pub fn get_or_create_statekey<'a>(
        &'a self,
        commit: &mut Commit<'a>,
        kind: &StateEventType,
        state_key: &str,
    ) -> Result<u64> {
        if let Some(s) = self.statekey(kind, state_key)? {
            return Ok(s);
        }
        let key = statekey_bytes(kind, state_key);
        if let Some(short) = commit.created_id(&key) {
            return Ok(short);
        }
        let short = commit.short_id();
        commit.note_created(key.clone(), short);
        commit
            .batch
            .put(STATEKEY_TO_SHORT, key.clone(), short.to_be_bytes());
        commit
            .batch
            .put(SHORT_TO_STATEKEY, short.to_be_bytes(), key);
        let pair = (kind.clone(), state_key.to_owned());
        commit.after_write(move || self.remember_statekey(pair, short));
        Ok(short)
    }

    pub fn statekey_of(&self, short: u64) -> Result<(StateEventType, String)> {
        if let Some(pair) = self.statekeys_rev.read().unwrap().get(&short) {
            return Ok(pair.clone());
        }
        let bytes = self
            .db
            .get(SHORT_TO_STATEKEY, &short.to_be_bytes())?
            .ok_or_else(|| Error::internal(format!("unknown short state key {short}")))?;
        let mut reader = crate::storage::keys::KeyReader::new(&bytes);
        let (kind, state_key) = reader
            .str()
            .zip(reader.str())
            .ok_or_else(|| Error::internal("corrupt state key"))?;
        let pair = (StateEventType::from(kind), state_key.to_owned());
        self.remember_statekey(pair.clone(), short);
        Ok(pair)
    }

    fn remember_statekey(&self, pair: (StateEventType, String), short: u64) {
        self.statekeys_rev
            .write()
            .unwrap()
            .insert(short, pair.clone());
        self.statekeys.write().unwrap().insert(pair, short);
    }
}

/// Reads a short id stored as a value.
pub fn short_from(bytes: &[u8]) -> Result<u64> {
    read_u64(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, services::globals::Globals, storage::rocks::RocksEngine};

    #[test]
    fn state_key_ids_reach_the_cache_only_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let maps: Vec<Map> = [crate::services::globals::MAPS, MAPS].concat();
        let db = Db::new(RocksEngine::open(dir.path(), &maps, 8, 8, false).unwrap());
        let globals = Globals::open(Config::default(), db.clone()).unwrap();
        let short = ShortIds::new(db);
        let kind = StateEventType::RoomTopic;

        // A failed commit leaves nothing behind, in the database or in the cache.
        let failed = globals.commit(|c| {
            short.get_or_create_statekey(c, &kind, "")?;
            Err::<(), _>(Error::internal("abandoned"))
        });
        assert!(failed.is_err());
        assert_eq!(short.statekey(&kind, "").unwrap(), None);

        // The same key twice in one commit gets one id, known afterwards.
        let ((a, b), _) = globals
            .commit(|c| {
                Ok((
                    short.get_or_create_statekey(c, &kind, "")?,
                    short.get_or_create_statekey(c, &kind, "")?,
                ))
            })
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(short.statekey(&kind, "").unwrap(), Some(a));
        assert_eq!(short.statekey_of(a).unwrap(), (kind, String::new()));
    }
}
