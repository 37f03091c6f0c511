//! Server-side key backup: versions (`backup_versions`: user, version u64 → algorithm, auth data
//! and etag) and the room keys of each (`backup_keys`: user, version, room, session → key data).
//! Keys go only to the current (latest) version; a new key replaces a stored one by the spec's
//! rules ([`should_replace`]); every change of a version's keys gives it a new etag.

use std::collections::BTreeMap;

use http::StatusCode;
use ruma::UserId;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    services::Services,
    storage::{
        Direction, Map,
        db::encode_json,
        keys::{Key, KeyReader},
    },
};

pub const BACKUP_VERSIONS: Map = Map("backup_versions");
pub const BACKUP_KEYS: Map = Map("backup_keys");
pub const MAPS: &[Map] = &[BACKUP_VERSIONS, BACKUP_KEYS];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupVersion {
    pub algorithm: String,
    pub auth_data: Value,
    pub etag: u64,
    /// The number of keys stored in the version (kept with every change, under the commit lock).
    #[serde(default)]
    pub count: u64,
}

/// The fields of stored key data that decide which of two keys is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyRank {
    pub is_verified: bool,
    pub first_message_index: u64,
    pub forwarded_count: u64,
}

impl KeyRank {
    pub fn of(data: &Value) -> Self {
        Self {
            is_verified: data
                .get("is_verified")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            first_message_index: data
                .get("first_message_index")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX),
            forwarded_count: data
                .get("forwarded_count")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX),
        }
    }
}

/// The spec's rule: a verified key beats an unverified one; then the lower `first_message_index`
/// wins; then the lower `forwarded_count`; otherwise the stored key stays.
pub fn should_replace(existing: KeyRank, new: KeyRank) -> bool {
    if existing.is_verified != new.is_verified {
        return new.is_verified;
    }
    if existing.first_message_index != new.first_message_index {
        return new.first_message_index < existing.first_message_index;
    }
    new.forwarded_count < existing.forwarded_count
}

fn version_key(user: &UserId, version: u64) -> Vec<u8> {
    Key::new().str(user.as_str()).u64(version).build()
}

fn parse_version(version: &str) -> Option<u64> {
    version.parse().ok()
}

/// The latest version of `user`: (number, record).
pub fn latest(s: &Services, user: &UserId) -> Result<Option<(u64, BackupVersion)>> {
    let prefix = Key::new().str(user.as_str()).build();
    let from = Key::new().str(user.as_str()).u64(u64::MAX).build();
    let db = &s.globals.db;
    let Some(entry) = db
        .scan_from(BACKUP_VERSIONS, &prefix, &from, Direction::Backward)
        .next()
    else {
        return Ok(None);
    };
    let (k, v) = entry?;
    let version = KeyReader::new(&k[prefix.len()..])
        .u64()
        .ok_or_else(|| Error::internal("corrupt backup version key"))?;
    Ok(Some((
        version,
        crate::storage::db::decode_json(BACKUP_VERSIONS, &v)?,
    )))
}

pub fn get_version(s: &Services, user: &UserId, version: &str) -> Result<(u64, BackupVersion)> {
    let n = parse_version(version).ok_or_else(|| Error::not_found("Unknown backup version"))?;
    let record = s
        .globals
        .db
        .get_json(BACKUP_VERSIONS, &version_key(user, n))?
        .ok_or_else(|| Error::not_found("Unknown backup version"))?;
    Ok((n, record))
}

/// The version info answer (`GET /room_keys/version[/{version}]`).
pub fn info(version: u64, record: &BackupVersion) -> Result<Value> {
    Ok(json!({
        "algorithm": record.algorithm,
        "auth_data": record.auth_data,
        "count": record.count,
        "etag": record.etag.to_string(),
        "version": version.to_string(),
    }))
}

fn algorithm_of(body: &Value) -> Result<(String, Value)> {
    let algorithm = body
        .get("algorithm")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_json("Missing algorithm"))?;
    let auth_data = body
        .get("auth_data")
        .cloned()
        .filter(Value::is_object)
        .ok_or_else(|| Error::bad_json("Missing auth_data"))?;
    Ok((algorithm.to_owned(), auth_data))
}

/// Creates a new version (it becomes the current one); returns its number.
pub fn create(s: &Services, user: &UserId, body: &Value) -> Result<u64> {
    let (algorithm, auth_data) = algorithm_of(body)?;
    let (version, _) = s.globals.commit(|c| {
        let version = c.short_id();
        c.batch.put(
            BACKUP_VERSIONS,
            version_key(user, version),
            encode_json(&BackupVersion {
                algorithm,
                auth_data,
                etag: 0,
                count: 0,
            }),
        );
        Ok(version)
    })?;
    Ok(version)
}

/// Updates the auth data of a version (the algorithm cannot change).
pub fn update(s: &Services, user: &UserId, version: &str, body: &Value) -> Result<()> {
    let (algorithm, auth_data) = algorithm_of(body)?;
    if body
        .get("version")
        .and_then(Value::as_str)
        .is_some_and(|v| v != version)
    {
        return Err(Error::invalid_param(
            "The version in the body does not match the path",
        ));
    }
    // Under the commit lock: the etag and count a concurrent key upload writes are kept.
    s.globals.commit(|c| {
        let (n, mut record) = get_version(s, user, version)?;
        if algorithm != record.algorithm {
            return Err(Error::invalid_param(
                "The algorithm of a backup version cannot change",
            ));
        }
        record.auth_data = auth_data;
        c.batch
            .put(BACKUP_VERSIONS, version_key(user, n), encode_json(&record));
        Ok(())
    })?;
    Ok(())
}

/// Deletes a version and its keys, in one batch.
pub fn delete_version(s: &Services, user: &UserId, version: &str) -> Result<()> {
    let (n, _) = get_version(s, user, version)?;
    let db = &s.globals.db;
    let prefix = version_key(user, n);
    s.globals.commit(|c| {
        c.batch.delete(BACKUP_VERSIONS, prefix.clone());
        for entry in db.scan_prefix(BACKUP_KEYS, &prefix) {
            let (k, _) = entry?;
            c.batch.delete(BACKUP_KEYS, k.to_vec());
        }
        Ok(())
    })?;
    Ok(())
}

/// Room → session → key data.
pub type RoomKeys = BTreeMap<String, BTreeMap<String, Value>>;

/// Adds keys to the current version (403 `M_WRONG_ROOM_KEYS_VERSION` for another one); returns the
/// etag and count afterwards.
pub fn put_keys(
    s: &Services,
    user: &UserId,
    version: &str,
    keys: &RoomKeys,
) -> Result<(String, u64)> {
    let (n, _) = get_version(s, user, version)?;
    let db = &s.globals.db;
    s.globals.commit(|c| {
        // Checked under the commit lock: no version is created in between.
        let (current, mut record) =
            latest(s, user)?.ok_or_else(|| Error::not_found("Unknown backup version"))?;
        if current != n {
            return Err(Error::new(
                StatusCode::FORBIDDEN,
                "M_WRONG_ROOM_KEYS_VERSION",
                "Wrong backup version",
            )
            .with("current_version", json!(current.to_string())));
        }
        let mut changed = false;
        for (room, sessions) in keys {
            for (session, data) in sessions {
                if !data.is_object() || data.get("session_data").is_none() {
                    return Err(Error::bad_json("Invalid key data"));
                }
                let k = Key::new()
                    .str(user.as_str())
                    .u64(n)
                    .str(room)
                    .str(session)
                    .build();
                let keep = match db.get(BACKUP_KEYS, &k)? {
                    Some(old) => serde_json::from_slice::<Value>(&old)
                        .is_ok_and(|old| !should_replace(KeyRank::of(&old), KeyRank::of(data))),
                    None => {
                        record.count += 1;
                        false
                    }
                };
                if !keep {
                    c.batch.put(BACKUP_KEYS, k, encode_json(data));
                    changed = true;
                }
            }
        }
        if changed {
            record.etag += 1;
            c.batch
                .put(BACKUP_VERSIONS, version_key(user, n), encode_json(&record));
        }
        Ok(())
    })?;
    etag_and_count(s, user, n)
}

fn etag_and_count(s: &Services, user: &UserId, n: u64) -> Result<(String, u64)> {
    let record: BackupVersion = s
        .globals
        .db
        .get_json(BACKUP_VERSIONS, &version_key(user, n))?
        .ok_or_else(|| Error::not_found("Unknown backup version"))?;
    Ok((record.etag.to_string(), record.count))
}

fn scope_prefix(user: &UserId, n: u64, room: Option<&str>, session: Option<&str>) -> Vec<u8> {
    let mut key = Key::new().str(user.as_str()).u64(n);
    if let Some(room) = room {
        key = key.str(room);
        if let Some(session) = session {
            key = key.str(session);
        }
    }
    key.build()
}

/// Keys of a version: all, of a room, or one session.
pub fn get_keys(
    s: &Services,
    user: &UserId,
    version: &str,
    room: Option<&str>,
    session: Option<&str>,
) -> Result<RoomKeys> {
    let (n, _) = get_version(s, user, version)?;
    let base = version_key(user, n);
    let prefix = scope_prefix(user, n, room, session);
    let mut out: RoomKeys = BTreeMap::new();
    for entry in s.globals.db.scan_prefix(BACKUP_KEYS, &prefix) {
        let (k, v) = entry?;
        let mut reader = KeyReader::new(&k[base.len()..]);
        let (Some(r), Some(sess)) = (reader.str(), reader.str()) else {
            continue;
        };
        out.entry(r.to_owned()).or_default().insert(
            sess.to_owned(),
            serde_json::from_slice(&v).unwrap_or(Value::Null),
        );
    }
    Ok(out)
}

/// Deletes keys of a version (all, of a room, or one session); returns the etag and count.
pub fn delete_keys(
    s: &Services,
    user: &UserId,
    version: &str,
    room: Option<&str>,
    session: Option<&str>,
) -> Result<(String, u64)> {
    let (n, _) = get_version(s, user, version)?;
    let db = &s.globals.db;
    let prefix = scope_prefix(user, n, room, session);
    s.globals.commit(|c| {
        let mut deleted = 0;
        for entry in db.scan_prefix(BACKUP_KEYS, &prefix) {
            let (k, _) = entry?;
            c.batch.delete(BACKUP_KEYS, k.to_vec());
            deleted += 1;
        }
        if deleted > 0
            && let Some(mut record) =
                db.get_json::<BackupVersion>(BACKUP_VERSIONS, &version_key(user, n))?
        {
            record.etag += 1;
            record.count = record.count.saturating_sub(deleted);
            c.batch
                .put(BACKUP_VERSIONS, version_key(user, n), encode_json(&record));
        }
        Ok(())
    })?;
    etag_and_count(s, user, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(is_verified: bool, first_message_index: u64, forwarded_count: u64) -> KeyRank {
        KeyRank {
            is_verified,
            first_message_index,
            forwarded_count,
        }
    }

    #[test]
    fn replacement_rules() {
        // Verified beats unverified, whatever the indexes.
        assert!(should_replace(rank(false, 0, 0), rank(true, 10, 10)));
        assert!(!should_replace(rank(true, 10, 10), rank(false, 0, 0)));
        // Then the lower first message index.
        assert!(should_replace(rank(true, 5, 0), rank(true, 4, 9)));
        assert!(!should_replace(rank(true, 4, 0), rank(true, 5, 0)));
        // Then the lower forwarded count.
        assert!(should_replace(rank(false, 4, 2), rank(false, 4, 1)));
        assert!(!should_replace(rank(false, 4, 1), rank(false, 4, 1)));
        assert!(!should_replace(rank(false, 4, 1), rank(false, 4, 2)));
    }

    #[test]
    fn rank_reads_key_data() {
        let data = json!({ "first_message_index": 3, "forwarded_count": 1, "is_verified": true, "session_data": {} });
        assert_eq!(KeyRank::of(&data), rank(true, 3, 1));
    }
}
