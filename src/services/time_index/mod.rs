//! The events of each room by `origin_server_ts`, for jumping to a date
//! (`GET /rooms/{roomId}/timestamp_to_event` and its federation twin) without reading the room.
//!
//! One entry per timeline event, written in the event's own commit (`event_committed`, called by
//! `timeline::append::persist`, and by the backfill store for events fetched from the past);
//! soft-failed events and outliers (auth and state events fetched for a join) are not timeline
//! events and are not indexed. Events stored before the index existed are indexed by a background
//! walk at start-up (`rebuild`). An entry whose event is gone (a purged room) is skipped.

pub mod lookup;
pub mod rebuild;

use crate::{
    services::globals::Commit,
    storage::{Map, keys::Key},
};

/// short room u64 ‖ origin_server_ts u64 ‖ short event u64 → ().
pub const EVENTS_BY_TIME: Map = Map("events_by_time");
/// `rebuild_next` → u64: the next short event id the start-up walk reads (`u64::MAX`: done).
pub const TIME_INDEX_META: Map = Map("time_index_meta");
pub const MAPS: &[Map] = &[EVENTS_BY_TIME, TIME_INDEX_META];

pub fn key(short_room: u64, ts: u64, short_event: u64) -> Vec<u8> {
    Key::new().u64(short_room).u64(ts).u64(short_event).build()
}

/// In the commit of a timeline event (or a backfilled one): its entry, in the same batch.
pub fn event_committed(
    c: &mut Commit,
    short_room: u64,
    short_event: u64,
    origin_server_ts: ruma::MilliSecondsSinceUnixEpoch,
) {
    c.batch.put(
        EVENTS_BY_TIME,
        key(short_room, origin_server_ts.get().into(), short_event),
        Vec::new(),
    );
}
