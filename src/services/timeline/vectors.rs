//! The Matrix specification's test vectors for canonical JSON, signing, hashing and redaction.

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use ruma::{
    CanonicalJsonObject, RoomVersionId,
    canonical_json::redact,
    signatures::{Ed25519KeyPair, hash_and_sign_event, sign_json},
};
use serde_json::{Value, json};

/// The spec's signing key: seed `YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1`, key id `ed25519:1`.
fn spec_key() -> Ed25519KeyPair {
    // The spec's seed has non-zero trailing bits in its last symbol.
    let lenient = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let seed = lenient
        .decode("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
        .unwrap();
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    Ed25519KeyPair::from_der(&der, "1".to_owned()).unwrap()
}

fn canonical(value: Value) -> String {
    let object: CanonicalJsonObject = serde_json::from_value(value).unwrap();
    serde_json::to_string(&object).unwrap()
}

#[test]
fn canonical_json_vectors() {
    assert_eq!(canonical(json!({})), "{}");
    assert_eq!(
        canonical(json!({"one": 1, "two": "Two"})),
        r#"{"one":1,"two":"Two"}"#
    );
    assert_eq!(
        canonical(json!({"b": "2", "a": "1"})),
        r#"{"a":"1","b":"2"}"#
    );
    assert_eq!(
        canonical(
            json!({"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {
                "display_name": "John Doe",
                "three_pids": [{"medium": "email", "address": "john.doe@example.org"}, {"medium": "msisdn", "address": "123456789"}]
            }}})
        ),
        r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#
    );
    assert_eq!(canonical(json!({"a": "日本語"})), r#"{"a":"日本語"}"#);
    assert_eq!(canonical(json!({"本": 2, "日": 1})), r#"{"日":1,"本":2}"#);
    assert_eq!(
        canonical(serde_json::from_str(r#"{"a": "\u65E5"}"#).unwrap()),
        r#"{"a":"日"}"#
    );
    assert_eq!(canonical(json!({"a": null})), r#"{"a":null}"#);
}

#[test]
fn signing_empty_object_matches_spec() {
    let mut object: CanonicalJsonObject = serde_json::from_value(json!({})).unwrap();
    sign_json("domain", &spec_key(), &mut object).unwrap();
    let signed = serde_json::to_value(&object).unwrap();
    assert_eq!(
        signed["signatures"]["domain"]["ed25519:1"],
        "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
    );
}

#[test]
fn signing_json_object_matches_spec() {
    let mut object: CanonicalJsonObject =
        serde_json::from_value(json!({"one": 1, "two": "Two"})).unwrap();
    sign_json("domain", &spec_key(), &mut object).unwrap();
    let signed = serde_json::to_value(&object).unwrap();
    assert_eq!(
        signed["signatures"]["domain"]["ed25519:1"],
        "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
    );
}

#[test]
fn event_hash_and_signature_match_spec() {
    let mut event: CanonicalJsonObject = serde_json::from_value(json!({
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "signatures": {},
        "hashes": {},
        "type": "X",
        "content": {},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "unsigned": {"age_ts": 1000000}
    }))
    .unwrap();
    let rules = RoomVersionId::V1.rules().unwrap();
    hash_and_sign_event("domain", &spec_key(), &mut event, &rules.redaction).unwrap();
    let signed = serde_json::to_value(&event).unwrap();
    assert_eq!(
        signed["hashes"]["sha256"],
        "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
    );
    assert_eq!(
        signed["signatures"]["domain"]["ed25519:1"],
        "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
    );
}

#[test]
fn redaction_keeps_only_allowed_keys() {
    let event: CanonicalJsonObject = serde_json::from_value(json!({
        "content": {"membership": "join", "displayname": "Alice", "avatar_url": "mxc://x/y"},
        "event_id": "$e:domain",
        "origin_server_ts": 1,
        "room_id": "!r:domain",
        "sender": "@a:domain",
        "state_key": "@a:domain",
        "type": "m.room.member",
        "unsigned": {"age": 5},
        "hashes": {"sha256": "x"},
        "signatures": {},
        "depth": 2,
        "prev_events": [],
        "auth_events": [],
        "extra_top_level": true
    }))
    .unwrap();
    let rules = RoomVersionId::V11.rules().unwrap();
    let redacted = serde_json::to_value(redact(event, &rules.redaction, None).unwrap()).unwrap();
    assert_eq!(redacted["content"], json!({"membership": "join"}));
    assert!(redacted.get("extra_top_level").is_none());
    assert!(redacted.get("unsigned").is_none());
    assert_eq!(redacted["state_key"], "@a:domain");

    let message: CanonicalJsonObject = serde_json::from_value(json!({
        "content": {"body": "secret", "msgtype": "m.text"},
        "event_id": "$m:domain", "origin_server_ts": 1, "room_id": "!r:domain",
        "sender": "@a:domain", "type": "m.room.message", "hashes": {}, "signatures": {},
        "depth": 3, "prev_events": [], "auth_events": []
    }))
    .unwrap();
    let redacted = serde_json::to_value(redact(message, &rules.redaction, None).unwrap()).unwrap();
    assert_eq!(redacted["content"], json!({}));
}

#[test]
fn create_event_content_survives_redaction_from_v11() {
    let create: CanonicalJsonObject = serde_json::from_value(json!({
        "content": {"room_version": "11", "m.federate": true, "custom": 1},
        "event_id": "$c:domain", "origin_server_ts": 1, "room_id": "!r:domain",
        "sender": "@a:domain", "state_key": "", "type": "m.room.create", "hashes": {}, "signatures": {},
        "depth": 1, "prev_events": [], "auth_events": []
    }))
    .unwrap();
    let v10 = serde_json::to_value(
        redact(
            create.clone(),
            &RoomVersionId::V10.rules().unwrap().redaction,
            None,
        )
        .unwrap(),
    )
    .unwrap();
    let v11 = serde_json::to_value(
        redact(create, &RoomVersionId::V11.rules().unwrap().redaction, None).unwrap(),
    )
    .unwrap();
    assert!(v10["content"].get("custom").is_none());
    assert_eq!(v11["content"]["custom"], 1);
}
