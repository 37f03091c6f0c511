//! End-to-end encryption keys: device keys (`device_keys`), one-time and fallback keys
//! (`one_time`, `claim`), cross-signing keys and signatures (`cross_signing`), the stream of users
//! whose devices or keys changed (`changes`), the answer to a key query (`query`), and the cache of
//! other servers' device lists (`remote_cache`).

pub mod changes;
pub mod claim;
pub mod cross_signing;
pub mod device_keys;
pub mod device_list;
pub mod one_time;
pub mod query;
pub mod remote_cache;
pub mod signatures;

use crate::storage::{Batch, Db, Map, keys::Key};

/// user, device → the device keys as uploaded (signatures added later are merged in).
pub const DEVICE_KEYS: Map = Map("device_keys");
/// user, device, algorithm, upload sequence u64 → `{id, key}` (claimed in upload order).
pub const ONE_TIME_KEYS: Map = Map("one_time_keys");
/// user, device, algorithm → `{key_id, key, used}`.
pub const FALLBACK_KEYS: Map = Map("fallback_keys");
/// user, kind (`master`, `self_signing`, `user_signing`) → the cross-signing key JSON.
pub const CROSS_SIGNING_KEYS: Map = Map("cross_signing_keys");
/// position u64 → user: users (local or remote) whose devices or keys changed at that position.
pub const KEY_CHANGES: Map = Map("key_changes");
/// user → position u64 of their entry in `key_changes` (one entry per user).
pub const KEY_CHANGE_POS: Map = Map("key_change_pos");
/// local user → the `stream_id` of the last `m.device_list_update` sent for them.
pub const DEVICE_LIST_IDS: Map = Map("device_list_ids");
/// remote user → [`remote_cache::RemoteDeviceList`].
pub const REMOTE_DEVICE_LISTS: Map = Map("remote_device_lists");

pub const MAPS: &[Map] = &[
    DEVICE_KEYS,
    ONE_TIME_KEYS,
    FALLBACK_KEYS,
    CROSS_SIGNING_KEYS,
    KEY_CHANGES,
    KEY_CHANGE_POS,
    DEVICE_LIST_IDS,
    REMOTE_DEVICE_LISTS,
];

pub(crate) fn device_prefix(user: &str, device: &str) -> Vec<u8> {
    Key::new().str(user).str(device).build()
}

/// Deletes every key of a removed device (device keys, one-time and fallback keys) in `batch`.
pub fn device_removed_ops(
    db: &Db,
    batch: &mut Batch,
    user: &str,
    device: &str,
) -> crate::error::Result<()> {
    let prefix = device_prefix(user, device);
    batch.delete(DEVICE_KEYS, prefix.clone());
    for map in [ONE_TIME_KEYS, FALLBACK_KEYS] {
        for entry in db.scan_prefix(map, &prefix) {
            let (k, _) = entry?;
            batch.delete(map, k.to_vec());
        }
    }
    crate::services::to_device::device_removed_ops(db, batch, user, device)
}
