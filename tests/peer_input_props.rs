//! Property tests of the code that reads what peers send (spec/security.md): PDUs as canonical
//! JSON (random, and a valid signed PDU mutated), `/send` envelopes, EDU bodies, key documents,
//! `.well-known` answers, X-Matrix headers and media answers (multipart and plain). Each must
//! answer (accept or refuse) without panicking, whatever the input.

mod common;

use bytes::Bytes;
use parvis::{
    federation::{discovery, incoming, signing, xmatrix},
    services::{Services, media::remote, timeline::pdu::Pdu},
};
use proptest::prelude::*;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedEventId, OwnedRoomId, OwnedServerName,
    RoomVersionId,
    api::federation::authenticated_media::get_content,
    room_version_rules::RoomVersionRules,
    signatures::{Ed25519KeyPair, PublicKeyMap, hash_and_sign_event},
};
use serde_json::{Value, json};

const KEYS: &[&str] = &[
    "room_id",
    "sender",
    "type",
    "content",
    "state_key",
    "prev_events",
    "auth_events",
    "depth",
    "hashes",
    "signatures",
    "origin_server_ts",
    "redacts",
    "event_id",
    "unsigned",
    "membership",
    "origin",
    "pdus",
    "edus",
    "edu_type",
    "user_id",
    "typing",
    "m.read",
    "event_ids",
    "data",
    "push",
    "presence",
    "messages",
    "message_id",
    "device_id",
    "stream_id",
    "prev_id",
    "keys",
    "server_name",
    "verify_keys",
    "old_verify_keys",
    "valid_until_ts",
    "key",
    "m.server",
    "sha256",
    "ed25519:k1",
    "x",
];

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z$!@#:._ -]{0,24}",
        Just("@alice:a.example".to_owned()),
        Just("!room:a.example".to_owned()),
        Just("$event".to_owned()),
        Just("m.room.member".to_owned()),
        Just("a.example".to_owned()),
        ".{0,8}",
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(|n| json!(n)),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (prop::sample::select(KEYS).prop_map(str::to_owned), inner),
                0..8
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = CanonicalJsonObject> {
    arb_json().prop_filter_map("an object", |v| match CanonicalJsonValue::try_from(v) {
        Ok(CanonicalJsonValue::Object(o)) => Some(o),
        _ => None,
    })
}

fn all_rules() -> Vec<RoomVersionRules> {
    [
        RoomVersionId::V1,
        RoomVersionId::V3,
        RoomVersionId::V6,
        RoomVersionId::V10,
        RoomVersionId::V11,
        RoomVersionId::V12,
    ]
    .iter()
    .map(|v| v.rules().unwrap())
    .collect()
}

/// Every check a received PDU goes through that needs no room state; none may panic.
fn check_pdu_object(object: &CanonicalJsonObject, keys: &PublicKeyMap) {
    let room: OwnedRoomId = "!room:a.example".try_into().unwrap();
    for rules in all_rules() {
        let _ = incoming::pdu_checks::check_format(object, &rules);
        let _ = incoming::pdu_checks::required_servers(object, &rules);
        let id = incoming::pdu_checks::event_id_of(object, &rules)
            .unwrap_or_else(|_| OwnedEventId::try_from("$x").unwrap());
        let _ = incoming::pdu_checks::room_id_of(object);
        let _ = parvis::services::timeline::pdu::json_in_room(object, &id, &room);
        if let Ok(verified) = incoming::pdu_checks::verify(object.clone(), keys, &rules)
            && let Ok(pdu) = Pdu::from_canonical(&verified, &id, &room)
        {
            let _ = (pdu.membership(), pdu.redacted_event(), pdu.content_value());
            let _ = incoming::pdu_checks::check_auth_events_with(&pdu, &rules, |_| Ok(None));
        }
    }
}

fn signed_pdu() -> (CanonicalJsonObject, PublicKeyMap) {
    let key = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "k1".into()).unwrap();
    let mut object: CanonicalJsonObject = serde_json::from_value(json!({
        "room_id": "!room:a.example", "sender": "@alice:a.example", "type": "m.room.member", "state_key": "@alice:a.example",
        "content": { "membership": "join", "displayname": "Alice" }, "origin_server_ts": 1, "depth": 3,
        "prev_events": ["$p"], "auth_events": ["$a"],
    }))
    .unwrap();
    hash_and_sign_event(
        "a.example",
        &key,
        &mut object,
        &RoomVersionId::V12.rules().unwrap().redaction,
    )
    .unwrap();
    let mut keys = PublicKeyMap::new();
    keys.insert(
        "a.example".into(),
        [(
            "ed25519:k1".to_owned(),
            ruma::serde::Base64::new(key.public_key().to_vec()),
        )]
        .into(),
    );
    (object, keys)
}

/// Replaces (or removes, with `None`) the value at a path of keys, creating nothing.
fn mutate(value: &mut CanonicalJsonValue, path: &[String], new: Option<CanonicalJsonValue>) {
    let CanonicalJsonValue::Object(map) = value else {
        return;
    };
    match path {
        [] => {}
        [last] => match new {
            Some(v) => {
                map.insert(last.clone(), v);
            }
            None => {
                map.remove(last);
            }
        },
        [first, rest @ ..] => {
            if let Some(inner) = map.get_mut(first) {
                mutate(inner, rest, new);
            }
        }
    }
}

fn services() -> (std::sync::Arc<Services>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Services::open(common::config(dir.path())).unwrap(), dir)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_pdus_are_answered_without_panic(object in arb_object()) {
        check_pdu_object(&object, &PublicKeyMap::new());
    }

    #[test]
    fn mutated_signed_pdus_are_answered_without_panic(
        path in prop::collection::vec(prop::sample::select(KEYS).prop_map(str::to_owned), 1..4),
        new in proptest::option::of(arb_json()),
    ) {
        let (object, keys) = signed_pdu();
        let mut value = CanonicalJsonValue::Object(object);
        let new = new.and_then(|v| CanonicalJsonValue::try_from(v).ok());
        mutate(&mut value, &path, new);
        let CanonicalJsonValue::Object(mutated) = value else { unreachable!() };
        check_pdu_object(&mutated, &keys);
        // Bytes too: the text of the PDU with a character changed parses or is refused.
        let text = serde_json::to_string(&mutated).unwrap();
        let cut = path.len() * 7 % text.len().max(1);
        let broken = format!("{}{}", &text[..cut.min(text.len())], "\"");
        if let Ok(raw) = serde_json::value::RawValue::from_string(broken) {
            let _ = incoming::pdu_checks::parse_object(&raw);
        }
    }

    #[test]
    fn send_envelopes_are_answered_without_panic(body in arb_json(), pdus in 0usize..60) {
        let origin: OwnedServerName = "a.example".try_into().unwrap();
        let _ = incoming::transaction::check_envelope(&origin, &body);
        let big = json!({ "origin": "a.example", "pdus": vec![json!({}); pdus], "edus": [] });
        let answer = incoming::transaction::check_envelope(&origin, &big);
        prop_assert_eq!(answer.is_ok(), pdus <= 50);
    }

    #[test]
    fn key_documents_are_answered_without_panic(doc in arb_object(), sign in any::<bool>()) {
        let name: OwnedServerName = "a.example".try_into().unwrap();
        let mut doc = doc;
        if sign {
            let key = Ed25519KeyPair::from_der(&Ed25519KeyPair::generate(), "k1".into()).unwrap();
            signing::add_signature(&mut doc, &name, &key);
        }
        let _ = signing::verify_key_document(&doc, &name);
    }

    #[test]
    fn well_known_answers_and_server_names_are_answered_without_panic(body in prop::collection::vec(any::<u8>(), 0..200), json in arb_json(), name in ".{0,40}") {
        let _ = discovery::parse_well_known(&body);
        let _ = discovery::parse_well_known(serde_json::to_string(&json).unwrap().as_bytes());
        if let Some(delegated) = discovery::parse_well_known(serde_json::to_string(&json!({ "m.server": name })).unwrap().as_bytes()) {
            let _ = discovery::plan_for_delegated(&delegated);
        }
        let _ = discovery::split_host_port(&name);
        let _ = discovery::plan_for_delegated(&name);
    }

    #[test]
    fn x_matrix_headers_are_answered_without_panic(value in "[ -~]{0,120}", prefix in prop::sample::select(vec!["X-Matrix ", "x-matrix ", "Bearer ", ""])) {
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("{prefix}{value}")) {
            headers.insert(http::header::AUTHORIZATION, v);
        }
        let ours: OwnedServerName = "b.example".try_into().unwrap();
        let _ = xmatrix::parse_header(&headers, &ours);
    }

    #[test]
    fn media_answers_are_answered_without_panic(
        body in prop::collection::vec(any::<u8>(), 0..300),
        parts in prop::collection::vec("[ -~]{0,40}", 0..4),
        boundary in "[a-zA-Z0-9]{1,12}",
        status in prop::sample::select(vec![200u16, 307, 400, 404, 500, 502]),
    ) {
        let origin: OwnedServerName = "a.example".try_into().unwrap();
        // A multipart body made of the random parts, and one of random bytes.
        let mut multipart = Vec::new();
        for part in &parts {
            multipart.extend_from_slice(format!("--{boundary}\r\n{part}\r\n\r\n").as_bytes());
        }
        multipart.extend_from_slice(&body);
        multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        for bytes in [multipart, body.clone()] {
            let response = http::Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, format!("multipart/mixed; boundary={boundary}"))
                .body(Bytes::from(bytes.clone()))
                .unwrap();
            let _ = remote::read_federation_answer::<get_content::v1::Response>(&origin, response);
            let response = http::Response::builder()
                .status(status)
                .header(http::header::CONTENT_DISPOSITION, String::from_utf8_lossy(&body[..body.len().min(40)]).replace(['\r', '\n'], ""))
                .body(Bytes::from(bytes))
                .unwrap_or_else(|_| http::Response::new(Bytes::new()));
            let _ = remote::read_plain_answer("a.example", response);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// EDU bodies are applied (or refused) by a real server's services: no panic, and the server
    /// still answers after all of them.
    #[test]
    fn edus_are_answered_without_panic(
        kind in prop::sample::select(vec!["m.typing", "m.receipt", "m.presence", "m.direct_to_device", "m.device_list_update", "m.signing_key_update", "m.other"]),
        content in arb_json(),
    ) {
        thread_local! {
            static SERVICES: (std::sync::Arc<Services>, tempfile::TempDir) = services();
        }
        SERVICES.with(|(s, _)| {
            let origin: OwnedServerName = "a.example".try_into().unwrap();
            let _ = incoming::edus::apply(s, &origin, &json!({ "edu_type": kind, "content": content }));
            let _ = incoming::edus::apply(s, &origin, &content);
            assert!(s.timeline.room_version(ruma::room_id!("!nowhere:b.example")).is_ok());
        });
    }
}
