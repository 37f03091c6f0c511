//! End-to-end encryption EDUs about local users, for the servers sharing a room with them:
//! `m.device_list_update` (a device added, renamed, removed, or its keys changed; `stream_id` and
//! `prev_id` let the receiver notice a missed update; written in the batch of the change by
//! `services/keys/device_list.rs`) and `m.signing_key_update`.

use std::collections::BTreeSet;

use ruma::{DeviceId, OwnedServerName, UserId};
use serde_json::{Value, json};

use super::{queue::put_edu, servers_in_room};
use crate::{
    error::Result,
    services::{
        Services,
        keys::{DEVICE_LIST_IDS, cross_signing, device_keys},
        rooms::membership::Membership,
    },
};

/// Servers with members in a room that `user` is joined to (without us).
pub fn servers_sharing_a_room(s: &Services, user: &UserId) -> Result<Vec<OwnedServerName>> {
    let mut servers = BTreeSet::new();
    for room in s.membership.rooms_of(user)? {
        if room.membership != Membership::Join {
            continue;
        }
        if let Some(short) = s.short.room(&room.room_id)? {
            servers.extend(servers_in_room(s, short)?.iter().cloned());
        }
    }
    Ok(servers.into_iter().collect())
}

/// The `stream_id` of the last device list update of `user` (0 when none).
pub fn device_list_stream_id(s: &Services, user: &UserId) -> Result<u64> {
    Ok(s.globals
        .db
        .get_u64(DEVICE_LIST_IDS, user.as_bytes())?
        .unwrap_or(0))
}

/// One device change of a local user, as an `m.device_list_update` tells it.
pub struct DeviceUpdate {
    pub device: ruma::OwnedDeviceId,
    pub deleted: bool,
    pub display_name: Option<String>,
    pub keys: Option<ruma::CanonicalJsonObject>,
}

impl DeviceUpdate {
    /// A device that is removed.
    pub fn removed(device: ruma::OwnedDeviceId) -> Self {
        Self {
            device,
            deleted: true,
            display_name: None,
            keys: None,
        }
    }

    /// A device as stored now, with `display_name` (a new or renamed device).
    pub fn stored(
        s: &Services,
        user: &UserId,
        device: &DeviceId,
        display_name: Option<String>,
    ) -> Result<Self> {
        let keys = device_keys::get(s, user, device.as_str())?;
        Ok(Self {
            device: device.to_owned(),
            deleted: false,
            display_name,
            keys,
        })
    }
}

/// Writes in `c` one `m.device_list_update` per update for each of `servers`, chained by
/// `stream_id`/`prev_id` (also within one commit).
pub fn stage_device_list_updates(
    s: &Services,
    c: &mut crate::services::globals::Commit,
    user: &UserId,
    servers: &[OwnedServerName],
    updates: &[DeviceUpdate],
) -> Result<()> {
    let memo = [b"device_list_id\xFF".as_slice(), user.as_bytes()].concat();
    for update in updates {
        let mut content =
            json!({ "user_id": user, "device_id": update.device, "deleted": update.deleted });
        if !update.deleted {
            if let Some(name) = &update.display_name {
                content["device_display_name"] = json!(name);
            }
            if let Some(keys) = &update.keys {
                content["keys"] = serde_json::to_value(keys).unwrap_or(Value::Null);
            }
        }
        let prev = match c.created_id(&memo) {
            Some(id) => Some(id),
            None => s.globals.db.get_u64(DEVICE_LIST_IDS, user.as_bytes())?,
        };
        let stream_id = c.short_id();
        c.note_created(memo.clone(), stream_id);
        c.batch
            .put(DEVICE_LIST_IDS, user.as_bytes(), stream_id.to_be_bytes());
        content["stream_id"] = json!(stream_id);
        content["prev_id"] = json!(prev.into_iter().collect::<Vec<_>>());
        let edu = json!({ "edu_type": "m.device_list_update", "content": content });
        for server in servers {
            put_edu(c, server, &edu)?;
        }
    }
    Ok(())
}

/// `m.signing_key_update` with the user's current master and self-signing keys.
pub fn signing_key_update(s: &Services, user: &UserId) -> Result<()> {
    let servers = servers_sharing_a_room(s, user)?;
    if servers.is_empty() {
        return Ok(());
    }
    let mut content = json!({ "user_id": user });
    if let Some(k) = cross_signing::get(s, user, cross_signing::MASTER)? {
        content["master_key"] = serde_json::to_value(k).unwrap_or(Value::Null);
    }
    if let Some(k) = cross_signing::get(s, user, cross_signing::SELF_SIGNING)? {
        content["self_signing_key"] = serde_json::to_value(k).unwrap_or(Value::Null);
    }
    super::queue::queue_edu(
        s,
        &servers,
        json!({ "edu_type": "m.signing_key_update", "content": content }),
    )
}
