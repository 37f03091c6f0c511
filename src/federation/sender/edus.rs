//! EDUs about local users, queued for the other servers of the room: typing, read receipts and
//! presence.

use ruma::{EventId, RoomId, UserId};
use serde_json::json;

use super::{queue::queue_edu, servers_in_room};
use crate::{error::Result, services::Services};

/// `m.typing` for a local user's typing change.
pub fn typing(
    s: &Services,
    short_room: u64,
    room_id: &RoomId,
    user: &UserId,
    typing: bool,
) -> Result<()> {
    let servers = servers_in_room(s, short_room)?;
    let edu = json!({ "edu_type": "m.typing", "content": { "room_id": room_id, "user_id": user, "typing": typing } });
    queue_edu(s, &servers, edu)
}

/// `m.receipt` for a local user's public read receipt (private receipts stay here).
pub fn receipt(
    s: &Services,
    short_room: u64,
    room_id: &RoomId,
    kind: &str,
    user: &UserId,
    event_id: &EventId,
    thread: Option<&str>,
) -> Result<()> {
    if kind != "m.read" {
        return Ok(());
    }
    let servers = servers_in_room(s, short_room)?;
    let mut data = json!({ "ts": crate::util::now_ms() });
    if let Some(thread) = thread {
        data["thread_id"] = json!(thread);
    }
    let edu = json!({
        "edu_type": "m.receipt",
        "content": { room_id.as_str(): { kind: { user.as_str(): { "event_ids": [event_id], "data": data } } } },
    });
    queue_edu(s, &servers, edu)
}

/// `m.presence` for a local user's explicit presence change, to every server sharing a joined
/// room with them.
pub fn presence(
    s: &Services,
    user: &UserId,
    presence: &str,
    status_msg: Option<&str>,
) -> Result<()> {
    let mut servers = std::collections::BTreeSet::new();
    for room in s.membership.rooms_of(user)? {
        if room.membership != crate::services::rooms::membership::Membership::Join {
            continue;
        }
        if let Some(short) = s.short.room(&room.room_id)? {
            servers.extend(servers_in_room(s, short)?.iter().cloned());
        }
    }
    let servers: Vec<_> = servers.into_iter().collect();
    let mut update = json!({ "user_id": user, "presence": presence, "last_active_ago": 0, "currently_active": presence == "online" });
    if let Some(msg) = status_msg {
        update["status_msg"] = json!(msg);
    }
    queue_edu(
        s,
        &servers,
        json!({ "edu_type": "m.presence", "content": { "push": [update] } }),
    )
}

/// `/sync?set_presence=…`: stores the presence and, when it changed, sends it as `m.presence` like
/// an explicit change (the stored status message kept).
pub fn presence_from_sync(s: &Services, user: &UserId, presence: &str) -> Result<()> {
    if let Some(record) = s.presence.set(&s.globals, user, presence, None)? {
        crate::services::appservice::ephemeral::presence_changed(s, user, &record)?;
        self::presence(s, user, &record.presence, record.status_msg.as_deref())?;
    }
    Ok(())
}
