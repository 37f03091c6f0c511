//! The frontier of a room's history: the prev events of our oldest events that we do not have.
//! Computed from the room's first timeline event (after a remote join: our join) until the first
//! fill stores it; then advanced by each fill. Gaps inside the timeline (after a long outage) are
//! not backfilled: their events would belong between timeline positions, not under them.

use std::collections::HashSet;

use ruma::OwnedEventId;

use crate::{
    error::Result,
    federation::incoming::persist::missing_prev_events,
    services::{Services, rooms::event_by_id},
    storage::Direction,
};

/// The stored frontier, or the missing prev events of the room's first timeline event.
pub fn current(s: &Services, short_room: u64) -> Result<Vec<OwnedEventId>> {
    if let Some(frontier) = s.timeline.backfill_frontier(short_room)? {
        return Ok(frontier);
    }
    let mut out = Vec::new();
    for (_, short) in s.timeline.scan(short_room, 0, Direction::Forward, 1)? {
        let event_id = s.short.event_id(short)?;
        let Some(event) = event_by_id(s, &event_id)? else {
            continue;
        };
        for missing in missing_prev_events(s, &event.pdu.prev_events)? {
            if !out.contains(&missing) {
                out.push(missing);
            }
        }
    }
    Ok(out)
}

/// Whether an event is placed in the room's order (timeline or backfilled; a soft-failed event
/// counts: it has its state).
pub fn known(s: &Services, event_id: &OwnedEventId) -> bool {
    missing_prev_events(s, std::slice::from_ref(event_id)).is_ok_and(|m| m.is_empty())
}

/// The frontier after a fill (pure given `known`): the old frontier and the prev events of the
/// stored events, without the events now known and those refused (never asked again).
pub fn advance(
    frontier: &[OwnedEventId],
    stored: &[(OwnedEventId, Vec<OwnedEventId>)],
    refused: &[OwnedEventId],
    known: impl Fn(&OwnedEventId) -> bool,
) -> Vec<OwnedEventId> {
    let stored_ids: HashSet<&OwnedEventId> = stored.iter().map(|(id, _)| id).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in frontier
        .iter()
        .chain(stored.iter().flat_map(|(_, prevs)| prevs.iter()))
    {
        if stored_ids.contains(id) || refused.contains(id) || !seen.insert(id.clone()) || known(id)
        {
            continue;
        }
        out.push(id.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: &str) -> OwnedEventId {
        OwnedEventId::try_from(format!("${n}")).unwrap()
    }

    #[test]
    fn advance_replaces_fetched_events_by_their_missing_prev_events() {
        let frontier = vec![id("a"), id("b")];
        // a came back with its prev c; c's prev d was already known.
        let stored = vec![(id("a"), vec![id("c")]), (id("c"), vec![id("d")])];
        let next = advance(&frontier, &stored, &[], |e| *e == id("d"));
        assert_eq!(next, vec![id("b")]);
    }

    #[test]
    fn advance_drops_refused_events_and_keeps_new_gaps_once() {
        let frontier = vec![id("a")];
        let stored = vec![(id("a"), vec![id("b"), id("c")]), (id("x"), vec![id("c")])];
        let next = advance(&frontier, &stored, &[id("b")], |_| false);
        assert_eq!(next, vec![id("c")]);
    }

    #[test]
    fn advance_ends_when_nothing_is_missing() {
        let stored = vec![(id("create"), vec![])];
        assert!(advance(&[id("create")], &stored, &[], |_| false).is_empty());
    }
}
