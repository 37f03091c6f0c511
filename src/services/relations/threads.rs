//! Threads: per room, the roots by latest activity; per thread, its latest reply, its reply count
//! and who replied. Updated in the commit of each reply and of each reply's redaction.

use std::sync::Arc;

use ruma::UserId;

use super::{RELATIONS_BY_TYPE, THREAD_META, THREAD_USERS, THREADS, index};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        globals::Commit,
        rooms::event_by_short,
        timeline::{StoredEvent, visibility::user_can_see},
    },
    storage::{
        Direction,
        keys::{Key, KeyReader, u64_from},
    },
};

/// A thread's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadMeta {
    pub latest_ord: u64,
    pub latest_short: u64,
    pub count: u64,
}

impl ThreadMeta {
    fn encode(&self) -> Vec<u8> {
        [self.latest_ord, self.latest_short, self.count]
            .iter()
            .flat_map(|n| n.to_be_bytes())
            .collect()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let n = |i: usize| bytes.get(i * 8..i * 8 + 8).and_then(u64_from);
        Some(Self {
            latest_ord: n(0)?,
            latest_short: n(1)?,
            count: n(2)?,
        })
    }
}

fn meta_key(room: u64, root: &str) -> Vec<u8> {
    Key::new().u64(room).str(root).build()
}

fn user_key(room: u64, root: &str, user: &str) -> Vec<u8> {
    Key::new().u64(room).str(root).str(user).build()
}

fn list_key(room: u64, ord: u64, root: &str) -> Vec<u8> {
    Key::new().u64(room).u64(ord).str(root).build()
}

pub fn meta(s: &Services, room: u64, root: &str) -> Result<Option<ThreadMeta>> {
    match s.globals.db.get(THREAD_META, &meta_key(room, root))? {
        Some(bytes) => ThreadMeta::decode(&bytes)
            .map(Some)
            .ok_or_else(|| Error::internal("corrupt thread meta")),
        None => Ok(None),
    }
}

fn user_count(s: &Services, room: u64, root: &str, user: &str) -> Result<u64> {
    Ok(s.globals
        .db
        .get(THREAD_USERS, &user_key(room, root, user))?
        .as_deref()
        .and_then(u64_from)
        .unwrap_or(0))
}

/// Whether `user` took part in the thread of `root`: sent the root or a reply.
pub fn participated(s: &Services, room: u64, root: &StoredEvent, user: &UserId) -> Result<bool> {
    Ok(root.pdu.sender == user
        || user_count(s, room, root.pdu.event_id.as_str(), user.as_str())? > 0)
}

/// A reply (`short`, at `ord`, from `sender`) joins the thread of `root`.
pub fn reply_added(
    s: &Services,
    c: &mut Commit,
    room: u64,
    root: &str,
    sender: &str,
    ord: u64,
    short: u64,
) -> Result<()> {
    let previous = meta(s, room, root)?;
    let mut next = previous.unwrap_or(ThreadMeta {
        latest_ord: ord,
        latest_short: short,
        count: 0,
    });
    next.count += 1;
    if ord >= next.latest_ord {
        next.latest_ord = ord;
        next.latest_short = short;
    }
    if let Some(previous) = previous
        && previous.latest_ord != next.latest_ord
    {
        c.batch
            .delete(THREADS, list_key(room, previous.latest_ord, root));
    }
    c.batch
        .put(THREADS, list_key(room, next.latest_ord, root), Vec::new());
    c.batch
        .put(THREAD_META, meta_key(room, root), next.encode());
    let users = user_count(s, room, root, sender)? + 1;
    c.batch.put(
        THREAD_USERS,
        user_key(room, root, sender),
        users.to_be_bytes(),
    );
    Ok(())
}

/// A reply (`short`, at `ord`, from `sender`) leaves the thread of `root` (its redaction).
pub fn reply_removed(
    s: &Services,
    c: &mut Commit,
    room: u64,
    root: &str,
    sender: &str,
    short: u64,
) -> Result<()> {
    let Some(previous) = meta(s, room, root)? else {
        return Ok(());
    };
    let users = user_count(s, room, root, sender)?.saturating_sub(1);
    if users == 0 {
        c.batch.delete(THREAD_USERS, user_key(room, root, sender));
    } else {
        c.batch.put(
            THREAD_USERS,
            user_key(room, root, sender),
            users.to_be_bytes(),
        );
    }
    let count = previous.count.saturating_sub(1);
    // The latest remaining reply (the index entry of `short` is deleted in the same batch).
    let latest = if previous.latest_short == short {
        let prefix = Key::new().u64(room).str(root).str("m.thread").build();
        let mut found = None;
        for entry in s.globals.db.scan_from(
            RELATIONS_BY_TYPE,
            &prefix,
            &Key::new()
                .u64(room)
                .str(root)
                .str("m.thread")
                .u64(u64::MAX)
                .build(),
            Direction::Backward,
        ) {
            let (key, value) = entry?;
            let Some((ord, other, _, _)) = index::decode_by_type_entry(&key, &value, prefix.len())
            else {
                continue;
            };
            if other != short {
                found = Some((ord, other));
                break;
            }
        }
        found
    } else {
        Some((previous.latest_ord, previous.latest_short))
    };
    c.batch
        .delete(THREADS, list_key(room, previous.latest_ord, root));
    match latest {
        Some((latest_ord, latest_short)) if count > 0 => {
            c.batch
                .put(THREADS, list_key(room, latest_ord, root), Vec::new());
            c.batch.put(
                THREAD_META,
                meta_key(room, root),
                ThreadMeta {
                    latest_ord,
                    latest_short,
                    count,
                }
                .encode(),
            );
        }
        _ => c.batch.delete(THREAD_META, meta_key(room, root)),
    }
    Ok(())
}

/// A page of a room's thread roots, latest activity first, that `user` may see; `from` is the
/// ord below which to continue (a `next_batch` of a previous page). Returns the roots and the
/// token of the next page.
pub fn list(
    s: &Services,
    short_room: u64,
    user: &UserId,
    participated_only: bool,
    from: Option<u64>,
    limit: usize,
) -> Result<(Vec<Arc<StoredEvent>>, Option<u64>)> {
    let room_id = s.short.room_id(short_room)?;
    let prefix = Key::new().u64(short_room).build();
    let start = Key::new()
        .u64(short_room)
        .u64(from.map_or(u64::MAX, |f| f.saturating_sub(1)))
        .u64(u64::MAX)
        .build();
    let mut out = Vec::new();
    let mut last_ord = 0;
    for entry in s
        .globals
        .db
        .scan_from(THREADS, &prefix, &start, Direction::Backward)
    {
        let (key, _) = entry?;
        let mut reader = KeyReader::new(&key[8..]);
        let (Some(ord), Some(root)) = (reader.u64(), reader.str()) else {
            return Err(Error::internal("corrupt thread list"));
        };
        if from.is_some_and(|f| ord >= f) {
            continue;
        }
        if out.len() == limit {
            // One more thread exists: the next page starts below the last one returned.
            return Ok((out, Some(last_ord)));
        }
        let Some(short_root) = ruma::EventId::parse(root)
            .ok()
            .and_then(|id| s.short.event(&id).transpose())
            .transpose()?
        else {
            continue;
        };
        let Some(event) = event_by_short(s, short_root, &room_id)? else {
            continue;
        };
        if !user_can_see(s, user, &event)? {
            continue;
        }
        if participated_only && !participated(s, short_room, &event, user)? {
            continue;
        }
        last_ord = ord;
        out.push(event);
    }
    Ok((out, None))
}
