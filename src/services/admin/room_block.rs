//! Blocked rooms (`GET`/`PUT /_synapse/admin/v1/rooms/{roomId}/block`, as Synapse): users of this
//! server may not join, knock on or be invited to a blocked room (403 `M_FORBIDDEN`); members
//! already in it stay. A room this server does not know can be blocked beforehand.

use ruma::{OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    services::Services,
    storage::{Batch, Map, db::encode_json},
};

/// room id → [`Block`] as JSON.
pub const BLOCKED_ROOMS: Map = Map("blocked_rooms");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Block {
    /// The admin who blocked it.
    pub user_id: OwnedUserId,
    pub ts: u64,
}

pub fn blocked(s: &Services, room_id: &RoomId) -> Result<Option<Block>> {
    Ok(s.globals
        .db
        .get(BLOCKED_ROOMS, room_id.as_bytes())?
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

pub fn set_blocked(s: &Services, room_id: &RoomId, by: &UserId, block: bool) -> Result<()> {
    let mut batch = Batch::new();
    if block {
        let record = Block {
            user_id: by.to_owned(),
            ts: crate::util::now_ms(),
        };
        batch.put(BLOCKED_ROOMS, room_id.as_bytes(), encode_json(&record));
    } else {
        batch.delete(BLOCKED_ROOMS, room_id.as_bytes());
    }
    Ok(s.globals.db.write(batch)?)
}

/// 403 `M_FORBIDDEN` when the room is blocked.
pub fn check_not_blocked(s: &Services, room_id: &RoomId) -> Result<()> {
    if s.globals.db.contains(BLOCKED_ROOMS, room_id.as_bytes())? {
        return Err(Error::forbidden(
            "This room has been blocked on this server",
        ));
    }
    Ok(())
}
