//! Unread notification counts per user and room (and per thread), and the read markers that reset
//! them. Pure logic here; the maps are written by `evaluate` (a new notification) and `read` (a
//! read receipt).
//!
//! Every unread notification has an entry in `push_unread` (user, room, event position); the
//! counts in `push_counts` are the sum of those entries, kept per thread. A receipt moves a read
//! marker and recounts the room's remaining entries, deleting the ones now read, so a recount
//! reads only what was unread.

use std::collections::{BTreeMap, HashMap};

use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use crate::{error::Result, services::Services};

/// Counts cached per (user, short room), equal to what `push_counts` holds: kept under the counts
/// lock, filled on a read and updated only after a commit that wrote them succeeded.
#[derive(Default)]
pub struct CountsCache {
    map: HashMap<(OwnedUserId, u64), RoomCounts>,
}

/// Entries kept before the cache starts again empty.
const CACHED_COUNTS: usize = 65_536;

impl CountsCache {
    /// The counts of `user` in the room (read from the database on a miss).
    pub fn get(&mut self, s: &Services, user: &UserId, short_room: u64) -> Result<RoomCounts> {
        if let Some(counts) = self.map.get(&(user.to_owned(), short_room)) {
            return Ok(counts.clone());
        }
        let counts = super::read::room_counts(s, user, short_room)?;
        self.put(user, short_room, counts.clone());
        Ok(counts)
    }

    /// Records counts that a successful commit wrote.
    pub fn put(&mut self, user: &UserId, short_room: u64, counts: RoomCounts) {
        if self.map.len() >= CACHED_COUNTS {
            self.map.clear();
        }
        self.map.insert((user.to_owned(), short_room), counts);
    }

    /// Forgets the counts of a user in a room (written by a commit that is not followed here).
    pub fn forget(&mut self, user: &UserId, short_room: u64) {
        self.map.remove(&(user.to_owned(), short_room));
    }
}

/// The thread of an event: the main timeline (unthreaded events and thread roots) or a thread,
/// by its root event id.
pub type ThreadId = Option<String>;

/// What a read receipt covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScope {
    /// An unthreaded receipt: everything up to the event.
    All,
    /// A receipt for the main timeline (`thread_id: "main"`).
    Main,
    /// A receipt for one thread.
    Thread(String),
}

impl ReadScope {
    /// The scope of a receipt's `thread_id`.
    pub fn of_receipt(thread_id: Option<&str>) -> Self {
        match thread_id {
            None => Self::All,
            Some("main") => Self::Main,
            Some(root) => Self::Thread(root.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub notify: u64,
    pub highlight: u64,
    /// Unread `m.call.invite` notifications (the push gateway's `missed_calls`).
    #[serde(default)]
    pub calls: u64,
}

impl Count {
    fn add(&mut self, entry: &Entry) {
        self.notify += 1;
        self.highlight += u64::from(entry.highlight);
        self.calls += u64::from(entry.call);
    }

    pub fn is_zero(&self) -> bool {
        self.notify == 0 && self.highlight == 0
    }
}

/// One unread notification (the value of a `push_unread` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub highlight: bool,
    pub call: bool,
    pub thread: ThreadId,
}

impl Entry {
    /// flags byte (1 highlight, 2 call) ‖ thread root (empty: main timeline).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.highlight) | (u8::from(self.call) << 1)];
        out.extend_from_slice(self.thread.as_deref().unwrap_or("").as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (flags, thread) = bytes.split_first()?;
        let thread = std::str::from_utf8(thread).ok()?;
        Some(Self {
            highlight: flags & 1 != 0,
            call: flags & 2 != 0,
            thread: (!thread.is_empty()).then(|| thread.to_owned()),
        })
    }
}

/// The counts and read markers of one user in one room (the value of a `push_counts` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCounts {
    /// Stream position of the last change: /sync shows the room again when it is after `since`.
    pub pos: u64,
    pub main: Count,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub threads: BTreeMap<String, Count>,
    /// Event positions read: by an unthreaded receipt, in the main timeline, per thread.
    pub read_all: u64,
    pub read_main: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub read_threads: BTreeMap<String, u64>,
}

impl RoomCounts {
    /// Whether the event at `event_pos` in `thread` is already read.
    pub fn is_read(&self, event_pos: u64, thread: Option<&str>) -> bool {
        if event_pos <= self.read_all {
            return true;
        }
        match thread {
            None => event_pos <= self.read_main,
            Some(root) => self.read_threads.get(root).is_some_and(|p| event_pos <= *p),
        }
    }

    /// Counts a new notification; false (and nothing counted) when the event is already read.
    pub fn add(&mut self, event_pos: u64, entry: &Entry) -> bool {
        if self.is_read(event_pos, entry.thread.as_deref()) {
            return false;
        }
        match &entry.thread {
            None => self.main.add(entry),
            Some(root) => self.threads.entry(root.clone()).or_default().add(entry),
        }
        true
    }

    /// Moves a read marker to `event_pos` (markers never move back); true when it moved.
    pub fn mark_read(&mut self, scope: &ReadScope, event_pos: u64) -> bool {
        let marker = match scope {
            ReadScope::All => &mut self.read_all,
            ReadScope::Main => &mut self.read_main,
            ReadScope::Thread(root) => self.read_threads.entry(root.clone()).or_default(),
        };
        if *marker >= event_pos {
            return false;
        }
        *marker = event_pos;
        true
    }

    /// Recounts from the room's unread entries (position, entry); returns the positions of the
    /// entries that are now read (to delete).
    pub fn recount<'a>(&mut self, entries: impl IntoIterator<Item = (u64, &'a Entry)>) -> Vec<u64> {
        self.main = Count::default();
        self.threads.clear();
        let mut read = Vec::new();
        for (pos, entry) in entries {
            if !self.add(pos, entry) {
                read.push(pos);
            }
        }
        // Thread markers at or below the unthreaded marker say nothing more.
        let all = self.read_all;
        self.read_threads.retain(|_, p| *p > all);
        read
    }

    /// Every notification of the room, threads included (a client that does not ask for
    /// per-thread counts).
    pub fn total(&self) -> Count {
        let mut total = self.main;
        for c in self.threads.values() {
            total.notify += c.notify;
            total.highlight += c.highlight;
            total.calls += c.calls;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(highlight: bool, thread: Option<&str>) -> Entry {
        Entry { highlight, call: false, thread: thread.map(str::to_owned) }
    }

    #[test]
    fn notifications_add_up_per_thread() {
        let mut c = RoomCounts::default();
        assert!(c.add(5, &entry(false, None)));
        assert!(c.add(6, &entry(true, None)));
        assert!(c.add(7, &entry(true, Some("$root"))));
        assert_eq!(c.main, Count { notify: 2, highlight: 1, calls: 0 });
        assert_eq!(c.threads["$root"], Count { notify: 1, highlight: 1, calls: 0 });
        assert_eq!(c.total(), Count { notify: 3, highlight: 2, calls: 0 });
    }

    #[test]
    fn an_unthreaded_receipt_resets_everything_up_to_its_event() {
        let entries = [(5, entry(false, None)), (7, entry(true, Some("$root"))), (9, entry(true, None))];
        let mut c = RoomCounts::default();
        for (pos, e) in &entries {
            c.add(*pos, e);
        }
        assert!(c.mark_read(&ReadScope::All, 7));
        let read = c.recount(entries.iter().map(|(p, e)| (*p, e)));
        assert_eq!(read, vec![5, 7]);
        assert_eq!(c.total(), Count { notify: 1, highlight: 1, calls: 0 });
        assert!(c.threads.is_empty());
        // A receipt for an older event changes nothing.
        assert!(!c.mark_read(&ReadScope::All, 6));
        // A notification for an event already read is not counted.
        assert!(!c.add(6, &entry(false, None)));
    }

    #[test]
    fn a_threaded_receipt_resets_only_its_thread() {
        let entries = [(5, entry(false, None)), (7, entry(false, Some("$a"))), (8, entry(false, Some("$b")))];
        let mut c = RoomCounts::default();
        for (pos, e) in &entries {
            c.add(*pos, e);
        }
        c.mark_read(&ReadScope::Thread("$a".into()), 8);
        let read = c.recount(entries.iter().map(|(p, e)| (*p, e)));
        assert_eq!(read, vec![7]);
        assert_eq!(c.main.notify, 1);
        assert!(!c.threads.contains_key("$a"));
        assert_eq!(c.threads["$b"].notify, 1);
        c.mark_read(&ReadScope::Main, 9);
        let rest = [(5, entry(false, None)), (8, entry(false, Some("$b")))];
        assert_eq!(c.recount(rest.iter().map(|(p, e)| (*p, e))), vec![5]);
        assert_eq!(c.total().notify, 1);
        assert_eq!(ReadScope::of_receipt(Some("main")), ReadScope::Main);
        assert_eq!(ReadScope::of_receipt(None), ReadScope::All);
    }

    #[test]
    fn entries_round_trip() {
        for e in [entry(true, Some("$x:y")), entry(false, None), Entry { highlight: false, call: true, thread: None }] {
            assert_eq!(Entry::decode(&e.encode()), Some(e));
        }
    }
}
