//! Checking one ed25519 signature of a signed JSON object (device keys, cross-signing keys).

use base64::Engine as _;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue,
    signatures::{
        SigningKeyAlgorithm, to_canonical_json_string_for_signing, verify_canonical_json_bytes,
    },
};

/// Decodes unpadded (or padded) standard base64.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// The signature of `signer` with `key_id` on `object`, if present.
pub fn signature_of<'a>(
    object: &'a CanonicalJsonObject,
    signer: &str,
    key_id: &str,
) -> Option<&'a str> {
    match object.get("signatures")? {
        CanonicalJsonValue::Object(by_signer) => match by_signer.get(signer)? {
            CanonicalJsonValue::Object(by_key) => match by_key.get(key_id)? {
                CanonicalJsonValue::String(sig) => Some(sig),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// Whether `object` carries a valid signature by `signer`'s key `key_id` (`ed25519:…`), whose
/// public key is `public_key` (base64).
pub fn verify(object: &CanonicalJsonObject, signer: &str, key_id: &str, public_key: &str) -> bool {
    let Some(signature) = signature_of(object, signer, key_id).and_then(decode_b64) else {
        return false;
    };
    let Some(public_key) = decode_b64(public_key) else {
        return false;
    };
    let Ok(canonical) = to_canonical_json_string_for_signing(object) else {
        return false;
    };
    verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        &public_key,
        &signature,
        canonical.as_bytes(),
    )
    .is_ok()
}

/// The `keys` map entry `key_id` of a key object (device keys or a cross-signing key).
pub fn public_key<'a>(object: &'a CanonicalJsonObject, key_id: &str) -> Option<&'a str> {
    match object.get("keys")? {
        CanonicalJsonValue::Object(keys) => match keys.get(key_id)? {
            CanonicalJsonValue::String(k) => Some(k),
            _ => None,
        },
        _ => None,
    }
}

/// Adds (or replaces) the signatures of `from` into `into` (both signed objects).
pub fn merge_signatures(into: &mut CanonicalJsonObject, from: &CanonicalJsonObject) {
    let Some(CanonicalJsonValue::Object(new)) = from.get("signatures") else {
        return;
    };
    let entry = into
        .entry("signatures".to_owned())
        .or_insert_with(|| CanonicalJsonValue::Object(Default::default()));
    let CanonicalJsonValue::Object(existing) = entry else {
        return;
    };
    for (signer, keys) in new {
        let CanonicalJsonValue::Object(keys) = keys else {
            continue;
        };
        let slot = existing
            .entry(signer.clone())
            .or_insert_with(|| CanonicalJsonValue::Object(Default::default()));
        if let CanonicalJsonValue::Object(slot) = slot {
            for (k, v) in keys {
                slot.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::signatures::{Ed25519KeyPair, sign_json};

    fn keypair() -> Ed25519KeyPair {
        Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "DEV".into()).unwrap()
    }

    #[test]
    fn signed_object_verifies_and_tampering_fails() {
        let kp = keypair();
        let public = base64::engine::general_purpose::STANDARD_NO_PAD.encode(kp.public_key());
        let mut object: CanonicalJsonObject = serde_json::from_value(
            serde_json::json!({ "user_id": "@a:x", "keys": { "ed25519:DEV": public } }),
        )
        .unwrap();
        sign_json("@a:x", &kp, &mut object).unwrap();
        assert!(verify(&object, "@a:x", "ed25519:DEV", &public));
        assert!(!verify(&object, "@b:x", "ed25519:DEV", &public));
        object.insert(
            "user_id".into(),
            CanonicalJsonValue::String("@evil:x".into()),
        );
        assert!(!verify(&object, "@a:x", "ed25519:DEV", &public));
    }
}
