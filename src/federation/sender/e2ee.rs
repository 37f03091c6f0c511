//! End-to-end encryption EDUs about local users, for the servers sharing a room with them:
//! `m.device_list_update` (a device added, renamed, removed, or its keys changed; `stream_id` and
//! `prev_id` let the receiver notice a missed update) and `m.signing_key_update`.

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
    Ok(s.globals.db.get_u64(DEVICE_LIST_IDS, user.as_bytes())?.unwrap_or(0))
}

/// `m.device_list_update` for one device of a local user.
pub fn device_list_update(s: &Services, user: &UserId, device: &DeviceId, deleted: bool) -> Result<()> {
    let servers = servers_sharing_a_room(s, user)?;
    let mut content = json!({ "user_id": user, "device_id": device, "deleted": deleted });
    if !deleted {
        if let Some(d) = s.users.device(user, device.as_str())?
            && let Some(name) = d.display_name
        {
            content["device_display_name"] = json!(name);
        }
        if let Some(keys) = device_keys::get(s, user, device.as_str())? {
            content["keys"] = serde_json::to_value(keys).unwrap_or(Value::Null);
        }
    }
    let db = s.globals.db.clone();
    s.globals.commit(|c| {
        let prev = db.get_u64(DEVICE_LIST_IDS, user.as_bytes())?;
        let stream_id = c.short_id();
        c.batch.put(DEVICE_LIST_IDS, user.as_bytes(), stream_id.to_be_bytes());
        content["stream_id"] = json!(stream_id);
        content["prev_id"] = json!(prev.into_iter().collect::<Vec<_>>());
        let edu = json!({ "edu_type": "m.device_list_update", "content": content });
        for server in &servers {
            put_edu(c, server, &edu)?;
        }
        Ok(())
    })?;
    for server in &servers {
        s.federation.sender.wake(server);
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
    super::queue::queue_edu(s, &servers, json!({ "edu_type": "m.signing_key_update", "content": content }))
}
