//! Restricted join rules (`restricted` since room version 8, `knock_restricted` since 10): a user
//! who is not invited may join when they are joined to one of the rooms the rule allows
//! (`m.room_membership`); the join then names, in `join_authorised_via_users_server`, a member of
//! the resident server able to invite, and that server signs it. The authorization rules proper
//! are ruma's; this module decides whether this server can vouch for a join, and through whom.

use ruma::{
    OwnedRoomId, OwnedUserId, RoomId, UserId,
    events::StateEventType,
    room::{AllowRule, JoinRule},
    room_version_rules::AuthorizationRules,
};

use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::{self, membership::Membership, power, version},
    },
};

/// How a join may go ahead, as the resident server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinGrant {
    /// No authorising user is needed (the rule is not restricted in this room version, or the user
    /// is already joined or invited); the authorization rules decide alone.
    NotNeeded,
    /// Allowed by the restricted rule: the join names this local user.
    Via(OwnedUserId),
}

/// The room's join rule as ruma reads it (`None`: no or unreadable `m.room.join_rules`).
pub fn join_rule(s: &Services, room_id: &RoomId) -> Result<Option<JoinRule>> {
    Ok(
        rooms::state_content(s, room_id, &StateEventType::RoomJoinRules, "")?
            .and_then(|c| serde_json::from_value(c).ok()),
    )
}

/// The rooms a join rule lets members of join from, when the rule is restricted in a room version
/// that supports it (pure).
pub fn allowed_rooms(rule: &JoinRule, rules: &AuthorizationRules) -> Option<Vec<OwnedRoomId>> {
    let restricted = match rule {
        JoinRule::Restricted(r) if rules.restricted_join_rule => r,
        JoinRule::KnockRestricted(r) if rules.knock_restricted_join_rule => r,
        _ => return None,
    };
    Some(
        restricted
            .allow
            .iter()
            .filter_map(|a| match a {
                AllowRule::RoomMembership(m) => Some(m.room_id.clone()),
                _ => None,
            })
            .collect(),
    )
}

/// Whether this server follows a room: it has the room and a joined member in it (its short id).
pub fn follows(s: &Services, room_id: &RoomId) -> Result<Option<u64>> {
    if !s.timeline.room_exists(room_id)? {
        return Ok(None);
    }
    let short = rooms::short_room(s, room_id)?;
    let ours = s
        .membership
        .members(short, Membership::Join)?
        .iter()
        .any(|m| m.server_name() == s.globals.server_name());
    Ok(ours.then_some(short))
}

/// Whether `user` is joined to one of `allowed`: `Some(true|false)` when this server follows at
/// least one of them, `None` when it follows none (it cannot tell).
pub fn satisfies(s: &Services, user: &UserId, allowed: &[OwnedRoomId]) -> Result<Option<bool>> {
    let mut known = false;
    for room in allowed {
        let Some(short) = follows(s, room)? else {
            continue;
        };
        known = true;
        if s.membership.membership(short, user)? == Some(Membership::Join) {
            return Ok(Some(true));
        }
    }
    Ok(known.then_some(false))
}

/// The local joined members of a room able to invite, by user id.
pub fn local_inviters(s: &Services, room_id: &RoomId) -> Result<Vec<OwnedUserId>> {
    let short = rooms::short_room(s, room_id)?;
    let mut members: Vec<OwnedUserId> = s
        .membership
        .members(short, Membership::Join)?
        .into_iter()
        .filter(|m| m.server_name() == s.globals.server_name())
        .collect();
    members.sort();
    let mut out = Vec::new();
    for m in members {
        if power::can(s, room_id, &m, "invite")? {
            out.push(m);
        }
    }
    Ok(out)
}

/// 400 `M_UNABLE_TO_AUTHORISE_JOIN`: this server follows none of the allowed rooms.
pub fn unable_to_authorise() -> Error {
    Error::new(
        http::StatusCode::BAD_REQUEST,
        "M_UNABLE_TO_AUTHORISE_JOIN",
        "This server cannot tell whether the user is in one of the allowed rooms",
    )
}

/// 400 `M_UNABLE_TO_GRANT_JOIN`: the user may join, but no member of this server can vouch for it.
pub fn unable_to_grant() -> Error {
    Error::new(
        http::StatusCode::BAD_REQUEST,
        "M_UNABLE_TO_GRANT_JOIN",
        "No user of this server can authorise the join; try another server",
    )
}

/// Decides a join of `user` to `room_id` (a room this server is in): not needed, through one of
/// our members, or refused (403 `M_FORBIDDEN`, `M_UNABLE_TO_AUTHORISE_JOIN`,
/// `M_UNABLE_TO_GRANT_JOIN`).
pub fn grant(s: &Services, room_id: &RoomId, user: &UserId) -> Result<JoinGrant> {
    let version = s
        .timeline
        .room_version(room_id)?
        .ok_or_else(|| Error::not_found("Unknown room"))?;
    let rules = version::rules(&version)?;
    let Some(rule) = join_rule(s, room_id)? else {
        return Ok(JoinGrant::NotNeeded);
    };
    let Some(allowed) = allowed_rooms(&rule, &rules.authorization) else {
        return Ok(JoinGrant::NotNeeded);
    };
    let short = rooms::short_room(s, room_id)?;
    if matches!(
        s.membership.membership(short, user)?,
        Some(Membership::Join | Membership::Invite)
    ) {
        return Ok(JoinGrant::NotNeeded);
    }
    match satisfies(s, user, &allowed)? {
        Some(true) => {}
        // Our own users' memberships are always known here: not being in an allowed room is a no.
        None if user.server_name() != s.globals.server_name() => return Err(unable_to_authorise()),
        _ => {
            return Err(Error::forbidden(
                "You are not a member of any room this room's join rule allows",
            ));
        }
    }
    local_inviters(s, room_id)?
        .into_iter()
        .next()
        .map(JoinGrant::Via)
        .ok_or_else(unable_to_grant)
}

/// Checks a received join naming `authoriser` (one of our users) before we sign it: the user is
/// already joined or invited, or is allowed by the restricted rule and `authoriser` is a joined
/// member able to invite.
pub fn check_authoriser(
    s: &Services,
    room_id: &RoomId,
    user: &UserId,
    authoriser: &UserId,
) -> Result<()> {
    if authoriser.server_name() != s.globals.server_name() {
        return Err(Error::forbidden(
            "The authorising user is not a user of this server",
        ));
    }
    match grant(s, room_id, user)? {
        JoinGrant::NotNeeded => Ok(()),
        JoinGrant::Via(_) if local_inviters(s, room_id)?.iter().any(|u| u == authoriser) => Ok(()),
        JoinGrant::Via(_) => Err(Error::forbidden(
            "The authorising user cannot invite to this room",
        )),
    }
}

#[cfg(test)]
mod tests {
    use ruma::{
        owned_room_id,
        room::{AllowRule, JoinRule, Restricted},
        room_version_rules::RoomVersionRules,
    };

    use super::allowed_rooms;

    #[test]
    fn restricted_rules_count_only_where_the_room_version_has_them() {
        let allow = vec![AllowRule::room_membership(owned_room_id!("!a:x"))];
        let restricted = JoinRule::Restricted(Restricted::new(allow.clone()));
        let knock_restricted = JoinRule::KnockRestricted(Restricted::new(allow));
        let v7 = RoomVersionRules::V7.authorization;
        let v8 = RoomVersionRules::V8.authorization;
        let v10 = RoomVersionRules::V10.authorization;
        assert_eq!(allowed_rooms(&restricted, &v7), None);
        assert_eq!(
            allowed_rooms(&restricted, &v8),
            Some(vec![owned_room_id!("!a:x")])
        );
        assert_eq!(allowed_rooms(&knock_restricted, &v8), None);
        assert_eq!(
            allowed_rooms(&knock_restricted, &v10),
            Some(vec![owned_room_id!("!a:x")])
        );
        assert_eq!(allowed_rooms(&JoinRule::Public, &v10), None);
    }
}
