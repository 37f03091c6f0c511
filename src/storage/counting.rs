//! The counting engine: wraps any engine and counts the calls made to it (gets, batched gets,
//! batch writes, scans and the entries they yield). The counts are metrics
//! (`parvis_storage_*_total`), and the bench divides their growth by the requests it made to
//! report the engine calls per request on each engine (bench/results.md). A relaxed atomic
//! increment per call: nothing measurable beside the call itself.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

use super::{
    Result,
    engine::{BackupInfo, Batch, Direction, Engine, KvIter, Map, Sequenced, StorageStat},
};

pub struct Counting {
    inner: Arc<dyn Engine>,
    gets: AtomicU64,
    multi_gets: AtomicU64,
    writes: AtomicU64,
    scans: Arc<AtomicU64>,
    scanned: Arc<AtomicU64>,
}

impl Counting {
    pub fn wrap(inner: Arc<dyn Engine>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            gets: AtomicU64::new(0),
            multi_gets: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            scans: Arc::default(),
            scanned: Arc::default(),
        })
    }

    fn counted<'a>(&self, scan: KvIter<'a>) -> KvIter<'a> {
        self.scans.fetch_add(1, Relaxed);
        let scanned = self.scanned.clone();
        Box::new(scan.inspect(move |_| {
            scanned.fetch_add(1, Relaxed);
        }))
    }
}

impl Engine for Counting {
    fn get(&self, map: Map, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.gets.fetch_add(1, Relaxed);
        self.inner.get(map, key)
    }

    fn multi_get(&self, map: Map, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.multi_gets.fetch_add(1, Relaxed);
        self.inner.multi_get(map, keys)
    }

    fn write(&self, batch: Batch) -> Result<()> {
        self.writes.fetch_add(1, Relaxed);
        self.inner.write(batch)
    }

    fn iter(&self, map: Map, from: &[u8], direction: Direction) -> KvIter<'_> {
        self.counted(self.inner.iter(map, from, direction))
    }

    fn iter_range(
        &self,
        map: Map,
        low: Vec<u8>,
        high: Option<Vec<u8>>,
        from: &[u8],
        direction: Direction,
    ) -> KvIter<'_> {
        self.counted(self.inner.iter_range(map, low, high, from, direction))
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    fn sequence(&self, map: Map, keys: &[&[u8]]) -> Result<Option<Box<dyn Sequenced + '_>>> {
        let sequenced = self.inner.sequence(map, keys)?;
        if sequenced.is_some() {
            self.writes.fetch_add(1, Relaxed);
        }
        Ok(sequenced)
    }

    fn watch_commits(&self, on_commit: Arc<dyn Fn() + Send + Sync>) -> Result<()> {
        self.inner.watch_commits(on_commit)
    }

    fn stats(&self) -> Vec<StorageStat> {
        let counter = |name, help, value: &AtomicU64| StorageStat {
            name,
            help,
            value: value.load(Relaxed),
            counter: true,
        };
        let mut stats = vec![
            counter(
                "parvis_storage_gets",
                "Single-key reads asked of the storage engine",
                &self.gets,
            ),
            counter(
                "parvis_storage_multi_gets",
                "Batched reads (several keys of one map) asked of the storage engine",
                &self.multi_gets,
            ),
            counter(
                "parvis_storage_writes",
                "Atomic write batches applied by the storage engine",
                &self.writes,
            ),
            counter(
                "parvis_storage_scans",
                "Ordered scans started in the storage engine",
                &self.scans,
            ),
            counter(
                "parvis_storage_scanned_entries",
                "Entries read by the storage engine's scans",
                &self.scanned,
            ),
        ];
        stats.extend(self.inner.stats());
        stats
    }

    fn backup(&self, into: &std::path::Path, keep: usize) -> Result<BackupInfo> {
        self.inner.backup(into, keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_call_is_counted() {
        let (_dir, db) = crate::storage::test_db(&[Map("m")]);
        let engine = Counting::wrap(db.engine());
        let map = Map("m");
        let mut batch = Batch::new();
        batch.put(map, b"a".to_vec(), b"1".to_vec());
        batch.put(map, b"b".to_vec(), b"2".to_vec());
        engine.write(batch).unwrap();
        assert_eq!(engine.get(map, b"a").unwrap().as_deref(), Some(&b"1"[..]));
        engine
            .multi_get(map, &[b"a".to_vec(), b"z".to_vec()])
            .unwrap();
        assert_eq!(engine.iter(map, b"", Direction::Forward).count(), 2);
        assert_eq!(
            engine
                .iter_prefix(map, b"b", b"b", Direction::Forward)
                .count(),
            1
        );
        let value = |name| {
            engine
                .stats()
                .into_iter()
                .find(|s| s.name == name)
                .map(|s| s.value)
        };
        assert_eq!(value("parvis_storage_gets"), Some(1));
        assert_eq!(value("parvis_storage_multi_gets"), Some(1));
        assert_eq!(value("parvis_storage_writes"), Some(1));
        assert_eq!(value("parvis_storage_scans"), Some(2));
        assert_eq!(value("parvis_storage_scanned_entries"), Some(3));
    }
}
