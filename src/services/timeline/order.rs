//! The order /messages and /context walk: a room's backfilled events (oldest first, by falling
//! sequence number), then its timeline (by stream position). A `Place` is a gap between two
//! events of that order; it is what pagination tokens carry.

use super::Timeline;
use crate::{
    error::{Error, Result},
    services::sync::SyncToken,
    storage::Direction,
};

/// A gap in a room's order. `Main(p)`: after the timeline event at position `p` (and every event
/// before it). `Back(k)`: after the backfilled event of sequence `k + 1`, before that of `k`;
/// `Back(0)` is the boundary, the same gap as `Main(0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Main(u64),
    Back(u64),
}

/// One event met by a walk: its short id, its rank in the order and the gap just past it.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub short: u64,
    pub rank: i128,
    pub after: Place,
}

impl Place {
    /// The token text: a /sync-style token in the timeline, `b<sequence>` among backfilled events.
    pub fn encode(&self) -> String {
        match self {
            Place::Main(pos) => SyncToken {
                pos: *pos,
                typing: 0,
            }
            .encode(),
            Place::Back(seq) => format!("b{seq}"),
        }
    }

    pub fn parse(token: &str) -> Result<Self> {
        if let Some(seq) = token.strip_prefix('b') {
            return seq
                .parse()
                .map(Place::Back)
                .map_err(|_| Error::invalid_param("Invalid pagination token"));
        }
        Ok(Place::Main(SyncToken::parse(token)?.pos))
    }

    /// The gap's rank: events of rank ≤ it come before it.
    pub fn rank(&self) -> i128 {
        match self {
            Place::Main(pos) => i128::from(*pos),
            Place::Back(seq) => -(i128::from(*seq) + 1),
        }
    }
}

/// The rank of a timeline event (position) and of a backfilled event (sequence).
pub fn main_rank(pos: u64) -> i128 {
    i128::from(pos)
}

pub fn back_rank(seq: u64) -> i128 {
    -i128::from(seq)
}

/// Walks a room's order from a gap, a batch at a time.
pub struct Walker {
    short_room: u64,
    pub place: Place,
    direction: Direction,
}

impl Walker {
    pub fn new(short_room: u64, from: Place, direction: Direction) -> Self {
        Self {
            short_room,
            place: from,
            direction,
        }
    }

    /// The next events (at most `batch`) in the walk's direction; empty at the end of the order.
    pub fn next_batch(&mut self, timeline: &Timeline, batch: usize) -> Result<Vec<Step>> {
        loop {
            let steps: Vec<Step> = match (self.place, self.direction) {
                (Place::Main(pos), Direction::Backward) => {
                    let found = timeline.scan(self.short_room, pos, Direction::Backward, batch)?;
                    if found.is_empty() {
                        // The timeline's start: the backfilled events follow.
                        self.place = Place::Back(0);
                        continue;
                    }
                    found
                        .into_iter()
                        .map(|(p, short)| Step {
                            short,
                            rank: main_rank(p),
                            after: Place::Main(p.saturating_sub(1)),
                        })
                        .collect()
                }
                (Place::Main(pos), Direction::Forward) => timeline
                    .scan(self.short_room, pos, Direction::Forward, batch)?
                    .into_iter()
                    .map(|(p, short)| Step {
                        short,
                        rank: main_rank(p),
                        after: Place::Main(p),
                    })
                    .collect(),
                (Place::Back(seq), Direction::Backward) => timeline
                    .scan_backfilled(
                        self.short_room,
                        seq.saturating_add(1),
                        Direction::Forward,
                        batch,
                    )?
                    .into_iter()
                    .map(|(k, short)| Step {
                        short,
                        rank: back_rank(k),
                        after: Place::Back(k),
                    })
                    .collect(),
                (Place::Back(seq), Direction::Forward) => {
                    let found = if seq == 0 {
                        Vec::new()
                    } else {
                        timeline.scan_backfilled(
                            self.short_room,
                            seq,
                            Direction::Backward,
                            batch,
                        )?
                    };
                    if found.is_empty() {
                        // Past the newest backfilled event: the timeline follows.
                        self.place = Place::Main(0);
                        continue;
                    }
                    found
                        .into_iter()
                        .map(|(k, short)| Step {
                            short,
                            rank: back_rank(k),
                            after: Place::Back(k - 1),
                        })
                        .collect()
                }
            };
            if let Some(last) = steps.last() {
                self.place = last.after;
            }
            return Ok(steps);
        }
    }
}

/// The state after the last event before a gap (`/members?at=`), backfilled events included.
pub fn state_at(
    s: &crate::services::Services,
    short_room: u64,
    place: Place,
) -> Result<std::sync::Arc<crate::services::state::StateMap>> {
    let mut walker = Walker::new(short_room, place, Direction::Backward);
    let Some(step) = walker.next_batch(&s.timeline, 1)?.into_iter().next() else {
        return Ok(Default::default());
    };
    let snapshot = s.timeline.meta(step.short)?.map_or(0, |m| m.state_after);
    s.state.load(snapshot)
}

/// Whether an event of rank `rank` lies beyond the gap `stop` in `direction`.
pub fn beyond(rank: i128, stop: Place, direction: Direction) -> bool {
    match direction {
        Direction::Backward => rank <= stop.rank(),
        Direction::Forward => rank > stop.rank(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for place in [
            Place::Main(0),
            Place::Main(42),
            Place::Back(0),
            Place::Back(7),
        ] {
            assert_eq!(Place::parse(&place.encode()).unwrap(), place);
        }
        assert_eq!(Place::parse("s17_3").unwrap(), Place::Main(17));
        assert!(Place::parse("bx").is_err());
        assert!(Place::parse("b-1").is_err());
        assert!(Place::parse("nonsense").is_err());
    }

    #[test]
    fn backfilled_events_rank_below_the_timeline() {
        // Oldest to newest: seq 3, 2, 1, then positions 5, 9.
        let ranks = [
            back_rank(3),
            back_rank(2),
            back_rank(1),
            main_rank(5),
            main_rank(9),
        ];
        assert!(ranks.windows(2).all(|w| w[0] < w[1]));
        // The gap after seq 2 (before seq 1) separates the first two from the rest.
        let gap = Place::Back(1);
        assert!(beyond(back_rank(2), gap, Direction::Backward));
        assert!(!beyond(back_rank(1), gap, Direction::Backward));
        assert!(beyond(back_rank(1), gap, Direction::Forward));
        assert!(!beyond(back_rank(2), gap, Direction::Forward));
        // The boundary: Back(0) and Main(0) are the same gap.
        assert!(beyond(back_rank(1), Place::Main(0), Direction::Backward));
        assert!(!beyond(main_rank(5), Place::Back(0), Direction::Backward));
        assert!(beyond(main_rank(5), Place::Back(0), Direction::Forward));
        assert!(!beyond(main_rank(5), Place::Main(5), Direction::Forward));
        assert!(beyond(main_rank(6), Place::Main(5), Direction::Forward));
    }
}
