//! Joining (and leaving) a room of another server: `make_join` on a resident server, our join
//! event signed, `send_join`, then the returned state and auth chain checked and stored as
//! outliers, the room's state set from them, and the join appended through the timeline's persist
//! path. Leaving a room we are not in (rejecting an invite): `make_leave`/`send_leave`.

use std::sync::Arc;

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedRoomAliasId, OwnedRoomId, OwnedServerName,
    OwnedUserId, RoomVersionId,
};
use serde_json::{Value, json};

use super::{deferred_state, events_answer, outliers};
use crate::{
    error::{Error, Result},
    federation::{
        incoming::pdu_checks::{self, CheckedPdu},
        request::call,
    },
    services::{
        Services,
        rooms::{membership::Membership, version},
        timeline::{
            ROOMS,
            append::{Current, Forward, Persist, persist, sign_built},
        },
    },
    util::encode_segment,
};

/// The `ver=` query of every room version we support.
fn ver_query() -> String {
    version::SUPPORTED
        .iter()
        .map(|v| format!("ver={}", encode_segment(v.as_str())))
        .collect::<Vec<_>>()
        .join("&")
}

/// Asks `servers` in turn for a membership template; returns it with the version and the server.
async fn make_membership(
    services: &Arc<Services>,
    servers: &[OwnedServerName],
    room_id: &OwnedRoomId,
    user: &OwnedUserId,
    membership: &str,
) -> Result<(CanonicalJsonObject, RoomVersionId, OwnedServerName)> {
    let r = room_id.clone();
    let stored = services.run(move |s| s.timeline.room_version(&r)).await?;
    let mut last = Error::not_found("No server could be reached to join this room");
    for server in servers {
        if server == services.globals.server_name() {
            continue;
        }
        let mut path = format!(
            "/_matrix/federation/v1/make_{membership}/{}/{}",
            encode_segment(room_id.as_str()),
            encode_segment(user.as_str())
        );
        if membership == "join" || membership == "knock" {
            path = format!("{path}?{}", ver_query());
        }
        match call(services, server, http::Method::GET, &path, None).await {
            Ok(answer) => {
                let version = answer
                    .get("room_version")
                    .and_then(Value::as_str)
                    .unwrap_or("1");
                let version = RoomVersionId::try_from(version)
                    .map_err(|_| Error::bad_json("bad room version"))?;
                version::rules(&version)?;
                if let Err(e) = same_version(stored.as_ref(), &version) {
                    tracing::info!("make_{membership} on {server}: {}", e.message);
                    last = e;
                    continue;
                }
                let event = answer
                    .get("event")
                    .cloned()
                    .and_then(|e| serde_json::from_value::<CanonicalJsonObject>(e).ok())
                    .ok_or_else(|| Error::bad_json("make_join answered no event"))?;
                return Ok((event, version, server.clone()));
            }
            Err(e) => {
                tracing::info!("make_{membership} on {server}: {}", e.message);
                last = e;
            }
        }
    }
    Err(last)
}

/// A peer never changes the version of a room we hold: an answer, invite or event naming another
/// version than the stored one is refused (400 `M_INCOMPATIBLE_ROOM_VERSION`, with the stored version) (pure).
pub fn same_version(stored: Option<&RoomVersionId>, answered: &RoomVersionId) -> Result<()> {
    match stored {
        Some(stored) if stored != answered => Err(Error::new(
            http::StatusCode::BAD_REQUEST,
            "M_INCOMPATIBLE_ROOM_VERSION",
            format!("The room is of version {stored}, not {answered}"),
        )
        .with("room_version", json!(stored.as_str()))),
        _ => Ok(()),
    }
}

/// Whether a user of this server is joined to the room. A room we hold without one is a stale
/// copy: nobody sends us its events, so joining it again is a fresh join, and an invite to it is
/// kept like an invite to a room we do not know.
pub fn has_local_member(s: &Services, room_id: &ruma::RoomId) -> Result<bool> {
    let Some(short) = s.short.room(room_id)? else {
        return Ok(false);
    };
    Ok(s.membership
        .members(short, Membership::Join)?
        .iter()
        .any(|m| m.server_name() == s.globals.server_name()))
}

/// Signs a template: our timestamp, our content additions, our hashes and signature.
fn sign_template(
    s: &Services,
    mut event: CanonicalJsonObject,
    version: &RoomVersionId,
    room_id: &OwnedRoomId,
    user: &OwnedUserId,
    membership: &str,
) -> Result<(CanonicalJsonObject, ruma::OwnedEventId)> {
    let rules = version::rules(version)?;
    for field in ["signatures", "hashes", "unsigned", "event_id"] {
        event.remove(field);
    }
    event.insert(
        "origin_server_ts".into(),
        CanonicalJsonValue::Integer(ruma::Int::try_from(crate::util::now_ms()).unwrap_or_default()),
    );
    let mut content = json!({ "membership": membership });
    // A restricted join keeps the resident's member who authorises it.
    if let Some(CanonicalJsonValue::Object(template)) = event.get("content")
        && let Some(CanonicalJsonValue::String(via)) =
            template.get("join_authorised_via_users_server")
    {
        content["join_authorised_via_users_server"] = json!(via);
    }
    if membership == "join"
        && let Some(profile) = s.users.profile(user)?
    {
        if let Some(name) = profile.displayname {
            content["displayname"] = json!(name);
        }
        if let Some(avatar) = profile.avatar_url {
            content["avatar_url"] = json!(avatar);
        }
    }
    event.insert(
        "content".into(),
        CanonicalJsonValue::try_from(content).map_err(|e| Error::internal(e.to_string()))?,
    );
    if matches!(
        rules.event_id_format,
        ruma::room_version_rules::EventIdFormatVersion::V1
    ) {
        let id = format!(
            "${}:{}",
            crate::util::random_string(18),
            s.globals.server_name()
        );
        event.insert("event_id".into(), CanonicalJsonValue::String(id));
        event.insert(
            "origin".into(),
            CanonicalJsonValue::String(s.globals.server_name().to_string()),
        );
    }
    let (object, event_id, _) = sign_built(s, &rules, event, Some(room_id.clone()))?;
    Ok((object, event_id))
}

/// Checks the events of the array `field` of a peer's answer (`send_join`, `state`,
/// `event_auth`); events that fail are left out.
pub(crate) async fn check_field(
    services: &Arc<Services>,
    answer: &Value,
    field: &str,
    room_id: &OwnedRoomId,
    version: &RoomVersionId,
) -> Vec<CheckedPdu> {
    let objects = answer
        .get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| serde_json::from_value::<CanonicalJsonObject>(v.clone()).ok())
        .collect();
    check_all(services, objects, room_id, version).await
}

/// Checks the events of a peer's state answer; events that fail are left out. The signing keys
/// are fetched first; the signature checks of the whole answer (thousands of events in a big room)
/// then run off the async workers, as heavy work (`Services::run_heavy`).
pub(crate) async fn check_all(
    services: &Arc<Services>,
    events: Vec<CanonicalJsonObject>,
    room_id: &OwnedRoomId,
    version: &RoomVersionId,
) -> Vec<CheckedPdu> {
    let refused =
        |e: Error| tracing::info!("event of the joined room's state refused: {}", e.message);
    let mut prepared = Vec::new();
    for object in events {
        match pdu_checks::prepare_pdu(services, object, room_id.clone(), version.clone()).await {
            Ok(p) => prepared.push(p),
            Err(e) => refused(e),
        }
    }
    let (room, version) = (room_id.clone(), version.clone());
    let finished = services
        .run_heavy(move |s| {
            // An event we hold was checked when it was stored: our copy is taken, not checked
            // again (a resync repeats the events of the join; a room joined again, most of its
            // state).
            let ids: Vec<&ruma::EventId> = prepared.iter().map(|p| &**p.event_id()).collect();
            let ours = stored_copies(s, &ids, &room, &version)?;
            Ok(prepared
                .into_iter()
                .zip(ours)
                .map(|(p, ours)| ours.map_or_else(|| p.finish(), Ok))
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("checking the joined room's events: {}", e.message);
            Vec::new()
        });
    let mut out = Vec::with_capacity(finished.len());
    for checked in finished {
        match checked {
            Ok(c) => out.push(c),
            Err(e) => refused(e),
        }
    }
    out
}

/// Our stored copies of the events `ids` of `room_id` (of room version `version`), as checked
/// PDUs; `None` where we hold none, or hold it in another room. Read together, not cached.
fn stored_copies(
    s: &Services,
    ids: &[&ruma::EventId],
    room_id: &OwnedRoomId,
    version: &RoomVersionId,
) -> Result<Vec<Option<CheckedPdu>>> {
    let shorts = s.short.events(ids)?;
    let known: Vec<u64> = shorts.iter().flatten().copied().collect();
    let mut stored = crate::services::rooms::events_by_short(s, &known, room_id)?.into_iter();
    Ok(shorts
        .into_iter()
        .map(|short| {
            let event = short.and_then(|_| stored.next().flatten())?;
            Some(CheckedPdu {
                event_id: event.pdu.event_id.clone(),
                room_id: room_id.clone(),
                version: version.clone(),
                object: event.json.clone(),
                pdu: event.pdu.clone(),
            })
        })
        .collect())
}

/// Joins `user` to a room of another server, through the first of `servers` that lets it: a
/// server answering `M_UNABLE_TO_GRANT_JOIN` (it cannot authorise a restricted join), or failing
/// otherwise, is followed by the next one.
pub async fn join_remote(
    services: &Arc<Services>,
    user: OwnedUserId,
    room_id: OwnedRoomId,
    servers: Vec<OwnedServerName>,
) -> Result<()> {
    let mut last = Error::not_found("No server could be reached to join this room");
    for server in servers
        .iter()
        .filter(|s| *s != services.globals.server_name())
    {
        match join_through(services, &user, &room_id, server).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::info!(
                    "joining {room_id} through {server}: {} {}",
                    e.errcode,
                    e.message
                );
                last = e;
            }
        }
    }
    Err(last)
}

/// `make_join` and `send_join` on one resident server, then the joined room stored.
async fn join_through(
    services: &Arc<Services>,
    user: &OwnedUserId,
    room_id: &OwnedRoomId,
    server: &OwnedServerName,
) -> Result<()> {
    let (user, room_id) = (user.clone(), room_id.clone());
    let (template, version, resident) = make_membership(
        services,
        std::slice::from_ref(server),
        &room_id,
        &user,
        "join",
    )
    .await?;
    let (v, r, u) = (version.clone(), room_id.clone(), user.clone());
    let (object, event_id) = services
        .run(move |s| sign_template(s, template, &v, &r, &u, "join"))
        .await?;
    let mut path = format!(
        "/_matrix/federation/v2/send_join/{}/{}",
        encode_segment(room_id.as_str()),
        encode_segment(event_id.as_str())
    );
    if services.config().federation.partial_state_joins {
        path.push_str("?omit_members=true");
    }
    let body = serde_json::to_value(&object).map_err(|e| Error::internal(e.to_string()))?;
    let answer =
        events_answer::fetch(services, &resident, http::Method::PUT, &path, Some(&body)).await?;
    // The members left out (a resident that knows MSC3706): the state is partial until resynced.
    let partial = (answer.members_omitted == Some(Value::Bool(true)))
        .then(|| servers_in_room(answer.servers_in_room.as_ref(), &resident));
    let mut auth_chain =
        events_answer::check_raw(services, answer.auth_chain, &room_id, &version).await;
    let mut state = answer.state;
    if partial.is_some() {
        // The room is partial until the resync: what the room's own state does not need waits.
        state.retain(|e| deferred_state::needed_at_join(e));
    }
    let state = events_answer::check_raw(services, state, &room_id, &version).await;
    // A resident server may have co-signed our event (restricted joins): take its copy.
    let join_object = match answer
        .event
        .and_then(|e| serde_json::from_str::<CanonicalJsonObject>(e.get()).ok())
    {
        Some(theirs) => theirs,
        None => object,
    };
    let join =
        pdu_checks::check_pdu(services, join_object, room_id.clone(), version.clone()).await?;
    if join.event_id != event_id {
        return Err(Error::new(
            http::StatusCode::BAD_GATEWAY,
            "M_UNKNOWN",
            "The resident server changed our join event",
        ));
    }
    auth_chain.sort_by_key(|e| u64::from(e.pdu.depth));
    services
        .run(move |s| store_joined_room(s, &room_id, &version, auth_chain, state, join, partial))
        .await
}

/// At most this many servers are taken from a `servers_in_room` answer.
const MAX_SERVERS_IN_ROOM: usize = 10_000;

/// The `servers_in_room` of a partial-state `send_join` answer (`listed`), the resident first
/// (pure).
pub fn servers_in_room(listed: Option<&Value>, resident: &OwnedServerName) -> Vec<OwnedServerName> {
    let mut servers = vec![resident.clone()];
    for name in listed
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|n| OwnedServerName::try_from(n).ok())
    {
        if servers.len() >= MAX_SERVERS_IN_ROOM {
            break;
        }
        if !servers.contains(&name) {
            servers.push(name);
        }
    }
    servers
}

/// Stores the joined room: its version, the outliers, the state before our join (one snapshot),
/// the membership index of its members; then appends our join on that state. A room we hold
/// without a joined member of ours (we left it) is joined the same way: our copy is stale, its
/// current state is replaced by the answered one, and our join (whose prev events are the
/// resident's extremities) replaces every old forward extremity. `partial`: the resident left
/// the members out (the servers in the room): the room is recorded as partial, in the same batch
/// as its state, and the resync worker woken.
fn store_joined_room(
    s: &Services,
    room_id: &OwnedRoomId,
    version: &RoomVersionId,
    auth_chain: Vec<CheckedPdu>,
    state: Vec<CheckedPdu>,
    join: CheckedPdu,
    partial: Option<Vec<OwnedServerName>>,
) -> Result<()> {
    // Only events the authorization rules allow (against their own auth events) are kept.
    let rules = version::rules(version)?;
    let (state, auth_chain) = pdu_checks::authorised_state(s, state, auth_chain, &rules);
    let lock = s.timeline.room_lock(room_id);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    if has_local_member(s, room_id)? {
        // Joined meanwhile (a second local user, or a retry): append like any remote event.
        drop(_guard);
        crate::federation::incoming::persist::append_remote(s, join, Forward::None, true)?;
        return Ok(());
    }
    same_version(s.timeline.room_version(room_id)?.as_ref(), version)?;
    // The extremities of a stale copy, all replaced by our join.
    let stale = match s.short.room(room_id)? {
        Some(short) => s.timeline.extremities(short)?,
        None => Vec::new(),
    };
    let ((short_room, snapshot), _) = s.globals.commit(|c| {
        c.batch
            .put(ROOMS, room_id.as_bytes(), version.as_str().as_bytes());
        let short_room = outliers::room_short(s, c, room_id)?;
        for event in &auth_chain {
            outliers::store(s, c, short_room, event)?;
        }
        let mut changes = Vec::new();
        let pos = c.next_pos();
        for event in &state {
            let short = outliers::store(s, c, short_room, event)?;
            let Some((kind, state_key)) = outliers::state_key_of(event) else {
                continue;
            };
            let key = s.short.get_or_create_statekey(c, &kind, &state_key)?;
            changes.push((key, short));
            outliers::record_member_of_state(s, c, event, short_room, pos, short)?;
        }
        let (snapshot, _) = s.state.create(c, 0, &changes)?;
        s.state.set_current(c, short_room, snapshot);
        if let Some(servers) = partial {
            s.partial_state.mark(
                c,
                crate::services::partial_state::PartialRoom {
                    room_id: room_id.clone(),
                    short_room,
                    join_event: join.event_id.clone(),
                    servers,
                    since_ms: crate::util::now_ms(),
                },
            )?;
        }
        Ok((short_room, snapshot))
    })?;
    s.timeline.remember_version(room_id, version);
    s.federation.sender.membership_changed(short_room);
    let CheckedPdu {
        event_id,
        room_id,
        version,
        object,
        pdu,
    } = join;
    persist(
        s,
        Persist {
            room_id,
            version,
            short_room,
            object,
            event_id,
            pdu,
            state_before: snapshot,
            replaces: stale,
            current: Current::After,
            txn: None,
            soft_failed: false,
            forward: Forward::None,
            prepared_on: None,
        },
    )?;
    Ok(())
}

/// Leaves a room this server is not in (rejects an invite), through one of `servers`.
pub async fn leave_remote(
    services: &Arc<Services>,
    user: OwnedUserId,
    room_id: OwnedRoomId,
    servers: Vec<OwnedServerName>,
) -> Result<()> {
    let (template, version, resident) =
        make_membership(services, &servers, &room_id, &user, "leave").await?;
    let (v, r, u) = (version.clone(), room_id.clone(), user.clone());
    let (object, event_id) = services
        .run(move |s| sign_template(s, template, &v, &r, &u, "leave"))
        .await?;
    let path = format!(
        "/_matrix/federation/v2/send_leave/{}/{}",
        encode_segment(room_id.as_str()),
        encode_segment(event_id.as_str())
    );
    let body = serde_json::to_value(&object).map_err(|e| Error::internal(e.to_string()))?;
    call(services, &resident, http::Method::PUT, &path, Some(&body)).await?;
    let checked = pdu_checks::check_pdu(services, object, room_id, version).await?;
    services
        .run(move |s| outliers::store_membership(s, &checked))
        .await
}

/// Resolves an alias of another server with `query/directory`: the room and servers to join by.
pub async fn resolve_remote_alias(
    services: &Arc<Services>,
    alias: &OwnedRoomAliasId,
) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
    let path = format!(
        "/_matrix/federation/v1/query/directory?room_alias={}",
        encode_segment(alias.as_str())
    );
    let answer = call(
        services,
        alias.server_name(),
        http::Method::GET,
        &path,
        None,
    )
    .await?;
    let room_id = answer
        .get("room_id")
        .and_then(Value::as_str)
        .and_then(|r| OwnedRoomId::try_from(r).ok())
        .ok_or_else(|| Error::not_found("Room alias not found"))?;
    let mut servers: Vec<OwnedServerName> = answer
        .get("servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().and_then(|s| OwnedServerName::try_from(s).ok()))
        .collect();
    if !servers.iter().any(|s| s == alias.server_name()) {
        servers.insert(0, alias.server_name().to_owned());
    }
    Ok((room_id, servers))
}

/// Knocks on a room this server is not in, through one of `servers`: `make_knock`, our knock
/// signed, `send_knock`; the knock is stored with the room state the resident server answered.
pub async fn knock_remote(
    services: &Arc<Services>,
    user: OwnedUserId,
    room_id: OwnedRoomId,
    servers: Vec<OwnedServerName>,
    reason: Option<String>,
) -> Result<()> {
    let (template, version, resident) =
        make_membership(services, &servers, &room_id, &user, "knock").await?;
    let (v, r, u) = (version.clone(), room_id.clone(), user.clone());
    let (object, event_id) = services
        .run(move |s| {
            let mut template = template;
            if let Some(reason) = reason
                && let Some(CanonicalJsonValue::Object(content)) = template.get_mut("content")
            {
                content.insert("reason".into(), CanonicalJsonValue::String(reason));
            }
            sign_template(s, template, &v, &r, &u, "knock")
        })
        .await?;
    let path = format!(
        "/_matrix/federation/v1/send_knock/{}/{}",
        encode_segment(room_id.as_str()),
        encode_segment(event_id.as_str())
    );
    let body = serde_json::to_value(&object).map_err(|e| Error::internal(e.to_string()))?;
    let answer = call(services, &resident, http::Method::PUT, &path, Some(&body)).await?;
    let mut checked = pdu_checks::check_pdu(services, object, room_id, version).await?;
    // Kept where /sync reads the stripped state of rooms we are not in.
    let mut unsigned = CanonicalJsonObject::new();
    if let Some(state) = answer
        .get("knock_room_state")
        .cloned()
        .and_then(|v| CanonicalJsonValue::try_from(v).ok())
    {
        unsigned.insert("invite_room_state".into(), state);
    }
    checked
        .object
        .insert("unsigned".into(), CanonicalJsonValue::Object(unsigned));
    services
        .run(move |s| outliers::store_membership(s, &checked))
        .await
}

#[cfg(test)]
mod tests {
    use ruma::RoomVersionId;

    use super::same_version;

    #[test]
    fn a_peer_never_changes_the_version_of_a_room_we_hold() {
        assert!(same_version(None, &RoomVersionId::V11).is_ok());
        assert!(same_version(Some(&RoomVersionId::V10), &RoomVersionId::V10).is_ok());
        let e = same_version(Some(&RoomVersionId::V10), &RoomVersionId::V11).unwrap_err();
        assert_eq!(
            (e.status, e.errcode),
            (http::StatusCode::BAD_REQUEST, "M_INCOMPATIBLE_ROOM_VERSION")
        );
        assert_eq!(e.extra.get("room_version"), Some(&serde_json::json!("10")));
    }
}
