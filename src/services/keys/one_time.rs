//! One-time and fallback keys of a device: counts and the unused fallback key types (/sync,
//! `/keys/upload`).

use std::collections::BTreeMap;

use ruma::{DeviceId, OneTimeKeyAlgorithm, UInt, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FALLBACK_KEYS, ONE_TIME_KEYS, device_prefix};
use crate::{
    error::Result,
    storage::{Db, db::decode_json, keys::KeyReader},
};

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
