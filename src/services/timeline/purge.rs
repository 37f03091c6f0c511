//! Purging a room's old events, in bounded batches: what retention's purge jobs
//! (`services::retention`), the admin API's `purge_history` and a room deletion with `purge` do.
//!
//! A purged event loses what a reader could learn from it: its content (the stored PDU is
//! replaced by its redacted form, as a redaction would, so its media URLs go too; the original
//! of an earlier redaction too), its search
//! postings, its relations (edits, reactions, thread replies) and its place in the timeline, in
//! the backfilled history and in the time index, and the `/notifications` entries of local users.
//! Its redacted skeleton stays, with its metadata, so the room's event graph stays whole: state
//! resolution, auth chains and other servers' backfill still find it. State events are never
//! purged, nor the room's forward extremities and latest event, so the room keeps working.
//!
//! Candidates are read from the time index (`events_by_time`), oldest first; each batch (at most
//! [`BATCH_EVENTS`], at most one reply per thread, whose counts are read and rewritten) is one
//! atomic commit, so a purge stopped at any point resumes where it stopped.

use std::collections::{BTreeSet, HashSet};

use ruma::{OwnedUserId, RoomId, room_version_rules::RoomVersionRules};

use crate::{
    error::{Error, Result},
    services::{
        Services,
        globals::Commit,
        push::PUSH_NOTIFICATIONS,
        rooms::{event_by_short, membership::Membership, version},
        time_index::{self, EVENTS_BY_TIME},
        timeline::{
            PDUS, StoredEvent, TIMELINE,
            backfilled::{BACKFILL_TIMELINE, BACKFILLED_EVENTS},
        },
    },
    storage::{
        Direction,
        keys::{Key, KeyReader},
    },
};

/// Events purged in one commit at most (a few milliseconds under the commit lock).
pub const BATCH_EVENTS: usize = 100;

/// Which events a purge takes.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// Events with an `origin_server_ts` before this (ms).
    pub before_ts: u64,
    /// Keep the forward extremities and the latest timeline event (a live room's graph ends).
    pub keep_graph_ends: bool,
    /// Purge the events of local senders too (`purge_history` keeps them unless asked).
    pub local_events: bool,
}

impl Scope {
    /// What retention purges: everything older, but the graph ends.
    pub fn before(before_ts: u64) -> Self {
        Self {
            before_ts,
            keep_graph_ends: true,
            local_events: true,
        }
    }
}

/// Purges the room's non-state events in `scope`; returns how many were purged, or None when
/// `stopping` said to stop between two batches.
pub fn purge(
    s: &Services,
    short_room: u64,
    scope: Scope,
    stopping: &dyn Fn() -> bool,
) -> Result<Option<u64>> {
    let room_id = s.short.room_id(short_room)?;
    let version = s
        .timeline
        .room_version(&room_id)?
        .ok_or_else(|| Error::internal(format!("no version for {room_id}")))?;
    let rules = version::rules(&version)?;
    let local_users = local_users(s, short_room)?;
    let mut from = Key::new().u64(short_room).build();
    let mut purged = 0;
    loop {
        if stopping() {
            return Ok(None);
        }
        let keep = if scope.keep_graph_ends {
            kept(s, short_room)?
        } else {
            HashSet::new()
        };
        let (batch, next) = next_batch(s, short_room, &room_id, scope, &from, &keep)?;
        if !batch.is_empty() {
            s.globals.commit(|c| {
                for event in &batch {
                    purge_event(s, c, event, &rules, &local_users)?;
                }
                Ok(())
            })?;
            for event in &batch {
                s.timeline.forget_cached(event.short);
            }
            purged += batch.len() as u64;
        }
        match next {
            Some(key) => from = key,
            None => return Ok(Some(purged)),
        }
    }
}

/// The forward extremities and the latest timeline event: never purged.
fn kept(s: &Services, short_room: u64) -> Result<HashSet<u64>> {
    let mut keep: HashSet<u64> = s.timeline.extremities(short_room)?.into_iter().collect();
    let prefix = Key::new().u64(short_room).build();
    let last = Key::new().u64(short_room).u64(u64::MAX).build();
    if let Some(entry) = s
        .globals
        .db
        .scan_from(TIMELINE, &prefix, &last, Direction::Backward)
        .next()
    {
        let (_, value) = entry?;
        if let Ok(bytes) = <[u8; 8]>::try_from(&value[..]) {
            keep.insert(u64::from_be_bytes(bytes));
        }
    }
    Ok(keep)
}

/// Local users with a membership in the room (their notifications are keyed by user).
fn local_users(s: &Services, short_room: u64) -> Result<Vec<OwnedUserId>> {
    let mut users = BTreeSet::new();
    for membership in [
        Membership::Join,
        Membership::Leave,
        Membership::Ban,
        Membership::Invite,
    ] {
        for user in s.membership.members(short_room, membership)? {
            if user.server_name() == s.config().server_name {
                users.insert(user);
            }
        }
    }
    Ok(users.into_iter().collect())
}

/// The next events to purge from the time index key `from` on, and where the next batch starts
/// (None: nothing older than the scope's `before_ts` is left).
fn next_batch(
    s: &Services,
    short_room: u64,
    room_id: &RoomId,
    scope: Scope,
    from: &[u8],
    keep: &HashSet<u64>,
) -> Result<(Vec<std::sync::Arc<StoredEvent>>, Option<Vec<u8>>)> {
    let prefix = Key::new().u64(short_room).build();
    let mut batch = Vec::new();
    let mut thread_roots = HashSet::new();
    for entry in s
        .globals
        .db
        .scan_from(EVENTS_BY_TIME, &prefix, from, Direction::Forward)
    {
        let (key, _) = entry?;
        let mut reader = KeyReader::new(&key);
        let (Some(_), Some(ts), Some(short)) = (reader.u64(), reader.u64(), reader.u64()) else {
            return Err(Error::internal("corrupt events_by_time key"));
        };
        if ts >= scope.before_ts {
            return Ok((batch, None));
        }
        if batch.len() >= BATCH_EVENTS {
            return Ok((batch, Some(key.to_vec())));
        }
        if keep.contains(&short) {
            continue;
        }
        let Some(event) = event_by_short(s, short, room_id)? else {
            continue;
        };
        if event.pdu.state_key.is_some()
            || (!scope.local_events && event.pdu.sender.server_name() == s.config().server_name)
        {
            continue;
        }
        if let Some(relation) = crate::services::relations::index::relation_of(&event.json)
            && relation.rel_type == "m.thread"
            && !thread_roots.insert(relation.target)
        {
            // A second reply of one thread waits for the next batch (thread counts).
            return Ok((batch, Some(key.to_vec())));
        }
        batch.push(event);
    }
    Ok((batch, None))
}

fn purge_event<'a>(
    s: &'a Services,
    c: &mut Commit<'a>,
    event: &StoredEvent,
    rules: &RoomVersionRules,
    local_users: &[OwnedUserId],
) -> Result<()> {
    let short = event.short;
    let meta = &event.meta;
    c.invalidate(crate::services::cluster::Invalidation::Event { short });
    crate::services::search::event_redacted(s, c, short, &event.json)?;
    crate::services::relations::event_redacted(s, c, short)?;
    let skeleton = ruma::canonical_json::redact(event.json.clone(), &rules.redaction, None)
        .map_err(|e| Error::internal(e.to_string()))?;
    let bytes = serde_json::to_vec(&skeleton).map_err(|e| Error::internal(e.to_string()))?;
    c.batch.put(PDUS, short.to_be_bytes(), bytes);
    super::redacted_originals::forget(&mut c.batch, short);
    if meta.pos != 0 {
        let room = meta.short_room;
        c.after_write(move || s.sliding_sync.bumps.forget(room));
        c.batch.delete(
            TIMELINE,
            Key::new().u64(meta.short_room).u64(meta.pos).build(),
        );
        for user in local_users {
            c.batch.delete(
                PUSH_NOTIFICATIONS,
                Key::new().str(user.as_str()).u64(meta.pos).build(),
            );
        }
    }
    if let Some((room, seq)) = s.timeline.backfilled_seq(short)? {
        c.batch
            .delete(BACKFILL_TIMELINE, Key::new().u64(room).u64(seq).build());
        c.batch.delete(BACKFILLED_EVENTS, short.to_be_bytes());
    }
    let ts: u64 = event.pdu.origin_server_ts.get().into();
    c.batch
        .delete(EVENTS_BY_TIME, time_index::key(meta.short_room, ts, short));
    Ok(())
}
