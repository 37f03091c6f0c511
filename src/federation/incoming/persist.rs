//! Appending a checked remote PDU through the timeline's one persist path: authorised against
//! its auth events and against the state before it (the state after its prev events, resolved
//! across several), soft-failed against the current state, forward extremities updated.

use ruma::OwnedEventId;

use super::{
    pdu_checks::{CheckedPdu, check_auth_events},
    same_room::ensure_references_in_room,
    state_at,
};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        rooms::version,
        timeline::append::{
            BUILD_ATTEMPTS, Current, Forward, Persist, RoomHead, authorise, is_room_changed,
            persist,
        },
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Appended,
    /// Already stored.
    Duplicate,
    /// Stored, but not allowed by the current state: kept out of the timeline and the state.
    SoftFailed,
}

/// The prev events of `pdu` whose state this server does not know: events it does not have, and
/// outliers (position 0, no snapshots).
pub fn missing_prev_events(
    s: &Services,
    prev_events: &[OwnedEventId],
) -> Result<Vec<OwnedEventId>> {
    let mut out = Vec::new();
    for id in prev_events {
        let known = match s.short.event(id)? {
            Some(short) => s
                .timeline
                .meta(short)?
                .is_some_and(|m| m.pos != 0 || m.state_after != 0 || m.state_before != 0),
            None => false,
        };
        if !known {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// Appends a remote event whose prev events are all stored. `strict` (send_join, send_leave):
/// an event the current state does not allow is refused instead of soft-failed.
pub fn append_remote(
    s: &Services,
    checked: CheckedPdu,
    forward: Forward,
    strict: bool,
) -> Result<Outcome> {
    append_remote_at(s, checked, forward, strict, None)
}

/// `append_remote` with the state before the event given (from `state_ids`) when its prev events
/// are not all known.
pub fn append_remote_at(
    s: &Services,
    checked: CheckedPdu,
    forward: Forward,
    strict: bool,
    given_before: Option<u64>,
) -> Result<Outcome> {
    let CheckedPdu {
        event_id,
        room_id,
        version,
        object,
        pdu,
    } = checked;
    let lock = s.timeline.room_lock(&room_id);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(short) = s.short.event(&event_id)?
        && s.timeline.meta(short)?.is_some()
    {
        return Ok(Outcome::Duplicate);
    }
    // Checked with the version we stored for the room, never one a peer named.
    crate::federation::join::remote::same_version(
        s.timeline.room_version(&room_id)?.as_ref(),
        &version,
    )?;
    let rules = version::rules(&version)?;
    let short_room = s
        .short
        .room(&room_id)?
        .ok_or_else(|| Error::not_found("Unknown room"))?;
    ensure_references_in_room(s, short_room, &pdu)?;
    check_auth_events(s, &pdu, &rules)?;
    let before = match given_before {
        Some(before) => before,
        None => {
            if !missing_prev_events(s, &pdu.prev_events)?.is_empty() {
                return Err(Error::not_found("prev events are missing"));
            }
            state_at::state_before(s, &room_id, &rules, &pdu.prev_events)?
        }
    };
    let mut prev_shorts = Vec::new();
    for id in &pdu.prev_events {
        if let Some(short) = s.short.event(id)? {
            prev_shorts.push(short);
        }
    }
    // Placed against the room's head as read here; in a group of processes another may append
    // to the room meanwhile, and the commit then fails: read the head again and place it again.
    let mut attempt = 0;
    let (soft_failed, linear) = loop {
        attempt += 1;
        let head = RoomHead::read(s, short_room)?;
        let current = s.state.load(head.snapshot)?;
        let soft_failed = authorise(s, &rules, &pdu, &current).is_err();
        if soft_failed && strict {
            return Err(Error::forbidden(
                "The event is not allowed by the room's current state",
            ));
        }
        let replaces: Vec<u64> = head
            .extremities
            .iter()
            .copied()
            .filter(|e| prev_shorts.contains(e))
            .collect();
        let linear = head.extremities.iter().all(|e| prev_shorts.contains(e));
        let persisted = persist(
            s,
            Persist {
                room_id: room_id.clone(),
                version: version.clone(),
                short_room,
                object: object.clone(),
                event_id: event_id.clone(),
                pdu: pdu.clone(),
                state_before: before,
                replaces,
                current: if linear {
                    Current::After
                } else {
                    Current::Keep
                },
                txn: None,
                soft_failed,
                forward: forward.clone(),
                prepared_on: Some(head),
            },
        );
        match persisted {
            Ok(_) => break (soft_failed, linear),
            Err(e) if is_room_changed(&e) && attempt < BUILD_ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    };
    if soft_failed {
        return Ok(Outcome::SoftFailed);
    }
    if !linear {
        state_at::update_current(s, &room_id, &rules, short_room)?;
    }
    Ok(Outcome::Appended)
}
