//! A RocksDB engine that stops writing after a given number of batches, as a process killed at
//! that point would: a write past the limit fails and changes nothing. Services built on it test
//! that a change and what it causes are one batch.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use parvis::{
    services::{Services, all_maps},
    storage::{
        Batch, Db, Direction, Engine, Map, StorageError, engine::KvIter, rocks::RocksEngine,
    },
};

pub struct CrashingEngine {
    inner: Arc<dyn Engine>,
    /// Batches still written; negative: no limit.
    writes_left: AtomicI64,
}

impl CrashingEngine {
    /// From now on, only `n` more batches are written (negative: every batch).
    pub fn allow_writes(&self, n: i64) {
        self.writes_left.store(n, Ordering::SeqCst);
    }
}

impl Engine for CrashingEngine {
    fn get(&self, map: Map, key: &[u8]) -> parvis::storage::Result<Option<Vec<u8>>> {
        self.inner.get(map, key)
    }

    fn multi_get(
        &self,
        map: Map,
        keys: &[Vec<u8>],
    ) -> parvis::storage::Result<Vec<Option<Vec<u8>>>> {
        self.inner.multi_get(map, keys)
    }

    fn write(&self, batch: Batch) -> parvis::storage::Result<()> {
        let left = self.writes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(StorageError::Engine("crashed (test)".into()));
        }
        if left > 0 {
            self.writes_left.store(left - 1, Ordering::SeqCst);
        }
        self.inner.write(batch)
    }

    fn iter(&self, map: Map, from: &[u8], direction: Direction) -> KvIter<'_> {
        self.inner.iter(map, from, direction)
    }

    fn flush(&self) -> parvis::storage::Result<()> {
        self.inner.flush()
    }
}

/// Services (no HTTP server) on a crashing engine over a database in `data`.
pub fn services(data: &Path) -> (Arc<Services>, Arc<CrashingEngine>) {
    let config = super::config(data);
    std::fs::create_dir_all(data).unwrap();
    // The engine the tests run on (PostgreSQL with PARVIS_TEST_ENGINE=postgres).
    let inner: Arc<dyn Engine> = match config.storage.engine {
        parvis::config::EngineKind::Rocksdb => {
            RocksEngine::open(data, &all_maps(), 8, 8, false).unwrap()
        }
        parvis::config::EngineKind::Postgres => {
            parvis::storage::postgres::PgEngine::open(&config.storage.postgres, &all_maps())
                .unwrap()
        }
    };
    let engine = Arc::new(CrashingEngine {
        inner,
        writes_left: AtomicI64::new(-1),
    });
    let services = Services::with_db(config, Db::new(engine.clone())).unwrap();
    (services, engine)
}
