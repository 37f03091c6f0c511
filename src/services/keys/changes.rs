//! The stream of users whose devices or keys changed: one entry per user at the position of
//! their last change (`key_changes` position → user, `key_change_pos` user → position). /sync's
//! `device_lists.changed` and `/keys/changes` read it.

use ruma::{OwnedUserId, UserId};

use super::{KEY_CHANGE_POS, KEY_CHANGES};
use crate::{
    error::Result,
    services::globals::Commit,
    storage::{Db, Direction, keys::Key},
};

/// Records in `c` that `user`'s devices or keys changed (at a new position).
/// A second call for the same user in the same commit keeps the first entry (a second one would
/// leave the first behind: the stored position is only updated by the write).
pub fn mark_changed(db: &Db, c: &mut Commit, user: &UserId) -> Result<u64> {
    let memo = [b"key_change\xFF".as_slice(), user.as_bytes()].concat();
    if let Some(pos) = c.created_id(&memo) {
        return Ok(pos);
    }
    if let Some(old) = db.get_u64(KEY_CHANGE_POS, user.as_bytes())? {
        c.batch.delete(KEY_CHANGES, old.to_be_bytes());
    }
    let pos = c.next_pos();
    c.batch.put(KEY_CHANGES, pos.to_be_bytes(), user.as_bytes());
    c.batch
        .put(KEY_CHANGE_POS, user.as_bytes(), pos.to_be_bytes());
    c.note_created(memo, pos);
    c.stream_changed(crate::services::stream_changes::StreamChange::DeviceKeys);
    Ok(pos)
}

/// Users whose devices or keys changed after `since` and at or before `to`.
pub fn changed_between(db: &Db, since: u64, to: u64) -> Result<Vec<OwnedUserId>> {
    let mut out = Vec::new();
    let from = Key::new().u64(since + 1).build();
    for entry in db.scan_from(KEY_CHANGES, &[], &from, Direction::Forward) {
        let (k, user) = entry?;
        if crate::storage::keys::u64_from(&k).is_some_and(|p| p > to) {
            break;
        }
        if let Ok(user) = OwnedUserId::try_from(String::from_utf8_lossy(&user).as_ref()) {
            out.push(user);
        }
    }
    Ok(out)
}
