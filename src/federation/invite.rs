//! Inviting a user of another server: the invite event is built and signed here, sent with
//! `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}` to the invitee's server, and the copy it
//! returns (with its signature) is appended through the remote-event path.

use std::sync::Arc;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId, events::StateEventType};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    federation::{
        incoming::{pdu_checks, persist},
        request::{answer_error, call, send_json},
    },
    services::{
        Services,
        rooms::{self, event_by_short, membership::Membership, version},
        timeline::append::{Forward, NewEvent, Target, authorise, build_fields, sign_built},
    },
    util::encode_segment,
};

/// The state shown to an invitee: create, join rules, name, avatar, canonical alias, encryption,
/// topic and the inviter's membership, as full PDUs (a superset of the stripped form).
pub fn invite_room_state(s: &Services, room_id: &RoomId, inviter: &UserId) -> Result<Vec<Value>> {
    let short = rooms::short_room(s, room_id)?;
    let state = s.state.current_state(short)?;
    let wanted = [
        (StateEventType::RoomCreate, String::new()),
        (StateEventType::RoomJoinRules, String::new()),
        (StateEventType::RoomName, String::new()),
        (StateEventType::RoomAvatar, String::new()),
        (StateEventType::RoomCanonicalAlias, String::new()),
        (StateEventType::RoomEncryption, String::new()),
        (StateEventType::RoomTopic, String::new()),
        (StateEventType::RoomMember, inviter.to_string()),
    ];
    let mut out = Vec::new();
    for (kind, key) in wanted {
        let Some(k) = s.short.statekey(&kind, &key)? else {
            continue;
        };
        let Some(short_event) = state.get(&k) else {
            continue;
        };
        if let Some(e) = event_by_short(s, *short_event, room_id)? {
            let mut v = serde_json::to_value(&e.json).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.remove("signatures");
                o.remove("hashes");
                o.insert("event_id".into(), json!(e.pdu.event_id));
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// Invites `invitee` (of another server) to `room_id` on behalf of `sender`.
pub async fn invite_remote(
    services: &Arc<Services>,
    room_id: OwnedRoomId,
    sender: OwnedUserId,
    invitee: OwnedUserId,
    reason: Option<String>,
) -> Result<()> {
    let mut content = json!({ "membership": "invite" });
    if let Some(reason) = reason {
        content["reason"] = json!(reason);
    }
    invite_remote_with(services, room_id, sender, invitee, content).await
}

/// Invites `invitee` (of another server) with the member event content given (a membership of
/// `invite`, and a reason or a third-party invite).
pub async fn invite_remote_with(
    services: &Arc<Services>,
    room_id: OwnedRoomId,
    sender: OwnedUserId,
    invitee: OwnedUserId,
    content: Value,
) -> Result<()> {
    let (room, inv) = (room_id.clone(), invitee.clone());
    let (object, event_id, version, stripped) = services
        .run(move |s| {
            let short = rooms::short_room(s, &room)?;
            if !s.membership.is_joined(short, &sender)? {
                return Err(Error::forbidden("You are not in this room"));
            }
            if s.membership.membership(short, &inv)? == Some(Membership::Join) {
                return Err(Error::forbidden("The user is already in the room"));
            }
            let version = s
                .timeline
                .room_version(&room)?
                .ok_or_else(|| Error::not_found("Unknown room"))?;
            let rules = version::rules(&version)?;
            let new = NewEvent::state(StateEventType::RoomMember, inv.as_str(), content);
            let lock = s.timeline.room_lock(&room);
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let built = build_fields(s, &Target::Room(&room), &rules, Some(&room), &sender, &new)?;
            let before = built.before;
            let (object, event_id, room_id) =
                sign_built(s, &rules, built.object, built.room_id_field)?;
            let pdu =
                crate::services::timeline::pdu::Pdu::from_canonical(&object, &event_id, &room_id)?;
            authorise(s, &rules, &pdu, &*s.state.load(before)?)?;
            let stripped = invite_room_state(s, &room, &sender)?;
            Ok((object, event_id, version, stripped))
        })
        .await?;
    let answer = send_invite(
        services, &invitee, &room_id, &event_id, &version, &object, stripped,
    )
    .await?;
    let signed: ruma::CanonicalJsonObject = answer
        .get("event")
        .cloned()
        .and_then(|e| serde_json::from_value(e).ok())
        .ok_or_else(|| {
            Error::new(
                http::StatusCode::BAD_GATEWAY,
                "M_UNKNOWN",
                "The invitee's server answered no event",
            )
        })?;
    let checked = pdu_checks::check_pdu(services, signed, room_id, version).await?;
    if checked.event_id != event_id {
        return Err(Error::new(
            http::StatusCode::BAD_GATEWAY,
            "M_UNKNOWN",
            "The invitee's server changed the invite",
        ));
    }
    // The invitee's server must have signed it too.
    let invitee_server = invitee.server_name().to_owned();
    let servers = [invitee_server.clone()].into_iter().collect();
    let keys = pdu_checks::keys_for_servers(services, &servers, crate::util::now_ms()).await?;
    let rules = version::rules(&checked.version)?;
    pdu_checks::verify_server_signature(&checked.object, invitee_server.as_str(), &keys, &rules)
        .map_err(|e| Error::new(http::StatusCode::BAD_GATEWAY, "M_UNKNOWN", e.message))?;
    services
        .run(move |s| persist::append_remote(s, checked, Forward::AllExcept(None), true))
        .await?;
    Ok(())
}

/// Whether an answer to a v2 invite means the invitee's server is older and the v1 API should be
/// tried: a 400 or 404 for a room of version 1 or 2, as the spec says (pure).
pub fn falls_back_to_v1(status: http::StatusCode, version: &ruma::RoomVersionId) -> bool {
    matches!(
        status,
        http::StatusCode::BAD_REQUEST | http::StatusCode::NOT_FOUND
    ) && matches!(version, ruma::RoomVersionId::V1 | ruma::RoomVersionId::V2)
}

/// Sends the invite with `v2/invite`, or with `v1/invite` when the peer does not take v2 (see
/// `falls_back_to_v1`); returns the answer's object (with `event`).
async fn send_invite(
    services: &Arc<Services>,
    invitee: &UserId,
    room_id: &RoomId,
    event_id: &ruma::EventId,
    version: &ruma::RoomVersionId,
    object: &ruma::CanonicalJsonObject,
    stripped: Vec<Value>,
) -> Result<Value> {
    let body =
        json!({ "event": object, "room_version": version.as_str(), "invite_room_state": stripped });
    let path = format!(
        "/_matrix/federation/v2/invite/{}/{}",
        encode_segment(room_id.as_str()),
        encode_segment(event_id.as_str())
    );
    let destination = invitee.server_name();
    let (status, answer) =
        send_json(services, destination, http::Method::PUT, &path, Some(&body)).await?;
    if !falls_back_to_v1(status, version) {
        if status.is_success() {
            return Ok(answer);
        }
        return Err(answer_error(destination, status, &answer));
    }
    let mut event = serde_json::to_value(object).map_err(|e| Error::internal(e.to_string()))?;
    event["unsigned"] = json!({ "invite_room_state": stripped_form(stripped) });
    let path = format!(
        "/_matrix/federation/v1/invite/{}/{}",
        encode_segment(room_id.as_str()),
        encode_segment(event_id.as_str())
    );
    let answer = call(
        services,
        destination,
        http::Method::PUT,
        &path,
        Some(&event),
    )
    .await?;
    // The v1 answer is `[200, {"event": …}]`.
    Ok(answer.get(1).cloned().unwrap_or(answer))
}

/// Stripped state events (type, state_key, sender, content) of full ones.
pub fn stripped_form(events: Vec<Value>) -> Vec<Value> {
    events
        .into_iter()
        .map(|mut e| {
            if let Some(o) = e.as_object_mut() {
                o.retain(|k, _| matches!(k.as_str(), "type" | "state_key" | "sender" | "content"));
            }
            e
        })
        .collect()
}

/// `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`: checks the invite of one of our users,
/// signs it, stores it (with the stripped state, shown by /sync) and answers the signed event.
pub async fn receive_invite(
    services: &Arc<Services>,
    origin: &ruma::ServerName,
    room_id: &OwnedRoomId,
    event_id: &ruma::OwnedEventId,
    body: &Value,
) -> Result<Value> {
    let version = body
        .get("room_version")
        .and_then(Value::as_str)
        .and_then(|v| ruma::RoomVersionId::try_from(v).ok())
        .ok_or_else(|| Error::bad_json("room_version is missing"))?;
    let object: ruma::CanonicalJsonObject = body
        .get("event")
        .cloned()
        .and_then(|e| serde_json::from_value(e).ok())
        .ok_or_else(|| Error::bad_json("event is missing"))?;
    let stripped = body.get("invite_room_state").cloned().unwrap_or(json!([]));
    let signed = receive_invite_event(
        services, origin, room_id, event_id, version, object, stripped,
    )
    .await?;
    Ok(json!({ "event": signed }))
}

/// `PUT /_matrix/federation/v1/invite/{roomId}/{eventId}`: the body is the invite event itself,
/// its stripped state in `unsigned.invite_room_state`; the room version is not given, so it is
/// the version of the room when we are in it, else "1" (the spec: v1 invites are for rooms of
/// version 1 or 2, which have the same event format). Answers `[200, {"event": …}]`.
pub async fn receive_invite_v1(
    services: &Arc<Services>,
    origin: &ruma::ServerName,
    room_id: &OwnedRoomId,
    event_id: &ruma::OwnedEventId,
    body: &Value,
) -> Result<Value> {
    let object: ruma::CanonicalJsonObject = serde_json::from_value(body.clone())
        .map_err(|_| Error::bad_json("The invite is not a JSON object"))?;
    let stripped = body
        .pointer("/unsigned/invite_room_state")
        .cloned()
        .unwrap_or(json!([]));
    let room = room_id.clone();
    let known = services
        .run(move |s| s.timeline.room_version(&room))
        .await?;
    let version = known.unwrap_or(ruma::RoomVersionId::V1);
    let signed = receive_invite_event(
        services, origin, room_id, event_id, version, object, stripped,
    )
    .await?;
    Ok(json!([200, { "event": signed }]))
}

/// Checks, signs and stores an invite of one of our users; returns the event with our signature.
async fn receive_invite_event(
    services: &Arc<Services>,
    origin: &ruma::ServerName,
    room_id: &OwnedRoomId,
    event_id: &ruma::OwnedEventId,
    version: ruma::RoomVersionId,
    mut object: ruma::CanonicalJsonObject,
    stripped: Value,
) -> Result<ruma::CanonicalJsonObject> {
    if !version::is_supported(&version) {
        return Err(crate::federation::join::resident::incompatible(&version));
    }
    // A room we know keeps the version we stored: a peer never changes it.
    let room = room_id.clone();
    let stored = services
        .run(move |s| s.timeline.room_version(&room))
        .await?;
    crate::federation::join::remote::same_version(stored.as_ref(), &version)?;
    let rules = version::rules(&version)?;
    object.remove("unsigned");
    if pdu_checks::room_id_of(&object)? != *room_id {
        return Err(Error::bad_json("The event is for another room"));
    }
    let checked = pdu_checks::check_pdu(services, object, room_id.clone(), version.clone()).await?;
    if checked.event_id != *event_id {
        return Err(Error::bad_json("The event id does not match the event"));
    }
    let pdu = &checked.pdu;
    let invitee = pdu
        .state_key
        .as_deref()
        .and_then(|k| UserId::parse(k).ok())
        .ok_or_else(|| Error::bad_json("Not an invite"))?;
    if pdu.kind != ruma::events::TimelineEventType::RoomMember
        || pdu.membership().as_deref() != Some("invite")
    {
        return Err(Error::bad_json("Not an invite"));
    }
    if pdu.sender.server_name() != origin {
        return Err(Error::forbidden(
            "The inviter does not belong to the requesting server",
        ));
    }
    if invitee.server_name() != services.globals.server_name() {
        return Err(Error::bad_json("The invitee is not a user of this server"));
    }
    let mut checked = checked;
    let invitee_owned = invitee.clone();
    services
        .run(move |s| {
            if !s.users.is_active(&invitee_owned)? {
                return Err(Error::not_found("Unknown user"));
            }
            if s.timeline.room_exists(&checked.room_id)? {
                crate::federation::acl::check(
                    s,
                    &checked.room_id,
                    checked.pdu.sender.server_name(),
                )?;
            }
            let server = s.globals.server_name().to_string();
            ruma::signatures::sign_event(
                &server,
                &s.globals.keypair,
                &mut checked.object,
                &rules.redaction,
            )
            .map_err(|e| Error::internal(e.to_string()))?;
            let signed = checked.object.clone();
            if crate::federation::join::remote::has_local_member(s, &checked.room_id)? {
                // We are in the room: the invite is a timeline event like any other (a room we
                // left is a stale copy: the invite is kept as for a room we do not know).
                persist::append_remote(s, checked, Forward::None, true)?;
            } else {
                let mut stored = checked;
                let mut unsigned = ruma::CanonicalJsonObject::new();
                if let Ok(v) = ruma::CanonicalJsonValue::try_from(stripped) {
                    unsigned.insert("invite_room_state".into(), v);
                }
                stored.object.insert(
                    "unsigned".into(),
                    ruma::CanonicalJsonValue::Object(unsigned),
                );
                crate::federation::join::outliers::store_membership(s, &stored)?;
            }
            Ok(signed)
        })
        .await
}

#[cfg(test)]
mod tests {
    use ruma::RoomVersionId;

    use super::falls_back_to_v1;

    #[test]
    fn v1_invites_are_tried_after_a_400_or_404_for_rooms_of_version_1_or_2_only() {
        use http::StatusCode as S;
        assert!(falls_back_to_v1(S::NOT_FOUND, &RoomVersionId::V1));
        assert!(falls_back_to_v1(S::BAD_REQUEST, &RoomVersionId::V2));
        assert!(!falls_back_to_v1(S::NOT_FOUND, &RoomVersionId::V3));
        assert!(!falls_back_to_v1(S::FORBIDDEN, &RoomVersionId::V1));
        assert!(!falls_back_to_v1(S::OK, &RoomVersionId::V1));
    }
}
