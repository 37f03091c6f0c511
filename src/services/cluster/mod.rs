//! Several Parvis processes on one PostgreSQL schema (`[storage.postgres] shared`,
//! spec/scale-out.md step 2): what one process changes in another's memory.
//!
//! Commits are ordered by the database (`Engine::sequence`, used by `Globals::commit`). A commit
//! that makes an in-memory cache wrong (a push rule change, a redacted or purged event) records an [`Invalidation`] at its stream position, in its own batch. Every process
//! applies the invalidations up to a position before it serves that position
//! (`Globals::advance_to`), when told of commits (`NOTIFY`), every second in any case, and when
//! a client brings a /sync token from ahead of it.

pub mod lease;

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    services::Services,
    storage::{Db, Direction, Map, db::decode_json},
};

/// Invalidations by position: `position (8 bytes) ‖ index (2 bytes)` → JSON [`Recorded`].
pub const INVALIDATIONS: Map = Map("invalidations");

/// How long invalidations are kept: every running process reads them within seconds; a process
/// that starts later starts with empty caches.
const KEEP_MS: u64 = 60 * 60 * 1000;
const PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);

/// What a commit makes stale in the memory of the other processes. (Access tokens are not
/// cached in a group: a token deleted by one process is refused by every other at once, with
/// no window for a notification to arrive.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invalidation {
    /// A user's push rules changed.
    PushRules { user: ruma::OwnedUserId },
    /// A stored event changed (redacted, purged): its parsed copy is dropped.
    Event { short: u64 },
    /// A user added to or removed from a set an admin keeps (locked, suspended, shadow-banned,
    /// erased; `admin::user_set`), named by its map.
    UserSet {
        map: String,
        user: ruma::OwnedUserId,
        member: bool,
    },
    /// Someone started typing in a room (until then), or stopped (`until_ms` None).
    Typing {
        room: ruma::OwnedRoomId,
        user: ruma::OwnedUserId,
        until_ms: Option<u64>,
    },
    /// An ephemeral event (typing, receipt, presence) for an application service, made on a
    /// process without the background lease: the holder sends it.
    AppserviceEphemeral {
        appservice: String,
        event: serde_json::Value,
    },
    /// A room's `m.room.retention` changed: its remembered max lifetime is dropped.
    RoomRetention { short_room: u64 },
    /// A room joined with partial state has its full state: snapshot records were rewritten in
    /// place, the room's servers and members changed.
    RoomStateCompleted { short_room: u64 },
}

#[derive(Serialize, Deserialize)]
struct Recorded {
    at_ms: u64,
    #[serde(flatten)]
    invalidation: Invalidation,
}

pub fn key(pos: u64, index: u16) -> Vec<u8> {
    let mut key = pos.to_be_bytes().to_vec();
    key.extend_from_slice(&index.to_be_bytes());
    key
}

pub fn encode(invalidation: &Invalidation, now_ms: u64) -> Vec<u8> {
    crate::storage::db::encode_json(&Recorded {
        at_ms: now_ms,
        invalidation: invalidation.clone(),
    })
}

/// The invalidations recorded at positions in `(after, up_to]`, in order, with their positions.
pub fn recorded(db: &Db, after: u64, up_to: u64) -> Result<Vec<(u64, Invalidation)>> {
    let mut found = Vec::new();
    for entry in db.scan_from(
        INVALIDATIONS,
        b"",
        &(after + 1).to_be_bytes(),
        Direction::Forward,
    ) {
        let (key, value) = entry?;
        let pos = key
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map_or(u64::MAX, u64::from_be_bytes);
        if pos > up_to {
            break;
        }
        found.push((
            pos,
            decode_json::<Recorded>(INVALIDATIONS, &value)?.invalidation,
        ));
    }
    Ok(found)
}

/// Applies one invalidation, recorded at `pos`, to this process's caches.
pub fn apply(s: &Services, pos: u64, invalidation: &Invalidation) {
    match invalidation {
        Invalidation::PushRules { user } => {
            s.push
                .rules_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(user);
        }
        Invalidation::Event { short } => s.timeline.forget_cached(*short),
        Invalidation::UserSet { map, user, member } => {
            let sets = [
                &s.moderation.locked,
                &s.moderation.suspended,
                &s.shadow_bans,
                &s.erased_users,
            ];
            if let Some(set) = sets.iter().find(|set| set.map().0 == map.as_str()) {
                set.apply(user, *member);
            }
        }
        Invalidation::Typing {
            room,
            user,
            until_ms,
        } => s.typing.apply(room, user, *until_ms, pos),
        Invalidation::AppserviceEphemeral { appservice, event } => {
            if s.globals.background_here() {
                crate::services::appservice::ephemeral::buffered(s, appservice, event.clone());
            }
        }
        Invalidation::RoomRetention { short_room } => s.retention.forget(*short_room),
        Invalidation::RoomStateCompleted { short_room } => {
            crate::services::partial_state::complete::forget_after_completion(s, *short_room)
        }
    }
}

/// Background work woken for the others' commits at most this often (a later commit is caught
/// by the next check, at most a second later).
const WAKE_AT_MOST_EVERY: Duration = Duration::from_millis(100);

/// Wakes the background workers of this process (the lease holder) for work that other
/// processes queued: push delivery, webhook commands, application service transactions and the
/// federation destinations with queued items.
fn wake_background(s: &Services) -> Result<()> {
    s.push.deliver_wake.notify_one();
    s.webhooks.commands_wake.notify_one();
    s.appservices.wake_all();
    if s.config().federation.enabled {
        for destination in s.federation.sender.pending_destinations()? {
            s.federation.sender.wake(&destination);
        }
    }
    Ok(())
}

/// Deletes invalidations older than [`KEEP_MS`]; how many.
fn prune(db: &Db, now_ms: u64) -> Result<usize> {
    let mut batch = crate::storage::Batch::new();
    for entry in db.scan_prefix(INVALIDATIONS, b"") {
        let (key, value) = entry?;
        let recorded: Recorded = decode_json(INVALIDATIONS, &value)?;
        if recorded.at_ms + KEEP_MS > now_ms {
            break;
        }
        batch.delete(INVALIDATIONS, key.to_vec());
        if batch.ops.len() >= 1000 {
            break;
        }
    }
    let pruned = batch.ops.len();
    db.write(batch)?;
    Ok(pruned)
}

/// The background task of a process in a group: catches up with the others' commits whenever
/// the engine says they may have committed, and prunes old invalidations. Nothing to do for a
/// process alone on its database.
pub fn spawn(
    services: Arc<Services>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !services.globals.shared() {
            return;
        }
        let told = Arc::new(tokio::sync::Notify::new());
        let wake = told.clone();
        let watching = services
            .globals
            .db
            .watch_commits(Arc::new(move || wake.notify_one()));
        if let Err(e) = watching {
            tracing::error!("cannot watch the other processes' commits: {e}");
            return;
        }
        let mut last_prune: Option<tokio::time::Instant> = None;
        let (mut woken_at, mut woken_for) =
            (tokio::time::Instant::now(), services.globals.current_pos());
        loop {
            tokio::select! {
                _ = told.notified() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = services.run(|s| s.globals.catch_up()).await {
                tracing::warn!("catching up with the other processes: {}", e.message);
            }
            // The others' commits may have queued background work, which runs here.
            let pos = services.globals.current_pos();
            if services.globals.background_here()
                && pos > woken_for
                && woken_at.elapsed() >= WAKE_AT_MOST_EVERY
            {
                (woken_at, woken_for) = (tokio::time::Instant::now(), pos);
                if let Err(e) = services.run(|s| wake_background(s)).await {
                    tracing::warn!("waking the background work: {}", e.message);
                }
            }
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                match services
                    .run(|s| Ok(prune(&s.globals.db, crate::util::now_ms())?))
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!("{n} invalidations pruned"),
                    Err(e) => tracing::warn!("pruning invalidations: {}", e.message),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidations_are_read_back_by_position_range_and_pruned_by_age() {
        let (_dir, db) = crate::storage::test_db(&[INVALIDATIONS]);
        let tokens = Invalidation::PushRules {
            user: ruma::owned_user_id!("@a:x"),
        };
        let event = Invalidation::Event { short: 7 };
        let mut batch = crate::storage::Batch::new();
        batch.put(INVALIDATIONS, key(5, 0), encode(&tokens, 1_000));
        batch.put(INVALIDATIONS, key(5, 1), encode(&event, 1_000));
        batch.put(INVALIDATIONS, key(9, 0), encode(&event, KEEP_MS + 5_000));
        db.write(batch).unwrap();
        assert_eq!(
            recorded(&db, 4, 5).unwrap(),
            vec![(5, tokens.clone()), (5, event.clone())]
        );
        assert_eq!(recorded(&db, 5, 8).unwrap(), vec![]);
        assert_eq!(recorded(&db, 5, 9).unwrap(), vec![(9, event.clone())]);
        assert_eq!(prune(&db, KEEP_MS + 2_000).unwrap(), 2);
        assert_eq!(recorded(&db, 0, 100).unwrap(), vec![(9, event)]);
    }
}
