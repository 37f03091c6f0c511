//! Room aliases and the public room directory.

use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    storage::{
        Batch, Db, Map,
        db::encode_json,
        keys::{Key, KeyReader},
    },
};

/// alias → [`AliasRecord`].
pub const ALIASES: Map = Map("aliases");
/// room, alias → ().
pub const ROOM_ALIASES: Map = Map("room_aliases");
/// room id → () for rooms published in the directory.
pub const PUBLIC_ROOMS: Map = Map("public_rooms");
/// `<service id>|<network id>` 0x00 room id → (): rooms an application service published in the
/// directory of one of its third-party networks.
pub const NETWORK_ROOMS: Map = Map("network_rooms");
pub const MAPS: &[Map] = &[ALIASES, ROOM_ALIASES, PUBLIC_ROOMS, NETWORK_ROOMS];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliasRecord {
    pub room_id: OwnedRoomId,
    pub creator: OwnedUserId,
}

pub struct Directory {
    db: Db,
}

impl Directory {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn resolve(&self, alias: &RoomAliasId) -> Result<Option<AliasRecord>> {
        Ok(self.db.get_json(ALIASES, alias.as_bytes())?)
    }

    pub fn set_alias(&self, alias: &RoomAliasId, room_id: &RoomId, creator: &UserId) -> Result<()> {
        if self.resolve(alias)?.is_some() {
            return Err(Error::new(
                http::StatusCode::CONFLICT,
                "M_UNKNOWN",
                "Room alias already exists",
            ));
        }
        let mut batch = Batch::new();
        let record = AliasRecord {
            room_id: room_id.to_owned(),
            creator: creator.to_owned(),
        };
        batch.put(ALIASES, alias.as_bytes(), encode_json(&record));
        batch.put(
            ROOM_ALIASES,
            Key::new().str(room_id.as_str()).str(alias.as_str()).build(),
            Vec::new(),
        );
        Ok(self.db.write(batch)?)
    }

    pub fn remove_alias(&self, alias: &RoomAliasId) -> Result<()> {
        let record = self
            .resolve(alias)?
            .ok_or_else(|| Error::not_found("Unknown alias"))?;
        let mut batch = Batch::new();
        batch.delete(ALIASES, alias.as_bytes());
        batch.delete(
            ROOM_ALIASES,
            Key::new()
                .str(record.room_id.as_str())
                .str(alias.as_str())
                .build(),
        );
        Ok(self.db.write(batch)?)
    }

    pub fn aliases_of(&self, room_id: &RoomId) -> Result<Vec<OwnedRoomAliasId>> {
        let prefix = Key::new().str(room_id.as_str()).build();
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(ROOM_ALIASES, &prefix) {
            let (key, _) = entry?;
            if let Some(alias) = KeyReader::new(&key[prefix.len()..])
                .str()
                .and_then(|a| OwnedRoomAliasId::try_from(a).ok())
            {
                out.push(alias);
            }
        }
        Ok(out)
    }

    /// A room upgrade: every alias of `from` points to `to`, and `to` takes `from`'s place in the
    /// published directory; one batch. Returns the aliases moved.
    pub fn move_room(&self, from: &RoomId, to: &RoomId) -> Result<Vec<OwnedRoomAliasId>> {
        let aliases = self.aliases_of(from)?;
        let mut batch = Batch::new();
        for alias in &aliases {
            let Some(mut record) = self.resolve(alias)? else {
                continue;
            };
            record.room_id = to.to_owned();
            batch.put(ALIASES, alias.as_bytes(), encode_json(&record));
            batch.delete(
                ROOM_ALIASES,
                Key::new().str(from.as_str()).str(alias.as_str()).build(),
            );
            batch.put(
                ROOM_ALIASES,
                Key::new().str(to.as_str()).str(alias.as_str()).build(),
                Vec::new(),
            );
        }
        if self.is_public(from)? {
            batch.delete(PUBLIC_ROOMS, from.as_bytes());
            batch.put(PUBLIC_ROOMS, to.as_bytes(), Vec::new());
        }
        self.db.write(batch)?;
        Ok(aliases)
    }

    pub fn set_public(&self, room_id: &RoomId, public: bool) -> Result<()> {
        if public {
            self.db.put(PUBLIC_ROOMS, room_id.as_bytes(), Vec::new())?;
        } else {
            let mut batch = Batch::new();
            batch.delete(PUBLIC_ROOMS, room_id.as_bytes());
            self.db.write(batch)?;
        }
        Ok(())
    }

    pub fn is_public(&self, room_id: &RoomId) -> Result<bool> {
        Ok(self.db.contains(PUBLIC_ROOMS, room_id.as_bytes())?)
    }

    pub fn public_rooms(&self) -> Result<Vec<OwnedRoomId>> {
        self.db
            .scan_prefix(PUBLIC_ROOMS, &[])
            .map(|e| {
                let (k, _) = e?;
                OwnedRoomId::try_from(String::from_utf8_lossy(&k).as_ref())
                    .map_err(|_| Error::internal("corrupt room id"))
            })
            .collect()
    }

    /// Publishes (or withdraws) a room in the directory of a third-party network instance
    /// (`<service id>|<network id>`).
    pub fn set_network_public(&self, instance: &str, room_id: &RoomId, public: bool) -> Result<()> {
        let key = [instance.as_bytes(), &[0], room_id.as_bytes()].concat();
        let mut batch = Batch::new();
        if public {
            batch.put(NETWORK_ROOMS, key, Vec::new());
        } else {
            batch.delete(NETWORK_ROOMS, key);
        }
        Ok(self.db.write(batch)?)
    }

    /// The rooms published in one network instance's directory, or in any when `None`.
    pub fn network_rooms(&self, instance: Option<&str>) -> Result<Vec<OwnedRoomId>> {
        let prefix = instance.map_or_else(Vec::new, |i| [i.as_bytes(), &[0]].concat());
        let mut rooms = Vec::new();
        for entry in self.db.scan_prefix(NETWORK_ROOMS, &prefix) {
            let (key, _) = entry?;
            let room = key
                .iter()
                .position(|b| *b == 0)
                .map(|at| String::from_utf8_lossy(&key[at + 1..]).into_owned())
                .and_then(|r| OwnedRoomId::try_from(r).ok())
                .ok_or_else(|| Error::internal("corrupt network room key"))?;
            if !rooms.contains(&room) {
                rooms.push(room);
            }
        }
        Ok(rooms)
    }
}
