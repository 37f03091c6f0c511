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
        keys::{Key, KeyReader, u64_from},
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

/// The first byte of a record in the compact form ([`encode`]); older records are JSON
/// [`Notification`]s (first byte `{`).
const COMPACT: u8 = 1;

/// A notification record: `1 ‖ short event u64 ‖ ts u64 ‖ actions JSON`. The room and event IDs
/// are the event's own: a room of thousands writes a record per member for each message, and the
/// IDs were two thirds of it.
pub fn encode(short_event: u64, ts: u64, actions: &[Action]) -> Vec<u8> {
    let actions = serde_json::to_vec(actions).unwrap_or_else(|_| b"[]".to_vec());
    let mut out = Vec::with_capacity(17 + actions.len());
    out.push(COMPACT);
    out.extend_from_slice(&short_event.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&actions);
    out
}

/// A stored record, in either form: the notification, and its event's short id when known.
/// `None`: a compact record whose event is no longer known.
fn decode(s: &Services, value: &[u8]) -> Result<Option<(Notification, Option<u64>)>> {
    if value.first() != Some(&COMPACT) {
        let notification: Notification = decode_json(PUSH_NOTIFICATIONS, value)?;
        let short = s.short.event(&notification.event_id)?;
        return Ok(Some((notification, short)));
    }
    let corrupt = || crate::error::Error::internal("corrupt notification record");
    let short_event = value.get(1..9).and_then(u64_from).ok_or_else(corrupt)?;
    let ts = value.get(9..17).and_then(u64_from).ok_or_else(corrupt)?;
    let actions: Vec<Action> = serde_json::from_slice(&value[17..]).map_err(|_| corrupt())?;
    let Some(meta) = s.timeline.meta(short_event)? else {
        return Ok(None);
    };
    let room_id = s.short.room_id(meta.short_room)?;
    let event_id = s.short.event_id(short_event)?;
    Ok(Some((
        Notification {
            room_id,
            event_id,
            actions,
            ts,
        },
        Some(short_event),
    )))
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
        let Some((notification, short_event)) = decode(s, &value)? else {
            continue;
        };
        if only_highlight && !notification.actions.iter().any(Action::is_highlight) {
            continue;
        }
        let short_room = s.short.room(&notification.room_id)?;
        let event = match (short_room, short_event) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Records written by older versions (JSON) are still read; a compact record of an event
    /// that is not stored is skipped.
    #[test]
    fn both_forms_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::default();
        config.storage.path = dir.path().to_owned();
        let s = Services::open(config).unwrap();
        let legacy = crate::storage::db::encode_json(&Notification {
            room_id: ruma::owned_room_id!("!r:x"),
            event_id: ruma::owned_event_id!("$e"),
            actions: vec![Action::Notify],
            ts: 7,
        });
        let (read, short) = decode(&s, &legacy).unwrap().unwrap();
        assert_eq!(
            (read.room_id.as_str(), read.event_id.as_str()),
            ("!r:x", "$e")
        );
        assert_eq!((read.ts, short), (7, None));
        assert!(matches!(read.actions[..], [Action::Notify]));

        let compact = encode(123_456, 9, &[Action::Notify]);
        assert_eq!(compact[0], COMPACT);
        assert_eq!(compact.len(), 17 + br#"["notify"]"#.len());
        assert!(decode(&s, &compact).unwrap().is_none());
        assert!(decode(&s, &compact[..10]).is_err());
        s.shutdown();
    }
}
