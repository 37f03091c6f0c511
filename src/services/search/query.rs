//! Finding candidates: the events of the searched rooms whose postings hold every search word
//! (the last word also matches as a prefix: `lun` finds `lunch`).
//!
//! The work of one request is bounded: at most [`MAX_POSTINGS_SCANNED`] postings are read over
//! all rooms and words; past it the search stops and the results are those found so far.

use std::collections::{BTreeSet, HashMap};

use super::{
    SEARCH_POSTINGS,
    index::{decode_posting, token_prefix, token_start_prefix},
    order::SortKey,
};
use crate::{error::Result, services::Services};

/// Postings one request reads at most.
pub const MAX_POSTINGS_SCANNED: usize = 20_000;

/// A room to search and the last position the user may search in it (their leave, for a room
/// they left).
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub short_room: u64,
    pub up_to: u64,
}

/// An event whose postings hold every search word.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub short_room: u64,
    pub short_event: u64,
    pub key: SortKey,
    /// The indexed tokens that matched (for `highlights`).
    pub matched: BTreeSet<String>,
}

/// Counts postings read against the budget.
pub struct Budget {
    pub left: usize,
}

impl Budget {
    pub fn new() -> Self {
        Self {
            left: MAX_POSTINGS_SCANNED,
        }
    }

    pub fn exhausted(&self) -> bool {
        self.left == 0
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

/// Per position: short event, occurrences, tokens matched.
type Hits = HashMap<u64, (u64, u64, BTreeSet<String>)>;

/// The postings of one word in a room: exact, or (`prefix`) every token starting with it.
fn word_hits(
    s: &Services,
    scope: Scope,
    word: &str,
    prefix: bool,
    budget: &mut Budget,
) -> Result<Hits> {
    let key_prefix = if prefix {
        token_start_prefix(scope.short_room, word)
    } else {
        token_prefix(scope.short_room, word)
    };
    let mut hits = Hits::new();
    for entry in s.globals.db.scan_prefix(SEARCH_POSTINGS, &key_prefix) {
        if budget.exhausted() {
            break;
        }
        budget.left -= 1;
        let (key, value) = entry?;
        let Some(posting) = decode_posting(&key, &value) else {
            continue;
        };
        if posting.pos > scope.up_to {
            continue;
        }
        let hit = hits
            .entry(posting.pos)
            .or_insert((posting.short_event, 0, BTreeSet::new()));
        hit.1 += u64::from(posting.count);
        hit.2.insert(posting.token);
    }
    Ok(hits)
}

/// The events of a room that hold every word of `words` (non-empty).
pub fn room_candidates(
    s: &Services,
    scope: Scope,
    words: &[String],
    budget: &mut Budget,
) -> Result<Vec<Candidate>> {
    let mut found: Option<Hits> = None;
    for (i, word) in words.iter().enumerate() {
        let last = i + 1 == words.len();
        let hits = word_hits(s, scope, word, last, budget)?;
        found = Some(match found {
            None => hits,
            Some(mut so_far) => {
                so_far.retain(|pos, _| hits.contains_key(pos));
                for (pos, entry) in so_far.iter_mut() {
                    let (_, count, tokens) = &hits[pos];
                    entry.1 += count;
                    entry.2.extend(tokens.iter().cloned());
                }
                so_far
            }
        });
        if found.as_ref().is_some_and(HashMap::is_empty) {
            break;
        }
    }
    Ok(found
        .unwrap_or_default()
        .into_iter()
        .map(|(pos, (short_event, rank, matched))| Candidate {
            short_room: scope.short_room,
            short_event,
            key: SortKey { rank, pos },
            matched,
        })
        .collect())
}
