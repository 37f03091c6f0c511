//! Read receipts reset unread counts: the receipt moves the user's read marker in the room (all,
//! main timeline or one thread) and the room's remaining unread entries that it covers are
//! counted again.

use std::collections::{BTreeMap, HashMap};

use ruma::{EventId, UserId};

use super::{
    PUSH_COUNTS, PUSH_UNREAD,
    counts::{Count, Entry, ReadScope, Receipted, RoomCounts, ThreadCounts, apply_receipt},
    counts_store::{
        decode_room, room_counts, room_threads, stage_room, stage_thread, thread_counts,
        with_unstored,
    },
};
use crate::{
    error::Result,
    services::{Services, globals::Commit},
    storage::keys::{Key, KeyReader},
};

/// The unread notifications of a user over the rooms they are joined to (the push gateway's
/// badge); `newer` holds counts of rooms not yet written (by short room), which replace the stored
/// ones and count whatever the membership (an invite's own room).
pub fn totals(s: &Services, user: &UserId, newer: &HashMap<u64, RoomCounts>) -> Result<Count> {
    let prefix = Key::new().str(user.as_str()).build();
    let mut total = newer
        .values()
        .fold(Count::default(), |sum, c| sum.plus(c.total()));
    for entry in s.push.db.scan_prefix(PUSH_COUNTS, &prefix) {
        let (key, value) = entry?;
        let Some(short_room) = KeyReader::new(&key[prefix.len()..]).u64() else {
            continue;
        };
        if newer.contains_key(&short_room) || !s.membership.is_joined(short_room, user)? {
            continue;
        }
        let counts = with_unstored(s, user, short_room, Some(decode_room(&value)?))?.counts;
        total = total.plus(counts.total());
    }
    Ok(total)
}

/// A read receipt (`m.read` or `m.read.private`) of a local user for `event_id`, with its
/// `thread_id` (`kind` is its type): stores it and resets the counts it covers, in one batch (a
/// crash keeps both or neither). The counts do not change for an event before the marker.
pub fn receipt(
    s: &Services,
    user: &UserId,
    short_room: u64,
    kind: &str,
    event_id: &EventId,
    thread_id: Option<&str>,
) -> Result<()> {
    let store_receipt = |c: &mut Commit| {
        s.receipts.stage(
            c,
            short_room,
            kind,
            user,
            event_id,
            thread_id.map(str::to_owned),
        )
    };
    let mut cache = s.push.counts_lock.lock().unwrap_or_else(|e| e.into_inner());
    if s.push.stage_in_commit {
        // A group of processes: the counts are read under the database's commit lock (another
        // process may have counted an event a moment ago).
        s.globals.commit(|c| {
            if let Some(reset) = counts_reset(s, user, short_room, event_id, thread_id)? {
                reset.stage(c, user, short_room);
            }
            store_receipt(c)
        })?;
        return Ok(());
    }
    match counts_reset(s, user, short_room, event_id, thread_id)? {
        None => s.globals.commit(|c| store_receipt(c))?,
        Some(reset) => {
            // Whatever the outcome of the commit, the cached counts are read again next time.
            cache.forget(user, short_room);
            s.globals.commit(|c| {
                reset.stage(c, user, short_room);
                store_receipt(c)
            })?
        }
    };
    Ok(())
}

/// The counts a receipt leaves (the room's, and those of the threads it covers) and the unread
/// entries it reads.
struct Reset {
    counts: RoomCounts,
    threads: BTreeMap<String, ThreadCounts>,
    receipted: Receipted,
}

impl Reset {
    fn stage(mut self, c: &mut Commit, user: &UserId, short_room: u64) {
        if self.receipted.changed {
            self.counts.pos = c.next_pos();
        }
        for pos in &self.receipted.read {
            c.batch.delete(
                PUSH_UNREAD,
                Key::new()
                    .str(user.as_str())
                    .u64(short_room)
                    .u64(*pos)
                    .build(),
            );
        }
        stage_room(c, user, short_room, &self.counts);
        c.stream_changed(crate::services::stream_changes::StreamChange::Counts(
            short_room,
        ));
        for (root, thread) in &self.threads {
            stage_thread(c, user, short_room, root, thread, self.counts.read_all);
        }
    }
}

/// What a receipt changes in the counts (under the counts lock); `None`: nothing.
fn counts_reset(
    s: &Services,
    user: &UserId,
    short_room: u64,
    event_id: &EventId,
    thread_id: Option<&str>,
) -> Result<Option<Reset>> {
    let Some(short_event) = s.short.event(event_id)? else {
        return Ok(None);
    };
    let Some(meta) = s.timeline.meta(short_event)? else {
        return Ok(None);
    };
    if meta.pos == 0 || meta.short_room != short_room {
        return Ok(None);
    }
    let mut counts = room_counts(s, user, short_room)?;
    let scope = ReadScope::of_receipt(thread_id);
    let mut threads = match &scope {
        ReadScope::All => room_threads(s, user, short_room)?,
        ReadScope::Main => BTreeMap::new(),
        ReadScope::Thread(root) => {
            BTreeMap::from([(root.clone(), thread_counts(s, user, short_room, root)?)])
        }
    };
    let thread = match &scope {
        ReadScope::Thread(root) => threads.get(root),
        _ => None,
    };
    let marker = counts.marker(&scope, thread);
    // A receipt behind the marker reads nothing: the entries are not scanned.
    if marker >= meta.pos {
        return Ok(None);
    }
    let prefix = Key::new().str(user.as_str()).u64(short_room).build();
    let mut entries = Vec::new();
    for entry in s.push.db.scan_prefix(PUSH_UNREAD, &prefix) {
        let (key, value) = entry?;
        let Some(pos) = KeyReader::new(&key[prefix.len()..]).u64() else {
            continue;
        };
        if let Some(entry) = Entry::decode(&value) {
            entries.push((pos, entry));
        }
    }
    let Some(receipted) = apply_receipt(
        &mut counts,
        &mut threads,
        &scope,
        meta.pos,
        entries.iter().map(|(p, e)| (*p, e)),
    ) else {
        return Ok(None);
    };
    Ok(Some(Reset {
        counts,
        threads,
        receipted,
    }))
}
