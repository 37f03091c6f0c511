//! `/keys/claim` for local devices: one key per device and algorithm, taken atomically (under the
//! commit lock, deleted in the same batch); the fallback key when no one-time key is left (marked
//! used, and kept).

use std::collections::BTreeMap;

use ruma::{OwnedDeviceId, OwnedUserId};
use serde_json::Value;

use super::{
    FALLBACK_KEYS, ONE_TIME_KEYS,
    one_time::{FallbackKey, OneTimeKey},
};
use crate::{
    error::Result,
    services::Services,
    storage::{
        db::{decode_json, encode_json},
        keys::Key,
    },
};

/// What a claim hands out for one device and algorithm.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// The first one-time key (key id, key): deleted.
    OneTime(String, Value),
    /// No one-time key left: the fallback key, marked used.
    Fallback(FallbackKey),
    Nothing,
}

/// The claim rule: the first one-time key (in upload order) if any, else the fallback key (used or
/// not), else nothing.
pub fn choose(first_one_time: Option<(String, Value)>, fallback: Option<FallbackKey>) -> Choice {
    match (first_one_time, fallback) {
        (Some((id, key)), _) => Choice::OneTime(id, key),
        (None, Some(fallback)) => Choice::Fallback(fallback),
        (None, None) => Choice::Nothing,
    }
}

pub type Claimed = BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, BTreeMap<String, Value>>>;

/// Claims keys of local devices; devices without a key are left out of the answer.
pub fn claim_local(
    s: &Services,
    wanted: &BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
) -> Result<Claimed> {
    let db = &s.globals.db;
    let (claimed, _) = s.globals.commit(|c| {
        let mut out: Claimed = BTreeMap::new();
        for (user, devices) in wanted {
            for (device, algorithm) in devices {
                let prefix = Key::new()
                    .str(user.as_str())
                    .str(device.as_str())
                    .str(algorithm)
                    .build();
                let first = match db.scan_prefix(ONE_TIME_KEYS, &prefix).next().transpose()? {
                    Some((k, v)) => {
                        let stored: OneTimeKey = decode_json(ONE_TIME_KEYS, &v)?;
                        Some((stored.id, stored.key, k))
                    }
                    None => None,
                };
                let fallback: Option<FallbackKey> = db.get_json(FALLBACK_KEYS, &prefix)?;
                let first_key = first.as_ref().map(|(_, _, k)| k.to_vec());
                c.after_write(move || s.users.key_counts.forget(user, device));
                let (id, key) = match choose(first.map(|(id, v, _)| (id, v)), fallback) {
                    Choice::OneTime(id, key) => {
                        c.batch.delete(ONE_TIME_KEYS, first_key.unwrap_or_default());
                        (id, key)
                    }
                    Choice::Fallback(mut record) => {
                        if !record.used {
                            record.used = true;
                            c.batch
                                .put(FALLBACK_KEYS, prefix.clone(), encode_json(&record));
                        }
                        (record.key_id, record.key)
                    }
                    Choice::Nothing => continue,
                };
                out.entry(user.clone())
                    .or_default()
                    .entry(device.clone())
                    .or_default()
                    .insert(id, key);
            }
        }
        Ok(out)
    })?;
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fallback(used: bool) -> FallbackKey {
        FallbackKey {
            key_id: "signed_curve25519:F".into(),
            key: json!({"key": "f"}),
            used,
        }
    }

    #[test]
    fn one_time_key_first_then_fallback_then_nothing() {
        let otk = Some(("signed_curve25519:A".to_owned(), json!({"key": "a"})));
        assert_eq!(
            choose(otk.clone(), Some(fallback(false))),
            Choice::OneTime("signed_curve25519:A".into(), json!({"key": "a"}))
        );
        assert_eq!(
            choose(None, Some(fallback(false))),
            Choice::Fallback(fallback(false))
        );
        // A used fallback key is handed out again (the spec keeps it until replaced).
        assert_eq!(
            choose(None, Some(fallback(true))),
            Choice::Fallback(fallback(true))
        );
        assert_eq!(choose(None, None), Choice::Nothing);
    }
}
