//! Checks on a relation a local user sends (under the room's send lock, so that two identical
//! annotations cannot both pass): the target is in the same room (or known to relate to in it),
//! an annotation has a key and is not a duplicate (same sender, type, key and target), a thread
//! does not start from an event that itself relates to another.

use http::StatusCode;
use ruma::{RoomId, UserId};

use super::{ANNOTATIONS, RELATION_OF, RELATIONS, index};
use crate::{
    error::{Error, Result},
    services::{Services, rooms::event_by_id},
    storage::keys::Key,
};

/// The longest annotation key accepted (as Synapse).
const MAX_KEY_LEN: usize = 500;

pub fn check_local(
    s: &Services,
    room_id: &RoomId,
    sender: &UserId,
    kind: &str,
    content: &serde_json::Value,
) -> Result<()> {
    let Some((rel_type, target, key)) = index::relation_of_content(content) else {
        return Ok(());
    };
    let Some(room) = s.short.room(room_id)? else {
        return Ok(());
    };
    let target_event = ruma::EventId::parse(&target)
        .ok()
        .map(|id| event_by_id(s, &id))
        .transpose()?
        .flatten();
    match &target_event {
        Some(event) if event.pdu.room_id != room_id => {
            return Err(Error::unknown("Relations must be in the same room"));
        }
        Some(_) => {}
        None => {
            // A client may know of an event we do not have from relations to it in this room.
            let prefix = Key::new().u64(room).str(&target).build();
            if s.globals
                .db
                .scan_prefix(RELATIONS, &prefix)
                .next()
                .transpose()?
                .is_none()
            {
                return Err(Error::unknown("Can't send relation to unknown event"));
            }
        }
    }
    match rel_type.as_str() {
        "m.annotation" => {
            let key = key.ok_or_else(|| Error::unknown("Missing aggregation key"))?;
            if key.len() > MAX_KEY_LEN {
                return Err(Error::unknown("Aggregation key is too long"));
            }
            let prefix = index::annotation_prefix(room, &target, kind, sender.as_str(), &key);
            if s.globals
                .db
                .scan_prefix(ANNOTATIONS, &prefix)
                .next()
                .transpose()?
                .is_some()
            {
                return Err(Error::new(
                    StatusCode::BAD_REQUEST,
                    "M_DUPLICATE_ANNOTATION",
                    "Can't send same reaction twice",
                ));
            }
        }
        "m.thread" => {
            if let Some(event) = &target_event
                && s.globals
                    .db
                    .contains(RELATION_OF, &event.short.to_be_bytes())?
            {
                return Err(Error::unknown(
                    "Cannot start threads from an event with a relation",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}
