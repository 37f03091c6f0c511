//! Finding the event closest to a time in a room's local history.

use ruma::{OwnedEventId, RoomId};

use super::EVENTS_BY_TIME;
use crate::{
    error::{Error, Result},
    services::{Services, rooms::event_by_short},
    storage::{
        Direction,
        keys::{Key, KeyReader},
    },
};

/// An event found for a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub event_id: OwnedEventId,
    pub origin_server_ts: u64,
    pub short: u64,
}

/// Entries read at most before giving up (each one an event that is gone).
const MAX_SKIPPED: usize = 1000;

/// The first event at or after `ts` (`forward`), or the last at or before it, among the room's
/// indexed events (ties: the one stored first, resp. last).
pub fn closest(
    s: &Services,
    short_room: u64,
    room_id: &RoomId,
    ts: u64,
    forward: bool,
) -> Result<Option<Found>> {
    let prefix = Key::new().u64(short_room).build();
    let (from, direction) = if forward {
        (super::key(short_room, ts, 0), Direction::Forward)
    } else {
        (super::key(short_room, ts, u64::MAX), Direction::Backward)
    };
    for entry in s
        .globals
        .db
        .scan_from(EVENTS_BY_TIME, &prefix, &from, direction)
        .take(MAX_SKIPPED)
    {
        let (key, _) = entry?;
        let mut reader = KeyReader::new(&key[8..]);
        let (Some(event_ts), Some(short)) = (reader.u64(), reader.u64()) else {
            return Err(Error::internal("corrupt events_by_time key"));
        };
        if let Some(event) = event_by_short(s, short, room_id)? {
            return Ok(Some(Found {
                event_id: event.pdu.event_id.clone(),
                origin_server_ts: event_ts,
                short,
            }));
        }
    }
    Ok(None)
}

/// Whether history is missing right before the event: one of its prev events is not placed in
/// the room's order (neither timeline nor backfilled; an outlier of the join's state is not). The
/// create event has nothing before it.
pub fn next_to_backward_gap(s: &Services, found: &Found) -> Result<bool> {
    let Some(event) = crate::services::rooms::event_by_id(s, &found.event_id)? else {
        return Ok(true);
    };
    Ok(
        !crate::federation::incoming::persist::missing_prev_events(s, &event.pdu.prev_events)?
            .is_empty(),
    )
}
