//! Our signing keys as other servers see them: the current key (generated and kept by
//! `services::globals`) and the retired ones (`old_signing_keys`), in a signed key document.

use std::collections::BTreeMap;

use ruma::{CanonicalJsonObject, signatures::Ed25519KeyPair};

use super::{
    Federation, OLD_SIGNING_KEYS,
    signing::{self, KeyRecord, OldKey, encode_key},
};
use crate::{
    error::{Error, Result},
    services::{Services, globals::GLOBAL},
    storage::{Batch, Db, db::decode_json, db::encode_json},
};

/// The key of the signing key record in `global` (written by `services::globals`):
/// key version ‖ 0xFF ‖ PKCS#8 DER.
const KEY_SIGNING: &[u8] = b"signing_key";

impl Federation {
    /// Our retired keys, by key id.
    pub fn old_signing_keys(&self) -> Result<BTreeMap<String, OldKey>> {
        let mut keys = BTreeMap::new();
        for item in self.db.scan_prefix(OLD_SIGNING_KEYS, b"") {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k).into_owned();
            keys.insert(id, decode_json(OLD_SIGNING_KEYS, &v)?);
        }
        Ok(keys)
    }
}

pub fn current_key_id(keypair: &Ed25519KeyPair) -> String {
    format!("ed25519:{}", keypair.version())
}

/// Our signed key document, valid for `federation.key_validity_hours` from `now`.
pub fn own_document(services: &Services, now: u64) -> Result<CanonicalJsonObject> {
    let valid_until = now + services.config().federation.key_validity_hours * 3_600_000;
    let old = services.federation.old_signing_keys()?;
    Ok(signing::own_key_document(
        services.globals.server_name(),
        &services.globals.keypair,
        &old,
        valid_until,
    ))
}

/// Our keys as verification records (for requests and events we signed ourselves).
pub fn own_key_records(services: &Services, now: u64) -> Result<BTreeMap<String, KeyRecord>> {
    let valid_until = now + services.config().federation.key_validity_hours * 3_600_000;
    let mut keys: BTreeMap<String, KeyRecord> = services
        .federation
        .old_signing_keys()?
        .into_iter()
        .map(|(id, old)| {
            (
                id,
                KeyRecord {
                    key: old.key,
                    valid_until_ts: old.expired_ts,
                    expired_ts: Some(old.expired_ts),
                },
            )
        })
        .collect();
    let keypair = &services.globals.keypair;
    keys.insert(
        current_key_id(keypair),
        KeyRecord {
            key: encode_key(&keypair.public_key()),
            valid_until_ts: valid_until,
            expired_ts: None,
        },
    );
    Ok(keys)
}

/// Replaces our signing key by a new one, with a new key id; the old key moves to
/// `old_verify_keys` (expired now). One atomic batch. Run it while the server is stopped: the
/// new key is loaded at the next start. Returns (old key id, new key id).
pub fn rotate_signing_key(db: &Db, now: u64) -> Result<(String, String)> {
    let record = db
        .get(GLOBAL, KEY_SIGNING)?
        .ok_or_else(|| Error::internal("no signing key to rotate"))?;
    let sep = record
        .iter()
        .position(|b| *b == 0xFF)
        .ok_or_else(|| Error::internal("corrupt signing key record"))?;
    let version = std::str::from_utf8(&record[..sep])
        .map_err(|_| Error::internal("corrupt signing key record"))?;
    let old = Ed25519KeyPair::from_der(&record[sep + 1..], version.to_owned())
        .map_err(|e| Error::internal(format!("bad signing key: {e}")))?;
    let old_id = current_key_id(&old);
    let taken = |v: &str| -> Result<bool> {
        Ok(v == version || db.contains(OLD_SIGNING_KEYS, format!("ed25519:{v}").as_bytes())?)
    };
    let new_version = loop {
        let candidate: String = {
            use rand::Rng;
            let mut rng = rand::thread_rng();
            (0..6)
                .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
                .collect()
        };
        if !taken(&candidate)? {
            break candidate;
        }
    };
    let der = Ed25519KeyPair::generate();
    let mut new_record = new_version.as_bytes().to_vec();
    new_record.push(0xFF);
    new_record.extend_from_slice(&der);

    let mut batch = Batch::new();
    batch.put(
        OLD_SIGNING_KEYS,
        old_id.as_bytes(),
        encode_json(&OldKey {
            key: encode_key(&old.public_key()),
            expired_ts: now,
        }),
    );
    batch.put(GLOBAL, KEY_SIGNING, new_record);
    db.write(batch)?;
    Ok((old_id, format!("ed25519:{new_version}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config, federation::signing::verify_key_document, services::all_maps,
        storage::rocks::RocksEngine,
    };

    #[test]
    fn rotation_keeps_the_old_key_in_old_verify_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server_name = "a.test".try_into().unwrap();
        config.storage.path = dir.path().to_owned();

        let services = Services::open(config.clone()).unwrap();
        let first_id = current_key_id(&services.globals.keypair);
        let first_key = encode_key(&services.globals.keypair.public_key());
        let doc = own_document(&services, 1_000).unwrap();
        let keys = verify_key_document(&doc, services.globals.server_name()).unwrap();
        assert_eq!(keys.valid_until_ts, 1_000 + 168 * 3_600_000);
        assert_eq!(keys.keys.len(), 1);
        drop(services);

        let engine = RocksEngine::open(dir.path(), &all_maps(), 8, 8, false).unwrap();
        let (old_id, new_id) = rotate_signing_key(&Db::new(engine), 5_000).unwrap();
        assert_eq!(old_id, first_id);
        assert_ne!(new_id, first_id);

        let services = Services::open(config).unwrap();
        assert_eq!(current_key_id(&services.globals.keypair), new_id);
        let doc = own_document(&services, 6_000).unwrap();
        let keys = verify_key_document(&doc, services.globals.server_name()).unwrap();
        assert_eq!(keys.keys[&new_id].expired_ts, None);
        // The old key keeps its bytes under its id, now with its expiry.
        assert_eq!(
            keys.keys[&first_id],
            KeyRecord {
                key: first_key,
                valid_until_ts: keys.valid_until_ts,
                expired_ts: Some(5_000)
            }
        );
        let records = own_key_records(&services, 6_000).unwrap();
        assert!(records[&first_id].usable_at(5_000) && !records[&first_id].usable_at(5_001));
    }
}
