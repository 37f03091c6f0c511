//! One room per event graph: the prev, auth and state events a PDU (or a peer's answer) names
//! must be events of the PDU's own room. An event stored in another room is never taken as one
//! of this room's, whatever a peer says: two rooms' states would otherwise meet in state
//! resolution, and one room's memberships and power levels would decide another's events.

use ruma::EventId;

use crate::{
    error::{Error, Result},
    services::Services,
};

/// Refuses when one of `ids` is stored as an event of another room than `short_room`; events we
/// do not have are left to the caller (fetched, or missing).
pub fn ensure_in_room<'a>(
    s: &Services,
    short_room: u64,
    ids: impl IntoIterator<Item = &'a EventId>,
    what: &str,
) -> Result<()> {
    for id in ids {
        let Some(short) = s.short.event(id)? else {
            continue;
        };
        if let Some(room) = s.timeline.room_of(short)?
            && room != short_room
        {
            return Err(Error::forbidden(format!(
                "{what} {id} is an event of another room"
            )));
        }
    }
    Ok(())
}

/// `ensure_in_room` for the prev and auth events of a PDU.
pub fn ensure_references_in_room(
    s: &Services,
    short_room: u64,
    pdu: &crate::services::timeline::pdu::Pdu,
) -> Result<()> {
    ensure_in_room(
        s,
        short_room,
        pdu.prev_events.iter().map(|e| &**e),
        "prev event",
    )?;
    ensure_in_room(
        s,
        short_room,
        pdu.auth_events.iter().map(|e| &**e),
        "auth event",
    )
}
