//! Ephemeral events for the services that ask for them (`receive_ephemeral`, MSC2409): typing,
//! read receipts and presence, in the `ephemeral` list of their transactions.
//!
//! They are kept in memory (a bounded buffer per service, [`MAX_BUFFERED`]) and sent with the next
//! transaction: like typing itself, they do not survive a restart; a bridge that misses one sees
//! the next. Only what concerns a room that interests the service is given to it
//! (`queue::room_interests`), and presence of users who share such a room or are its own.

use std::collections::VecDeque;

use ruma::{RoomId, UserId};
use serde_json::{Value, json};

use super::{Appservice, queue::room_interests};
use crate::{
    error::Result,
    services::{Services, cluster::Invalidation, ephemeral::PresenceRecord},
    util::now_ms,
};

/// Ephemeral events waiting for one service at most; the oldest are dropped beyond.
pub const MAX_BUFFERED: usize = 1_000;
/// Ephemeral events in one transaction at most.
pub const MAX_TXN_EPHEMERAL: usize = 100;

/// Who types in the room now (after a change there).
pub fn typing_changed(s: &Services, short_room: u64, room_id: &RoomId) -> Result<()> {
    if !wanted(s) {
        return Ok(());
    }
    let users = s.typing.typing_since(room_id, 0).unwrap_or_default();
    let event = json!({
        "type": "m.typing",
        "room_id": room_id,
        "content": { "user_ids": users },
    });
    for_room(s, short_room, room_id, &event)
}

/// A public read receipt stored (private ones stay with their user).
pub fn receipt_stored(
    s: &Services,
    short_room: u64,
    room_id: &RoomId,
    kind: &str,
    user: &UserId,
    event_id: &ruma::EventId,
    thread_id: Option<&str>,
) -> Result<()> {
    if kind != "m.read" || !wanted(s) {
        return Ok(());
    }
    let mut receipt = json!({ "ts": now_ms() });
    if let Some(thread) = thread_id {
        receipt["thread_id"] = json!(thread);
    }
    let event = json!({
        "type": "m.receipt",
        "room_id": room_id,
        "content": { event_id.as_str(): { kind: { user.as_str(): receipt } } },
    });
    for_room(s, short_room, room_id, &event)
}

/// A user's presence changed.
pub fn presence_changed(s: &Services, user: &UserId, record: &PresenceRecord) -> Result<()> {
    if !wanted(s) {
        return Ok(());
    }
    let mut content = json!({
        "presence": record.presence,
        "last_active_ago": now_ms().saturating_sub(record.last_active_ts),
        "currently_active": record.presence == "online",
    });
    if let Some(msg) = &record.status_msg {
        content["status_msg"] = json!(msg);
    }
    let event = json!({ "type": "m.presence", "sender": user, "content": content });
    let rooms = s.membership.joined_room_ids(user)?;
    for appservice in receivers(s) {
        let mut shares = appservice.owns_user(user);
        for room_id in &rooms {
            if shares {
                break;
            }
            if let Some(short) = s.short.room(room_id)? {
                shares = room_interests(s, appservice, short, room_id, &mut None)?;
            }
        }
        if shares {
            buffer(s, appservice, event.clone())?;
        }
    }
    Ok(())
}

/// The services that take ephemeral events (with a URL to send them to).
fn receivers(s: &Services) -> impl Iterator<Item = &Appservice> {
    s.appservices
        .all()
        .iter()
        .filter(|a| a.push_ephemeral && a.registration.url.is_some())
}

fn wanted(s: &Services) -> bool {
    receivers(s).next().is_some()
}

fn for_room(s: &Services, short_room: u64, room_id: &RoomId, event: &Value) -> Result<()> {
    let mut members = None;
    for appservice in receivers(s) {
        if room_interests(s, appservice, short_room, room_id, &mut members)? {
            buffer(s, appservice, event.clone())?;
        }
    }
    Ok(())
}

fn buffer(s: &Services, appservice: &Appservice, event: Value) -> Result<()> {
    let id = &appservice.registration.id;
    if s.globals.shared() && !s.globals.background_here() {
        // A group of processes: the transactions go out from the process holding the background
        // lease, which buffers what this commit's invalidation hands it.
        s.globals.commit(|c| {
            c.invalidate(Invalidation::AppserviceEphemeral {
                appservice: id.clone(),
                event,
            });
            Ok(())
        })?;
        return Ok(());
    }
    buffered(s, id, event);
    Ok(())
}

/// Buffers an ephemeral event for service `id` and wakes its sender.
pub fn buffered(s: &Services, id: &str, event: Value) {
    s.appservices.buffer_ephemeral(id, event);
    s.appservices.wake_id(id);
}

/// Adds `event` to a service's buffer: a typing event replaces the one of the same room still
/// waiting; beyond [`MAX_BUFFERED`] the oldest is dropped. Returns whether one was dropped.
pub(super) fn push_bounded(buffer: &mut VecDeque<Value>, event: Value) -> bool {
    if event["type"] == "m.typing"
        && let Some(waiting) = buffer
            .iter_mut()
            .find(|e| e["type"] == "m.typing" && e["room_id"] == event["room_id"])
    {
        *waiting = event;
        return false;
    }
    buffer.push_back(event);
    let dropped = buffer.len() > MAX_BUFFERED;
    if dropped {
        buffer.pop_front();
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_replaces_the_waiting_event_of_its_room() {
        let mut buffer = VecDeque::new();
        let typing = |room: &str, users: &[&str]| json!({"type": "m.typing", "room_id": room, "content": {"user_ids": users}});
        push_bounded(&mut buffer, typing("!a:x", &["@u:x"]));
        push_bounded(&mut buffer, typing("!b:x", &["@u:x"]));
        push_bounded(&mut buffer, typing("!a:x", &[]));
        assert_eq!(buffer.len(), 2);
        assert_eq!(buffer[0], typing("!a:x", &[]));
    }

    #[test]
    fn the_oldest_is_dropped_beyond_the_bound() {
        let mut buffer = VecDeque::new();
        let receipt = |n: usize| json!({"type": "m.receipt", "n": n});
        for n in 0..MAX_BUFFERED {
            assert!(!push_bounded(&mut buffer, receipt(n)));
        }
        assert!(push_bounded(&mut buffer, receipt(MAX_BUFFERED)));
        assert_eq!(buffer.len(), MAX_BUFFERED);
        assert_eq!(buffer[0], receipt(1));
    }
}
