//! Server-side search of room history (`POST /search`, category `room_events`).
//!
//! A full-text index of the bodies of `m.room.message` events (`content.body`), of `m.room.name`
//! names and `m.room.topic` topics: one posting per (room, token, event position), written in the
//! event's own commit batch (`event_committed`, called by `timeline::append::persist`) and deleted
//! in the batch of its redaction (`event_redacted`). Events stored before the index existed are
//! indexed by a background task at start-up (`rebuild`). A query (`query`) reads the postings of
//! its words, keeps events that have all of them, orders them (`order`), then checks each against
//! the filter and history visibility and builds the answer (`results`, `context`).

pub mod context;
pub mod index;
pub mod order;
pub mod query;
pub mod rebuild;
pub mod results;
pub mod tokenize;

use ruma::CanonicalJsonObject;

use crate::{
    error::Result,
    services::{Services, globals::Commit},
    storage::Map,
};

/// short room u64 ‖ token str ‖ event position u64 → short event u64 ‖ occurrences u32.
pub const SEARCH_POSTINGS: Map = Map("search_postings");
/// `rebuild_next` → u64: the next short event id the start-up rebuild reads (`u64::MAX`: done).
pub const SEARCH_META: Map = Map("search_meta");
pub const MAPS: &[Map] = &[SEARCH_POSTINGS, SEARCH_META];

/// In the commit of a new timeline event (position `pos`): its postings, in the same batch.
pub fn event_committed(
    c: &mut Commit,
    short_room: u64,
    pos: u64,
    short_event: u64,
    event: &CanonicalJsonObject,
) {
    if pos == 0 {
        return;
    }
    for (token, count) in index::event_tokens(event) {
        c.batch.put(
            SEARCH_POSTINGS,
            index::posting_key(short_room, &token, pos),
            index::posting_value(short_event, count),
        );
    }
}

/// In the commit of a redaction: deletes the postings of the redacted event (`original` is its
/// stored form before the redaction).
pub fn event_redacted(
    s: &Services,
    c: &mut Commit,
    target_short: u64,
    original: &CanonicalJsonObject,
) -> Result<()> {
    let Some(meta) = s.timeline.meta(target_short)? else {
        return Ok(());
    };
    if meta.pos == 0 {
        return Ok(());
    }
    for (token, _) in index::event_tokens(original) {
        c.batch.delete(
            SEARCH_POSTINGS,
            index::posting_key(meta.short_room, &token, meta.pos),
        );
    }
    Ok(())
}
