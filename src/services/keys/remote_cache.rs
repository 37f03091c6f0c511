//! Other servers' device lists, cached for `/keys/query`: filled from `user/devices`, kept current
//! by `m.device_list_update` and `m.signing_key_update` EDUs. An update whose `prev_id` names a
//! stream id we never saw means we missed one: the list is marked stale and fetched again.

use std::collections::BTreeMap;

use ruma::UserId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{REMOTE_DEVICE_LISTS, changes};
use crate::{error::Result, services::Services, storage::db::encode_json};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RemoteDevice {
    pub keys: Option<Value>,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RemoteDeviceList {
    pub stream_id: u64,
    pub stale: bool,
    pub devices: BTreeMap<String, RemoteDevice>,
    pub master_key: Option<Value>,
    pub self_signing_key: Option<Value>,
}

/// A `m.device_list_update` EDU's content, as far as the cache needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceListUpdate {
    pub device_id: String,
    #[serde(default)]
    pub device_display_name: Option<String>,
    pub stream_id: u64,
    #[serde(default)]
    pub prev_id: Vec<u64>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub keys: Option<Value>,
}

/// Applies an update to a cached list: in order when every `prev_id` is the cached stream id (or
/// there is none and the list is empty); otherwise the list becomes stale.
pub fn apply_update(list: &mut RemoteDeviceList, update: &DeviceListUpdate) {
    if update.stream_id <= list.stream_id && !list.stale {
        return; // an old or repeated update
    }
    let in_order = !list.stale
        && update.prev_id.iter().all(|p| *p == list.stream_id)
        && (list.stream_id != 0 || update.prev_id.is_empty());
    if !in_order {
        list.stale = true;
        return;
    }
    if update.deleted {
        list.devices.remove(&update.device_id);
    } else {
        let entry = list.devices.entry(update.device_id.clone()).or_default();
        if update.keys.is_some() {
            entry.keys = update.keys.clone();
        }
        if update.device_display_name.is_some() {
            entry.display_name = update.device_display_name.clone();
        }
    }
    list.stream_id = update.stream_id;
}

/// A user joined a room: a cached list of theirs may have missed updates sent while we shared no
/// room (their server sends updates only to servers sharing one), so it is dropped and fetched
/// again when asked for. Only a list that exists is deleted: a join of a room with many members
/// (most never cached, local users never) leaves no tombstone per member. Runs under the commit
/// lock, as every write of the cache does, so a list stored meanwhile cannot be missed.
pub fn forget_on_join(
    db: &crate::storage::Db,
    c: &mut crate::services::globals::Commit,
    user: &UserId,
) {
    // On a read error, delete anyway (a needless tombstone is harmless, a stale list is not).
    if db
        .get(REMOTE_DEVICE_LISTS, user.as_bytes())
        .map_or(true, |v| v.is_some())
    {
        c.batch.delete(REMOTE_DEVICE_LISTS, user.as_bytes());
    }
}

pub fn get(s: &Services, user: &UserId) -> Result<Option<RemoteDeviceList>> {
    Ok(s.globals
        .db
        .get_json(REMOTE_DEVICE_LISTS, user.as_bytes())?)
}

/// Stores a list fetched with `user/devices`; marks the user's devices changed when it differs.
pub fn store(s: &Services, user: &UserId, list: &RemoteDeviceList) -> Result<()> {
    let old = get(s, user)?;
    let db = s.globals.db.clone();
    s.globals.commit(|c| {
        c.batch
            .put(REMOTE_DEVICE_LISTS, user.as_bytes(), encode_json(list));
        if old.as_ref().is_some_and(|o| {
            o.devices != list.devices
                || o.master_key != list.master_key
                || o.self_signing_key != list.self_signing_key
        }) {
            changes::mark_changed(&db, c, user)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// A received `m.device_list_update` (the origin was checked): the cache follows it (or becomes
/// stale) and local users see the user's devices changed.
pub fn received_device_update(
    s: &Services,
    user: &UserId,
    update: &DeviceListUpdate,
) -> Result<()> {
    let db = s.globals.db.clone();
    s.globals.commit(|c| {
        if let Some(mut list) =
            db.get_json::<RemoteDeviceList>(REMOTE_DEVICE_LISTS, user.as_bytes())?
        {
            apply_update(&mut list, update);
            c.batch
                .put(REMOTE_DEVICE_LISTS, user.as_bytes(), encode_json(&list));
        }
        changes::mark_changed(&db, c, user)?;
        Ok(())
    })?;
    Ok(())
}

/// A received `m.signing_key_update`.
pub fn received_signing_update(
    s: &Services,
    user: &UserId,
    master: Option<Value>,
    self_signing: Option<Value>,
) -> Result<()> {
    let db = s.globals.db.clone();
    s.globals.commit(|c| {
        if let Some(mut list) =
            db.get_json::<RemoteDeviceList>(REMOTE_DEVICE_LISTS, user.as_bytes())?
        {
            if master.is_some() {
                list.master_key = master.clone();
            }
            if self_signing.is_some() {
                list.self_signing_key = self_signing.clone();
            }
            c.batch
                .put(REMOTE_DEVICE_LISTS, user.as_bytes(), encode_json(&list));
        }
        changes::mark_changed(&db, c, user)?;
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(device: &str, stream_id: u64, prev: &[u64], deleted: bool) -> DeviceListUpdate {
        DeviceListUpdate {
            device_id: device.into(),
            device_display_name: None,
            stream_id,
            prev_id: prev.to_vec(),
            deleted,
            keys: (!deleted).then(|| json!({ "device_id": device })),
        }
    }

    #[test]
    fn updates_in_order_apply_and_a_gap_makes_the_list_stale() {
        let mut list = RemoteDeviceList {
            stream_id: 5,
            ..Default::default()
        };
        apply_update(&mut list, &update("A", 6, &[5], false));
        assert!(list.devices.contains_key("A") && list.stream_id == 6 && !list.stale);
        apply_update(&mut list, &update("A", 6, &[5], false)); // repeated
        assert_eq!(list.stream_id, 6);
        apply_update(&mut list, &update("A", 7, &[6], true));
        assert!(!list.devices.contains_key("A"));
        apply_update(&mut list, &update("B", 9, &[8], false)); // 8 was missed
        assert!(list.stale && !list.devices.contains_key("B"));
    }

    #[test]
    fn a_join_deletes_only_a_cached_list() {
        use crate::{
            services::globals::Globals,
            storage::{Db, rocks::RocksEngine},
        };
        let dir = tempfile::tempdir().unwrap();
        let engine =
            RocksEngine::open(dir.path(), &crate::services::all_maps(), 8, 8, false).unwrap();
        let db = Db::new(engine);
        let config = crate::config::Config::load(None, Vec::<(String, String)>::new()).unwrap();
        let globals = Globals::open(config, db.clone()).unwrap();
        let cached: ruma::OwnedUserId = "@cached:remote.example".try_into().unwrap();
        db.put(
            REMOTE_DEVICE_LISTS,
            cached.as_bytes(),
            encode_json(&RemoteDeviceList::default()),
        )
        .unwrap();
        let members: Vec<ruma::OwnedUserId> = (0..1000)
            .map(|i| format!("@m{i}:remote.example").try_into().unwrap())
            .collect();
        globals
            .commit(|c| {
                for member in &members {
                    forget_on_join(&db, c, member);
                }
                assert!(
                    c.batch.is_empty(),
                    "no tombstone for members without a cached list"
                );
                forget_on_join(&db, c, &cached);
                assert_eq!(c.batch.ops.len(), 1);
                Ok(())
            })
            .unwrap();
        assert!(
            db.get(REMOTE_DEVICE_LISTS, cached.as_bytes())
                .unwrap()
                .is_none()
        );
    }
}
