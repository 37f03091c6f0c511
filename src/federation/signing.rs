//! Signed key documents (`/_matrix/key/v2/server`): building ours, checking other servers'.
//! Pure functions: no I/O, so every rule is unit-tested.

use std::collections::BTreeMap;

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, ServerName,
    serde::Base64,
    signatures::{
        Ed25519KeyPair, SigningKeyAlgorithm, sign_json, to_canonical_json_string_for_signing,
        verify_canonical_json_bytes,
    },
};
use serde::{Deserialize, Serialize};

/// One public key of a server, as we cache it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Unpadded base64 of the ed25519 public key.
    pub key: String,
    /// For a current key: the `valid_until_ts` of the newest document that listed it.
    pub valid_until_ts: u64,
    /// For an old key: when the server stopped using it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_ts: Option<u64>,
}

impl KeyRecord {
    /// Whether this key may verify a signature made at `ts` (ms since the epoch).
    pub fn usable_at(&self, ts: u64) -> bool {
        match self.expired_ts {
            Some(expired) => ts <= expired,
            None => ts <= self.valid_until_ts,
        }
    }
}

/// A retired key of ours, listed in `old_verify_keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldKey {
    pub key: String,
    pub expired_ts: u64,
}

/// The keys of a document that passed [`verify_key_document`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKeys {
    pub valid_until_ts: u64,
    /// Key id → record, current and old keys together.
    pub keys: BTreeMap<String, KeyRecord>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyDocError {
    #[error("malformed key document: {0}")]
    Malformed(String),
    #[error("key document is for `{found}`, not `{expected}`")]
    WrongServer { expected: String, found: String },
    #[error("key document is not signed by any of its own verify_keys")]
    NotSelfSigned,
    #[error("bad signature by {0}")]
    BadSignature(String),
}

pub fn encode_key(bytes: &[u8]) -> String {
    Base64::<ruma::serde::base64::Standard, &[u8]>::new(bytes).encode()
}

/// Our signed key document: the current key, the retired ones, valid until `valid_until_ts`.
pub fn own_key_document(
    server_name: &ServerName,
    keypair: &Ed25519KeyPair,
    old_keys: &BTreeMap<String, OldKey>,
    valid_until_ts: u64,
) -> CanonicalJsonObject {
    let key_id = format!("ed25519:{}", keypair.version());
    let verify_keys = CanonicalJsonObject::from([(
        key_id,
        CanonicalJsonValue::Object(CanonicalJsonObject::from([(
            "key".to_owned(),
            CanonicalJsonValue::String(encode_key(&keypair.public_key())),
        )])),
    )]);
    let old_verify_keys: CanonicalJsonObject = old_keys
        .iter()
        .map(|(id, old)| {
            let entry = CanonicalJsonObject::from([
                (
                    "key".to_owned(),
                    CanonicalJsonValue::String(old.key.clone()),
                ),
                (
                    "expired_ts".to_owned(),
                    CanonicalJsonValue::Integer(js_int(old.expired_ts)),
                ),
            ]);
            (id.clone(), CanonicalJsonValue::Object(entry))
        })
        .collect();
    let mut doc = CanonicalJsonObject::from([
        (
            "server_name".to_owned(),
            CanonicalJsonValue::String(server_name.to_string()),
        ),
        (
            "verify_keys".to_owned(),
            CanonicalJsonValue::Object(verify_keys),
        ),
        (
            "old_verify_keys".to_owned(),
            CanonicalJsonValue::Object(old_verify_keys),
        ),
        (
            "valid_until_ts".to_owned(),
            CanonicalJsonValue::Integer(js_int(valid_until_ts)),
        ),
    ]);
    add_signature(&mut doc, server_name, keypair);
    doc
}

/// Adds `server_name`'s signature to `doc`, keeping the signatures already there (a notary
/// co-signs the origin's document).
pub fn add_signature(
    doc: &mut CanonicalJsonObject,
    server_name: &ServerName,
    keypair: &Ed25519KeyPair,
) {
    // A peer's document (a notary co-signs it) may carry anything under our name: it is replaced.
    match doc.get_mut("signatures") {
        Some(CanonicalJsonValue::Object(all)) => {
            if all
                .get(server_name.as_str())
                .is_some_and(|ours| !matches!(ours, CanonicalJsonValue::Object(_)))
            {
                all.remove(server_name.as_str());
            }
        }
        Some(_) => {
            doc.remove("signatures");
        }
        None => {}
    }
    sign_json(server_name.as_str(), keypair, doc)
        .expect("a JSON object with an object `signatures` can be signed");
}

/// Checks a document fetched from `expected` (directly or through a notary): its `server_name`,
/// and that it is signed by at least one of its `verify_keys`, every such signature being valid.
/// Signatures by other servers (a notary's) are ignored here.
pub fn verify_key_document(
    doc: &CanonicalJsonObject,
    expected: &ServerName,
) -> Result<VerifiedKeys, KeyDocError> {
    let malformed = |what: &str| KeyDocError::Malformed(what.to_owned());
    let server = match doc.get("server_name") {
        Some(CanonicalJsonValue::String(s)) => s,
        _ => return Err(malformed("missing server_name")),
    };
    if server != expected.as_str() {
        return Err(KeyDocError::WrongServer {
            expected: expected.to_string(),
            found: server.clone(),
        });
    }
    let valid_until_ts = match doc.get("valid_until_ts") {
        Some(CanonicalJsonValue::Integer(n)) => {
            u64::try_from(i64::from(*n)).map_err(|_| malformed("negative valid_until_ts"))?
        }
        _ => return Err(malformed("missing valid_until_ts")),
    };
    let mut keys = BTreeMap::new();
    let Some(CanonicalJsonValue::Object(verify_keys)) = doc.get("verify_keys") else {
        return Err(malformed("missing verify_keys"));
    };
    for (id, entry) in verify_keys {
        let key = key_field(entry).ok_or_else(|| malformed("verify_keys entry without a key"))?;
        keys.insert(
            id.clone(),
            KeyRecord {
                key,
                valid_until_ts,
                expired_ts: None,
            },
        );
    }
    if let Some(old) = doc.get("old_verify_keys") {
        let CanonicalJsonValue::Object(old) = old else {
            return Err(malformed("old_verify_keys is not an object"));
        };
        for (id, entry) in old {
            let key =
                key_field(entry).ok_or_else(|| malformed("old_verify_keys entry without a key"))?;
            let expired_ts = match entry {
                CanonicalJsonValue::Object(o) => match o.get("expired_ts") {
                    Some(CanonicalJsonValue::Integer(n)) => {
                        u64::try_from(i64::from(*n)).unwrap_or(0)
                    }
                    _ => return Err(malformed("old_verify_keys entry without expired_ts")),
                },
                _ => unreachable!("key_field checked the entry is an object"),
            };
            // A key cannot be both current and old: the current listing wins.
            keys.entry(id.clone()).or_insert(KeyRecord {
                key,
                valid_until_ts,
                expired_ts: Some(expired_ts),
            });
        }
    }
    let Some(CanonicalJsonValue::Object(signatures)) = doc.get("signatures") else {
        return Err(KeyDocError::NotSelfSigned);
    };
    let Some(CanonicalJsonValue::Object(own)) = signatures.get(expected.as_str()) else {
        return Err(KeyDocError::NotSelfSigned);
    };
    let canonical = to_canonical_json_string_for_signing(doc)
        .map_err(|e| KeyDocError::Malformed(e.to_string()))?;
    let mut verified = 0;
    for (key_id, sig) in own {
        let Some(record) = keys.get(key_id).filter(|r| r.expired_ts.is_none()) else {
            continue;
        };
        let CanonicalJsonValue::String(sig) = sig else {
            return Err(KeyDocError::BadSignature(key_id.clone()));
        };
        if !signature_valid(&record.key, sig, canonical.as_bytes()) {
            return Err(KeyDocError::BadSignature(key_id.clone()));
        }
        verified += 1;
    }
    if verified == 0 {
        return Err(KeyDocError::NotSelfSigned);
    }
    Ok(VerifiedKeys {
        valid_until_ts,
        keys,
    })
}

/// Whether `signature` (base64) by `public_key` (base64) is valid over `canonical`.
pub fn signature_valid(public_key: &str, signature: &str, canonical: &[u8]) -> bool {
    let (Ok(key), Ok(sig)) = (
        Base64::<ruma::serde::base64::Standard>::parse(public_key),
        Base64::<ruma::serde::base64::Standard>::parse(signature),
    ) else {
        return false;
    };
    verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        key.as_bytes(),
        sig.as_bytes(),
        canonical,
    )
    .is_ok()
}

fn key_field(entry: &CanonicalJsonValue) -> Option<String> {
    match entry {
        CanonicalJsonValue::Object(o) => match o.get("key") {
            Some(CanonicalJsonValue::String(k)) => Some(k.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn js_int(n: u64) -> ruma::Int {
    ruma::Int::try_from(n).unwrap_or(ruma::Int::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn keypair(version: &str) -> Ed25519KeyPair {
        Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), version.to_owned()).unwrap()
    }

    fn name(s: &str) -> &ServerName {
        s.try_into().unwrap()
    }

    #[test]
    fn own_document_is_self_signed_and_lists_old_keys() {
        let kp = keypair("new");
        let old = BTreeMap::from([(
            "ed25519:old".to_owned(),
            OldKey {
                key: encode_key(&[7; 32]),
                expired_ts: 1000,
            },
        )]);
        let doc = own_key_document(name("a.test"), &kp, &old, 5_000);
        let verified = verify_key_document(&doc, name("a.test")).unwrap();
        assert_eq!(verified.valid_until_ts, 5_000);
        assert_eq!(
            verified.keys["ed25519:new"].key,
            encode_key(&kp.public_key())
        );
        assert_eq!(verified.keys["ed25519:new"].expired_ts, None);
        assert_eq!(verified.keys["ed25519:old"].expired_ts, Some(1000));
        assert!(verified.keys["ed25519:old"].usable_at(999));
        assert!(!verified.keys["ed25519:old"].usable_at(1001));
        assert!(verified.keys["ed25519:new"].usable_at(5_000));
        assert!(!verified.keys["ed25519:new"].usable_at(5_001));
    }

    #[test]
    fn document_for_another_server_is_rejected() {
        let doc = own_key_document(name("a.test"), &keypair("k"), &BTreeMap::new(), 5_000);
        assert!(matches!(
            verify_key_document(&doc, name("b.test")),
            Err(KeyDocError::WrongServer { .. })
        ));
    }

    #[test]
    fn tampered_document_is_rejected() {
        let mut doc = own_key_document(name("a.test"), &keypair("k"), &BTreeMap::new(), 5_000);
        doc.insert(
            "valid_until_ts".into(),
            CanonicalJsonValue::Integer(ruma::Int::from(9_999_999u32)),
        );
        assert_eq!(
            verify_key_document(&doc, name("a.test")),
            Err(KeyDocError::BadSignature("ed25519:k".into()))
        );
    }

    #[test]
    fn document_signed_by_a_foreign_key_is_rejected() {
        // Signed by a key it does not list: not a self-signature.
        let listed = keypair("k");
        let mut doc = own_key_document(name("a.test"), &listed, &BTreeMap::new(), 5_000);
        doc.remove("signatures");
        add_signature(&mut doc, name("a.test"), &keypair("other"));
        assert_eq!(
            verify_key_document(&doc, name("a.test")),
            Err(KeyDocError::NotSelfSigned)
        );
        doc.remove("signatures");
        assert_eq!(
            verify_key_document(&doc, name("a.test")),
            Err(KeyDocError::NotSelfSigned)
        );
    }

    #[test]
    fn notary_signature_keeps_the_origin_signature_valid() {
        let mut doc = own_key_document(name("a.test"), &keypair("k"), &BTreeMap::new(), 5_000);
        let notary = keypair("n");
        add_signature(&mut doc, name("notary.test"), &notary);
        verify_key_document(&doc, name("a.test")).unwrap();
        let CanonicalJsonValue::Object(sigs) = &doc["signatures"] else {
            panic!()
        };
        let CanonicalJsonValue::Object(by_notary) = &sigs["notary.test"] else {
            panic!()
        };
        let CanonicalJsonValue::String(sig) = &by_notary["ed25519:n"] else {
            panic!()
        };
        let canonical = to_canonical_json_string_for_signing(&doc).unwrap();
        assert!(signature_valid(
            &encode_key(&notary.public_key()),
            sig,
            canonical.as_bytes()
        ));
    }

    #[test]
    fn malformed_documents_are_rejected() {
        let doc: CanonicalJsonObject = serde_json::from_str(r#"{"server_name":"a.test"}"#).unwrap();
        assert!(matches!(
            verify_key_document(&doc, name("a.test")),
            Err(KeyDocError::Malformed(_))
        ));
        let doc: CanonicalJsonObject = serde_json::from_str(
            r#"{"server_name":"a.test","valid_until_ts":1,"verify_keys":{"ed25519:x":{}}}"#,
        )
        .unwrap();
        assert!(matches!(
            verify_key_document(&doc, name("a.test")),
            Err(KeyDocError::Malformed(_))
        ));
    }
}
