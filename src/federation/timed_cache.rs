//! A small in-memory cache whose entries expire after a time and whose size is capped: when
//! full, expired entries go first, then the oldest ones. For per-server memory fed by names
//! peers and clients choose (discovery results, for example).

use std::{
    collections::HashMap,
    hash::Hash,
    time::{Duration, Instant},
};

pub struct TimedCache<K, V> {
    entries: HashMap<K, (V, Instant)>,
    ttl: Duration,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TimedCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// The entry of `key` when it has not expired.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    pub fn insert(&mut self, key: K, value: V) {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let ttl = self.ttl;
            self.entries.retain(|_, (_, at)| at.elapsed() < ttl);
            // Still full: drop the oldest eighth (at least one).
            if self.entries.len() >= self.capacity {
                let mut by_age: Vec<(Instant, K)> = self
                    .entries
                    .iter()
                    .map(|(k, (_, at))| (*at, k.clone()))
                    .collect();
                by_age.sort_by_key(|(at, _)| *at);
                let drop = (self.capacity / 8).max(1);
                for (_, k) in by_age.into_iter().take(drop) {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(key, (value, Instant::now()));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_capped_and_the_newest_entries_stay() {
        let mut cache = TimedCache::new(Duration::from_secs(3600), 100);
        for i in 0..1000 {
            cache.insert(i, i * 2);
            assert!(cache.len() <= 100);
        }
        assert_eq!(cache.get(&999), Some(1998));
        assert_eq!(cache.get(&0), None);
        // Replacing an entry of a full cache drops nothing.
        let before = cache.len();
        cache.insert(999, 1);
        assert_eq!((cache.len(), cache.get(&999)), (before, Some(1)));
    }

    #[test]
    fn entries_expire() {
        let mut cache = TimedCache::new(Duration::from_millis(0), 10);
        cache.insert("a", 1);
        assert_eq!(cache.get("a"), None);
        // Expired entries make room first.
        for (i, k) in ["b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]
            .into_iter()
            .enumerate()
        {
            cache.insert(k, i);
        }
        assert!(cache.len() <= 10);
    }
}
