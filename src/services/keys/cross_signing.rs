//! Cross-signing: `POST /keys/device_signing/upload` (master, self-signing and user-signing keys,
//! the latter two signed by the master key) and `POST /keys/signatures/upload` (signatures of the
//! caller's devices by the self-signing key, of the caller's master key by their devices, and of
//! other users' master keys by the user-signing key).

use std::collections::BTreeMap;

use ruma::{CanonicalJsonObject, CanonicalJsonValue, OwnedUserId, UserId};
use serde_json::{Value, json};

use super::{CROSS_SIGNING_KEYS, DEVICE_KEYS, changes, device_prefix, signatures};
use crate::{
    error::{Error, Result},
    services::Services,
    storage::{db::encode_json, keys::Key},
};

pub const MASTER: &str = "master";
pub const SELF_SIGNING: &str = "self_signing";
pub const USER_SIGNING: &str = "user_signing";

fn kind_key(user: &UserId, kind: &str) -> Vec<u8> {
    Key::new().str(user.as_str()).str(kind).build()
}

/// A stored cross-signing key of `user`.
pub fn get(s: &Services, user: &UserId, kind: &str) -> Result<Option<CanonicalJsonObject>> {
    Ok(s.globals
        .db
        .get_json(CROSS_SIGNING_KEYS, &kind_key(user, kind))?)
}

/// The one `ed25519:…` key of a cross-signing key: (key id, public key).
pub fn the_key(key: &CanonicalJsonObject) -> Option<(String, String)> {
    let CanonicalJsonValue::Object(keys) = key.get("keys")? else {
        return None;
    };
    if keys.len() != 1 {
        return None;
    }
    let (id, value) = keys.iter().next()?;
    match value {
        CanonicalJsonValue::String(k) if id.starts_with("ed25519:") => {
            Some((id.clone(), k.clone()))
        }
        _ => None,
    }
}

/// Checks a cross-signing key's shape: the user, the usage, exactly one ed25519 key.
pub fn check_shape(key: &CanonicalJsonObject, user: &UserId, usage: &str) -> Result<()> {
    let user_ok =
        matches!(key.get("user_id"), Some(CanonicalJsonValue::String(u)) if u == user.as_str());
    let usage_ok = matches!(key.get("usage"), Some(CanonicalJsonValue::Array(u)) if u.iter().any(|x| matches!(x, CanonicalJsonValue::String(s) if s == usage)));
    if !user_ok || !usage_ok || the_key(key).is_none() {
        return Err(Error::invalid_param(format!("invalid {usage} key")));
    }
    Ok(())
}

/// Whether `key` is signed by `user`'s master key `master`.
pub fn signed_by_master(
    key: &CanonicalJsonObject,
    user: &UserId,
    master: &CanonicalJsonObject,
) -> bool {
    the_key(master).is_some_and(|(id, public)| signatures::verify(key, user.as_str(), &id, &public))
}

/// Whether an upload only repeats the stored keys (no authentication needed then).
pub fn is_repeat(
    s: &Services,
    user: &UserId,
    uploaded: &[(&str, &CanonicalJsonObject)],
) -> Result<bool> {
    for (kind, key) in uploaded {
        if get(s, user, kind)?.as_ref() != Some(*key) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Stores new cross-signing keys (checked) in one batch; tells other servers of a new master or
/// self-signing key.
pub fn upload_keys(
    s: &Services,
    user: &UserId,
    master: Option<CanonicalJsonObject>,
    self_signing: Option<CanonicalJsonObject>,
    user_signing: Option<CanonicalJsonObject>,
) -> Result<()> {
    if let Some(m) = &master {
        check_shape(m, user, MASTER)?;
    }
    let current_master = match &master {
        Some(m) => Some(m.clone()),
        None => get(s, user, MASTER)?,
    };
    for (kind, key) in [(SELF_SIGNING, &self_signing), (USER_SIGNING, &user_signing)] {
        let Some(key) = key else { continue };
        check_shape(key, user, kind)?;
        let master = current_master
            .as_ref()
            .ok_or_else(|| Error::invalid_param("No master key to sign this key"))?;
        if !signed_by_master(key, user, master) {
            return Err(Error::invalid_param(format!(
                "{kind} key is not signed by the master key"
            )));
        }
    }
    let db = s.globals.db.clone();
    let public_changed = master.is_some() || self_signing.is_some();
    s.globals.commit(|c| {
        for (kind, key) in [
            (MASTER, &master),
            (SELF_SIGNING, &self_signing),
            (USER_SIGNING, &user_signing),
        ] {
            if let Some(key) = key {
                c.batch
                    .put(CROSS_SIGNING_KEYS, kind_key(user, kind), encode_json(key));
            }
        }
        changes::mark_changed(&db, c, user)?;
        Ok(())
    })?;
    if public_changed {
        crate::federation::sender::e2ee::signing_key_update(s, user)?;
    }
    Ok(())
}

/// One target of a signature upload, as stored.
enum Target {
    Device(Vec<u8>),
    Master(OwnedUserId),
}

/// `POST /keys/signatures/upload`: adds the valid signatures of `signer`; the failures by user and
/// key id.
pub fn upload_signatures(
    s: &Services,
    signer: &UserId,
    signed: BTreeMap<OwnedUserId, BTreeMap<String, Value>>,
) -> Result<BTreeMap<OwnedUserId, BTreeMap<String, Value>>> {
    let mut failures: BTreeMap<OwnedUserId, BTreeMap<String, Value>> = BTreeMap::new();
    let fail = |failures: &mut BTreeMap<OwnedUserId, BTreeMap<String, Value>>,
                user: &OwnedUserId,
                id: &str,
                code: &str,
                why: &str| {
        failures
            .entry(user.clone())
            .or_default()
            .insert(id.to_owned(), json!({ "errcode": code, "error": why }));
    };
    let own_ssk = get(s, signer, SELF_SIGNING)?.and_then(|k| the_key(&k));
    let own_usk = get(s, signer, USER_SIGNING)?.and_then(|k| the_key(&k));
    let mut updates: Vec<(Target, CanonicalJsonObject, OwnedUserId)> = Vec::new();
    let mut own_devices_changed = Vec::new();
    for (user, keys) in signed {
        if user.server_name() != s.globals.server_name() {
            for id in keys.keys() {
                fail(
                    &mut failures,
                    &user,
                    id,
                    "M_UNRECOGNIZED",
                    "Signatures of other servers' users are not stored",
                );
            }
            continue;
        }
        for (id, uploaded) in keys {
            let Ok(uploaded) = serde_json::from_value::<CanonicalJsonObject>(uploaded) else {
                fail(
                    &mut failures,
                    &user,
                    &id,
                    "M_BAD_JSON",
                    "Not a signed JSON object",
                );
                continue;
            };
            let user_master = get(s, &user, MASTER)?;
            let master_id = user_master
                .as_ref()
                .and_then(the_key)
                .map(|(_, public)| public);
            let (target, stored, candidates): (Target, CanonicalJsonObject, Vec<(String, String)>) =
                if master_id.as_deref() == Some(id.as_str()) {
                    let stored = user_master.clone().unwrap_or_default();
                    let candidates = if user == signer {
                        // The caller's devices sign their own master key.
                        let mut c = Vec::new();
                        for entry in s
                            .globals
                            .db
                            .scan_prefix(DEVICE_KEYS, &Key::new().str(signer.as_str()).build())
                        {
                            let (_, v) = entry?;
                            if let Ok(dk) = serde_json::from_slice::<CanonicalJsonObject>(&v)
                                && let Some(CanonicalJsonValue::String(dev)) = dk.get("device_id")
                                && let Some(public) =
                                    signatures::public_key(&dk, &format!("ed25519:{dev}"))
                            {
                                c.push((format!("ed25519:{dev}"), public.to_owned()));
                            }
                        }
                        c
                    } else {
                        own_usk.clone().into_iter().collect()
                    };
                    (Target::Master(user.clone()), stored, candidates)
                } else if user == signer {
                    let key = device_prefix(user.as_str(), &id);
                    let Some(stored) = s
                        .globals
                        .db
                        .get_json::<CanonicalJsonObject>(DEVICE_KEYS, &key)?
                    else {
                        fail(
                            &mut failures,
                            &user,
                            &id,
                            "M_NOT_FOUND",
                            "Unknown device or key",
                        );
                        continue;
                    };
                    (
                        Target::Device(key),
                        stored,
                        own_ssk.clone().into_iter().collect(),
                    )
                } else {
                    fail(&mut failures, &user, &id, "M_NOT_FOUND", "Unknown key");
                    continue;
                };
            // Each new signature of the caller by an allowed key is checked against the stored
            // object (not the uploaded copy); only valid ones are kept.
            let mut kept = CanonicalJsonObject::new();
            for (kid, public) in &candidates {
                let Some(signature) = signatures::signature_of(&uploaded, signer.as_str(), kid)
                else {
                    continue;
                };
                let mut one = CanonicalJsonObject::new();
                one.insert(
                    kid.clone(),
                    CanonicalJsonValue::String(signature.to_owned()),
                );
                let mut by_signer = CanonicalJsonObject::new();
                by_signer.insert(signer.to_string(), CanonicalJsonValue::Object(one.clone()));
                let mut candidate = stored.clone();
                candidate.remove("signatures");
                candidate.insert("signatures".into(), CanonicalJsonValue::Object(by_signer));
                if signatures::verify(&candidate, signer.as_str(), kid, public) {
                    kept.extend(one);
                }
            }
            if kept.is_empty() {
                fail(
                    &mut failures,
                    &user,
                    &id,
                    "M_INVALID_SIGNATURE",
                    "Invalid signature",
                );
                continue;
            }
            let mut by_signer = CanonicalJsonObject::new();
            by_signer.insert(signer.to_string(), CanonicalJsonValue::Object(kept));
            let mut only_new = CanonicalJsonObject::new();
            only_new.insert("signatures".into(), CanonicalJsonValue::Object(by_signer));
            if let Target::Device(_) = &target {
                own_devices_changed.push(id.clone());
            }
            updates.push((target, only_new, user.clone()));
        }
    }
    if !updates.is_empty() {
        use crate::federation::sender::e2ee::{
            DeviceUpdate, servers_sharing_a_room, stage_device_list_updates,
        };
        let db = s.globals.db.clone();
        let servers = if own_devices_changed.is_empty() {
            Vec::new()
        } else {
            servers_sharing_a_room(s, signer)?
        };
        s.globals.commit(|c| {
            let mut users = std::collections::BTreeSet::new();
            let mut device_updates = Vec::new();
            // The signatures are merged into the objects as stored now (under the commit lock), so
            // that a concurrent change of the same keys is not lost.
            for (target, new_signatures, user) in &updates {
                let (map, key) = match target {
                    Target::Device(key) => (DEVICE_KEYS, key.clone()),
                    Target::Master(u) => (CROSS_SIGNING_KEYS, kind_key(u, MASTER)),
                };
                let Some(mut object) = db.get_json::<CanonicalJsonObject>(map, &key)? else {
                    continue;
                };
                signatures::merge_signatures(&mut object, new_signatures);
                c.batch.put(map, key, encode_json(&object));
                users.insert(user.clone());
                // The signer's own devices, newly signed: their servers learn it in this batch.
                if let Target::Device(_) = target
                    && let Some(CanonicalJsonValue::String(device)) = object.get("device_id")
                {
                    let device: ruma::OwnedDeviceId = device.as_str().into();
                    let display_name = s
                        .users
                        .device(signer, device.as_str())?
                        .and_then(|d| d.display_name);
                    device_updates.push(DeviceUpdate {
                        device,
                        deleted: false,
                        display_name,
                        keys: Some(object),
                    });
                }
            }
            for user in users {
                changes::mark_changed(&db, c, &user)?;
            }
            stage_device_list_updates(s, c, signer, &servers, &device_updates)
        })?;
        for server in &servers {
            s.federation.sender.wake(server);
        }
        if updates
            .iter()
            .any(|(t, _, u)| matches!(t, Target::Master(_)) && u == signer)
        {
            crate::federation::sender::e2ee::signing_key_update(s, signer)?;
        }
    }
    Ok(failures)
}
