//! Read receipts (`m.read`, `m.read.private`) per room, with a stream for /sync.

use ruma::{OwnedEventId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    services::globals::{Commit, Globals},
    storage::{
        Db, Direction, Map,
        db::{decode_json, encode_json},
        keys::{Key, KeyReader},
    },
};

/// short room, receipt type, user → [`Receipt`].
pub const RECEIPTS: Map = Map("receipts");
/// short room, position → receipt type, user.
pub const RECEIPT_STREAM: Map = Map("receipt_stream");
pub const MAPS: &[Map] = &[RECEIPTS, RECEIPT_STREAM];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    pub event_id: OwnedEventId,
    pub ts: u64,
    pub thread_id: Option<String>,
    pub pos: u64,
}

pub struct Receipts {
    db: Db,
}

impl Receipts {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub fn set(
        &self,
        globals: &Globals,
        short_room: u64,
        kind: &str,
        user: &UserId,
        event_id: &ruma::EventId,
        thread_id: Option<String>,
    ) -> Result<()> {
        globals.commit(|c| self.stage(c, short_room, kind, user, event_id, thread_id))?;
        Ok(())
    }

    /// [`Self::set`] in the batch of `c` (with the counts the receipt resets).
    pub fn stage(
        &self,
        c: &mut Commit,
        short_room: u64,
        kind: &str,
        user: &UserId,
        event_id: &ruma::EventId,
        thread_id: Option<String>,
    ) -> Result<()> {
        let key = Key::new()
            .u64(short_room)
            .str(kind)
            .str(user.as_str())
            .build();
        if let Some(old) = self.db.get(RECEIPTS, &key)? {
            let old: Receipt = decode_json(RECEIPTS, &old)?;
            c.batch.delete(
                RECEIPT_STREAM,
                Key::new().u64(short_room).u64(old.pos).build(),
            );
        }
        let pos = c.next_pos();
        let receipt = Receipt {
            event_id: event_id.to_owned(),
            ts: crate::util::now_ms(),
            thread_id,
            pos,
        };
        c.batch.put(RECEIPTS, key.clone(), encode_json(&receipt));
        c.batch.put(
            RECEIPT_STREAM,
            Key::new().u64(short_room).u64(pos).build(),
            Key::new().str(kind).str(user.as_str()).build(),
        );
        c.stream_changed(crate::services::stream_changes::StreamChange::Receipt(
            short_room,
        ));
        Ok(())
    }

    pub fn get(&self, short_room: u64, kind: &str, user: &UserId) -> Result<Option<Receipt>> {
        Ok(self.db.get_json(
            RECEIPTS,
            &Key::new()
                .u64(short_room)
                .str(kind)
                .str(user.as_str())
                .build(),
        )?)
    }

    /// [`Self::changed_since`], without reading storage when `changes` (the commits' record,
    /// `Globals::stream_changes`) knows that no receipt of the room changed after `since`.
    pub fn changed_since_known(
        &self,
        changes: &crate::services::stream_changes::StreamChanges,
        short_room: u64,
        since: u64,
    ) -> Result<Vec<(String, OwnedUserId, Receipt)>> {
        if !changes.receipts.may_have_changed_since(&short_room, since) {
            return Ok(Vec::new());
        }
        self.changed_since(short_room, since)
    }

    /// Receipts in a room changed after `since`, as (type, user, receipt).
    pub fn changed_since(
        &self,
        short_room: u64,
        since: u64,
    ) -> Result<Vec<(String, OwnedUserId, Receipt)>> {
        let prefix = Key::new().u64(short_room).build();
        let from = Key::new().u64(short_room).u64(since + 1).build();
        let mut out = Vec::new();
        for entry in self
            .db
            .scan_from(RECEIPT_STREAM, &prefix, &from, Direction::Forward)
        {
            let (_, value) = entry?;
            let mut reader = KeyReader::new(&value);
            let (Some(kind), Some(user)) = (reader.str(), reader.str()) else {
                continue;
            };
            let Ok(user) = OwnedUserId::try_from(user) else {
                continue;
            };
            if let Some(receipt) = self.get(short_room, kind, &user)? {
                out.push((kind.to_owned(), user, receipt));
            }
        }
        Ok(out)
    }
}
