//! The stored form of unread counts: a user's counts in a room (`push_counts`) and in each thread
//! of it (`push_thread_counts`), as fixed-width big-endian integers; and the one-time conversion
//! of the JSON values older versions wrote (every thread inside one room value).

use std::collections::BTreeMap;

use ruma::UserId;
use serde::Deserialize;

use super::{
    PUSH_COUNTS, PUSH_META, PUSH_THREAD_COUNTS, PUSH_UNREAD,
    counts::{Count, Entry, RoomCounts, ThreadCounts, UNSTORED_MAX},
};
use crate::{
    error::{Error, Result},
    services::{Services, globals::Commit},
    storage::{
        Batch, Db, Direction,
        engine::KvPair,
        keys::{Key, KeyReader},
    },
};

fn room_key(user: &UserId, short_room: u64) -> Vec<u8> {
    Key::new().str(user.as_str()).u64(short_room).build()
}

fn thread_key(user: &UserId, short_room: u64, root: &str) -> Vec<u8> {
    Key::new()
        .str(user.as_str())
        .u64(short_room)
        .str(root)
        .build()
}

fn put_u64s(out: &mut Vec<u8>, values: &[u64]) {
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn u64s<const N: usize>(map: crate::storage::Map, bytes: &[u8]) -> Result<[u64; N]> {
    if bytes.len() != N * 8 {
        return Err(Error::internal(format!(
            "{}: a value of {} bytes, not {}",
            map.0,
            bytes.len(),
            N * 8
        )));
    }
    Ok(std::array::from_fn(|i| {
        u64::from_be_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    }))
}

/// pos ‖ main notify, highlight, calls ‖ threads notify, highlight, calls ‖ read_all ‖ read_main.
pub fn encode_room(c: &RoomCounts) -> Vec<u8> {
    let mut out = Vec::with_capacity(72);
    put_u64s(
        &mut out,
        &[c.pos, c.main.notify, c.main.highlight, c.main.calls],
    );
    put_u64s(
        &mut out,
        &[
            c.threads.notify,
            c.threads.highlight,
            c.threads.calls,
            c.read_all,
            c.read_main,
        ],
    );
    out
}

pub fn decode_room(bytes: &[u8]) -> Result<RoomCounts> {
    let [
        pos,
        notify,
        highlight,
        calls,
        t_notify,
        t_highlight,
        t_calls,
        read_all,
        read_main,
    ] = u64s::<9>(PUSH_COUNTS, bytes)?;
    Ok(RoomCounts {
        pos,
        main: Count {
            notify,
            highlight,
            calls,
        },
        threads: Count {
            notify: t_notify,
            highlight: t_highlight,
            calls: t_calls,
        },
        read_all,
        read_main,
    })
}

/// notify ‖ highlight ‖ calls ‖ read marker.
pub fn encode_thread(t: &ThreadCounts) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    put_u64s(
        &mut out,
        &[t.count.notify, t.count.highlight, t.count.calls, t.read],
    );
    out
}

pub fn decode_thread(bytes: &[u8]) -> Result<ThreadCounts> {
    let [notify, highlight, calls, read] = u64s::<4>(PUSH_THREAD_COUNTS, bytes)?;
    Ok(ThreadCounts {
        count: Count {
            notify,
            highlight,
            calls,
        },
        read,
    })
}

/// The counts of a user in a room (zero when nothing was ever counted), with the entries after
/// the stored value.
pub fn room_counts(s: &Services, user: &UserId, short_room: u64) -> Result<RoomCounts> {
    Ok(derived_counts(s, user, short_room)?.counts)
}

/// A user's counts in a room and how many of the entries they count the stored value does not
/// hold ([`UNSTORED_MAX`] when there is no stored value: the next notification writes one).
pub struct Derived {
    pub counts: RoomCounts,
    pub unstored: u32,
}

/// The counts of a user in a room, with the entries after the stored value (see [`Derived`]).
pub fn derived_counts(s: &Services, user: &UserId, short_room: u64) -> Result<Derived> {
    let stored = stored_counts(s, user, short_room)?;
    with_unstored(s, user, short_room, stored)
}

/// The stored value of a user's counts in a room, without the entries after it.
fn stored_counts(s: &Services, user: &UserId, short_room: u64) -> Result<Option<RoomCounts>> {
    match s.push.db.get(PUSH_COUNTS, &room_key(user, short_room))? {
        Some(bytes) => Ok(Some(decode_room(&bytes)?)),
        None => Ok(None),
    }
}

/// Adds to `stored` (none: no value) the entries after its position: in a single process, at
/// most [`UNSTORED_MAX`] main-timeline entries (a group of processes writes every change). An
/// entry is written with its event, at the event's position: when no event was appended to the
/// room since that position (`StreamChange::Timeline`), there is none to read.
pub fn with_unstored(
    s: &Services,
    user: &UserId,
    short_room: u64,
    stored: Option<RoomCounts>,
) -> Result<Derived> {
    let none_stored = stored.is_none();
    let mut counts = stored.unwrap_or_default();
    let mut unstored = 0;
    if s.push.counts_unstored
        && s.globals
            .stream_changes
            .timeline
            .may_have_changed_since(&short_room, counts.pos)
    {
        let prefix = room_key(user, short_room);
        let from = Key::new()
            .str(user.as_str())
            .u64(short_room)
            .u64(counts.pos.saturating_add(1))
            .build();
        for entry in s
            .push
            .db
            .scan_from(PUSH_UNREAD, &prefix, &from, Direction::Forward)
        {
            let (key, value) = entry?;
            let (Some(pos), Some(entry)) = (
                KeyReader::new(&key[prefix.len()..]).u64(),
                Entry::decode(&value),
            ) else {
                continue;
            };
            counts.add_unstored(pos, &entry);
            unstored += 1;
        }
    }
    if none_stored {
        unstored = UNSTORED_MAX;
    }
    Ok(Derived { counts, unstored })
}

/// The counts of several users in a room: one batched read (and, in a single process, a scan
/// of each user's entries after the stored value).
pub fn rooms_counts(s: &Services, users: &[&UserId], short_room: u64) -> Result<Vec<Derived>> {
    let keys: Vec<Vec<u8>> = users.iter().map(|u| room_key(u, short_room)).collect();
    let found = s.push.db.multi_get(PUSH_COUNTS, &keys)?;
    users
        .iter()
        .zip(found)
        .map(|(user, found)| {
            let stored = match found {
                Some(bytes) => Some(decode_room(&bytes)?),
                None => None,
            };
            with_unstored(s, user, short_room, stored)
        })
        .collect()
}

/// The counts of several users in one thread of a room: one batched read.
pub fn threads_counts(
    s: &Services,
    users: &[&UserId],
    short_room: u64,
    root: &str,
) -> Result<Vec<ThreadCounts>> {
    let keys: Vec<Vec<u8>> = users
        .iter()
        .map(|u| thread_key(u, short_room, root))
        .collect();
    s.push
        .db
        .multi_get(PUSH_THREAD_COUNTS, &keys)?
        .iter()
        .map(|found| {
            found
                .as_deref()
                .map_or(Ok(ThreadCounts::default()), decode_thread)
        })
        .collect()
}

/// The counts of a user in one thread of a room.
pub fn thread_counts(
    s: &Services,
    user: &UserId,
    short_room: u64,
    root: &str,
) -> Result<ThreadCounts> {
    match s
        .push
        .db
        .get(PUSH_THREAD_COUNTS, &thread_key(user, short_room, root))?
    {
        Some(bytes) => decode_thread(&bytes),
        None => Ok(ThreadCounts::default()),
    }
}

/// Every thread of the room with stored counts or a marker, by root.
pub fn room_threads(
    s: &Services,
    user: &UserId,
    short_room: u64,
) -> Result<BTreeMap<String, ThreadCounts>> {
    let prefix = room_key(user, short_room);
    let mut out = BTreeMap::new();
    for entry in s.push.db.scan_prefix(PUSH_THREAD_COUNTS, &prefix) {
        let (key, value) = entry?;
        let Some(root) = KeyReader::new(&key[prefix.len()..]).str() else {
            continue;
        };
        out.insert(root.to_owned(), decode_thread(&value)?);
    }
    Ok(out)
}

/// Whether the event at `event_pos` in `thread` (none: the main timeline) is read by the user.
pub fn is_read(
    s: &Services,
    user: &UserId,
    short_room: u64,
    event_pos: u64,
    thread: Option<&str>,
) -> Result<bool> {
    // The markers are stored as they are: the entries after the stored value change no marker.
    let counts = stored_counts(s, user, short_room)?.unwrap_or_default();
    Ok(match thread {
        None => counts.is_read(event_pos, None),
        Some(root) => counts.is_read(event_pos, Some(&thread_counts(s, user, short_room, root)?)),
    })
}

pub fn stage_room(c: &mut Commit, user: &UserId, short_room: u64, counts: &RoomCounts) {
    c.batch
        .put(PUSH_COUNTS, room_key(user, short_room), encode_room(counts));
}

/// Writes a thread's counts, or deletes them when they say nothing (`read_all`: the room's
/// unthreaded marker).
pub fn stage_thread(
    c: &mut Commit,
    user: &UserId,
    short_room: u64,
    root: &str,
    thread: &ThreadCounts,
    read_all: u64,
) {
    let key = thread_key(user, short_room, root);
    if thread.is_void(read_all) {
        c.batch.delete(PUSH_THREAD_COUNTS, key);
    } else {
        c.batch.put(PUSH_THREAD_COUNTS, key, encode_thread(thread));
    }
}

const KEY_UNSTORED: &[u8] = b"counts_unstored";

/// A single process leaves entries after the stored values (`with_unstored`): `push_meta` says
/// so, for a group of processes started on this database later.
pub fn mark_unstored(db: &Db) -> Result<()> {
    if !db.contains(PUSH_META, KEY_UNSTORED)? {
        db.put(PUSH_META, KEY_UNSTORED, Vec::new())?;
    }
    Ok(())
}

/// A group of processes reads stored values only: before it serves, the entries a single
/// process left after them are written into them, in one write under the database's commit
/// lock, and the mark is removed. Returns how many values changed.
pub fn store_unstored(db: &Db) -> Result<usize> {
    let sequenced = db.sequence(PUSH_META, &[KEY_UNSTORED])?;
    let marked = match &sequenced {
        Some(sequenced) => sequenced.values()[0].is_some(),
        None => db.contains(PUSH_META, KEY_UNSTORED)?,
    };
    if !marked {
        return Ok(0);
    }
    let mut batch = Batch::new();
    let mut changed = 0;
    // The stored values, read along with the entries: both maps are in (user, room) order, so
    // each value is met once, with no read per user and room (a round trip each on PostgreSQL).
    let mut stored = StoredInOrder::new(db.scan_prefix(PUSH_COUNTS, &[]));
    // The room being counted: its key, its stored position, its counts.
    let mut current: Option<(Vec<u8>, u64, RoomCounts)> = None;
    let mut finish = |current: Option<(Vec<u8>, u64, RoomCounts)>, batch: &mut Batch| {
        if let Some((key, stored_pos, counts)) = current
            && counts.pos != stored_pos
        {
            batch.put(PUSH_COUNTS, key, encode_room(&counts));
            changed += 1;
        }
    };
    for entry in db.scan_prefix(PUSH_UNREAD, &[]) {
        let (key, value) = entry?;
        let mut reader = KeyReader::new(&key);
        let (Some(user), Some(short_room), Some(pos), Some(entry)) = (
            reader.str(),
            reader.u64(),
            reader.u64(),
            Entry::decode(&value),
        ) else {
            continue;
        };
        let room = Key::new().str(user).u64(short_room).build();
        if current.as_ref().is_none_or(|(key, _, _)| *key != room) {
            finish(current.take(), &mut batch);
            let counts = match stored.value_of(&room)? {
                Some(bytes) => decode_room(&bytes)?,
                None => RoomCounts::default(),
            };
            current = Some((room, counts.pos, counts));
        }
        if let Some((_, stored_pos, counts)) = &mut current
            && pos > *stored_pos
        {
            counts.add_unstored(pos, &entry);
        }
    }
    finish(current.take(), &mut batch);
    batch.delete(PUSH_META, KEY_UNSTORED);
    match sequenced {
        Some(sequenced) => sequenced.commit(batch, "0")?,
        None => db.write(batch)?,
    }
    if changed > 0 {
        tracing::info!("push_counts: {changed} values now hold every unread entry");
    }
    Ok(changed)
}

/// The values of a scan in key order, looked up by keys that come in increasing order.
struct StoredInOrder<I: Iterator<Item = crate::storage::Result<KvPair>>> {
    scan: std::iter::Peekable<I>,
}

impl<I: Iterator<Item = crate::storage::Result<KvPair>>> StoredInOrder<I> {
    fn new(scan: I) -> Self {
        Self {
            scan: scan.peekable(),
        }
    }

    /// The value stored under `key`; each key asked must be greater than the one before.
    fn value_of(&mut self, key: &[u8]) -> Result<Option<Box<[u8]>>> {
        while let Some(Ok((k, _))) = self.scan.peek()
            && &**k < key
        {
            self.scan.next();
        }
        match self.scan.peek() {
            Some(Ok((k, _))) if &**k == key => {}
            Some(Ok(_)) | None => return Ok(None),
            Some(Err(_)) => {}
        }
        match self.scan.next() {
            Some(Ok((_, value))) => Ok(Some(value)),
            Some(Err(e)) => Err(e.into()),
            None => Ok(None),
        }
    }
}

/// A `push_counts` value as versions before the per-thread map wrote it.
#[derive(Deserialize)]
struct LegacyRoomCounts {
    pos: u64,
    main: Count,
    #[serde(default)]
    threads: BTreeMap<String, Count>,
    read_all: u64,
    read_main: u64,
    #[serde(default)]
    read_threads: BTreeMap<String, u64>,
}

const KEY_COUNTS_CONVERTED: &[u8] = b"counts_converted";
/// Values converted per batch.
const CONVERT_BATCH: usize = 1024;

/// Converts the JSON `push_counts` values of older versions into the room value and a value per
/// thread, once (a marker in `push_meta` records that it is done); each batch of values is one
/// atomic write, and a conversion cut short starts again on the values still in JSON. Runs
/// before the server serves. Returns how many values were converted.
pub fn convert_legacy(db: &Db) -> Result<usize> {
    if db.contains(PUSH_META, KEY_COUNTS_CONVERTED)? {
        return Ok(0);
    }
    let mut converted = 0;
    let mut batch = Batch::new();
    let mut in_batch = 0;
    for entry in db.scan_prefix(PUSH_COUNTS, &[]) {
        let (key, value) = entry?;
        // Binary values start with the high byte of a position; JSON with `{`.
        if value.first() != Some(&b'{') {
            continue;
        }
        let legacy: LegacyRoomCounts = match serde_json::from_slice(&value) {
            Ok(legacy) => legacy,
            Err(e) => {
                tracing::warn!("push_counts: dropping an unreadable value: {e}");
                batch.delete(PUSH_COUNTS, key);
                continue;
            }
        };
        let mut counts = RoomCounts {
            pos: legacy.pos,
            main: legacy.main,
            read_all: legacy.read_all,
            read_main: legacy.read_main,
            ..Default::default()
        };
        let mut threads: BTreeMap<String, ThreadCounts> = BTreeMap::new();
        for (root, count) in legacy.threads {
            counts.threads = counts.threads.plus(count);
            threads.entry(root).or_default().count = count;
        }
        for (root, read) in legacy.read_threads {
            threads.entry(root).or_default().read = read;
        }
        for (root, thread) in &threads {
            if !thread.is_void(counts.read_all) {
                let mut thread_key = key.to_vec();
                thread_key.extend_from_slice(&Key::new().str(root).build());
                batch.put(PUSH_THREAD_COUNTS, thread_key, encode_thread(thread));
            }
        }
        batch.put(PUSH_COUNTS, key, encode_room(&counts));
        converted += 1;
        in_batch += 1;
        if in_batch == CONVERT_BATCH {
            db.write(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    batch.put(PUSH_META, KEY_COUNTS_CONVERTED, Vec::new());
    db.write(batch)?;
    if converted > 0 {
        tracing::info!("push_counts: {converted} values converted to per-thread counts");
    }
    Ok(converted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_are_found_along_a_scan() {
        let pair =
            |k: &[u8], v: &[u8]| -> crate::storage::Result<KvPair> { Ok((k.into(), v.into())) };
        let scan = vec![
            pair(b"a1", b"x"),
            pair(b"b1", b"y"),
            pair(b"b2", b"z"),
            pair(b"d", b"w"),
        ];
        let mut stored = StoredInOrder::new(scan.into_iter());
        assert_eq!(stored.value_of(b"a0").unwrap(), None, "before the first");
        assert_eq!(stored.value_of(b"a1").unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(stored.value_of(b"b0").unwrap(), None, "between two");
        assert_eq!(
            stored.value_of(b"b2").unwrap().as_deref(),
            Some(&b"z"[..]),
            "one skipped"
        );
        assert_eq!(stored.value_of(b"d").unwrap().as_deref(), Some(&b"w"[..]));
        assert_eq!(stored.value_of(b"e").unwrap(), None, "after the last");
        let failing = vec![
            pair(b"a", b"x"),
            Err(crate::storage::StorageError::Engine("broken".into())),
        ];
        let mut stored = StoredInOrder::new(failing.into_iter());
        assert!(
            stored.value_of(b"b").is_err(),
            "a failed read is an error, not a missing value"
        );
    }

    #[test]
    fn values_round_trip() {
        let room = RoomCounts {
            pos: 1 << 40,
            main: Count {
                notify: 3,
                highlight: 1,
                calls: 2,
            },
            threads: Count {
                notify: 9,
                highlight: 0,
                calls: 0,
            },
            read_all: 7,
            read_main: 12,
        };
        assert_eq!(decode_room(&encode_room(&room)).unwrap(), room);
        let thread = ThreadCounts {
            count: Count {
                notify: 4,
                highlight: 2,
                calls: 0,
            },
            read: 99,
        };
        assert_eq!(decode_thread(&encode_thread(&thread)).unwrap(), thread);
        assert!(decode_room(b"{}").is_err());
    }

    #[test]
    fn legacy_values_are_converted_once() {
        use crate::storage::{Map, rocks::RocksEngine};
        let dir = tempfile::tempdir().unwrap();
        let maps: Vec<Map> = super::super::MAPS.to_vec();
        let db = Db::new(RocksEngine::open(dir.path(), &maps, 8, 8, false).unwrap());
        let user = UserId::parse("@u:example.org").unwrap();
        let legacy = serde_json::json!({
            "pos": 40,
            "main": {"notify": 2, "highlight": 1, "calls": 0},
            "threads": {"$a": {"notify": 3, "highlight": 0}, "$b": {"notify": 1, "highlight": 1, "calls": 0}},
            "read_all": 10,
            "read_main": 20,
            "read_threads": {"$a": 30, "$old": 5, "$read": 35},
        });
        db.put(
            PUSH_COUNTS,
            room_key(&user, 7),
            serde_json::to_vec(&legacy).unwrap(),
        )
        .unwrap();
        let untouched = RoomCounts {
            pos: 3,
            ..Default::default()
        };
        db.put(PUSH_COUNTS, room_key(&user, 8), encode_room(&untouched))
            .unwrap();

        assert_eq!(convert_legacy(&db).unwrap(), 1);
        let room =
            decode_room(&db.get(PUSH_COUNTS, &room_key(&user, 7)).unwrap().unwrap()).unwrap();
        assert_eq!(room.pos, 40);
        assert_eq!(
            room.main,
            Count {
                notify: 2,
                highlight: 1,
                calls: 0
            }
        );
        assert_eq!(
            room.threads,
            Count {
                notify: 4,
                highlight: 1,
                calls: 0
            }
        );
        assert_eq!((room.read_all, room.read_main), (10, 20));
        let thread = |root: &str| {
            db.get(PUSH_THREAD_COUNTS, &thread_key(&user, 7, root))
                .unwrap()
                .map(|v| decode_thread(&v).unwrap())
        };
        assert_eq!(
            thread("$a"),
            Some(ThreadCounts {
                count: Count {
                    notify: 3,
                    highlight: 0,
                    calls: 0
                },
                read: 30
            })
        );
        assert_eq!(
            thread("$b"),
            Some(ThreadCounts {
                count: Count {
                    notify: 1,
                    highlight: 1,
                    calls: 0
                },
                read: 0
            })
        );
        assert_eq!(
            thread("$read"),
            Some(ThreadCounts {
                count: Count::default(),
                read: 35
            })
        );
        // A marker the unthreaded one covers says nothing: not kept.
        assert_eq!(thread("$old"), None);
        assert_eq!(
            decode_room(&db.get(PUSH_COUNTS, &room_key(&user, 8)).unwrap().unwrap()).unwrap(),
            untouched
        );

        // Done once: a JSON value written afterwards is not read again.
        db.put(
            PUSH_COUNTS,
            room_key(&user, 9),
            serde_json::to_vec(&legacy).unwrap(),
        )
        .unwrap();
        assert_eq!(convert_legacy(&db).unwrap(), 0);
    }
}
