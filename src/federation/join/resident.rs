//! The resident server's side of joins and leaves: `make_join`/`make_leave` answer an unsigned
//! template built on the current state; `send_join`/`send_leave` check the signed event, append
//! it through the timeline's persist path (forwarded to the other servers of the room) and, for
//! joins, answer the state before the event with its auth chain.

use std::sync::Arc;

use ruma::{
    CanonicalJsonObject, EventId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, RoomVersionId,
    ServerName, events::StateEventType,
};
use serde_json::{Value, json, value::RawValue};

use crate::{
    error::{Error, Result},
    federation::incoming::{pdu_checks, persist, state_at},
    services::{
        Services,
        rooms::{
            event_by_id, events_by_short, federation_events_by_short, membership::Membership,
            restricted, version,
        },
        timeline::{
            StoredEvent,
            append::{Forward, NewEvent, Target, authorise, build_fields},
            federation_json::{self, FederationPdu},
            pdu::Pdu,
        },
    },
};

/// 400 M_INCOMPATIBLE_ROOM_VERSION, naming the room's version.
pub fn incompatible(version: &RoomVersionId) -> Error {
    Error::new(
        http::StatusCode::BAD_REQUEST,
        "M_INCOMPATIBLE_ROOM_VERSION",
        "Your server does not support this room's version",
    )
    .with("room_version", json!(version.as_str()))
}

/// `make_join` / `make_leave`: the template of `user`'s membership event.
pub fn make_membership(
    s: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    user: &OwnedUserId,
    membership: &str,
    supported: Option<&[String]>,
) -> Result<Value> {
    let version = s
        .timeline
        .room_version(room_id)?
        .ok_or_else(|| Error::not_found("Unknown room"))?;
    if let Some(supported) = supported {
        // Without `ver` the joining server supports version 1 only.
        let ok = if supported.is_empty() {
            version.as_str() == "1"
        } else {
            supported.iter().any(|v| v == version.as_str())
        };
        if !ok {
            return Err(incompatible(&version));
        }
    }
    if user.server_name() != origin {
        return Err(Error::forbidden(
            "The user does not belong to the requesting server",
        ));
    }
    crate::federation::acl::check(s, room_id, origin)?;
    if membership == "join" || membership == "knock" {
        crate::services::partial_state::refuse_while_partial(s, room_id)?;
    }
    let short_room = crate::services::rooms::short_room(s, room_id)?;
    if s.membership
        .members(short_room, Membership::Join)?
        .iter()
        .all(|u| u.server_name() != s.globals.server_name())
    {
        return Err(Error::not_found("This server is not in the room"));
    }
    let rules = version::rules(&version)?;
    let lock = s.timeline.room_lock(room_id);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut content = json!({ "membership": membership });
    if membership == "join"
        && let restricted::JoinGrant::Via(authoriser) = restricted::grant(s, room_id, user)?
    {
        content["join_authorised_via_users_server"] = json!(authoriser);
    }
    let new = NewEvent::state(StateEventType::RoomMember, user.as_str(), content);
    let built = build_fields(s, &Target::Room(room_id), &rules, Some(room_id), user, &new)?;
    let placeholder = EventId::parse("$template").map_err(|_| Error::internal("bad id"))?;
    let pdu = Pdu::from_canonical(&built.object, &placeholder, room_id)?;
    let state = s.state.load(built.before)?;
    authorise(s, &rules, &pdu, &state)?;
    Ok(json!({ "event": built.object, "room_version": version.as_str() }))
}

/// `send_join` / `send_leave`: checks and appends the signed membership event. Returns its id.
pub async fn send_membership(
    services: &Arc<Services>,
    origin: &ServerName,
    room_id: &OwnedRoomId,
    event_id: &OwnedEventId,
    raw: &Value,
    membership: &str,
) -> Result<OwnedEventId> {
    let object: CanonicalJsonObject = serde_json::from_value(raw.clone())
        .map_err(|_| Error::bad_json("The event is not a JSON object"))?;
    let (room, o) = (room_id.clone(), origin.to_owned());
    let needs_full_state = membership != "leave";
    let version = services
        .run(move |s| {
            let version = s
                .timeline
                .room_version(&room)?
                .ok_or_else(|| Error::not_found("Unknown room"))?;
            crate::federation::acl::check(s, &room, &o)?;
            // A room we left is a stale copy: we are no resident of it (as `make_membership`).
            if !crate::federation::join::remote::has_local_member(s, &room)? {
                return Err(Error::not_found("This server is not in the room"));
            }
            if needs_full_state {
                crate::services::partial_state::refuse_while_partial(s, &room)?;
            }
            Ok(version)
        })
        .await?;
    if pdu_checks::room_id_of(&object)? != *room_id {
        return Err(Error::bad_json("The event is for another room"));
    }
    let object = if membership == "join" {
        co_sign_restricted_join(services, room_id, &version, object).await?
    } else {
        object
    };
    let checked = pdu_checks::check_pdu(services, object, room_id.clone(), version).await?;
    if checked.event_id != *event_id {
        return Err(Error::bad_json("The event id does not match the event"));
    }
    let pdu = &checked.pdu;
    if pdu.kind != ruma::events::TimelineEventType::RoomMember
        || pdu.state_key.as_deref() != Some(pdu.sender.as_str())
        || pdu.membership().as_deref() != Some(membership)
    {
        return Err(Error::bad_json(format!(
            "Not a {membership} event of its sender"
        )));
    }
    if pdu.sender.server_name() != origin {
        return Err(Error::forbidden(
            "The sender does not belong to the requesting server",
        ));
    }
    let id = checked.event_id.clone();
    let except = origin.to_owned();
    services
        .run(move |s| persist::append_remote(s, checked, Forward::AllExcept(Some(except)), true))
        .await?;
    Ok(id)
}

/// A join naming one of our users in `join_authorised_via_users_server` (a restricted join we
/// vouch for): checked (the sender may join through that user) and signed by this server, as the
/// authorization rules require; other joins are left as they are.
async fn co_sign_restricted_join(
    services: &Arc<Services>,
    room_id: &OwnedRoomId,
    version: &RoomVersionId,
    mut object: CanonicalJsonObject,
) -> Result<CanonicalJsonObject> {
    let content = match object.get("content") {
        Some(ruma::CanonicalJsonValue::Object(c)) => c,
        _ => return Ok(object),
    };
    let Some(authoriser) = content
        .get("join_authorised_via_users_server")
        .and_then(|v| v.as_str())
    else {
        return Ok(object);
    };
    let authoriser = OwnedUserId::try_from(authoriser)
        .map_err(|_| Error::bad_json("Invalid join_authorised_via_users_server"))?;
    if authoriser.server_name() != services.globals.server_name() {
        return Ok(object);
    }
    let sender = object
        .get("state_key")
        .and_then(|v| v.as_str())
        .and_then(|u| OwnedUserId::try_from(u).ok())
        .ok_or_else(|| Error::bad_json("The join has no valid state_key"))?;
    let (room, version) = (room_id.clone(), version.clone());
    services
        .run(move |s| {
            restricted::check_authoriser(s, &room, &sender, &authoriser)?;
            let rules = version::rules(&version)?;
            ruma::signatures::sign_event(
                s.globals.server_name().as_str(),
                &s.globals.keypair,
                &mut object,
                &rules.redaction,
            )
            .map_err(|e| Error::bad_json(format!("cannot sign the join: {e}")))?;
            Ok(object)
        })
        .await
}

/// The answer of `send_join`: the state before the join event and the auth chain of it and of
/// the state answered, as PDUs. With `omit_members` (v2), the `m.room.member` events are left out
/// of `state` except those of the room's heroes when it has neither `m.room.name` nor
/// `m.room.canonical_alias` (the first five joined, then invited, members other than the joining
/// user, as our `/sync` summary picks them), and the events answered in `state` are not repeated
/// in `auth_chain`; member events the auth chain needs stay in it. `servers_in_room`: the servers
/// with joined members in the state before the join.
pub fn join_answer(
    s: &Services,
    room_id: &RoomId,
    event_id: &EventId,
    omit_members: bool,
) -> Result<Box<RawValue>> {
    let event =
        event_by_id(s, event_id)?.ok_or_else(|| Error::internal("join event not stored"))?;
    let state = s.state.load(event.meta.state_before)?;
    // The member events are read only when they are answered (a big room's members are most of
    // its state): the state keys say which entries are members, and whether the room is named.
    let mut others = Vec::new();
    let mut member_shorts = Vec::new();
    let mut named = false;
    for (key, short) in state.iter() {
        match s.short.statekey_of(*key)?.0 {
            StateEventType::RoomMember => member_shorts.push(*short),
            kind => {
                named |= matches!(
                    kind,
                    StateEventType::RoomName | StateEventType::RoomCanonicalAlias
                );
                others.push(*short);
            }
        }
    }
    let mut members = Vec::new();
    if !omit_members || !named {
        members = events_by_short(s, &member_shorts, room_id)?
            .into_iter()
            .flatten()
            .collect();
    }
    let mut servers = std::collections::BTreeSet::new();
    if omit_members && named {
        // The members were not read: the servers of the room's joined members, from the
        // membership index.
        let short_room = crate::services::rooms::short_room(s, room_id)?;
        for server in crate::federation::sender::servers_in_room(s, short_room)?.iter() {
            servers.insert(server.to_string());
        }
    }
    for m in &members {
        if m.pdu.membership().as_deref() == Some("join")
            && let Some(user) = m
                .pdu
                .state_key
                .as_deref()
                .and_then(|k| <&ruma::UserId>::try_from(k).ok())
        {
            servers.insert(user.server_name().to_string());
        }
    }
    servers.insert(s.globals.server_name().to_string());
    let kept_members = match (omit_members, named) {
        (false, _) => members,
        (true, true) => Vec::new(),
        (true, false) => heroes(&members, &event.pdu.sender),
    };
    // The other state events as stored (no tree built), then the members kept.
    let mut answered: Vec<FederationPdu> = federation_events_by_short(s, &others, room_id)?
        .into_iter()
        .flatten()
        .collect();
    for m in &kept_members {
        answered.push(federation_json::from_event(m)?);
    }
    let chain = state_at::auth_chain_beyond(s, &answered, &event.pdu.auth_events)?;
    let answer = JoinAnswer {
        state: answered.iter().map(|e| &*e.json).collect(),
        auth_chain: chain.iter().map(|e| &e.json).collect(),
        event: &event.json,
        members_omitted: omit_members,
        servers_in_room: servers.into_iter().collect(),
    };
    serde_json::value::to_raw_value(&answer).map_err(|e| Error::internal(e.to_string()))
}

/// The body of a `send_join` answer, written without building a tree.
#[derive(serde::Serialize)]
struct JoinAnswer<'a> {
    state: Vec<&'a RawValue>,
    auth_chain: Vec<&'a CanonicalJsonObject>,
    event: &'a CanonicalJsonObject,
    members_omitted: bool,
    servers_in_room: Vec<String>,
}

/// The member events of the heroes among `members`: up to five joined, then invited, users other
/// than `joining`, by user id.
fn heroes(members: &[Arc<StoredEvent>], joining: &ruma::UserId) -> Vec<Arc<StoredEvent>> {
    let mut picked = Vec::new();
    for wanted in ["join", "invite"] {
        let mut of_kind: Vec<&Arc<StoredEvent>> = members
            .iter()
            .filter(|m| {
                m.pdu.membership().as_deref() == Some(wanted)
                    && m.pdu.state_key.as_deref() != Some(joining.as_str())
            })
            .collect();
        of_kind.sort_by(|a, b| a.pdu.state_key.cmp(&b.pdu.state_key));
        picked.extend(of_kind.into_iter().cloned());
    }
    picked.truncate(5);
    picked
}

/// The stored PDUs of some events (those we have).
pub fn pdus_of<'a>(
    s: &Services,
    ids: impl Iterator<Item = &'a OwnedEventId>,
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(e) = event_by_id(s, id)? {
            out.push(serde_json::to_value(&e.json).unwrap_or(Value::Null));
        }
    }
    Ok(out)
}

/// The answer of `send_knock`: the stripped state of the room for the knocking user.
pub fn knock_answer(s: &Services, room_id: &RoomId, event_id: &EventId) -> Result<Value> {
    let event =
        event_by_id(s, event_id)?.ok_or_else(|| Error::internal("knock event not stored"))?;
    let mut state = crate::federation::invite::invite_room_state(s, room_id, &event.pdu.sender)?;
    for e in &mut state {
        if let Some(o) = e.as_object_mut() {
            o.retain(|k, _| matches!(k.as_str(), "type" | "state_key" | "sender" | "content"));
        }
    }
    Ok(json!({ "knock_room_state": state }))
}
