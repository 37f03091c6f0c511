//! The interface every storage engine implements.

use super::Result;

/// A named map (a RocksDB column family). Services declare their maps as constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Map(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// One write operation of a batch.
#[derive(Debug, Clone)]
pub enum Op {
    Put(Map, Vec<u8>, Vec<u8>),
    Delete(Map, Vec<u8>),
}

/// A set of writes applied atomically: all or none survive a crash.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, map: Map, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put(map, key.into(), value.into()));
    }

    pub fn delete(&mut self, map: Map, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete(map, key.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The first key after every key that starts with `prefix` (None: there is none, the prefix is
/// all 0xFF bytes).
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

pub type KvPair = (Box<[u8]>, Box<[u8]>);
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<KvPair>> + Send + 'a>;

/// A key-value engine with ordered keys. Calls block: callers run them off the async workers.
pub trait Engine: Send + Sync + 'static {
    fn get(&self, map: Map, key: &[u8]) -> Result<Option<Vec<u8>>>;

    fn multi_get(&self, map: Map, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(map, k)).collect()
    }

    /// Applies every operation of `batch` atomically.
    fn write(&self, batch: Batch) -> Result<()>;

    /// Entries from `from` (inclusive) in key order (`Forward`) or reverse order (`Backward`,
    /// starting at the last key `<= from`).
    fn iter(&self, map: Map, from: &[u8], direction: Direction) -> KvIter<'_>;

    /// [`Engine::iter`] over the keys in `[low, high)` only (`high` None: no upper end), from
    /// `from` (clamped into the range). By default the scan skips to the range and is cut at its
    /// end; RocksDB gives the bounds to its iterator (it then skips the table files and deleted
    /// keys outside), PostgreSQL to its queries (it never reads past them).
    fn iter_range(
        &self,
        map: Map,
        low: Vec<u8>,
        high: Option<Vec<u8>>,
        from: &[u8],
        direction: Direction,
    ) -> KvIter<'_> {
        let inner = self.iter(map, from, direction);
        let below_high = move |k: &[u8]| high.as_deref().is_none_or(|h| k < h);
        match direction {
            Direction::Forward => Box::new(
                inner
                    .skip_while(move |item| item.as_ref().is_ok_and(|(k, _)| **k < *low))
                    .take_while(move |item| item.as_ref().map_or(true, |(k, _)| below_high(k))),
            ),
            Direction::Backward => Box::new(
                inner
                    .skip_while(move |item| item.as_ref().is_ok_and(|(k, _)| !below_high(k)))
                    .take_while(move |item| item.as_ref().map_or(true, |(k, _)| **k >= *low)),
            ),
        }
    }

    /// [`Engine::iter_range`] over the keys that start with `prefix`.
    fn iter_prefix<'a>(
        &'a self,
        map: Map,
        prefix: &'a [u8],
        from: &[u8],
        direction: Direction,
    ) -> KvIter<'a> {
        self.iter_range(map, prefix.to_vec(), successor(prefix), from, direction)
    }

    /// Flushes memory tables to disk (used on clean shutdown).
    fn flush(&self) -> Result<()>;

    /// The commit order of several processes sharing the database: takes the database's commit
    /// lock (held until the returned commit is written or dropped) and reads `keys` of `map` under
    /// it. `None` (the default): this process is the only writer, and its own lock suffices.
    fn sequence(&self, map: Map, keys: &[&[u8]]) -> Result<Option<Box<dyn Sequenced + '_>>> {
        let _ = (map, keys);
        Ok(None)
    }

    /// Calls `on_commit` whenever another process may have committed (its notification, and a
    /// periodic check in case one is lost). It must return at once. The default: no other
    /// process writes, nothing to watch.
    fn watch_commits(&self, on_commit: std::sync::Arc<dyn Fn() + Send + Sync>) -> Result<()> {
        let _ = on_commit;
        Ok(())
    }

    /// The engine's figures for the metrics (memory, compactions, sizes); none by default.
    fn stats(&self) -> Vec<StorageStat> {
        Vec::new()
    }

    /// Copies a consistent snapshot of the whole database into the backup folder `into` while
    /// writes go on (incremental: files the folder already holds are not copied again).
    /// `keep` > 0 deletes the oldest backups beyond that many.
    fn backup(&self, into: &std::path::Path, keep: usize) -> Result<BackupInfo> {
        let _ = (into, keep);
        Err(super::StorageError::Engine(
            "this storage engine has no built-in backup".into(),
        ))
    }
}

/// A commit in the order of [`Engine::sequence`]: the values read under the lock, then the batch
/// written (with the lock released) by [`Sequenced::commit`]. Dropped without committing, it
/// writes nothing and releases the lock.
pub trait Sequenced {
    /// The values of the keys given to [`Engine::sequence`], in their order.
    fn values(&self) -> &[Option<Vec<u8>>];

    /// Writes `batch` atomically and releases the lock; `wake` is announced to the other processes
    /// once the write is durable.
    fn commit(self: Box<Self>, batch: Batch, wake: &str) -> Result<()>;
}

/// One figure of [`Engine::stats`]: a Prometheus gauge or counter.
#[derive(Debug, Clone)]
pub struct StorageStat {
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
    /// A counter (only grows; exposed as `<name>_total`), else a gauge.
    pub counter: bool,
}

/// One backup in a backup folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupInfo {
    pub backup_id: u32,
    /// Seconds since the epoch.
    pub timestamp: i64,
    /// Bytes of the files of this backup (shared files counted once per backup).
    pub size: u64,
    pub files: u32,
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn the_successor_of_a_prefix_bounds_exactly_its_keys() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
    }
}
