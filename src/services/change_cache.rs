//! The last stream position at which each key (a user, a room) changed, kept in memory so that
//! an incremental /sync can tell that nothing changed since its token without reading storage.
//!
//! Only what this process wrote since it started is known: a position below the floor (the
//! start, or the last time the bounded map was emptied) answers "maybe", and the caller reads
//! storage as before. In a group of processes the cache is off (every answer is "maybe"): another
//! process's writes do not pass through it.

use std::{borrow::Borrow, collections::HashMap, hash::Hash, sync::Mutex};

/// Keys remembered at most; past that the map is emptied and the floor raised.
const MAX_KEYS: usize = 100_000;

pub struct ChangeCache<K> {
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    last: HashMap<K, u64>,
    /// Changes at positions up to the floor are not known.
    floor: u64,
    /// The highest position recorded.
    top: u64,
    cap: usize,
}

impl<K: Hash + Eq> ChangeCache<K> {
    /// Off until [`ChangeCache::start`]: every answer is "maybe".
    pub fn new() -> Self {
        Self::with_cap(MAX_KEYS)
    }

    fn with_cap(cap: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                last: HashMap::new(),
                floor: u64::MAX,
                top: 0,
                cap,
            }),
        }
    }

    /// Known from `pos` on (the stream position at start: every later change passes through
    /// [`ChangeCache::changed`]).
    pub fn start(&self, pos: u64) {
        let mut inner = self.lock();
        inner.floor = pos;
        inner.top = inner.top.max(pos);
    }

    /// Records that `key` changed at `pos`: called after the change's batch is written, before
    /// its position is served.
    pub fn changed(&self, key: K, pos: u64) {
        let mut inner = self.lock();
        if inner.floor == u64::MAX {
            return;
        }
        if inner.last.len() >= inner.cap {
            inner.last.clear();
            inner.floor = inner.top;
        }
        inner.top = inner.top.max(pos);
        let entry = inner.last.entry(key).or_insert(pos);
        *entry = (*entry).max(pos);
    }

    /// False only when `key` surely did not change after `since`.
    pub fn may_have_changed_since<Q>(&self, key: &Q, since: u64) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = self.lock();
        since < inner.floor || inner.last.get(key).is_some_and(|pos| *pos > since)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Hash + Eq> Default for ChangeCache<K> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::ChangeCache;

    #[test]
    fn answers_no_only_for_keys_known_unchanged_since_a_known_position() {
        let cache = ChangeCache::<&str>::with_cap(2);
        // Not started: nothing is known.
        cache.changed("a", 5);
        assert!(cache.may_have_changed_since(&"b", 100));
        cache.start(10);
        assert!(cache.may_have_changed_since(&"b", 9), "before the start");
        assert!(!cache.may_have_changed_since(&"b", 10));
        cache.changed("a", 12);
        assert!(cache.may_have_changed_since(&"a", 11));
        assert!(!cache.may_have_changed_since(&"a", 12));
        assert!(!cache.may_have_changed_since(&"b", 11));
        // An older position recorded late does not hide the newer one.
        cache.changed("a", 11);
        assert!(cache.may_have_changed_since(&"a", 11));
        cache.changed("b", 13);
        // Full: emptied, and what came before the highest position is unknown again.
        cache.changed("c", 14);
        assert!(
            cache.may_have_changed_since(&"a", 12),
            "forgotten: below the new floor"
        );
        assert!(cache.may_have_changed_since(&"c", 13));
        assert!(!cache.may_have_changed_since(&"c", 14));
        assert!(!cache.may_have_changed_since(&"a", 14));
    }
}
