//! The checks on a PDU received from another server, in the spec's order: format for its room
//! version and size, event id, signatures of the servers that must sign it (content hash
//! mismatch: redacted), and authorization against its own `auth_events`. The checks against the
//! state before the event and the current state (soft fail) are done when it is appended
//! (`incoming::persist`).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedEventId, OwnedRoomId, OwnedServerName,
    RoomVersionId,
    canonical_json::redact,
    events::StateEventType,
    room_version_rules::{EventIdFormatVersion, RoomVersionRules},
    serde::Base64,
    signatures::{
        PublicKeyMap, Verified, reference_hash, required_server_signatures_to_verify_event,
        verify_event,
    },
    state_res,
};

use crate::{
    error::{Error, Result},
    federation::remote_keys,
    services::{
        Services,
        rooms::event_by_id,
        timeline::{
            append::MAX_PDU_BYTES,
            pdu::{Pdu, json_in_room},
        },
    },
};

/// A PDU that passed the checks that need no room state.
#[derive(Debug, Clone)]
pub struct CheckedPdu {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub version: RoomVersionId,
    /// The event as it is stored: redacted if its content hash did not match, without `unsigned`.
    pub object: CanonicalJsonObject,
    pub pdu: Pdu,
}

/// The room id a PDU claims (v12 create events have none).
pub fn room_id_of(object: &CanonicalJsonObject) -> Result<OwnedRoomId> {
    object
        .get("room_id")
        .and_then(|v| v.as_str())
        .and_then(|r| OwnedRoomId::try_from(r).ok())
        .ok_or_else(|| Error::bad_json("PDU has no valid room_id"))
}

/// The event id of a PDU: its `event_id` field (room versions 1 and 2) or its reference hash.
pub fn event_id_of(object: &CanonicalJsonObject, rules: &RoomVersionRules) -> Result<OwnedEventId> {
    if matches!(rules.event_id_format, EventIdFormatVersion::V1) {
        return object
            .get("event_id")
            .and_then(|v| v.as_str())
            .and_then(|id| OwnedEventId::try_from(id).ok())
            .ok_or_else(|| Error::bad_json("PDU has no valid event_id"));
    }
    let hash = reference_hash(object, rules).map_err(|e| Error::bad_json(e.to_string()))?;
    OwnedEventId::try_from(format!("${hash}")).map_err(|_| Error::bad_json("bad event id"))
}

/// Size and format for the room version (pure).
pub fn check_format(object: &CanonicalJsonObject, rules: &RoomVersionRules) -> Result<()> {
    let size = serde_json::to_vec(object)
        .map_err(|e| Error::bad_json(e.to_string()))?
        .len();
    if size > MAX_PDU_BYTES {
        return Err(Error::too_large("PDU is larger than 65536 bytes"));
    }
    state_res::check_pdu_format(object, &rules.event_format)
        .map_err(|e| Error::bad_json(format!("invalid PDU: {e}")))
}

/// The servers whose signatures the event needs.
pub fn required_servers(
    object: &CanonicalJsonObject,
    rules: &RoomVersionRules,
) -> Result<BTreeSet<OwnedServerName>> {
    required_server_signatures_to_verify_event(object, &rules.signatures)
        .map_err(|e| Error::bad_json(e.to_string()))
}

/// Checks the signatures with `keys`; a content hash mismatch gives the redacted event (pure).
pub fn verify(
    object: CanonicalJsonObject,
    keys: &PublicKeyMap,
    rules: &RoomVersionRules,
) -> Result<CanonicalJsonObject> {
    match verify_event(keys, &object, rules) {
        Ok(Verified::All) => Ok(object),
        Ok(Verified::Signatures) => {
            redact(object, &rules.redaction, None).map_err(|e| Error::bad_json(e.to_string()))
        }
        Err(e) => Err(Error::forbidden(format!("bad event signature: {e}"))),
    }
}

/// Checks that `server` signed the event (over its redacted form), whatever the room version
/// requires: a co-signature, such as the invitee server's on an invite (pure).
pub fn verify_server_signature(
    object: &CanonicalJsonObject,
    server: &str,
    keys: &PublicKeyMap,
    rules: &RoomVersionRules,
) -> Result<()> {
    let mut redacted = redact(object.clone(), &rules.redaction, None)
        .map_err(|e| Error::bad_json(e.to_string()))?;
    let theirs = match object.get("signatures") {
        Some(CanonicalJsonValue::Object(all)) => all.get(server).cloned(),
        _ => None,
    }
    .ok_or_else(|| Error::forbidden(format!("the event is not signed by {server}")))?;
    let mut only = CanonicalJsonObject::new();
    only.insert(server.to_owned(), theirs);
    redacted.insert("signatures".into(), CanonicalJsonValue::Object(only));
    ruma::signatures::verify_json(keys, &redacted)
        .map_err(|e| Error::forbidden(format!("bad signature of {server}: {e}")))
}

/// The public keys of `servers` valid at `ts`, fetched when not cached.
pub async fn keys_for_servers(
    services: &Arc<Services>,
    servers: &BTreeSet<OwnedServerName>,
    ts: u64,
) -> Result<PublicKeyMap> {
    let mut map = PublicKeyMap::new();
    for server in servers {
        let keys = remote_keys::verify_keys_for(services, server, ts).await?;
        let mut set = BTreeMap::new();
        for (id, record) in keys {
            if let Ok(key) = Base64::parse(&record.key) {
                set.insert(id, key);
            }
        }
        map.insert(server.to_string(), set);
    }
    Ok(map)
}

/// Parses, checks the format and the signatures of a PDU of a room of version `version`; a PDU
/// of another room than `room_id` is refused.
pub async fn check_pdu(
    services: &Arc<Services>,
    object: CanonicalJsonObject,
    room_id: OwnedRoomId,
    version: RoomVersionId,
) -> Result<CheckedPdu> {
    prepare_pdu(services, object, room_id, version)
        .await?
        .finish()
}

/// A PDU whose format, ID and room are checked and whose signing keys are at hand: what is left
/// of [`check_pdu`] is CPU work ([`PreparedPdu::finish`]), which a caller checking many events
/// runs off the async workers.
pub struct PreparedPdu {
    event_id: OwnedEventId,
    room_id: OwnedRoomId,
    version: RoomVersionId,
    rules: RoomVersionRules,
    object: CanonicalJsonObject,
    keys: PublicKeyMap,
}

impl PreparedPdu {
    pub fn event_id(&self) -> &OwnedEventId {
        &self.event_id
    }

    /// Checks the signatures (a content hash mismatch gives the redacted event) and parses it.
    pub fn finish(self) -> Result<CheckedPdu> {
        let object = verify(self.object, &self.keys, &self.rules)?;
        let pdu = Pdu::from_canonical(&object, &self.event_id, &self.room_id)?;
        Ok(CheckedPdu {
            event_id: self.event_id,
            room_id: self.room_id,
            version: self.version,
            object,
            pdu,
        })
    }
}

/// The first part of [`check_pdu`]: format, event ID, room, and the keys of the servers that
/// must have signed it (fetched when not known).
pub async fn prepare_pdu(
    services: &Arc<Services>,
    mut object: CanonicalJsonObject,
    room_id: OwnedRoomId,
    version: RoomVersionId,
) -> Result<PreparedPdu> {
    let rules = crate::services::rooms::version::rules(&version)?;
    object.remove("unsigned");
    check_format(&object, &rules)?;
    let event_id = event_id_of(&object, &rules)?;
    if !json_in_room(&object, &event_id, &room_id) {
        return Err(Error::forbidden(format!(
            "event {event_id} is not an event of room {room_id}"
        )));
    }
    let servers = required_servers(&object, &rules)?;
    let ts = object
        .get("origin_server_ts")
        .and_then(|v| v.as_integer())
        .map_or(0, |t| i64::from(t).max(0) as u64);
    // Keys are checked for validity at the event's time only where the room version requires it.
    let at = if rules.enforce_key_validity { ts } else { 0 };
    let keys = remote_keys::keys_for_event(services, &object, &servers, at).await?;
    Ok(PreparedPdu {
        event_id,
        room_id,
        version,
        rules,
        object,
        keys,
    })
}

/// Authorises an event against its own `auth_events` (which must be stored, in the same room).
pub fn check_auth_events(s: &Services, pdu: &Pdu, rules: &RoomVersionRules) -> Result<()> {
    check_auth_events_with(pdu, rules, |id| {
        Ok(event_by_id(s, id)?.map(|e| e.pdu.clone()))
    })
}

/// Authorises an event against its own `auth_events`, found by `lookup` (pure given `lookup`).
pub fn check_auth_events_with(
    pdu: &Pdu,
    rules: &RoomVersionRules,
    lookup: impl Fn(&ruma::EventId) -> Result<Option<Pdu>>,
) -> Result<()> {
    if pdu.kind == ruma::events::TimelineEventType::RoomCreate {
        return state_res::check_state_independent_auth_rules::<Pdu>(
            &rules.authorization,
            pdu,
            |_| None,
        )
        .map_err(|e| Error::forbidden(format!("invalid create event: {e}")));
    }
    let mut by_key: BTreeMap<(StateEventType, String), Pdu> = BTreeMap::new();
    for id in &pdu.auth_events {
        let event =
            lookup(id)?.ok_or_else(|| Error::forbidden(format!("unknown auth event {id}")))?;
        if event.room_id != pdu.room_id {
            return Err(Error::forbidden("auth event of another room"));
        }
        let Some(state_key) = event.state_key.clone() else {
            return Err(Error::forbidden("auth event is not a state event"));
        };
        let key = (StateEventType::from(event.kind.to_string()), state_key);
        if by_key.insert(key, event).is_some() {
            return Err(Error::forbidden("duplicate auth event"));
        }
    }
    // Since room 12 the create event is named by the room id, not listed in auth_events.
    if rules.authorization.room_create_event_id_as_room_id {
        let create_id = OwnedEventId::try_from(format!("${}", &pdu.room_id.as_str()[1..]))
            .map_err(|_| Error::bad_json("bad room id"))?;
        let create = lookup(&create_id)?.ok_or_else(|| Error::forbidden("unknown create event"))?;
        by_key
            .entry((StateEventType::RoomCreate, String::new()))
            .or_insert(create);
    }
    let fetch_id = |id: &OwnedEventId| by_key.values().find(|e| e.event_id == *id).cloned();
    state_res::check_state_independent_auth_rules(&rules.authorization, pdu, |id| {
        fetch_id(&id.to_owned())
    })
    .map_err(|e| Error::forbidden(format!("event rejected by its auth events: {e}")))?;
    let fetch = |kind: &StateEventType, state_key: &str| {
        by_key.get(&(kind.clone(), state_key.to_owned())).cloned()
    };
    state_res::check_state_dependent_auth_rules(&rules.authorization, pdu, fetch)
        .map_err(|e| Error::forbidden(format!("event rejected by its auth events: {e}")))
}

/// The events of a peer's state answer (`send_join`, `state`) that [`authorised_subset`] keeps,
/// split again into the state and its auth chain.
pub fn authorised_state(
    s: &Services,
    state: Vec<CheckedPdu>,
    auth_chain: Vec<CheckedPdu>,
    rules: &RoomVersionRules,
) -> (Vec<CheckedPdu>, Vec<CheckedPdu>) {
    let state_ids: std::collections::HashSet<OwnedEventId> =
        state.iter().map(|e| e.event_id.clone()).collect();
    authorised_subset(s, auth_chain.into_iter().chain(state).collect(), rules)
        .into_iter()
        .partition(|e| state_ids.contains(&e.event_id))
}

/// Keeps the events (state and auth chain answered by a peer) that pass the authorization rules
/// against their own auth events, checked in depth order among themselves and the stored events.
pub fn authorised_subset(
    s: &Services,
    events: Vec<CheckedPdu>,
    rules: &RoomVersionRules,
) -> Vec<CheckedPdu> {
    let mut events = events;
    events.sort_by_key(|e| u64::from(e.pdu.depth));
    let mut accepted: std::collections::HashMap<OwnedEventId, Pdu> =
        std::collections::HashMap::new();
    let mut out = Vec::new();
    for event in events {
        if accepted.contains_key(&event.event_id) {
            continue;
        }
        let lookup = |id: &ruma::EventId| -> Result<Option<Pdu>> {
            if let Some(p) = accepted.get(id) {
                return Ok(Some(p.clone()));
            }
            Ok(event_by_id(s, id)?.map(|e| e.pdu.clone()))
        };
        match check_auth_events_with(&event.pdu, rules, lookup) {
            Ok(()) => {
                accepted.insert(event.event_id.clone(), event.pdu.clone());
                out.push(event);
            }
            Err(e) => tracing::info!(
                "event {} of a peer's state rejected: {}",
                event.event_id,
                e.message
            ),
        }
    }
    out
}

/// The JSON object of a raw PDU.
pub fn parse_object(raw: &serde_json::value::RawValue) -> Result<CanonicalJsonObject> {
    match serde_json::from_str::<CanonicalJsonValue>(raw.get()) {
        Ok(CanonicalJsonValue::Object(o)) => Ok(o),
        _ => Err(Error::bad_json("PDU is not a canonical JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::signatures::{Ed25519KeyPair, hash_and_sign_event};

    fn signed_event(rules: &RoomVersionRules) -> (CanonicalJsonObject, PublicKeyMap) {
        let der = Ed25519KeyPair::generate();
        let key = Ed25519KeyPair::from_der(&der, "k1".into()).unwrap();
        let mut object: CanonicalJsonObject = serde_json::from_value(serde_json::json!({
            "room_id": "!room:a.example", "sender": "@u:a.example", "type": "m.room.message",
            "content": {"body": "hi"}, "origin_server_ts": 1, "depth": 3,
            "prev_events": ["$p"], "auth_events": ["$a"],
        }))
        .unwrap();
        hash_and_sign_event("a.example", &key, &mut object, &rules.redaction).unwrap();
        let mut keys = PublicKeyMap::new();
        let public = Base64::new(key.public_key().to_vec());
        keys.insert(
            "a.example".into(),
            [("ed25519:k1".to_owned(), public)].into(),
        );
        (object, keys)
    }

    #[test]
    fn good_signature_passes_and_tampering_is_refused() {
        let rules = RoomVersionRules::V12;
        let (object, keys) = signed_event(&rules);
        assert!(check_format(&object, &rules).is_ok());
        assert_eq!(verify(object.clone(), &keys, &rules).unwrap(), object);
        let mut tampered = object.clone();
        tampered.insert(
            "sender".into(),
            CanonicalJsonValue::String("@other:a.example".into()),
        );
        assert_eq!(
            verify(tampered, &keys, &rules).unwrap_err().errcode,
            "M_FORBIDDEN"
        );
    }

    #[test]
    fn a_co_signature_is_checked_alone() {
        let rules = RoomVersionRules::V12;
        let (mut object, keys) = signed_event(&rules);
        assert!(verify_server_signature(&object, "a.example", &keys, &rules).is_ok());
        assert_eq!(
            verify_server_signature(&object, "b.example", &keys, &rules)
                .unwrap_err()
                .errcode,
            "M_FORBIDDEN"
        );
        object.insert("depth".into(), CanonicalJsonValue::Integer(4u32.into()));
        assert!(verify_server_signature(&object, "a.example", &keys, &rules).is_err());
    }

    fn pdu(value: serde_json::Value, id: &str) -> Pdu {
        let object: CanonicalJsonObject = serde_json::from_value(value).unwrap();
        Pdu::from_canonical(
            &object,
            &OwnedEventId::try_from(id).unwrap(),
            &OwnedRoomId::try_from("!r:a.example").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn auth_against_own_auth_events() {
        let rules = RoomVersionRules::V11;
        let create = pdu(
            serde_json::json!({ "room_id": "!r:a.example", "sender": "@u:a.example", "type": "m.room.create", "state_key": "",
                "content": { "room_version": "11" }, "origin_server_ts": 1, "depth": 1, "prev_events": [], "auth_events": [] }),
            "$create",
        );
        assert!(check_auth_events_with(&create, &rules, |_| Ok(None)).is_ok());
        // A message of someone who is not a member, citing only the create event: rejected.
        let message = pdu(
            serde_json::json!({ "room_id": "!r:a.example", "sender": "@x:b.example", "type": "m.room.message",
                "content": { "body": "hi" }, "origin_server_ts": 2, "depth": 2, "prev_events": ["$create"], "auth_events": ["$create"] }),
            "$m",
        );
        let lookup = |id: &ruma::EventId| Ok((id == "$create").then(|| create.clone()));
        assert_eq!(
            check_auth_events_with(&message, &rules, lookup)
                .unwrap_err()
                .errcode,
            "M_FORBIDDEN"
        );
        // An auth event nobody has: rejected.
        let orphan = pdu(
            serde_json::json!({ "room_id": "!r:a.example", "sender": "@u:a.example", "type": "m.room.message",
                "content": {}, "origin_server_ts": 2, "depth": 2, "prev_events": [], "auth_events": ["$nowhere"] }),
            "$o",
        );
        assert!(
            check_auth_events_with(&orphan, &rules, |_| Ok(None))
                .unwrap_err()
                .message
                .contains("unknown auth event")
        );
    }

    #[test]
    fn content_hash_mismatch_redacts() {
        let rules = RoomVersionRules::V12;
        let (mut object, keys) = signed_event(&rules);
        object.insert(
            "content".into(),
            serde_json::from_value(serde_json::json!({"body": "changed"})).unwrap(),
        );
        let verified = verify(object, &keys, &rules).unwrap();
        assert_eq!(
            verified.get("content"),
            Some(&CanonicalJsonValue::Object(Default::default()))
        );
    }

    #[test]
    fn unknown_server_key_is_refused() {
        let rules = RoomVersionRules::V11;
        let (object, _) = signed_event(&rules);
        assert!(verify(object, &PublicKeyMap::new(), &rules).is_err());
    }

    #[test]
    fn bad_format_is_refused() {
        let rules = RoomVersionRules::V12;
        let (mut object, _) = signed_event(&rules);
        object.remove("depth");
        assert!(check_format(&object, &rules).is_err());
        let (mut big, _) = signed_event(&rules);
        big.insert(
            "content".into(),
            CanonicalJsonValue::String("x".repeat(70_000)),
        );
        assert_eq!(
            check_format(&big, &rules).unwrap_err().errcode,
            "M_TOO_LARGE"
        );
    }

    #[test]
    fn event_id_is_the_reference_hash() {
        let rules = RoomVersionRules::V11;
        let (object, _) = signed_event(&rules);
        let id = event_id_of(&object, &rules).unwrap();
        assert!(id.as_str().starts_with('$') && !id.as_str().contains(':'));
    }
}
