//! `/relations`: the events that relate to a target, a page at a time, in the order of
//! /messages (tokens are interchangeable with its tokens), filtered by relation type, event type
//! and the asker's history visibility; with `recurse`, relations of relations too.

use std::{collections::HashSet, sync::Arc};

use ruma::{RoomId, UserId};

use super::{RELATIONS, RELATIONS_BY_TYPE, index};
use crate::{
    error::Result,
    services::{
        Services,
        rooms::event_by_short,
        timeline::{StoredEvent, visibility::user_can_see},
    },
    storage::{Direction, keys::Key},
};

/// How deep `recurse` follows relations of relations (the spec asks for at least 3).
pub const RECURSION_DEPTH: usize = 3;
/// At most this many events are gathered for a recursive query.
const RECURSION_CAP: usize = 10_000;

pub struct Query<'a> {
    pub target: &'a str,
    pub rel_type: Option<&'a str>,
    pub event_type: Option<&'a str>,
    /// The gap to start from (see `ord`); `None`: the newest (backwards) or oldest (forwards) end.
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub direction: Direction,
    pub limit: usize,
    pub recurse: bool,
}

pub struct Page {
    pub events: Vec<Arc<StoredEvent>>,
    /// The gap the next page starts from, when there are more events.
    pub next: Option<u64>,
}

/// One indexed relating event.
#[derive(Debug, Clone)]
pub struct Entry {
    pub ord: u64,
    pub short: u64,
    pub rel_type: String,
    pub kind: String,
    pub sender: String,
}

/// Calls `f` with the events relating to `target` directly (of `rel_type` if given) from the gap
/// `from` in `direction`, until it returns false.
pub fn each_direct(
    s: &Services,
    room: u64,
    target: &str,
    rel_type: Option<&str>,
    from: u64,
    direction: Direction,
    mut f: impl FnMut(Entry) -> Result<bool>,
) -> Result<()> {
    let (map, prefix) = match rel_type {
        Some(rel) => (
            RELATIONS_BY_TYPE,
            Key::new().u64(room).str(target).str(rel).build(),
        ),
        None => (RELATIONS, Key::new().u64(room).str(target).build()),
    };
    let mut start = prefix.clone();
    match direction {
        Direction::Backward => {
            start.extend_from_slice(&from.to_be_bytes());
            start.extend_from_slice(&u64::MAX.to_be_bytes());
        }
        Direction::Forward => {
            if from == u64::MAX {
                return Ok(());
            }
            start.extend_from_slice(&(from + 1).to_be_bytes());
        }
    }
    for entry in s.globals.db.scan_from(map, &prefix, &start, direction) {
        let (key, value) = entry?;
        let entry = match rel_type {
            Some(rel) => index::decode_by_type_entry(&key, &value, prefix.len()).map(
                |(ord, short, kind, sender)| Entry {
                    ord,
                    short,
                    rel_type: rel.to_owned(),
                    kind,
                    sender,
                },
            ),
            None => index::decode_relations_entry(&key, &value, prefix.len()).map(
                |(ord, short, rel_type, kind, sender)| Entry {
                    ord,
                    short,
                    rel_type,
                    kind,
                    sender,
                },
            ),
        };
        let Some(entry) = entry else { continue };
        if !f(entry)? {
            break;
        }
    }
    Ok(())
}

/// Every event relating to `target` up to `RECURSION_DEPTH` relations away.
fn gather_recursive(s: &Services, room: u64, target: &str) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut seen: HashSet<String> = HashSet::from([target.to_owned()]);
    let mut level = vec![target.to_owned()];
    for _ in 0..RECURSION_DEPTH {
        let mut next_level = Vec::new();
        for parent in &level {
            each_direct(
                s,
                room,
                parent,
                None,
                u64::MAX,
                Direction::Backward,
                |entry| {
                    let id = s.short.event_id(entry.short)?.to_string();
                    if seen.insert(id.clone()) && out.len() < RECURSION_CAP {
                        next_level.push(id);
                        out.push(entry);
                    }
                    Ok(out.len() < RECURSION_CAP)
                },
            )?;
        }
        level = next_level;
    }
    Ok(out)
}

/// A page of the events relating to `q.target` in `room_id` that `user` may see.
pub fn page(
    s: &Services,
    user: &UserId,
    room: u64,
    room_id: &RoomId,
    q: &Query<'_>,
) -> Result<Page> {
    let from = q.from.unwrap_or(match q.direction {
        Direction::Backward => u64::MAX,
        Direction::Forward => 0,
    });
    let mut events = Vec::new();
    let mut next = None;
    let mut last_ord = 0;
    let mut take = |e: Entry| -> Result<bool> {
        if let Some(to) = q.to {
            let beyond = match q.direction {
                Direction::Backward => e.ord <= to,
                Direction::Forward => e.ord > to,
            };
            if beyond {
                return Ok(false);
            }
        }
        if q.rel_type.is_some_and(|r| r != e.rel_type) || q.event_type.is_some_and(|t| t != e.kind)
        {
            return Ok(true);
        }
        if events.len() >= q.limit {
            next = Some(match q.direction {
                Direction::Backward => last_ord - 1,
                Direction::Forward => last_ord,
            });
            return Ok(false);
        }
        let Some(event) = event_by_short(s, e.short, room_id)? else {
            return Ok(true);
        };
        if !user_can_see(s, user, &event)? {
            return Ok(true);
        }
        last_ord = e.ord;
        events.push(event);
        Ok(true)
    };
    if q.recurse {
        let mut all = gather_recursive(s, room, q.target)?;
        match q.direction {
            Direction::Backward => {
                all.retain(|e| e.ord <= from);
                all.sort_by(|a, b| b.ord.cmp(&a.ord));
            }
            Direction::Forward => {
                all.retain(|e| e.ord > from);
                all.sort_by_key(|e| e.ord);
            }
        }
        for entry in all {
            if !take(entry)? {
                break;
            }
        }
    } else {
        each_direct(s, room, q.target, q.rel_type, from, q.direction, take)?;
    }
    Ok(Page { events, next })
}
