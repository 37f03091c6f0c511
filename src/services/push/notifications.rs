//! The notifications list of `GET /notifications`: every event that notified a user, newest first.

use ruma::{OwnedEventId, OwnedRoomId, UserId, push::Action};
use serde::{Deserialize, Serialize};

use super::{PUSH_NOTIFICATIONS, counts_store::is_read};
use crate::{
    error::Result,
    services::Services,
    storage::{
        Direction,
        db::decode_json,
        keys::{Key, KeyReader},
    },
};

/// A notification as stored (key: user, event position).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notification {
    pub room_id: OwnedRoomId,
    pub event_id: OwnedEventId,
    pub actions: Vec<Action>,
    /// When the notification was made (ms).
    pub ts: u64,
}

/// One listed notification.
pub struct Listed {
    pub pos: u64,
    pub notification: Notification,
    pub read: bool,
}

/// Up to `limit` notifications before position `from` (exclusive; everything when None), newest
/// first, only highlights when `only_highlight`; and the token of the next page.
pub fn list(
    s: &Services,
    user: &UserId,
    from: Option<u64>,
    limit: usize,
    only_highlight: bool,
) -> Result<(Vec<Listed>, Option<String>)> {
    let prefix = Key::new().str(user.as_str()).build();
    let start = match from {
        Some(0) => return Ok((Vec::new(), None)),
        Some(pos) => Key::new().str(user.as_str()).u64(pos - 1).build(),
        None => Key::new().str(user.as_str()).u64(u64::MAX).build(),
    };
    let mut out = Vec::new();
    let mut more = false;
    let now = crate::util::now_ms();
    for entry in s
        .push
        .db
        .scan_from(PUSH_NOTIFICATIONS, &prefix, &start, Direction::Backward)
    {
        let (key, value) = entry?;
        let Some(pos) = KeyReader::new(&key[prefix.len()..]).u64() else {
            continue;
        };
        let notification: Notification = decode_json(PUSH_NOTIFICATIONS, &value)?;
        if only_highlight && !notification.actions.iter().any(Action::is_highlight) {
            continue;
        }
        let short_room = s.short.room(&notification.room_id)?;
        let event = match (short_room, s.short.event(&notification.event_id)?) {
            (Some(_), Some(short)) => {
                crate::services::rooms::event_by_short(s, short, &notification.room_id)?
            }
            _ => None,
        };
        // An event expired under its room's retention policy is not listed.
        if let Some(event) = &event
            && crate::services::retention::expired(s, event, now)?
        {
            continue;
        }
        if out.len() == limit {
            more = true;
            break;
        }
        let read = match short_room {
            Some(short_room) => {
                let thread = event.as_ref().and_then(|e| super::evaluate::thread_of(e));
                is_read(s, user, short_room, pos, thread.as_deref())?
            }
            None => false,
        };
        out.push(Listed {
            pos,
            notification,
            read,
        });
    }
    let next = more
        .then(|| out.last().map(|l| l.pos.to_string()))
        .flatten();
    Ok((out, next))
}
