//! The key query answer for local users (`/keys/query`, federation `user/keys/query` and
//! `user/devices`): device keys with the device's display name, and the cross-signing keys (the
//! user-signing key only to its owner).

use std::collections::BTreeMap;

use ruma::{CanonicalJsonObject, CanonicalJsonValue, OwnedUserId, UserId};
use serde_json::Value;

use super::{DEVICE_KEYS, cross_signing, device_prefix};
use crate::{error::Result, services::Services, storage::keys::Key};

#[derive(Debug, Default, Clone)]
pub struct KeysAnswer {
    pub device_keys: BTreeMap<OwnedUserId, BTreeMap<String, Value>>,
    pub master_keys: BTreeMap<OwnedUserId, Value>,
    pub self_signing_keys: BTreeMap<OwnedUserId, Value>,
    pub user_signing_keys: BTreeMap<OwnedUserId, Value>,
}

/// Device keys of one local device with `unsigned.device_display_name`.
fn with_display_name(mut keys: CanonicalJsonObject, name: Option<String>) -> Value {
    if let Some(name) = name {
        let mut unsigned = CanonicalJsonObject::new();
        unsigned.insert(
            "device_display_name".into(),
            CanonicalJsonValue::String(name),
        );
        keys.insert("unsigned".into(), CanonicalJsonValue::Object(unsigned));
    }
    serde_json::to_value(keys).unwrap_or(Value::Null)
}

/// The device keys of `user`'s devices (all when `devices` is empty), by device id.
pub fn device_keys_of(
    s: &Services,
    user: &UserId,
    devices: &[String],
) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    let names: BTreeMap<String, Option<String>> = s
        .users
        .devices(user)?
        .into_iter()
        .map(|d| (d.device_id.to_string(), d.display_name))
        .collect();
    if devices.is_empty() {
        for entry in s
            .globals
            .db
            .scan_prefix(DEVICE_KEYS, &Key::new().str(user.as_str()).build())
        {
            let (_, v) = entry?;
            let Ok(keys) = serde_json::from_slice::<CanonicalJsonObject>(&v) else {
                continue;
            };
            let Some(CanonicalJsonValue::String(id)) = keys.get("device_id").cloned() else {
                continue;
            };
            // Keys of a device that no longer exists are not answered.
            let Some(name) = names.get(&id) else { continue };
            out.insert(id, with_display_name(keys, name.clone()));
        }
    } else {
        for id in devices {
            let Some(name) = names.get(id) else { continue };
            if let Some(keys) = s
                .globals
                .db
                .get_json::<CanonicalJsonObject>(DEVICE_KEYS, &device_prefix(user.as_str(), id))?
            {
                out.insert(id.clone(), with_display_name(keys, name.clone()));
            }
        }
    }
    Ok(out)
}

/// The answer for local users; `requester` sees their own user-signing key (`None`: a server).
pub fn local(
    s: &Services,
    wanted: &BTreeMap<OwnedUserId, Vec<String>>,
    requester: Option<&UserId>,
) -> Result<KeysAnswer> {
    let mut answer = KeysAnswer::default();
    for (user, devices) in wanted {
        if user.server_name() != s.globals.server_name() || !s.users.exists(user)? {
            continue;
        }
        answer
            .device_keys
            .insert(user.clone(), device_keys_of(s, user, devices)?);
        let json = |k: CanonicalJsonObject| serde_json::to_value(k).unwrap_or(Value::Null);
        if let Some(k) = cross_signing::get(s, user, cross_signing::MASTER)? {
            answer.master_keys.insert(user.clone(), json(k));
        }
        if let Some(k) = cross_signing::get(s, user, cross_signing::SELF_SIGNING)? {
            answer.self_signing_keys.insert(user.clone(), json(k));
        }
        if requester == Some(user.as_ref())
            && let Some(k) = cross_signing::get(s, user, cross_signing::USER_SIGNING)?
        {
            answer.user_signing_keys.insert(user.clone(), json(k));
        }
    }
    Ok(answer)
}

/// The federation `user/devices` answer for a local user.
pub fn user_devices_answer(s: &Services, user: &UserId) -> Result<Value> {
    let keys = device_keys_of(s, user, &[])?;
    let devices: Vec<Value> = s
        .users
        .devices(user)?
        .into_iter()
        .map(|d| {
            // `keys` is required: a device that uploaded none has an empty object.
            let device_keys = keys
                .get(d.device_id.as_str())
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            let mut v = serde_json::json!({ "device_id": d.device_id, "keys": device_keys });
            if let Some(name) = d.display_name {
                v["device_display_name"] = serde_json::json!(name);
            }
            v
        })
        .collect();
    let stream_id = crate::federation::sender::e2ee::device_list_stream_id(s, user)?;
    let mut out =
        serde_json::json!({ "user_id": user, "stream_id": stream_id, "devices": devices });
    if let Some(k) = cross_signing::get(s, user, cross_signing::MASTER)? {
        out["master_key"] = serde_json::to_value(k).unwrap_or(Value::Null);
    }
    if let Some(k) = cross_signing::get(s, user, cross_signing::SELF_SIGNING)? {
        out["self_signing_key"] = serde_json::to_value(k).unwrap_or(Value::Null);
    }
    Ok(out)
}
