//! EDUs received in a transaction: typing, receipts, presence. Each names users, who must belong
//! to the origin (no server speaks for another's users) and, for room EDUs, be joined to the room.
//! End-to-end EDUs (to-device, device lists, signing keys) are in `e2ee_edus`; others are ignored.

use std::time::Duration;

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, ServerName};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    services::Services,
};

/// Applies one EDU from `origin`. An EDU that impersonates another server is refused.
pub fn apply(s: &Services, origin: &ServerName, edu: &Value) -> Result<()> {
    let content = edu.get("content").cloned().unwrap_or(Value::Null);
    if let Some(result) = super::e2ee_edus::apply(
        s,
        origin,
        edu.get("edu_type").and_then(Value::as_str).unwrap_or(""),
        &content,
    ) {
        return result;
    }
    match edu.get("edu_type").and_then(Value::as_str) {
        Some("m.typing") => typing(s, origin, &content),
        Some("m.receipt") => receipts(s, origin, &content),
        Some("m.presence") => presence(s, origin, &content),
        _ => Ok(()),
    }
}

pub(super) fn user_of(origin: &ServerName, value: Option<&Value>) -> Result<OwnedUserId> {
    let user = value
        .and_then(Value::as_str)
        .and_then(|u| OwnedUserId::try_from(u).ok())
        .ok_or_else(|| Error::bad_json("EDU without a valid user_id"))?;
    if user.server_name() != origin {
        return Err(Error::forbidden(format!(
            "{origin} cannot speak for {user}"
        )));
    }
    Ok(user)
}

fn joined_room(
    s: &Services,
    room: Option<&str>,
    user: &OwnedUserId,
) -> Result<Option<(OwnedRoomId, u64)>> {
    let Some(room_id) = room.and_then(|r| OwnedRoomId::try_from(r).ok()) else {
        return Ok(None);
    };
    let Some(short) = s.short.room(&room_id)? else {
        return Ok(None);
    };
    if !crate::federation::acl::allowed(s, &room_id, user.server_name())? {
        return Ok(None);
    }
    Ok(s.membership
        .is_joined(short, user)?
        .then_some((room_id, short)))
}

fn typing(s: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    let user = user_of(origin, content.get("user_id"))?;
    let Some((room_id, short)) =
        joined_room(s, content.get("room_id").and_then(Value::as_str), &user)?
    else {
        return Ok(());
    };
    let on = content
        .get("typing")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    s.typing
        .set(&s.globals, &room_id, &user, on, Duration::from_secs(30))?;
    crate::services::appservice::ephemeral::typing_changed(s, short, &room_id)
}

fn receipts(s: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    let Some(rooms) = content.as_object() else {
        return Ok(());
    };
    // Check every user first: one impersonation refuses the whole EDU.
    for kinds in rooms.values() {
        for users in kinds.as_object().into_iter().flat_map(|k| k.values()) {
            for user in users.as_object().into_iter().flat_map(|u| u.keys()) {
                user_of(origin, Some(&Value::String(user.clone())))?;
            }
        }
    }
    for (room, kinds) in rooms {
        for (kind, users) in kinds.as_object().into_iter().flatten() {
            if kind != "m.read" && kind != "m.read.private" {
                continue;
            }
            for (user, receipt) in users.as_object().into_iter().flatten() {
                let user = user_of(origin, Some(&Value::String(user.clone())))?;
                let Some((room_id, short)) = joined_room(s, Some(room), &user)? else {
                    continue;
                };
                let Some(event_id) = receipt
                    .get("event_ids")
                    .and_then(Value::as_array)
                    .and_then(|ids| ids.last())
                    .and_then(Value::as_str)
                    .and_then(|id| OwnedEventId::try_from(id).ok())
                else {
                    continue;
                };
                let thread = receipt
                    .pointer("/data/thread_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                s.receipts
                    .set(&s.globals, short, kind, &user, &event_id, thread.clone())?;
                crate::services::appservice::ephemeral::receipt_stored(
                    s,
                    short,
                    &room_id,
                    kind,
                    &user,
                    &event_id,
                    thread.as_deref(),
                )?;
            }
        }
    }
    Ok(())
}

/// Presence of remote users: only of users who share a joined room with a local user (nobody
/// here could see the others'; storing it would let any server fill the presence map).
fn presence(s: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    let updates = content
        .get("push")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for update in &updates {
        user_of(origin, update.get("user_id"))?;
    }
    for update in updates {
        let user = user_of(origin, update.get("user_id"))?;
        if !shares_room_with_local_user(s, &user)? {
            continue;
        }
        let presence = match update.get("presence").and_then(Value::as_str) {
            Some(p @ ("online" | "offline" | "unavailable")) => p,
            _ => continue,
        };
        let status = update
            .get("status_msg")
            .map(|m| m.as_str().map(str::to_owned));
        if let Some(record) = s.presence.set(&s.globals, &user, presence, status)? {
            crate::services::appservice::ephemeral::presence_changed(s, &user, &record)?;
        }
    }
    Ok(())
}

/// Whether `user` is joined to a room a local user is joined to.
fn shares_room_with_local_user(s: &Services, user: &OwnedUserId) -> Result<bool> {
    let ours = s.globals.server_name();
    for room in s.membership.joined_room_ids(user)? {
        if let Some(short) = s.short.room(&room)?
            && s.membership.has_joined_member_of(short, ours)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_of_the_origin_only() {
        let origin: ruma::OwnedServerName = "a.example".try_into().unwrap();
        assert!(user_of(&origin, Some(&Value::String("@u:a.example".into()))).is_ok());
        assert_eq!(
            user_of(&origin, Some(&Value::String("@u:b.example".into())))
                .unwrap_err()
                .errcode,
            "M_FORBIDDEN"
        );
        assert_eq!(
            user_of(&origin, Some(&Value::String("not a user".into())))
                .unwrap_err()
                .errcode,
            "M_BAD_JSON"
        );
        assert!(user_of(&origin, None).is_err());
    }
}
