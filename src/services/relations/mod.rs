//! Relations between events (`m.relates_to`): the index of relating events by target, the
//! threads of each room ordered by latest activity, and what is read from them: `/relations`,
//! `/threads` and the bundled aggregations (`unsigned.m.relations`) of served events.
//!
//! Everything is written in the relating event's own commit (`event_committed`, called by
//! `timeline::append::persist` and by the backfill store) and removed in the commit of its
//! redaction (`event_redacted`). Keys carry the room, so a relation never crosses rooms: a
//! relation in room B to an event of room A is filed under B and never read for A. Events are
//! ordered by an `ord` (see [`ord`]) that places backfilled events below the timeline, as
//! /messages does.

pub mod bundle;
pub mod filter;
pub mod index;
pub mod query;
pub mod redact;
pub mod threads;
pub mod validate;

use ruma::CanonicalJsonObject;

use crate::{
    error::Result,
    services::{Services, globals::Commit},
    storage::Map,
};

/// room u64 ‖ target event id str ‖ ord u64 ‖ short event u64 → rel_type str ‖ type str ‖ sender str.
pub const RELATIONS: Map = Map("relations");
/// room u64 ‖ target event id str ‖ rel_type str ‖ ord u64 ‖ short event u64 → type str ‖ sender str.
pub const RELATIONS_BY_TYPE: Map = Map("relations_by_type");
/// short event u64 → room u64 ‖ target str ‖ rel_type str ‖ ord u64 ‖ type str ‖ sender str ‖ key str:
/// the relation an indexed event makes (what its redaction removes).
pub const RELATION_OF: Map = Map("relation_of");
/// room u64 ‖ target str ‖ type str ‖ sender str ‖ key str ‖ short event u64 → (): annotations,
/// for the duplicate check.
pub const ANNOTATIONS: Map = Map("relation_annotations");
/// room u64 ‖ latest ord u64 ‖ root event id str → (): a room's threads by latest activity.
pub const THREADS: Map = Map("threads");
/// room u64 ‖ root event id str → latest ord u64 ‖ latest short event u64 ‖ reply count u64.
pub const THREAD_META: Map = Map("thread_meta");
/// room u64 ‖ root event id str ‖ user str → u64: how many replies of the thread the user sent.
pub const THREAD_USERS: Map = Map("thread_users");
pub const MAPS: &[Map] = &[
    RELATIONS,
    RELATIONS_BY_TYPE,
    RELATION_OF,
    ANNOTATIONS,
    THREADS,
    THREAD_META,
    THREAD_USERS,
];

/// The order of relating events: timeline events by stream position above backfilled events,
/// which are ordered by their falling sequence number. A "gap" is an ord value `g` meaning
/// "after every event of ord ≤ g"; gaps convert to and from /messages tokens (`Place`).
pub mod ord {
    use crate::services::timeline::order::Place;

    const BASE: u64 = 1 << 63;

    pub fn main(pos: u64) -> u64 {
        BASE + pos
    }

    pub fn back(seq: u64) -> u64 {
        BASE - seq.min(BASE - 1)
    }

    /// The gap a /messages token names.
    pub fn gap_of(place: Place) -> u64 {
        match place {
            Place::Main(pos) => BASE.saturating_add(pos),
            Place::Back(seq) => BASE - 1 - seq.min(BASE - 1),
        }
    }

    /// The /messages token of a gap.
    pub fn place_of(gap: u64) -> Place {
        if gap >= BASE {
            Place::Main(gap - BASE)
        } else {
            Place::Back(BASE - 1 - gap)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn gaps_match_the_messages_order() {
            // Backfilled seq 3, 2, 1 then timeline positions 1, 5: ords grow in that order.
            let ords = [back(3), back(2), back(1), main(1), main(5)];
            assert!(ords.windows(2).all(|w| w[0] < w[1]));
            // Back(1): after seq 2, before seq 1.
            let g = gap_of(Place::Back(1));
            assert!(back(2) <= g && back(1) > g);
            // Main(1): after position 1.
            let g = gap_of(Place::Main(1));
            assert!(main(1) <= g && main(5) > g);
            for place in [Place::Main(0), Place::Main(9), Place::Back(4)] {
                assert_eq!(place_of(gap_of(place)), place);
            }
            // Back(0) and Main(0) are the same gap: every backfilled event before, no timeline event.
            assert!(back(1) <= gap_of(Place::Back(0)) && main(1) > gap_of(Place::Back(0)));
        }
    }
}

/// In the commit that stores an event at `ord` (see [`ord`]): indexes the relation it makes, if
/// any. `event` is its stored form (a redacted event relates to nothing).
pub fn event_committed(
    s: &Services,
    c: &mut Commit,
    short_room: u64,
    ord: u64,
    short_event: u64,
    event: &CanonicalJsonObject,
) -> Result<()> {
    if ord == 0 {
        return Ok(());
    }
    let Some(relation) = index::relation_of(event) else {
        return Ok(());
    };
    index::write(s, c, short_room, ord, short_event, &relation)
}

/// In the commit of a redaction: removes the relation the redacted event made from the index.
pub fn event_redacted(s: &Services, c: &mut Commit, target_short: u64) -> Result<()> {
    redact::remove(s, c, target_short)
}
