//! Per-user account data (global and per room), with a stream for /sync.

use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    services::{
        globals::Globals,
        stream_changes::{StreamChange, StreamChanges},
    },
    storage::{
        Db, Direction, Map,
        keys::{Key, KeyReader, u64_from},
    },
};

/// user, room ("" for global), type → position, JSON content.
pub const ACCOUNT_DATA: Map = Map("account_data");
/// user, position → room, type.
pub const ACCOUNT_DATA_STREAM: Map = Map("account_data_stream");
pub const MAPS: &[Map] = &[ACCOUNT_DATA, ACCOUNT_DATA_STREAM];

pub struct AccountData {
    db: Db,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub room: Option<OwnedRoomId>,
    pub kind: String,
    pub content: Value,
}

fn data_key(user: &UserId, room: Option<&RoomId>, kind: &str) -> Vec<u8> {
    Key::new()
        .str(user.as_str())
        .str(room.map_or("", |r| r.as_str()))
        .str(kind)
        .build()
}

impl AccountData {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn get(&self, user: &UserId, room: Option<&RoomId>, kind: &str) -> Result<Option<Value>> {
        let Some(bytes) = self.db.get(ACCOUNT_DATA, &data_key(user, room, kind))? else {
            return Ok(None);
        };
        let value: Value = serde_json::from_slice(bytes.get(8..).unwrap_or_default())
            .map_err(|_| Error::internal("corrupt account data"))?;
        // An empty object marks deleted data.
        Ok((value != Value::Object(Default::default())).then_some(value))
    }

    /// Sets (or, with an empty object, deletes) account data; one batch with its stream entry.
    pub fn set(
        &self,
        globals: &Globals,
        user: &UserId,
        room: Option<&RoomId>,
        kind: &str,
        content: &Value,
    ) -> Result<u64> {
        self.set_invalidating(globals, user, room, kind, content, None)
    }

    /// [`Self::set`], recording what the change makes stale in other processes' caches.
    pub fn set_invalidating(
        &self,
        globals: &Globals,
        user: &UserId,
        room: Option<&RoomId>,
        kind: &str,
        content: &Value,
        invalidation: Option<crate::services::cluster::Invalidation>,
    ) -> Result<u64> {
        let key = data_key(user, room, kind);
        let (_, pos) = globals.commit(|c| {
            if let Some(invalidation) = invalidation {
                c.invalidate(invalidation);
            }
            if let Some(old) = self.db.get(ACCOUNT_DATA, &key)?
                && let Some(old_pos) = u64_from(&old)
            {
                c.batch.delete(
                    ACCOUNT_DATA_STREAM,
                    Key::new().str(user.as_str()).u64(old_pos).build(),
                );
            }
            let pos = c.next_pos();
            let mut value = pos.to_be_bytes().to_vec();
            value.extend_from_slice(&serde_json::to_vec(content).expect("JSON serializes"));
            c.batch.put(ACCOUNT_DATA, key.clone(), value);
            c.batch.put(
                ACCOUNT_DATA_STREAM,
                Key::new().str(user.as_str()).u64(pos).build(),
                Key::new()
                    .str(room.map_or("", |r| r.as_str()))
                    .str(kind)
                    .build(),
            );
            c.stream_changed(StreamChange::AccountData(user.to_owned()));
            Ok(())
        })?;
        Ok(pos)
    }

    /// [`Self::changes_since`], without reading storage when `changes` (the commits' record,
    /// `Globals::stream_changes`) knows that the user's account data did not change after
    /// `since`.
    pub fn changes_since_known(
        &self,
        changes: &StreamChanges,
        user: &UserId,
        since: u64,
    ) -> Result<Vec<Entry>> {
        if !changes.account_data.may_have_changed_since(user, since) {
            return Ok(Vec::new());
        }
        self.changes_since(user, since)
    }

    /// Account data changed after `since` (everything when `since` is 0).
    pub fn changes_since(&self, user: &UserId, since: u64) -> Result<Vec<Entry>> {
        let prefix = Key::new().str(user.as_str()).build();
        let from = Key::new().str(user.as_str()).u64(since + 1).build();
        let mut out = Vec::new();
        for entry in self
            .db
            .scan_from(ACCOUNT_DATA_STREAM, &prefix, &from, Direction::Forward)
        {
            let (_, value) = entry?;
            let mut reader = KeyReader::new(&value);
            let (Some(room), Some(kind)) = (reader.str(), reader.str()) else {
                continue;
            };
            let room = (!room.is_empty())
                .then(|| OwnedRoomId::try_from(room).ok())
                .flatten();
            if let Some(content) = self.get(user, room.as_deref(), kind)? {
                out.push(Entry {
                    room,
                    kind: kind.to_owned(),
                    content,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::services::Services;

    /// Incremental reads answered from the change cache agree with storage: a change is seen
    /// after the token before it, not after its own position, for its user only; after a
    /// restart (an empty cache), a token from before the restart still sees what changed.
    #[test]
    fn changes_since_a_token_are_seen_before_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let mut config = crate::config::Config::default();
            config.storage.path = dir.path().to_owned();
            Services::open(config).unwrap()
        };
        let (alice, bob) = (ruma::user_id!("@alice:x"), ruma::user_id!("@bob:x"));
        let known = |s: &Services, user, since| -> Vec<String> {
            let mut kinds: Vec<String> = s
                .account_data
                .changes_since_known(&s.globals.stream_changes, user, since)
                .unwrap()
                .into_iter()
                .map(|e| e.kind)
                .collect();
            kinds.sort();
            kinds
        };
        let before = {
            let s = open();
            let start = s.globals.current_pos();
            let pos = s
                .account_data
                .set(&s.globals, alice, None, "m.a", &json!({"v": 1}))
                .unwrap();
            assert_eq!(known(&s, alice, start), ["m.a"]);
            assert!(known(&s, alice, pos).is_empty());
            assert!(known(&s, bob, start).is_empty());
            assert_eq!(known(&s, alice, 0), ["m.a"]);
            s.account_data
                .set(&s.globals, bob, None, "m.c", &json!({"v": 3}))
                .unwrap();
            s.globals.current_pos()
        };
        let s = open();
        s.account_data
            .set(&s.globals, alice, None, "m.b", &json!({"v": 2}))
            .unwrap();
        assert_eq!(
            known(&s, alice, before - 2),
            ["m.a", "m.b"],
            "a token from before the restart"
        );
        assert_eq!(known(&s, alice, before), ["m.b"]);
        // Bob changed nothing since the restart: only storage knows of his change before it.
        assert_eq!(known(&s, bob, before - 1), ["m.c"]);
        assert!(known(&s, bob, before).is_empty());
    }
}
