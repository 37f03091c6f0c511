//! `POST /keys/upload`: device keys (checked: the caller's user and device, signed by the device's
//! own ed25519 key), one-time keys and fallback keys, written in one batch.

use std::collections::BTreeMap;

use ruma::{CanonicalJsonObject, CanonicalJsonValue, DeviceId, OneTimeKeyAlgorithm, UInt, UserId};
use serde_json::Value;

use super::{
    DEVICE_KEYS, FALLBACK_KEYS, ONE_TIME_KEYS, changes, device_prefix, one_time, signatures,
};
use crate::{
    error::{Error, Result},
    federation::sender::e2ee::DeviceUpdate,
    services::{Services, globals::Commit},
    storage::{Db, db::encode_json, keys::Key},
};

/// What a client uploads, as JSON objects.
#[derive(Default)]
pub struct Upload {
    pub device_keys: Option<CanonicalJsonObject>,
    pub one_time_keys: BTreeMap<String, Value>,
    pub fallback_keys: BTreeMap<String, Value>,
}

/// Checks uploaded device keys: they name the caller's user and device and carry a valid signature
/// by the device's own ed25519 key.
pub fn check_device_keys(
    keys: &CanonicalJsonObject,
    user: &UserId,
    device: &DeviceId,
) -> Result<()> {
    let field = |name: &str| match keys.get(name) {
        Some(CanonicalJsonValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    if field("user_id") != Some(user.as_str()) || field("device_id") != Some(device.as_str()) {
        return Err(Error::invalid_param(
            "device_keys must name the user and device of the access token",
        ));
    }
    let key_id = format!("ed25519:{device}");
    let public = signatures::public_key(keys, &key_id)
        .ok_or_else(|| Error::invalid_param("device_keys has no ed25519 key for the device"))?;
    if !signatures::verify(keys, user.as_str(), &key_id, public) {
        return Err(Error::invalid_param(
            "device_keys is not signed by the device's ed25519 key",
        ));
    }
    Ok(())
}

/// The algorithm of a key id (`signed_curve25519:AAAAHQ` → `signed_curve25519`).
pub fn algorithm_of(key_id: &str) -> Result<&str> {
    match key_id.split_once(':') {
        Some((alg, name)) if !alg.is_empty() && !name.is_empty() => Ok(alg),
        _ => Err(Error::invalid_param(format!("invalid key id {key_id}"))),
    }
}

/// Checks an upload before anything is written.
pub fn check(upload: &Upload, user: &UserId, device: &DeviceId) -> Result<()> {
    if let Some(keys) = &upload.device_keys {
        check_device_keys(keys, user, device)?;
    }
    for id in upload
        .one_time_keys
        .keys()
        .chain(upload.fallback_keys.keys())
    {
        algorithm_of(id)?;
    }
    Ok(())
}

/// Writes a checked upload in the batch of `c`; the new device keys when they changed (the user's
/// devices are then marked changed in the same batch).
pub fn stage(
    db: &Db,
    c: &mut Commit,
    user: &UserId,
    device: &DeviceId,
    upload: &Upload,
) -> Result<Option<CanonicalJsonObject>> {
    let prefix = device_prefix(user.as_str(), device.as_str());
    let mut changed = None;
    if let Some(mut keys) = upload.device_keys.clone() {
        let old: Option<CanonicalJsonObject> = db.get_json(DEVICE_KEYS, &prefix)?;
        // Signatures others added (cross-signing) stay.
        if let Some(old) = &old {
            let mut merged = old.clone();
            signatures::merge_signatures(&mut merged, &keys);
            let mut stripped_old = old.clone();
            stripped_old.remove("signatures");
            let mut stripped_new = keys.clone();
            stripped_new.remove("signatures");
            if stripped_old == stripped_new {
                keys = merged;
            }
        }
        keys.remove("unsigned");
        if old.as_ref() != Some(&keys) {
            c.batch.put(DEVICE_KEYS, prefix.clone(), encode_json(&keys));
            changes::mark_changed(db, c, user)?;
            changed = Some(keys);
        }
    }
    // Keys are handed out in upload order (MSC4225): stored under a sequence number.
    let known = one_time::known_ids(db, user, device)?;
    for (id, key) in &upload.one_time_keys {
        let alg = algorithm_of(id)?;
        match known.get(id) {
            Some(existing) if existing != key => {
                return Err(Error::invalid_param(format!(
                    "one-time key {id} already exists with another value"
                )));
            }
            Some(_) => {}
            None => {
                let k = Key::new()
                    .str(user.as_str())
                    .str(device.as_str())
                    .str(alg)
                    .u64(c.short_id())
                    .build();
                c.batch.put(
                    ONE_TIME_KEYS,
                    k,
                    encode_json(&one_time::OneTimeKey {
                        id: id.clone(),
                        key: key.clone(),
                    }),
                );
            }
        }
    }
    for (id, key) in &upload.fallback_keys {
        let alg = algorithm_of(id)?;
        let k = Key::new()
            .str(user.as_str())
            .str(device.as_str())
            .str(alg)
            .build();
        let record = one_time::FallbackKey {
            key_id: id.clone(),
            key: key.clone(),
            used: false,
        };
        let keep = db
            .get_json::<one_time::FallbackKey>(FALLBACK_KEYS, &k)?
            .is_some_and(|old| old.key_id == record.key_id && old.key == record.key);
        if !keep {
            c.batch.put(FALLBACK_KEYS, k, encode_json(&record));
        }
    }
    Ok(changed)
}

/// Stores an upload in one batch; returns the device's one-time key counts. A changed device key
/// marks the user's device list changed and goes to the servers sharing a room, in the same batch.
pub fn upload(
    s: &Services,
    user: &UserId,
    device: &DeviceId,
    upload: Upload,
) -> Result<BTreeMap<OneTimeKeyAlgorithm, UInt>> {
    check(&upload, user, device)?;
    let db = &s.globals.db;
    // The device's counts in /sync are read again once the keys are written.
    let forget = || s.users.key_counts.forget(user, device);
    if upload.device_keys.is_none() {
        // One-time and fallback keys only: nothing to tell anyone.
        s.globals.commit(|c| {
            c.after_write(forget);
            stage(db, c, user, device, &upload)
        })?;
    } else {
        super::device_list::commit_change(s, user, |c| {
            c.after_write(forget);
            let updates = match stage(db, c, user, device, &upload)? {
                Some(keys) => {
                    let display_name = s
                        .users
                        .device(user, device.as_str())?
                        .and_then(|d| d.display_name);
                    vec![DeviceUpdate {
                        device: device.to_owned(),
                        deleted: false,
                        display_name,
                        keys: Some(keys),
                    }]
                }
                None => Vec::new(),
            };
            Ok(((), updates))
        })?;
    }
    one_time::counts(db, user, device)
}

/// The stored device keys of one device.
pub fn get(s: &Services, user: &UserId, device: &str) -> Result<Option<CanonicalJsonObject>> {
    Ok(s.globals
        .db
        .get_json(DEVICE_KEYS, &device_prefix(user.as_str(), device))?)
}

/// Records a device change made in a batch of its own (the admin API's account changes, which
/// write the device changes through `Users::modify`): the user's device list changed and the
/// servers sharing a room are told, in a second batch. Device changes of the client API are one
/// batch (`device_list`).
pub fn device_changed(s: &Services, user: &UserId, device: &DeviceId, deleted: bool) -> Result<()> {
    let update = if deleted {
        DeviceUpdate::removed(device.to_owned())
    } else {
        let name = s
            .users
            .device(user, device.as_str())?
            .and_then(|d| d.display_name);
        DeviceUpdate::stored(s, user, device, name)?
    };
    super::device_list::commit_change(s, user, |_| Ok(((), vec![update])))
}

/// The ids of a user's devices (taken before an operation that may remove some).
pub fn device_ids(s: &Services, user: &UserId) -> Result<Vec<ruma::OwnedDeviceId>> {
    Ok(s.users
        .devices(user)?
        .into_iter()
        .map(|d| d.device_id)
        .collect())
}

/// Records, in one batch, the removal of every device of `before` that no longer exists.
pub fn removed_since(s: &Services, user: &UserId, before: &[ruma::OwnedDeviceId]) -> Result<()> {
    let mut updates = Vec::new();
    for device in before {
        if s.users.device(user, device.as_str())?.is_none() {
            updates.push(DeviceUpdate::removed(device.clone()));
        }
    }
    if updates.is_empty() {
        return Ok(());
    }
    super::device_list::commit_change(s, user, |_| Ok(((), updates)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_algorithms() {
        assert_eq!(
            algorithm_of("signed_curve25519:AAAAHQ").unwrap(),
            "signed_curve25519"
        );
        assert!(algorithm_of("nocolon").is_err());
        assert!(algorithm_of(":x").is_err());
        assert!(algorithm_of("alg:").is_err());
    }
}
