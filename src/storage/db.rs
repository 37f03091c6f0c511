//! Typed helpers over an [`Engine`].

use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};

use super::{Batch, Direction, Engine, Map, Result, StorageError, engine::KvPair};

#[derive(Clone)]
pub struct Db {
    engine: Arc<dyn Engine>,
}

impl Db {
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Self { engine }
    }

    /// The engine under this handle (to wrap it, as the counting engine does).
    pub fn engine(&self) -> Arc<dyn Engine> {
        self.engine.clone()
    }

    pub fn get(&self, map: Map, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.engine.get(map, key)
    }

    pub fn multi_get(&self, map: Map, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        self.engine.multi_get(map, keys)
    }

    pub fn contains(&self, map: Map, key: &[u8]) -> Result<bool> {
        Ok(self.engine.get(map, key)?.is_some())
    }

    pub fn get_json<T: DeserializeOwned>(&self, map: Map, key: &[u8]) -> Result<Option<T>> {
        self.engine
            .get(map, key)?
            .map(|bytes| decode_json(map, &bytes))
            .transpose()
    }

    pub fn get_u64(&self, map: Map, key: &[u8]) -> Result<Option<u64>> {
        self.engine
            .get(map, key)?
            .map(|bytes| decode_u64(map, &bytes))
            .transpose()
    }

    /// The engine's figures for the metrics.
    pub fn stats(&self) -> Vec<super::engine::StorageStat> {
        self.engine.stats()
    }

    /// A consistent snapshot of the database into the backup folder `into` (see [`Engine::backup`]).
    pub fn backup(&self, into: &std::path::Path, keep: usize) -> Result<super::engine::BackupInfo> {
        self.engine.backup(into, keep)
    }

    pub fn write(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.engine.write(batch)
    }

    /// A one-key write.
    pub fn put(&self, map: Map, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<()> {
        let mut batch = Batch::new();
        batch.put(map, key, value);
        self.write(batch)
    }

    /// A one-key delete.
    pub fn delete(&self, map: Map, key: impl Into<Vec<u8>>) -> Result<()> {
        let mut batch = Batch::new();
        batch.delete(map, key);
        self.write(batch)
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix<'a>(
        &'a self,
        map: Map,
        prefix: &'a [u8],
    ) -> impl Iterator<Item = Result<KvPair>> + 'a {
        self.engine
            .iter_prefix(map, prefix, prefix, Direction::Forward)
    }

    /// Entries with keys starting with `prefix`, from `from` (inclusive) in `direction`.
    pub fn scan_from<'a>(
        &'a self,
        map: Map,
        prefix: &'a [u8],
        from: &[u8],
        direction: Direction,
    ) -> impl Iterator<Item = Result<KvPair>> + 'a {
        self.engine.iter_prefix(map, prefix, from, direction)
    }

    /// Entries with keys in `[low, high)` (`high` None: no end), from `from` in `direction`.
    pub fn scan_range(
        &self,
        map: Map,
        low: Vec<u8>,
        high: Option<Vec<u8>>,
        from: &[u8],
        direction: Direction,
    ) -> impl Iterator<Item = Result<KvPair>> + '_ {
        self.engine.iter_range(map, low, high, from, direction)
    }

    /// The database's commit lock when several processes share it (see [`Engine::sequence`]).
    pub fn sequence(
        &self,
        map: Map,
        keys: &[&[u8]],
    ) -> Result<Option<Box<dyn super::engine::Sequenced + '_>>> {
        self.engine.sequence(map, keys)
    }

    /// Reads `key` of `map` and writes the batch that `decide` makes of its value, with no other
    /// change of the key in between: under the database's commit lock when processes share it
    /// ([`Engine::sequence`]), else under `local`, which every changer of the key in this process
    /// holds. For a check-then-write that must hold across processes (a name taken once, a
    /// token spent once).
    pub fn read_then_write<R, E: From<StorageError>>(
        &self,
        local: &std::sync::Mutex<()>,
        map: Map,
        key: &[u8],
        decide: impl FnOnce(Option<Vec<u8>>) -> std::result::Result<(R, Batch), E>,
    ) -> std::result::Result<R, E> {
        let _local = local.lock().unwrap_or_else(|e| e.into_inner());
        let sequenced = self.engine.sequence(map, &[key])?;
        let value = match &sequenced {
            Some(s) => s.values()[0].clone(),
            None => self.engine.get(map, key)?,
        };
        let (result, batch) = decide(value)?;
        match sequenced {
            Some(s) => s.commit(batch, "")?,
            None if !batch.is_empty() => self.engine.write(batch)?,
            None => {}
        }
        Ok(result)
    }

    /// See [`Engine::watch_commits`].
    pub fn watch_commits(&self, on_commit: Arc<dyn Fn() + Send + Sync>) -> Result<()> {
        self.engine.watch_commits(on_commit)
    }

    pub fn flush(&self) -> Result<()> {
        self.engine.flush()
    }
}

pub fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("in-memory values serialize")
}

pub fn decode_json<T: DeserializeOwned>(map: Map, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        map: map.0,
        why: e.to_string(),
    })
}

pub fn decode_u64(map: Map, bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StorageError::Corrupt {
            map: map.0,
            why: "expected 8 bytes".into(),
        })?;
    Ok(u64::from_be_bytes(array))
}
