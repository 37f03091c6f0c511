//! Dehydrated devices (MSC3814): one per user, a device without an access token whose keys are
//! uploaded with it and whose pickled state (`device_data`) the server keeps for the client; its
//! to-device messages are read with `POST …/dehydrated_device/{deviceId}/events`, each batch
//! acknowledging the previous one (`next_batch`).

use ruma::{DeviceId, OwnedDeviceId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    federation::sender::e2ee::DeviceUpdate,
    services::{
        Services,
        keys::{device_keys, device_list},
        to_device, users,
    },
    storage::{Map, db::encode_json},
    util::{now_ms, random_string},
};

/// user → [`Dehydrated`].
pub const DEHYDRATED_DEVICES: Map = Map("dehydrated_devices");
pub const MAPS: &[Map] = &[DEHYDRATED_DEVICES];

/// At most this many to-device messages per `events` answer.
pub const EVENTS_LIMIT: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dehydrated {
    pub device_id: OwnedDeviceId,
    pub device_data: Value,
}

/// The user's dehydrated device, if it still exists.
pub fn get(s: &Services, user: &UserId) -> Result<Option<Dehydrated>> {
    let Some(record) = s
        .globals
        .db
        .get_json::<Dehydrated>(DEHYDRATED_DEVICES, user.as_bytes())?
    else {
        return Ok(None);
    };
    Ok(s.users
        .device(user, record.device_id.as_str())?
        .is_some()
        .then_some(record))
}

/// `PUT …/dehydrated_device`: the new device, its record and its keys in one batch (the keys checked
/// first: self-signed by the new device), the removal of the previous dehydrated device (another
/// id), the device list change and its `m.device_list_update`s.
pub fn put(
    s: &Services,
    user: &UserId,
    device_id: &DeviceId,
    display_name: Option<String>,
    device_data: Value,
    upload: device_keys::Upload,
) -> Result<()> {
    if upload.device_keys.is_none() {
        return Err(Error::missing_param("device_keys is required"));
    }
    device_keys::check(&upload, user, device_id)?;
    let previous = get(s, user)?;
    if s.users.device(user, device_id.as_str())?.is_some()
        && previous.as_ref().is_none_or(|p| p.device_id != device_id)
    {
        return Err(Error::invalid_param("A device with this id already exists"));
    }
    let db = &s.globals.db;
    let device = users::Device {
        device_id: device_id.to_owned(),
        display_name,
        // No access token: the device never makes requests itself.
        access_token: format!("dehydrated-{}", random_string(32)),
        last_seen_ts: Some(now_ms()),
        last_seen_ip: None,
        refresh: None,
    };
    let record = Dehydrated {
        device_id: device_id.to_owned(),
        device_data,
    };
    device_list::commit_change(s, user, |c| {
        c.batch.put(
            users::DEVICES,
            users::device_key(user, device_id.as_str()),
            encode_json(&device),
        );
        c.batch
            .put(DEHYDRATED_DEVICES, user.as_bytes(), encode_json(&record));
        let keys = match device_keys::stage(db, c, user, device_id, &upload)? {
            Some(keys) => Some(keys),
            None => device_keys::get(s, user, device_id.as_str())?,
        };
        let mut updates = vec![DeviceUpdate {
            device: device_id.to_owned(),
            deleted: false,
            display_name: device.display_name.clone(),
            keys,
        }];
        if let Some(previous) = &previous
            && previous.device_id != device_id
        {
            let removed =
                s.users
                    .remove_devices_ops(&mut c.batch, user, &[previous.device_id.as_str()])?;
            updates.extend(
                removed
                    .into_iter()
                    .map(|d| DeviceUpdate::removed(d.device_id)),
            );
        }
        Ok(((), updates))
    })
}

/// `DELETE …/dehydrated_device`: removes the device (and its keys and messages); its id.
pub fn delete(s: &Services, user: &UserId) -> Result<OwnedDeviceId> {
    let record = get(s, user)?.ok_or_else(|| Error::not_found("No dehydrated device"))?;
    device_list::commit_change(s, user, |c| {
        let removed =
            s.users
                .remove_devices_ops(&mut c.batch, user, &[record.device_id.as_str()])?;
        c.batch.delete(DEHYDRATED_DEVICES, user.as_bytes());
        Ok((
            (),
            removed
                .into_iter()
                .map(|d| DeviceUpdate::removed(d.device_id))
                .collect(),
        ))
    })?;
    Ok(record.device_id)
}

/// `POST …/dehydrated_device/{deviceId}/events`: messages after `next_batch` (those up to it are
/// acknowledged and deleted), at most [`EVENTS_LIMIT`]; the token of the last one given.
pub fn events(
    s: &Services,
    user: &UserId,
    device_id: &DeviceId,
    next_batch: Option<&str>,
) -> Result<(Vec<Value>, Option<String>)> {
    let record = get(s, user)?.ok_or_else(|| Error::not_found("No dehydrated device"))?;
    if record.device_id != device_id {
        return Err(Error::forbidden("Not the user's dehydrated device"));
    }
    let after = match next_batch {
        Some(token) => token
            .parse::<u64>()
            .map_err(|_| Error::invalid_param("Invalid next_batch"))?,
        None => 0,
    };
    let db = &s.globals.db;
    if after > 0 {
        to_device::acknowledge(db, user, device_id.as_str(), after)?;
    }
    let batch = to_device::pending(
        db,
        user,
        device_id.as_str(),
        after,
        s.globals.current_pos(),
        EVENTS_LIMIT,
    )?;
    let next = batch
        .last()
        .map(|(pos, _)| pos.to_string())
        .or_else(|| next_batch.map(str::to_owned));
    Ok((batch.into_iter().map(|(_, e)| e).collect(), next))
}
