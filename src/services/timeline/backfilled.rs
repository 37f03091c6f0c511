//! Events fetched from other servers with `/backfill`: a second ordering space under a room's
//! timeline. Backfilled events have no stream position (their `event_meta` position is 0, with
//! real state snapshots), so /sync never sees them; they are ordered by a per-room sequence
//! number that grows towards the past (1 is the newest backfilled event, just under the room's
//! first timeline event). The frontier lists the events still to fetch (prev events of our
//! oldest events that we do not have).

use ruma::OwnedEventId;

use super::Timeline;
use crate::{
    error::{Error, Result},
    services::globals::Commit,
    storage::{
        Direction, Map,
        keys::{Key, KeyReader, u64_from},
    },
};

/// short room u64 ‖ sequence u64 → short event u64 (sequence 1 is the newest backfilled event).
pub const BACKFILL_TIMELINE: Map = Map("backfill_timeline");
/// short event u64 → short room u64 ‖ sequence u64.
pub const BACKFILLED_EVENTS: Map = Map("backfilled_events");
/// short room u64 → JSON array of the event ids still to fetch (`[]`: nothing more to fetch).
pub const BACKFILL_FRONTIER: Map = Map("backfill_frontier");
pub const MAPS: &[Map] = &[BACKFILL_TIMELINE, BACKFILLED_EVENTS, BACKFILL_FRONTIER];

impl Timeline {
    /// Backfilled events of a room from sequence `from`: `Direction::Forward` goes towards the
    /// past (`from` and larger), `Backward` towards the present (`from` and smaller, down to 1).
    /// Returns (sequence, short event).
    pub fn scan_backfilled(
        &self,
        short_room: u64,
        from: u64,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>> {
        let prefix = Key::new().u64(short_room).build();
        let from_key = Key::new().u64(short_room).u64(from).build();
        let mut out = Vec::new();
        for entry in self
            .db
            .scan_from(BACKFILL_TIMELINE, &prefix, &from_key, direction)
            .take(limit)
        {
            let (key, value) = entry?;
            let seq = KeyReader::new(&key[8..])
                .u64()
                .ok_or_else(|| Error::internal("corrupt backfill key"))?;
            if seq == 0 {
                continue;
            }
            out.push((
                seq,
                u64_from(&value).ok_or_else(|| Error::internal("corrupt backfill value"))?,
            ));
        }
        Ok(out)
    }

    /// The largest sequence number of a room's backfilled events (0: none yet).
    pub fn oldest_backfilled_seq(&self, short_room: u64) -> Result<u64> {
        Ok(self
            .scan_backfilled(short_room, u64::MAX, Direction::Backward, 1)?
            .first()
            .map_or(0, |(seq, _)| *seq))
    }

    /// The place of a backfilled event: (short room, sequence).
    pub fn backfilled_seq(&self, short_event: u64) -> Result<Option<(u64, u64)>> {
        let Some(bytes) = self.db.get(BACKFILLED_EVENTS, &short_event.to_be_bytes())? else {
            return Ok(None);
        };
        let mut reader = KeyReader::new(&bytes);
        match (reader.u64(), reader.u64()) {
            (Some(room), Some(seq)) => Ok(Some((room, seq))),
            _ => Err(Error::internal("corrupt backfilled event")),
        }
    }

    /// Writes a backfilled event's place into `c` (its PDU and metadata are written by the caller).
    pub(crate) fn put_backfilled(
        &self,
        c: &mut Commit,
        short_room: u64,
        seq: u64,
        short_event: u64,
    ) {
        c.batch.put(
            BACKFILL_TIMELINE,
            Key::new().u64(short_room).u64(seq).build(),
            short_event.to_be_bytes(),
        );
        c.batch.put(
            BACKFILLED_EVENTS,
            short_event.to_be_bytes(),
            Key::new().u64(short_room).u64(seq).build(),
        );
    }

    /// The events still to fetch for a room: `None` when never computed, empty when done.
    pub fn backfill_frontier(&self, short_room: u64) -> Result<Option<Vec<OwnedEventId>>> {
        let Some(bytes) = self.db.get(BACKFILL_FRONTIER, &short_room.to_be_bytes())? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| Error::internal("corrupt backfill frontier"))
    }

    pub(crate) fn put_backfill_frontier(
        &self,
        c: &mut Commit,
        short_room: u64,
        frontier: &[OwnedEventId],
    ) -> Result<()> {
        let bytes = serde_json::to_vec(frontier).map_err(|e| Error::internal(e.to_string()))?;
        c.batch
            .put(BACKFILL_FRONTIER, short_room.to_be_bytes(), bytes);
        Ok(())
    }
}
