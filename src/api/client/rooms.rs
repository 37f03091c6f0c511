//! Room creation and memberships: join, invite, leave, forget, kick, ban, unban, members.

use std::{collections::BTreeMap, sync::Arc};

use axum::extract::State;
use ruma::{
    OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, UserId,
    api::client::{
        knock::knock_room,
        membership::{
            ban_user, forget_room, get_member_events, invite_user, join_room_by_id,
            join_room_by_id_or_alias, joined_members, joined_rooms, kick_user, leave_room,
            unban_user,
        },
        room::{Visibility, create_room, upgrade_room},
    },
    events::StateEventType,
};
use serde_json::{Map, Value};

use crate::{
    api::ruma_wrapper::{Ruma, RumaResponse},
    error::{Error, Result},
    services::{
        Services, admin,
        rooms::{
            self,
            create::{CreateRoom, Preset},
            membership::Membership,
            set_membership,
        },
        timeline::{
            pdu::{ClientFormat, raw},
            visibility::may_read_room,
        },
    },
};

type Res<T> = Result<RumaResponse<T>>;

fn object_of<T>(raw: &ruma::serde::Raw<T>, what: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(raw.json().get()) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::bad_json(format!("{what} must be an object"))),
    }
}

pub async fn create(
    State(services): State<Arc<Services>>,
    req: Ruma<create_room::v3::Request>,
) -> Res<create_room::v3::Response> {
    let user = req.user()?.clone();
    services.moderation.ensure_not_suspended(&user)?;
    let body = req.body;
    // Invitees an application service may create when asked (spec: "Querying" users).
    for invitee in &body.invite {
        crate::services::appservice::query::ask_if_unknown(&services, invitee).await?;
    }
    services
        .run(move |s| {
            let public = body.visibility == Visibility::Public;
            if public && !s.config().rooms.allow_publish {
                return Err(Error::forbidden("Publishing rooms is disabled"));
            }
            let mut initial_state = Vec::new();
            for event in &body.initial_state {
                let event = object_of(event, "initial_state event")?;
                let kind = event
                    .get("type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::bad_json("initial_state event needs a type"))?;
                let state_key = event
                    .get("state_key")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let content = event
                    .get("content")
                    .cloned()
                    .filter(Value::is_object)
                    .ok_or_else(|| Error::bad_json("initial_state event needs content"))?;
                initial_state.push((kind.to_owned(), state_key.to_owned(), content));
            }
            let preset = body.preset.as_ref().map(|p| match p.as_str() {
                "public_chat" => Ok(Preset::PublicChat),
                "trusted_private_chat" => Ok(Preset::TrustedPrivateChat),
                "private_chat" => Ok(Preset::PrivateChat),
                other => Err(Error::bad_json(format!("unknown preset {other}"))),
            });
            let request = CreateRoom {
                version: body.room_version.clone(),
                preset: preset.transpose()?,
                public,
                creation_content: body
                    .creation_content
                    .as_ref()
                    .map(|c| object_of(c, "creation_content"))
                    .transpose()?,
                power_level_override: body
                    .power_level_content_override
                    .as_ref()
                    .map(|c| object_of(c, "power_level_content_override"))
                    .transpose()?,
                initial_state,
                name: body.name.clone(),
                topic: body.topic.clone(),
                alias_localpart: body.room_alias_name.clone(),
                invite: body.invite.clone(),
                is_direct: body.is_direct,
                ..Default::default()
            };
            if let Some(local) = &request.alias_localpart
                && (local.is_empty() || local.contains(':') || local.contains(char::is_whitespace))
            {
                return Err(Error::invalid_param("Invalid room_alias_name"));
            }
            let room_id = rooms::create::create_room(s, &user, request)?;
            Ok(create_room::v3::Response::new(room_id).into())
        })
        .await
}

pub async fn upgrade(
    State(services): State<Arc<Services>>,
    req: Ruma<upgrade_room::v3::Request>,
) -> Res<upgrade_room::v3::Response> {
    let user = req.user()?.clone();
    services.moderation.ensure_not_suspended(&user)?;
    let body = req.body;
    let new_room = rooms::upgrade::upgrade_room(
        &services,
        user,
        body.room_id,
        body.new_version,
        body.additional_creators,
    )
    .await?;
    Ok(upgrade_room::v3::Response::new(new_room).into())
}

pub async fn joined(
    State(services): State<Arc<Services>>,
    req: Ruma<joined_rooms::v3::Request>,
) -> Res<joined_rooms::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let rooms = s.membership.joined_room_ids(&user)?;
            Ok(joined_rooms::v3::Response::new(rooms).into())
        })
        .await
}

/// Joins a room this server knows (federated joins come with the federation API).
fn join(
    s: &Services,
    user: &UserId,
    room_id: &RoomId,
    reason: Option<&str>,
) -> Result<OwnedRoomId> {
    if !s.timeline.room_exists(room_id)? {
        return Err(Error::not_found("No known servers for this room"));
    }
    let short = rooms::short_room(s, room_id)?;
    if s.membership.is_joined(short, user)? {
        return Ok(room_id.to_owned());
    }
    // A restricted room: the join names a member of ours able to invite.
    let extra = match rooms::restricted::grant(s, room_id, user) {
        Ok(rooms::restricted::JoinGrant::Via(authoriser)) => Some(serde_json::Map::from_iter([(
            "join_authorised_via_users_server".to_owned(),
            serde_json::json!(authoriser),
        )])),
        Ok(rooms::restricted::JoinGrant::NotNeeded) => None,
        Err(e) => return Err(e),
    };
    set_membership(s, room_id, user, user, "join", reason, extra)?;
    Ok(room_id.to_owned())
}

/// Servers that may let `user` join a room this server is not in: those given, the server of
/// the user's pending invite, the server in an old-style room id.
fn join_servers(
    s: &Services,
    user: &UserId,
    room_id: &RoomId,
    given: &[OwnedServerName],
) -> Result<Vec<OwnedServerName>> {
    let mut servers: Vec<OwnedServerName> = given.to_vec();
    if let Some(r) = s.membership.user_room(user, room_id)?
        && r.membership == Membership::Invite
        && let Some(invite) = rooms::event_by_short(s, r.short_event, room_id)?
    {
        servers.push(invite.pdu.sender.server_name().to_owned());
    }
    if let Some(server) = room_id.server_name() {
        servers.push(server.to_owned());
    }
    servers.extend(rooms::upgrade::tombstone_servers(s, user, room_id)?);
    let mut seen = std::collections::HashSet::new();
    servers.retain(|n| n != s.globals.server_name() && seen.insert(n.clone()));
    Ok(servers)
}

/// Joins a local room, or a room of other servers over federation.
async fn join_any(
    services: &Arc<Services>,
    user: OwnedUserId,
    room_id: OwnedRoomId,
    via: Vec<OwnedServerName>,
    reason: Option<String>,
) -> Result<OwnedRoomId> {
    let (u, r) = (user.clone(), room_id.clone());
    let remote = services
        .run(move |s| {
            admin::room_block::check_not_blocked(s, &r)?;
            if s.timeline.room_exists(&r)? {
                let short = rooms::short_room(s, &r)?;
                // A room we are in, or one we were in and can rejoin locally.
                if s.membership
                    .members(short, Membership::Join)?
                    .iter()
                    .any(|m| m.server_name() == s.globals.server_name())
                {
                    match join(s, &u, &r, reason.as_deref()) {
                        Ok(_) => return Ok(None),
                        // A restricted room none of our members may authorise a join to: another
                        // server of the room may.
                        Err(e) if e.errcode == "M_UNABLE_TO_GRANT_JOIN" => {
                            let mut servers = join_servers(s, &u, &r, &via)?;
                            servers.extend(
                                crate::federation::sender::servers_in_room(s, short)?
                                    .iter()
                                    .cloned(),
                            );
                            let mut seen = std::collections::HashSet::new();
                            servers
                                .retain(|n| n != s.globals.server_name() && seen.insert(n.clone()));
                            if servers.is_empty() {
                                return Err(Error::forbidden(e.message));
                            }
                            return Ok(Some(servers));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            let mut servers = join_servers(s, &u, &r, &via)?;
            // A room we left: the servers that were in it when we last knew come after the others.
            if let Some(short) = s.short.room(&r)? {
                servers.extend(
                    crate::federation::sender::servers_in_room(s, short)?
                        .iter()
                        .cloned(),
                );
                let mut seen = std::collections::HashSet::new();
                servers.retain(|n| n != s.globals.server_name() && seen.insert(n.clone()));
            }
            Ok(Some(servers))
        })
        .await?;
    if let Some(servers) = remote {
        if servers.is_empty() {
            return Err(Error::not_found("No known servers for this room"));
        }
        crate::federation::join::remote::join_remote(services, user, room_id.clone(), servers)
            .await?;
    }
    Ok(room_id)
}

/// A room that replaces another: the user's push rules, tags and `m.direct` entry of the old room
/// follow (best effort: the join is done whatever happens here).
async fn after_join(services: &Arc<Services>, user: OwnedUserId, room_id: OwnedRoomId) {
    let r = room_id.clone();
    if let Err(e) = services
        .run(move |s| rooms::upgrade_user_state::on_join(s, &user, &r))
        .await
    {
        tracing::warn!("settings of the predecessor of {room_id}: {}", e.message);
    }
}

pub async fn join_by_id(
    State(services): State<Arc<Services>>,
    req: Ruma<join_room_by_id::v3::Request>,
) -> Res<join_room_by_id::v3::Response> {
    let user = req.user()?.clone();
    services.moderation.ensure_not_suspended(&user)?;
    let room_id = join_any(
        &services,
        user.clone(),
        req.body.room_id.clone(),
        Vec::new(),
        req.body.reason.clone(),
    )
    .await?;
    after_join(&services, user, room_id.clone()).await;
    Ok(join_room_by_id::v3::Response::new(room_id).into())
}

pub async fn join_by_id_or_alias(
    State(services): State<Arc<Services>>,
    req: Ruma<join_room_by_id_or_alias::v3::Request>,
) -> Res<join_room_by_id_or_alias::v3::Response> {
    let user = req.user()?.clone();
    services.moderation.ensure_not_suspended(&user)?;
    let mut via = req.body.via.clone();
    let target = req.body.room_id_or_alias.as_str().to_owned();
    let room_id = match ruma::OwnedRoomAliasId::try_from(target.as_str()) {
        Ok(alias) if alias.server_name() != services.globals.server_name() => {
            let (room_id, servers) =
                crate::federation::join::remote::resolve_remote_alias(&services, &alias).await?;
            via.extend(servers);
            room_id
        }
        Ok(alias) => super::directory::local_alias_room(&services, &alias)
            .await?
            .ok_or_else(|| Error::not_found("Room alias not found"))?,
        _ => services.run(move |s| resolve_room(s, &target)).await?,
    };
    let room_id = join_any(
        &services,
        user.clone(),
        room_id,
        via,
        req.body.reason.clone(),
    )
    .await?;
    after_join(&services, user, room_id.clone()).await;
    Ok(join_room_by_id_or_alias::v3::Response::new(room_id).into())
}

pub async fn knock(
    State(services): State<Arc<Services>>,
    req: Ruma<knock_room::v3::Request>,
) -> Res<knock_room::v3::Response> {
    let user = req.user()?.clone();
    services.moderation.ensure_not_suspended(&user)?;
    // A room this server has no member in: knock through a resident server.
    let mut via = req.body.via.clone();
    let target = req.body.room_id_or_alias.as_str().to_owned();
    let room_id = match ruma::OwnedRoomAliasId::try_from(target.as_str()) {
        Ok(alias) if alias.server_name() != services.globals.server_name() => {
            let (room_id, servers) =
                crate::federation::join::remote::resolve_remote_alias(&services, &alias).await?;
            via.extend(servers);
            Some(room_id)
        }
        _ => None,
    };
    let (u, t, r) = (user.clone(), target.clone(), room_id.clone());
    let remote = services
        .run(move |s| {
            let room_id = match r {
                Some(r) => r,
                None => resolve_room(s, &t)?,
            };
            admin::room_block::check_not_blocked(s, &room_id)?;
            if s.timeline.room_exists(&room_id)? {
                let short = rooms::short_room(s, &room_id)?;
                if s.membership
                    .members(short, Membership::Join)?
                    .iter()
                    .any(|m| m.server_name() == s.globals.server_name())
                {
                    return Ok(None);
                }
            }
            let servers = join_servers(s, &u, &room_id, &via)?;
            Ok(Some((room_id, servers)))
        })
        .await?;
    if let Some((room_id, servers)) = remote {
        if servers.is_empty() {
            return Err(Error::not_found("No known servers for this room"));
        }
        crate::federation::join::remote::knock_remote(
            &services,
            user,
            room_id.clone(),
            servers,
            req.body.reason.clone(),
        )
        .await?;
        return Ok(knock_room::v3::Response::new(room_id).into());
    }
    services
        .run(move |s| {
            let room_id = resolve_room(s, req.body.room_id_or_alias.as_str())?;
            if !s.timeline.room_exists(&room_id)? {
                return Err(Error::not_found("No known servers for this room"));
            }
            set_membership(
                s,
                &room_id,
                &user,
                &user,
                "knock",
                req.body.reason.as_deref(),
                None,
            )?;
            Ok(knock_room::v3::Response::new(room_id).into())
        })
        .await
}

/// A room id, or the room an alias of this server points to.
fn resolve_room(s: &Services, id_or_alias: &str) -> Result<OwnedRoomId> {
    if let Ok(room_id) = OwnedRoomId::try_from(id_or_alias) {
        return Ok(room_id);
    }
    let alias = ruma::OwnedRoomAliasId::try_from(id_or_alias)
        .map_err(|_| Error::invalid_param("Invalid room id or alias"))?;
    Ok(s.directory
        .resolve(&alias)?
        .ok_or_else(|| Error::not_found("Room alias not found"))?
        .room_id)
}

pub async fn invite(
    State(services): State<Arc<Services>>,
    req: Ruma<invite_user::v3::Request>,
) -> Res<invite_user::v3::Response> {
    let user = req.user()?.clone();
    services.moderation.ensure_not_suspended(&user)?;
    // A shadow-banned user's invites pretend to be sent.
    if services.shadow_bans.contains(&user) {
        return Ok(invite_user::v3::Response::new().into());
    }
    if let invite_user::v3::InvitationRecipient::UserId(invitee) = &req.body.recipient
        && invitee.user_id.server_name() != services.globals.server_name()
    {
        crate::federation::invite::invite_remote(
            &services,
            req.body.room_id.clone(),
            user,
            invitee.user_id.clone(),
            invitee.reason.clone(),
        )
        .await?;
        return Ok(invite_user::v3::Response::new().into());
    }
    if let invite_user::v3::InvitationRecipient::ThirdPartyId(third_party) = &req.body.recipient {
        let t = third_party;
        crate::federation::identity::invite(
            &services,
            req.body.room_id.clone(),
            user,
            &t.id_server,
            &t.id_access_token,
            &t.medium,
            &t.address,
        )
        .await?;
        return Ok(invite_user::v3::Response::new().into());
    }
    if let invite_user::v3::InvitationRecipient::UserId(invitee) = &req.body.recipient {
        crate::services::appservice::query::ask_if_unknown(&services, &invitee.user_id).await?;
    }
    services
        .run(move |s| {
            let invite_user::v3::InvitationRecipient::UserId(invitee) = &req.body.recipient else {
                return Err(Error::forbidden("Third-party invites are not supported"));
            };
            let user_id = &invitee.user_id;
            if user_id.server_name() != s.globals.server_name() {
                return Err(Error::forbidden(
                    "Inviting users of other servers needs federation, which is not enabled yet",
                ));
            }
            if !s.users.is_active(user_id)? {
                return Err(Error::not_found("Unknown user"));
            }
            admin::room_block::check_not_blocked(s, &req.body.room_id)?;
            let short = rooms::short_room(s, &req.body.room_id)?;
            if !s.membership.is_joined(short, &user)? {
                return Err(Error::forbidden("You are not in this room"));
            }
            set_membership(
                s,
                &req.body.room_id,
                &user,
                user_id,
                "invite",
                invitee.reason.as_deref(),
                None,
            )?;
            Ok(invite_user::v3::Response::new().into())
        })
        .await
}

pub async fn leave(
    State(services): State<Arc<Services>>,
    req: Ruma<leave_room::v3::Request>,
) -> Res<leave_room::v3::Response> {
    let user = req.user()?.clone();
    // Rejecting an invite to a room this server is not in goes through a resident server.
    let (u, r) = (user.clone(), req.body.room_id.clone());
    let remote = services
        .run(move |s| {
            // A room we hold with a member of ours; a room we left is a stale copy, its invite an
            // outlier: rejected through a resident server like an invite to a room we do not know.
            if crate::federation::join::remote::has_local_member(s, &r)? {
                return Ok(None);
            }
            match s.membership.user_room(&u, &r)? {
                Some(ur) if matches!(ur.membership, Membership::Invite | Membership::Knock) => {
                    Ok(Some(join_servers(s, &u, &r, &[])?))
                }
                _ => Ok(None),
            }
        })
        .await?;
    if let Some(servers) = remote {
        crate::federation::join::remote::leave_remote(
            &services,
            user,
            req.body.room_id.clone(),
            servers,
        )
        .await?;
        return Ok(leave_room::v3::Response::new().into());
    }
    services
        .run(move |s| {
            let short = rooms::short_room(s, &req.body.room_id)?;
            match s.membership.membership(short, &user)? {
                Some(Membership::Join | Membership::Invite | Membership::Knock) => {
                    set_membership(
                        s,
                        &req.body.room_id,
                        &user,
                        &user,
                        "leave",
                        req.body.reason.as_deref(),
                        None,
                    )?;
                }
                Some(Membership::Leave | Membership::Ban) => {}
                None => return Err(Error::forbidden("You are not in this room")),
            }
            Ok(leave_room::v3::Response::new().into())
        })
        .await
}

pub async fn forget(
    State(services): State<Arc<Services>>,
    req: Ruma<forget_room::v3::Request>,
) -> Res<forget_room::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let short = rooms::short_room(s, &req.body.room_id)?;
            match s.membership.membership(short, &user)? {
                Some(Membership::Leave | Membership::Ban) => {
                    s.membership.forget(&user, &req.body.room_id)?
                }
                Some(_) => {
                    return Err(Error::unknown(
                        "You must leave the room before forgetting it",
                    ));
                }
                None => return Err(Error::not_found("You have never been in this room")),
            }
            Ok(forget_room::v3::Response::new().into())
        })
        .await
}

/// Kick, ban and unban: another user's membership, as the authorization rules allow.
fn moderate(
    s: &Services,
    sender: &UserId,
    room_id: &RoomId,
    target: &UserId,
    membership: &str,
    reason: Option<&str>,
) -> Result<()> {
    let short = rooms::short_room(s, room_id)?;
    let current = s.membership.membership(short, target)?;
    // A kick needs a member to remove: joined, invited or knocking.
    if membership == "leave"
        && !matches!(
            current,
            Some(Membership::Join | Membership::Invite | Membership::Knock | Membership::Ban)
        )
    {
        return Err(Error::forbidden("The user is not in this room"));
    }
    if !s.membership.is_joined(short, sender)? {
        return Err(Error::forbidden("You are not in this room"));
    }
    set_membership(s, room_id, sender, target, membership, reason, None)?;
    Ok(())
}

pub async fn kick(
    State(services): State<Arc<Services>>,
    req: Ruma<kick_user::v3::Request>,
) -> Res<kick_user::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            moderate(
                s,
                &user,
                &req.body.room_id,
                &req.body.user_id,
                "leave",
                req.body.reason.as_deref(),
            )?;
            Ok(kick_user::v3::Response::new().into())
        })
        .await
}

pub async fn ban(
    State(services): State<Arc<Services>>,
    req: Ruma<ban_user::v3::Request>,
) -> Res<ban_user::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            moderate(
                s,
                &user,
                &req.body.room_id,
                &req.body.user_id,
                "ban",
                req.body.reason.as_deref(),
            )?;
            Ok(ban_user::v3::Response::new().into())
        })
        .await
}

pub async fn unban(
    State(services): State<Arc<Services>>,
    req: Ruma<unban_user::v3::Request>,
) -> Res<unban_user::v3::Response> {
    let user = req.user()?.clone();
    services
        .run(move |s| {
            let short = rooms::short_room(s, &req.body.room_id)?;
            if s.membership.membership(short, &req.body.user_id)? != Some(Membership::Ban) {
                return Err(Error::forbidden("The user is not banned"));
            }
            moderate(
                s,
                &user,
                &req.body.room_id,
                &req.body.user_id,
                "leave",
                req.body.reason.as_deref(),
            )?;
            Ok(unban_user::v3::Response::new().into())
        })
        .await
}

/// Listing a room's members waits while the room's state is partial (joined with partial state,
/// its members are being fetched), at most this long; then what is known is answered.
const MEMBERS_WAIT_FOR_FULL_STATE: std::time::Duration = std::time::Duration::from_secs(120);

pub(crate) async fn wait_for_full_state(
    services: &Arc<Services>,
    room_id: &ruma::RoomId,
) -> Result<()> {
    wait_for_full_state_unless_known(services, room_id, None).await
}

/// [`wait_for_full_state`], unless the state key `known` is in the room's (partial) state.
pub(crate) async fn wait_for_full_state_unless_known(
    services: &Arc<Services>,
    room_id: &ruma::RoomId,
    known: Option<(StateEventType, String)>,
) -> Result<()> {
    if !services.partial_state.any() {
        return Ok(());
    }
    let room = room_id.to_owned();
    let Some(short_room) = services
        .run(move |s| {
            let Some(short) = s.short.room(&room)? else {
                return Ok(None);
            };
            if !s.partial_state.is_partial(short)? {
                return Ok(None);
            }
            if let Some((kind, key)) = &known
                && rooms::state_content(s, &room, kind, key)?.is_some()
            {
                return Ok(None);
            }
            Ok(Some(short))
        })
        .await?
    else {
        return Ok(());
    };
    services
        .partial_state
        .wait_full(short_room, MEMBERS_WAIT_FOR_FULL_STATE)
        .await?;
    Ok(())
}

pub async fn members(
    State(services): State<Arc<Services>>,
    req: Ruma<get_member_events::v3::Request>,
) -> Res<get_member_events::v3::Response> {
    let user = req.user()?.clone();
    wait_for_full_state(&services, &req.body.room_id).await?;
    services
        .run(move |s| {
            let room_id = &req.body.room_id;
            let short = rooms::short_room(s, room_id)?;
            let state = match s.membership.user_room(&user, room_id)? {
                Some(r) if r.membership == Membership::Join => match &req.body.at {
                    Some(at) => {
                        use crate::services::timeline::order;
                        order::state_at(s, short, order::Place::parse(at)?)?
                    }
                    None => s.state.current_state(short)?,
                },
                // Former members see the members as they were when they left.
                Some(r) if matches!(r.membership, Membership::Leave | Membership::Ban) => {
                    let meta = s
                        .timeline
                        .meta(r.short_event)?
                        .ok_or_else(|| Error::internal("missing event"))?;
                    s.state.load(meta.state_after)?
                }
                _ if may_read_room(s, &user, short)? => s.state.current_state(short)?,
                _ => return Err(Error::forbidden("You are not a member of this room")),
            };
            let mut chunk = Vec::new();
            for (key, short_event) in state.iter() {
                let (kind, _) = s.short.statekey_of(*key)?;
                if kind != StateEventType::RoomMember {
                    continue;
                }
                let Some(event) = rooms::event_by_short(s, *short_event, room_id)? else {
                    continue;
                };
                let membership = event.pdu.membership().unwrap_or_default();
                if req
                    .body
                    .membership
                    .as_ref()
                    .is_some_and(|m| m.as_str() != membership)
                    || req
                        .body
                        .not_membership
                        .as_ref()
                        .is_some_and(|m| m.as_str() == membership)
                {
                    continue;
                }
                chunk.push(raw(&event.to_client(
                    &s.timeline,
                    ClientFormat::Room,
                    None,
                )?));
            }
            Ok(get_member_events::v3::Response::new(chunk).into())
        })
        .await
}

pub async fn joined_members(
    State(services): State<Arc<Services>>,
    req: Ruma<joined_members::v3::Request>,
) -> Res<joined_members::v3::Response> {
    let user = req.user()?.clone();
    wait_for_full_state(&services, &req.body.room_id).await?;
    services
        .run(move |s| {
            let room_id = &req.body.room_id;
            let short = rooms::short_room(s, room_id)?;
            if !may_read_room(s, &user, short)? {
                return Err(Error::forbidden("You are not a member of this room"));
            }
            let mut joined = BTreeMap::new();
            for member in s.membership.members(short, Membership::Join)? {
                let content =
                    rooms::state_content(s, room_id, &StateEventType::RoomMember, member.as_str())?
                        .unwrap_or_default();
                let mut entry = joined_members::v3::RoomMember::new();
                entry.display_name = content
                    .get("displayname")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                entry.avatar_url = content
                    .get("avatar_url")
                    .and_then(Value::as_str)
                    .map(Into::into);
                joined.insert(member, entry);
            }
            Ok(joined_members::v3::Response::new(joined).into())
        })
        .await
}
