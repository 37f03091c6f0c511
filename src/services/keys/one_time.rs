//! One-time and fallback keys of a device: counts and the unused fallback key types (/sync,
//! `/keys/upload`).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use ruma::{DeviceId, OneTimeKeyAlgorithm, OwnedDeviceId, OwnedUserId, UInt, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FALLBACK_KEYS, ONE_TIME_KEYS, device_prefix};
use crate::{
    error::Result,
    storage::{Db, db::decode_json, keys::KeyReader},
};

/// What every /sync answer of a device gives of its keys.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCounts {
    pub one_time: BTreeMap<OneTimeKeyAlgorithm, UInt>,
    pub unused_fallback: Vec<OneTimeKeyAlgorithm>,
}

/// The [`DeviceCounts`] of devices, read once and kept until the device's keys change, instead of
/// two scans at every /sync (most answers find the same counts). Held by `Users`, which creates
/// and removes devices. `generation` grows on every forget: a read of the database that began
/// before a forget does not put what it read into the cache after it. Off in a group of
/// processes (another process changes keys too).
#[derive(Default)]
pub struct CountsCache {
    inner: Mutex<CountsInner>,
    off: bool,
}

#[derive(Default)]
struct CountsInner {
    devices: HashMap<(OwnedUserId, OwnedDeviceId), DeviceCounts>,
    generation: u64,
}

/// Devices held before the cache starts again empty.
const COUNTS_KEPT: usize = 100_000;

impl CountsCache {
    pub fn off() -> Self {
        Self {
            off: true,
            ..Self::default()
        }
    }

    /// The counts of `device`, from the cache or read.
    pub fn get(&self, db: &Db, user: &UserId, device: &DeviceId) -> Result<DeviceCounts> {
        let read = || -> Result<DeviceCounts> {
            Ok(DeviceCounts {
                one_time: self::counts(db, user, device)?,
                unused_fallback: unused_fallback_types(db, user, device)?,
            })
        };
        if self.off {
            return read();
        }
        let key = (user.to_owned(), device.to_owned());
        let generation = {
            let inner = self.lock();
            if let Some(counts) = inner.devices.get(&key) {
                return Ok(counts.clone());
            }
            inner.generation
        };
        let counts = read()?;
        let mut inner = self.lock();
        if inner.generation == generation {
            if inner.devices.len() >= COUNTS_KEPT {
                inner.devices.clear();
            }
            inner.devices.insert(key, counts.clone());
        }
        Ok(counts)
    }

    /// Forgets the counts of one device: after the write that changed its keys.
    pub fn forget(&self, user: &UserId, device: &DeviceId) {
        let mut inner = self.lock();
        inner.devices.remove(&(user.to_owned(), device.to_owned()));
        inner.generation += 1;
    }

    /// Forgets every device's counts: before a write that creates or removes devices (a device
    /// created again under the same id must not find the counts of the one removed).
    pub fn forget_all(&self) {
        let mut inner = self.lock();
        inner.devices.clear();
        inner.generation += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CountsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A device's fallback key for one algorithm; `used` once it was handed out by a claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FallbackKey {
    pub key_id: String,
    pub key: Value,
    pub used: bool,
}

/// A stored one-time key: its id and the key object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OneTimeKey {
    pub id: String,
    pub key: Value,
}

/// The one-time keys a device still has, by key id.
pub fn known_ids(
    db: &Db,
    user: &UserId,
    device: &DeviceId,
) -> Result<std::collections::HashMap<String, Value>> {
    let prefix = device_prefix(user.as_str(), device.as_str());
    let mut out = std::collections::HashMap::new();
    for entry in db.scan_prefix(ONE_TIME_KEYS, &prefix) {
        let (_, v) = entry?;
        let key: OneTimeKey = decode_json(ONE_TIME_KEYS, &v)?;
        out.insert(key.id, key.key);
    }
    Ok(out)
}

/// How many one-time keys the device has left, per algorithm.
pub fn counts(
    db: &Db,
    user: &UserId,
    device: &DeviceId,
) -> Result<BTreeMap<OneTimeKeyAlgorithm, UInt>> {
    let prefix = device_prefix(user.as_str(), device.as_str());
    let mut out: BTreeMap<OneTimeKeyAlgorithm, UInt> = BTreeMap::new();
    for entry in db.scan_prefix(ONE_TIME_KEYS, &prefix) {
        let (k, _) = entry?;
        if let Some(alg) = KeyReader::new(&k[prefix.len()..]).str() {
            let count = out.entry(OneTimeKeyAlgorithm::from(alg)).or_default();
            *count = count.saturating_add(UInt::from(1u32));
        }
    }
    // Clients read a missing signed_curve25519 count as "unknown": say 0.
    out.entry(OneTimeKeyAlgorithm::SignedCurve25519)
        .or_default();
    Ok(out)
}

/// The algorithms for which the device has a fallback key not yet handed out.
pub fn unused_fallback_types(
    db: &Db,
    user: &UserId,
    device: &DeviceId,
) -> Result<Vec<OneTimeKeyAlgorithm>> {
    let prefix = device_prefix(user.as_str(), device.as_str());
    let mut out = Vec::new();
    for entry in db.scan_prefix(FALLBACK_KEYS, &prefix) {
        let (k, v) = entry?;
        let record: FallbackKey = decode_json(FALLBACK_KEYS, &v)?;
        if !record.used
            && let Some(alg) = KeyReader::new(&k[prefix.len()..]).str()
        {
            out.push(OneTimeKeyAlgorithm::from(alg));
        }
    }
    Ok(out)
}
