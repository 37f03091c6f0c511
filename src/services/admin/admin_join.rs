//! `POST /_synapse/admin/v1/join/{roomIdOrAlias}`: joins a local user to a room one of our users
//! is in. A public room is joined directly; otherwise the admin, who must be in the room, invites
//! the user first.

use ruma::{OwnedRoomId, RoomId, UserId, events::StateEventType};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    services::{Services, rooms, rooms::membership::Membership},
};

/// Resolves a room id or a local alias.
pub fn resolve(s: &Services, room_or_alias: &str) -> Result<OwnedRoomId> {
    if let Ok(alias) = ruma::OwnedRoomAliasId::try_from(room_or_alias) {
        if alias.server_name() != s.globals.server_name() {
            return Err(Error::invalid_param(
                "Only local aliases can be resolved here",
            ));
        }
        return s
            .directory
            .resolve(&alias)?
            .map(|r| r.room_id)
            .ok_or_else(|| Error::not_found("Room alias not found"));
    }
    OwnedRoomId::try_from(room_or_alias)
        .map_err(|_| Error::invalid_param(format!("{room_or_alias} is not a room id or alias")))
}

pub fn join(s: &Services, admin: &UserId, user: &UserId, room_id: &RoomId) -> Result<()> {
    if user.server_name() != s.globals.server_name() {
        return Err(Error::invalid_param(
            "This endpoint can only be used with local users",
        ));
    }
    if !s.users.is_active(user)? {
        return Err(Error::not_found("User not found"));
    }
    let Some(short) = s.short.room(room_id)? else {
        return Err(Error::not_found("Room not found"));
    };
    let joined = s.membership.members(short, Membership::Join)?;
    if !joined
        .iter()
        .any(|m| m.server_name() == s.globals.server_name())
    {
        return Err(Error::not_found("No local user is in the room"));
    }
    if joined.iter().any(|m| m == user) {
        return Ok(());
    }
    let public = rooms::state_content(s, room_id, &StateEventType::RoomJoinRules, "")?
        .and_then(|c| {
            c.get("join_rule")
                .and_then(Value::as_str)
                .map(|r| r == "public")
        })
        .unwrap_or(false);
    if !public {
        if !joined.iter().any(|m| m == admin) {
            return Err(Error::forbidden(
                "The room is not public: the admin must be in it to invite the user",
            ));
        }
        if s.membership.membership(short, user)? != Some(Membership::Invite) {
            rooms::set_membership(s, room_id, admin, user, "invite", None, None)?;
        }
    }
    rooms::set_membership(s, room_id, user, user, "join", None, None)?;
    Ok(())
}
