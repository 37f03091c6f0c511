//! Unread notification counts per user and room (and per thread), and the read markers that reset
//! them. Pure logic here; the stored form is in `counts_store`, the maps are written by `evaluate`
//! (a new notification) and `read` (a read receipt).
//!
//! Every unread notification has an entry in `push_unread` (user, room, event position); the
//! counts are the sum of those entries: the main timeline's and the threads' sum in `push_counts`
//! (one small value per user and room), each thread's in `push_thread_counts` (one per user, room
//! and thread), so a notification in a room of thousands of threads rewrites two small values. A
//! receipt moves a read marker and recounts the entries it covers, deleting the ones now read, so
//! a recount reads only what was unread.
//!
//! A room's stored value holds the entries up to its position; a single process leaves up to
//! [`UNSTORED_MAX`] main-timeline entries after it uncounted in storage (a message then writes
//! its entry, not the member's counts too), and a reader adds them
//! (`counts_store::room_counts`). Thread values always hold every entry of their thread.

use std::collections::{BTreeMap, HashMap};

use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use crate::{error::Result, services::Services};

/// Counts cached per (user, short room), equal to what is stored: kept under the counts lock,
/// filled on a read and updated only after a commit that wrote them succeeded. A room's threads
/// are cached as they are read.
#[derive(Default)]
pub struct CountsCache {
    rooms: HashMap<(OwnedUserId, u64), CachedRoom>,
    /// Rooms and threads held.
    len: usize,
    /// In a group of processes, another process changes counts too: nothing is kept, every
    /// read goes to the database (under its commit lock, `evaluate::PushStage`).
    pub(crate) uncached: bool,
}

struct CachedRoom {
    counts: RoomCounts,
    /// Entries counted in `counts` that the stored value does not hold.
    unstored: u32,
    threads: HashMap<String, ThreadCounts>,
}

/// Main-timeline entries a user's room value may leave uncounted: the next notification after
/// this many writes the counts (a reader adds at most this many entries to the stored value).
pub const UNSTORED_MAX: u32 = 64;

/// Entries (rooms and threads) kept before the cache starts again empty.
const CACHED_COUNTS: usize = 65_536;

impl CountsCache {
    /// The cached room of `user` (read from the database on a miss): one lookup in the map.
    fn room(&mut self, s: &Services, user: &UserId, short_room: u64) -> Result<&mut CachedRoom> {
        let key = (user.to_owned(), short_room);
        self.clear_if_full(&key);
        match self.rooms.entry(key) {
            std::collections::hash_map::Entry::Occupied(room) => Ok(room.into_mut()),
            std::collections::hash_map::Entry::Vacant(room) => {
                let derived = super::counts_store::derived_counts(s, user, short_room)?;
                self.len += 1;
                Ok(room.insert(CachedRoom {
                    counts: derived.counts,
                    unstored: derived.unstored,
                    threads: HashMap::new(),
                }))
            }
        }
    }

    /// Starts the cache again empty when it is full and `key` is not in it (a key about to be
    /// added).
    fn clear_if_full(&mut self, key: &(OwnedUserId, u64)) {
        if self.len >= CACHED_COUNTS && !self.rooms.contains_key(key) {
            self.clear();
        }
    }

    fn make_room(&mut self) {
        if self.len >= CACHED_COUNTS {
            self.clear();
        }
        self.len += 1;
    }

    fn clear(&mut self) {
        self.rooms.clear();
        self.len = 0;
    }

    /// Starts a staging: in a group, what an earlier one read is forgotten (another process may
    /// have changed it since).
    pub fn begin(&mut self) {
        if self.uncached {
            self.clear();
        }
    }

    /// Reads the counts of `users` in the room (and in the thread of `root`) that are not held,
    /// in one batched read each, so that staging an event for many members costs two reads, not
    /// one per member (a round trip each on PostgreSQL).
    pub fn prefetch(
        &mut self,
        s: &Services,
        users: &[&UserId],
        short_room: u64,
        root: Option<&str>,
    ) -> Result<()> {
        let missing: Vec<&UserId> = users
            .iter()
            .copied()
            .filter(|u| !self.rooms.contains_key(&((*u).to_owned(), short_room)))
            .collect();
        if !missing.is_empty() {
            let counts = super::counts_store::rooms_counts(s, &missing, short_room)?;
            for (user, derived) in missing.into_iter().zip(counts) {
                self.make_room();
                self.rooms.insert(
                    (user.to_owned(), short_room),
                    CachedRoom {
                        counts: derived.counts,
                        unstored: derived.unstored,
                        threads: HashMap::new(),
                    },
                );
            }
        }
        let Some(root) = root else {
            return Ok(());
        };
        let missing: Vec<&UserId> = users
            .iter()
            .copied()
            .filter(|u| {
                self.rooms
                    .get(&((*u).to_owned(), short_room))
                    .is_none_or(|r| !r.threads.contains_key(root))
            })
            .collect();
        if !missing.is_empty() {
            let threads = super::counts_store::threads_counts(s, &missing, short_room, root)?;
            for (user, thread) in missing.into_iter().zip(threads) {
                self.make_room();
                if let Some(room) = self.rooms.get_mut(&(user.to_owned(), short_room)) {
                    room.threads.insert(root.to_owned(), thread);
                }
            }
        }
        Ok(())
    }

    /// The counts of `user` in the room (read from the database on a miss), and whether a new
    /// main-timeline notification is to write them (the stored value would leave too many
    /// entries out, or there is none).
    pub fn get_for_notification(
        &mut self,
        s: &Services,
        user: &UserId,
        short_room: u64,
    ) -> Result<(RoomCounts, bool)> {
        let uncached = self.uncached;
        let room = self.room(s, user, short_room)?;
        Ok((room.counts, uncached || room.unstored + 1 >= UNSTORED_MAX))
    }

    /// The counts of `user` in one thread of the room (read from the database on a miss).
    pub fn thread(
        &mut self,
        s: &Services,
        user: &UserId,
        short_room: u64,
        root: &str,
    ) -> Result<ThreadCounts> {
        if let Some(thread) = self.room(s, user, short_room)?.threads.get(root) {
            return Ok(*thread);
        }
        let thread = super::counts_store::thread_counts(s, user, short_room, root)?;
        self.make_room();
        self.room(s, user, short_room)?
            .threads
            .insert(root.to_owned(), thread);
        Ok(thread)
    }

    /// Records counts that a successful commit changed (with the thread's, when it changed):
    /// `stored`, it wrote them; else it wrote only the entry of one more notification.
    pub fn put(
        &mut self,
        user: &UserId,
        short_room: u64,
        counts: RoomCounts,
        thread: Option<(&str, ThreadCounts)>,
        stored: bool,
    ) {
        if self.uncached {
            return;
        }
        let key = (user.to_owned(), short_room);
        self.clear_if_full(&key);
        let room = match self.rooms.entry(key) {
            std::collections::hash_map::Entry::Occupied(room) => {
                let room = room.into_mut();
                room.counts = counts;
                room.unstored = if stored { 0 } else { room.unstored + 1 };
                room
            }
            // Clearing (a full cache) dropped the room: start it again from what was written, or,
            // when the counts were not written, from storage on the next read.
            std::collections::hash_map::Entry::Vacant(_) if !stored => return,
            std::collections::hash_map::Entry::Vacant(room) => {
                self.len += 1;
                room.insert(CachedRoom {
                    counts,
                    unstored: 0,
                    threads: HashMap::new(),
                })
            }
        };
        if let Some((root, thread)) = thread {
            if room.threads.insert(root.to_owned(), thread).is_none() {
                self.len += 1;
            }
        }
    }

    /// Forgets the counts of a user in a room and its threads (written by a commit that is not
    /// followed here).
    pub fn forget(&mut self, user: &UserId, short_room: u64) {
        if let Some(room) = self.rooms.remove(&(user.to_owned(), short_room)) {
            self.len = self.len.saturating_sub(1 + room.threads.len());
        }
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

    fn covers(&self, entry: &Entry) -> bool {
        match self {
            Self::All => true,
            Self::Main => entry.thread.is_none(),
            Self::Thread(root) => entry.thread.as_deref() == Some(root.as_str()),
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

    pub fn plus(self, other: Count) -> Count {
        Count {
            notify: self.notify.saturating_add(other.notify),
            highlight: self.highlight.saturating_add(other.highlight),
            calls: self.calls.saturating_add(other.calls),
        }
    }

    fn minus(self, other: Count) -> Count {
        Count {
            notify: self.notify.saturating_sub(other.notify),
            highlight: self.highlight.saturating_sub(other.highlight),
            calls: self.calls.saturating_sub(other.calls),
        }
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

/// The counts and read markers of one user in one room (a `push_counts` value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomCounts {
    /// Stream position of the last change: /sync shows the room again when it is after `since`.
    pub pos: u64,
    /// The main timeline's unread notifications.
    pub main: Count,
    /// The sum of every thread's unread notifications (each thread's are in [`ThreadCounts`]).
    pub threads: Count,
    /// Event positions read: by an unthreaded receipt, in the main timeline.
    pub read_all: u64,
    pub read_main: u64,
}

/// The counts and read marker of one user in one thread (a `push_thread_counts` value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadCounts {
    pub count: Count,
    /// The event position a receipt for the thread read.
    pub read: u64,
}

impl ThreadCounts {
    /// Whether the stored value says nothing more than no value: no unread notification, and a
    /// marker the room's unthreaded one covers.
    pub fn is_void(&self, read_all: u64) -> bool {
        self.count == Count::default() && self.read <= read_all
    }
}

impl RoomCounts {
    /// Whether the event at `event_pos` is already read; `thread`: the counts of its thread (none
    /// for the main timeline).
    pub fn is_read(&self, event_pos: u64, thread: Option<&ThreadCounts>) -> bool {
        if event_pos <= self.read_all {
            return true;
        }
        match thread {
            None => event_pos <= self.read_main,
            Some(thread) => event_pos <= thread.read,
        }
    }

    /// The event position the read marker of `scope` stands at (`thread`: the scope's thread's
    /// counts, for a threaded receipt).
    pub fn marker(&self, scope: &ReadScope, thread: Option<&ThreadCounts>) -> u64 {
        match scope {
            ReadScope::All => self.read_all,
            ReadScope::Main => self.read_main,
            ReadScope::Thread(_) => thread.map_or(0, |t| t.read),
        }
    }

    /// Counts a new notification (`thread`: the counts of the entry's thread, for a threaded
    /// entry); false (and nothing counted) when the event is already read.
    pub fn add(
        &mut self,
        event_pos: u64,
        entry: &Entry,
        thread: Option<&mut ThreadCounts>,
    ) -> bool {
        debug_assert_eq!(entry.thread.is_some(), thread.is_some());
        if self.is_read(event_pos, thread.as_deref()) {
            return false;
        }
        match thread {
            None => self.main.add(entry),
            Some(thread) => {
                thread.count.add(entry);
                self.threads.add(entry);
            }
        }
        true
    }

    /// Counts an entry that the stored value does not hold (at a position after it).
    pub fn add_unstored(&mut self, event_pos: u64, entry: &Entry) {
        match entry.thread {
            None => self.main.add(entry),
            Some(_) => self.threads.add(entry),
        }
        self.pos = self.pos.max(event_pos);
    }

    /// Every notification of the room, threads included (a client that does not ask for
    /// per-thread counts, the badge).
    pub fn total(&self) -> Count {
        self.main.plus(self.threads)
    }
}

/// What a receipt changed: the positions of the unread entries it read (to delete), and whether
/// any count changed (the room comes back in /sync).
#[derive(Debug, PartialEq, Eq)]
pub struct Receipted {
    pub read: Vec<u64>,
    pub changed: bool,
}

/// A read receipt at `event_pos`: moves the marker of `scope` (markers never move back; `None`
/// when it did not move) and recounts the room's unread entries the scope covers. `threads` holds
/// the stored counts of the threads the scope covers: every thread for an unthreaded receipt, its
/// own for a threaded one, none for the main timeline; they are updated in place.
pub fn apply_receipt<'a>(
    counts: &mut RoomCounts,
    threads: &mut BTreeMap<String, ThreadCounts>,
    scope: &ReadScope,
    event_pos: u64,
    entries: impl IntoIterator<Item = (u64, &'a Entry)>,
) -> Option<Receipted> {
    let marker = match scope {
        ReadScope::All => &mut counts.read_all,
        ReadScope::Main => &mut counts.read_main,
        ReadScope::Thread(root) => &mut threads.entry(root.clone()).or_default().read,
    };
    if *marker >= event_pos {
        return None;
    }
    *marker = event_pos;

    let unread = |counts: &RoomCounts, threads: &BTreeMap<String, ThreadCounts>| {
        let per_thread: BTreeMap<String, Count> = threads
            .iter()
            .filter(|(_, t)| t.count != Count::default())
            .map(|(r, t)| (r.clone(), t.count))
            .collect();
        (counts.main, counts.threads, per_thread)
    };
    let before = unread(counts, threads);
    // The threads' sum of the threads the receipt does not cover (none for an unthreaded one).
    let threads_outside = match scope {
        ReadScope::All => Count::default(),
        _ => counts.threads.minus(
            threads
                .values()
                .fold(Count::default(), |sum, t| sum.plus(t.count)),
        ),
    };
    if matches!(scope, ReadScope::All | ReadScope::Main) {
        counts.main = Count::default();
    }
    threads
        .values_mut()
        .for_each(|t| t.count = Count::default());
    counts.threads = Count::default();
    let mut read = Vec::new();
    for (pos, entry) in entries.into_iter().filter(|(_, e)| scope.covers(e)) {
        let counted = match &entry.thread {
            None => counts.add(pos, entry, None),
            Some(root) => counts.add(pos, entry, Some(threads.entry(root.clone()).or_default())),
        };
        if !counted {
            read.push(pos);
        }
    }
    counts.threads = threads_outside.plus(counts.threads);
    if *scope == ReadScope::All {
        // Thread markers at or below the unthreaded marker say nothing more.
        let all = counts.read_all;
        threads
            .values_mut()
            .filter(|t| t.read <= all)
            .for_each(|t| t.read = 0);
    }
    let changed = before != unread(counts, threads);
    Some(Receipted { read, changed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(highlight: bool, thread: Option<&str>) -> Entry {
        Entry {
            highlight,
            call: false,
            thread: thread.map(str::to_owned),
        }
    }

    /// A room's counts with `entries` counted, as `evaluate` counts them.
    fn counted(entries: &[(u64, Entry)]) -> (RoomCounts, BTreeMap<String, ThreadCounts>) {
        let mut c = RoomCounts::default();
        let mut threads = BTreeMap::new();
        for (pos, e) in entries {
            match &e.thread {
                None => c.add(*pos, e, None),
                Some(root) => c.add(*pos, e, Some(threads.entry(root.clone()).or_default())),
            };
        }
        (c, threads)
    }

    fn pairs(entries: &[(u64, Entry)]) -> impl Iterator<Item = (u64, &Entry)> {
        entries.iter().map(|(p, e)| (*p, e))
    }

    #[test]
    fn notifications_add_up_per_thread() {
        let entries = [
            (5, entry(false, None)),
            (6, entry(true, None)),
            (7, entry(true, Some("$root"))),
        ];
        let (c, threads) = counted(&entries);
        assert_eq!(
            c.main,
            Count {
                notify: 2,
                highlight: 1,
                calls: 0
            }
        );
        assert_eq!(
            threads["$root"].count,
            Count {
                notify: 1,
                highlight: 1,
                calls: 0
            }
        );
        assert_eq!(c.threads, threads["$root"].count);
        assert_eq!(
            c.total(),
            Count {
                notify: 3,
                highlight: 2,
                calls: 0
            }
        );
    }

    #[test]
    fn an_unthreaded_receipt_resets_everything_up_to_its_event() {
        let entries = [
            (5, entry(false, None)),
            (7, entry(true, Some("$root"))),
            (9, entry(true, None)),
        ];
        let (mut c, mut threads) = counted(&entries);
        let receipted =
            apply_receipt(&mut c, &mut threads, &ReadScope::All, 7, pairs(&entries)).unwrap();
        assert_eq!(
            receipted,
            Receipted {
                read: vec![5, 7],
                changed: true
            }
        );
        assert_eq!(
            c.total(),
            Count {
                notify: 1,
                highlight: 1,
                calls: 0
            }
        );
        assert!(threads.values().all(|t| t.is_void(c.read_all)));
        // A receipt for an older event changes nothing.
        assert_eq!(
            apply_receipt(&mut c, &mut threads, &ReadScope::All, 6, pairs(&entries)),
            None
        );
        // A notification for an event already read is not counted.
        assert!(!c.add(6, &entry(false, None), None));
        assert!(!c.add(
            6,
            &entry(false, Some("$other")),
            Some(&mut ThreadCounts::default())
        ));
    }

    #[test]
    fn a_threaded_receipt_resets_only_its_thread() {
        let entries = [
            (5, entry(false, None)),
            (7, entry(false, Some("$a"))),
            (8, entry(false, Some("$b"))),
        ];
        let (mut c, all_threads) = counted(&entries);
        // A threaded receipt is given its own thread only.
        let mut a = BTreeMap::from([("$a".to_owned(), all_threads["$a"])]);
        let receipted = apply_receipt(
            &mut c,
            &mut a,
            &ReadScope::Thread("$a".into()),
            8,
            pairs(&entries),
        )
        .unwrap();
        assert_eq!(
            receipted,
            Receipted {
                read: vec![7],
                changed: true
            }
        );
        assert_eq!(c.main.notify, 1);
        assert_eq!(
            a["$a"],
            ThreadCounts {
                count: Count::default(),
                read: 8
            }
        );
        assert_eq!(c.threads.notify, 1, "thread $b is still unread");
        let rest = [(5, entry(false, None)), (8, entry(false, Some("$b")))];
        let receipted = apply_receipt(
            &mut c,
            &mut BTreeMap::new(),
            &ReadScope::Main,
            9,
            pairs(&rest),
        )
        .unwrap();
        assert_eq!(
            receipted,
            Receipted {
                read: vec![5],
                changed: true
            }
        );
        assert_eq!(c.total().notify, 1);
        // A thread read past the unthreaded marker keeps its marker; a new event of the thread
        // below it is read.
        assert!(c.is_read(8, Some(&a["$a"])));
        assert!(!c.is_read(8, Some(&all_threads["$b"])));
        assert_eq!(ReadScope::of_receipt(Some("main")), ReadScope::Main);
        assert_eq!(ReadScope::of_receipt(None), ReadScope::All);
    }

    #[test]
    fn a_receipt_that_reads_nothing_unread_changes_no_count() {
        let entries = [(5, entry(false, Some("$a")))];
        let (mut c, _) = counted(&entries);
        let receipted = apply_receipt(
            &mut c,
            &mut BTreeMap::new(),
            &ReadScope::Thread("$b".into()),
            9,
            pairs(&entries),
        )
        .unwrap();
        assert_eq!(
            receipted,
            Receipted {
                read: vec![],
                changed: false
            }
        );
        assert_eq!(c.threads.notify, 1);
    }

    #[test]
    fn the_cache_counts_what_the_stored_value_leaves_out() {
        let user = ruma::user_id!("@bob:example.org");
        let mut cache = CountsCache::default();
        let counts = RoomCounts {
            pos: 9,
            ..Default::default()
        };
        // Not written and not held: the next read goes to storage.
        cache.put(user, 1, counts, None, false);
        assert!(cache.rooms.is_empty());
        cache.put(user, 1, counts, None, true);
        cache.put(user, 1, counts, None, false);
        cache.put(user, 1, counts, None, false);
        assert_eq!(cache.rooms[&(user.to_owned(), 1)].unstored, 2);
        cache.put(
            user,
            1,
            counts,
            Some(("$root", ThreadCounts::default())),
            true,
        );
        let room = &cache.rooms[&(user.to_owned(), 1)];
        assert_eq!((room.unstored, room.threads.len(), cache.len), (0, 1, 2));
        // A full cache starts again empty.
        cache.len = CACHED_COUNTS;
        cache.put(user, 2, counts, None, true);
        assert_eq!((cache.rooms.len(), cache.len), (1, 1));
    }

    #[test]
    fn entries_round_trip() {
        for e in [
            entry(true, Some("$x:y")),
            entry(false, None),
            Entry {
                highlight: false,
                call: true,
                thread: None,
            },
        ] {
            assert_eq!(Entry::decode(&e.encode()), Some(e));
        }
    }
}
