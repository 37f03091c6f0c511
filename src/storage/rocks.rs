//! The RocksDB engine: one column family per [`Map`].

use std::{path::Path, sync::Arc};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions,
};

use super::{
    Result, StorageError,
    engine::{BackupInfo, Batch, Direction, Engine, KvIter, Map, Op, StorageStat},
};

pub struct RocksEngine {
    db: DB,
    sync_writes: bool,
}

fn err(e: rocksdb::Error) -> StorageError {
    StorageError::Engine(e.into_string())
}

impl RocksEngine {
    /// Opens (creating if needed) the database at `path` with a column family for each map.
    pub fn open(
        path: &Path,
        maps: &[Map],
        cache_mb: usize,
        write_buffer_mb: usize,
        sync_writes: bool,
    ) -> Result<Arc<Self>> {
        let cache = Cache::new_lru_cache(cache_mb.max(8) << 20);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);

        let mut cf_opts = Options::default();
        cf_opts.set_block_based_table_factory(&table);
        cf_opts.set_compression_type(DBCompressionType::Lz4);
        cf_opts.set_write_buffer_size((write_buffer_mb.max(4) << 20) / 4);
        // Memtables grow in small blocks: dozens of column families, most of them small.
        cf_opts.set_arena_block_size(64 << 10);

        let mut db_opts = cf_opts.clone();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(2);
        db_opts.set_max_total_wal_size(64 << 20);
        // Table files are opened by the opening thread: RocksDB otherwise starts this many threads
        // for every column family at start-up (16 by default: about 1,700 threads for our maps,
        // a third of the start-up time of an empty database). Their statistics are not read
        // again at start-up either (they only tune compaction).
        db_opts.set_max_file_opening_threads(1);
        db_opts.set_skip_stats_update_on_db_open(true);
        // One budget for the memtables of every column family, so memory stays small with many maps.
        db_opts.set_db_write_buffer_size(write_buffer_mb.max(4) << 20);

        let mut names: Vec<&str> = maps.iter().map(|m| m.0).collect();
        // Keep column families that exist on disk but that this build no longer names.
        if let Ok(existing) = DB::list_cf(&db_opts, path) {
            for name in existing {
                if !names.contains(&name.as_str()) && name != "default" {
                    names.push(Box::leak(name.into_boxed_str()));
                }
            }
        }
        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
        let db = DB::open_cf_descriptors(&db_opts, path, descriptors).map_err(err)?;
        Ok(Arc::new(Self { db, sync_writes }))
    }

    fn cf(&self, map: Map) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(map.0)
            .unwrap_or_else(|| panic!("column family {} is not declared", map.0))
    }
}

impl Engine for RocksEngine {
    fn get(&self, map: Map, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(map), key).map_err(err)
    }

    fn multi_get(&self, map: Map, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let cf = self.cf(map);
        self.db
            .multi_get_cf(keys.iter().map(|k| (cf, k.as_slice())))
            .into_iter()
            .map(|r| r.map_err(err))
            .collect()
    }

    fn write(&self, batch: Batch) -> Result<()> {
        let mut wb = WriteBatch::default();
        for op in batch.ops {
            match op {
                Op::Put(map, key, value) => wb.put_cf(self.cf(map), key, value),
                Op::Delete(map, key) => wb.delete_cf(self.cf(map), key),
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(self.sync_writes);
        self.db.write_opt(wb, &options).map_err(err)
    }

    fn iter(&self, map: Map, from: &[u8], direction: Direction) -> KvIter<'_> {
        self.iter_range(map, Vec::new(), None, from, direction)
    }

    fn iter_range(
        &self,
        map: Map,
        low: Vec<u8>,
        high: Option<Vec<u8>>,
        from: &[u8],
        direction: Direction,
    ) -> KvIter<'_> {
        let direction = match direction {
            Direction::Forward => rocksdb::Direction::Forward,
            Direction::Backward => rocksdb::Direction::Reverse,
        };
        // Bounds let RocksDB skip the table files outside the range and stop at its end, not
        // step over the deleted keys past it to the next live one.
        let mut options = ReadOptions::default();
        if !low.is_empty() {
            options.set_iterate_lower_bound(low);
        }
        if let Some(high) = high {
            options.set_iterate_upper_bound(high);
        }
        Box::new(
            self.db
                .iterator_cf_opt(self.cf(map), options, IteratorMode::From(from, direction))
                .map(|r| r.map_err(err)),
        )
    }

    fn flush(&self) -> Result<()> {
        self.db.flush_wal(true).map_err(err)?;
        self.db.flush().map_err(err)
    }

    /// Properties summed over the column families (the block cache is shared: read once).
    fn stats(&self) -> Vec<StorageStat> {
        let names = DB::list_cf(&Options::default(), self.db.path()).unwrap_or_default();
        let sum = |property: &str| -> u64 {
            names
                .iter()
                .filter_map(|name| self.db.cf_handle(name))
                .filter_map(|cf| self.db.property_int_value_cf(cf, property).ok().flatten())
                .sum()
        };
        let db_wide = |property: &str| -> u64 {
            self.db
                .property_int_value(property)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        let stat = |name, help, value| StorageStat {
            name,
            help,
            value,
            counter: false,
        };
        vec![
            stat(
                "parvis_rocksdb_memtable_bytes",
                "Memory of RocksDB's memtables, all column families",
                sum("rocksdb.cur-size-all-mem-tables"),
            ),
            stat(
                "parvis_rocksdb_block_cache_bytes",
                "Memory of RocksDB's block cache in use",
                db_wide("rocksdb.block-cache-usage"),
            ),
            stat(
                "parvis_rocksdb_table_readers_bytes",
                "Memory of RocksDB's table readers (indexes and filters outside the cache)",
                sum("rocksdb.estimate-table-readers-mem"),
            ),
            stat(
                "parvis_rocksdb_sst_files_bytes",
                "Size of RocksDB's SST files, all column families",
                sum("rocksdb.total-sst-files-size"),
            ),
            stat(
                "parvis_rocksdb_running_compactions",
                "RocksDB compactions running now",
                db_wide("rocksdb.num-running-compactions"),
            ),
            stat(
                "parvis_rocksdb_running_flushes",
                "RocksDB memtable flushes running now",
                db_wide("rocksdb.num-running-flushes"),
            ),
            stat(
                "parvis_rocksdb_pending_compaction_bytes",
                "Bytes RocksDB estimates its compactions still have to rewrite",
                sum("rocksdb.estimate-pending-compaction-bytes"),
            ),
            stat(
                "parvis_rocksdb_column_families_pending_compaction",
                "Column families with a compaction pending",
                sum("rocksdb.compaction-pending"),
            ),
        ]
    }

    /// RocksDB's BackupEngine: the memtables are flushed, file deletions paused, and the live files
    /// (with the write-ahead log up to now) copied; files already in the folder are shared.
    fn backup(&self, into: &Path, keep: usize) -> Result<BackupInfo> {
        let mut engine = open_backup_engine(into)?;
        engine
            .create_new_backup_flush(&self.db, true)
            .map_err(err)?;
        let latest = latest_backup(&engine)?;
        engine.verify_backup(latest.backup_id).map_err(err)?;
        if keep > 0 {
            engine.purge_old_backups(keep).map_err(err)?;
        }
        Ok(latest)
    }
}

fn open_backup_engine(dir: &Path) -> Result<rocksdb::backup::BackupEngine> {
    let mut options = rocksdb::backup::BackupEngineOptions::new(dir).map_err(err)?;
    options.set_sync(true);
    let env = rocksdb::Env::new().map_err(err)?;
    rocksdb::backup::BackupEngine::open(&options, &env).map_err(err)
}

fn latest_backup(engine: &rocksdb::backup::BackupEngine) -> Result<BackupInfo> {
    engine
        .get_backup_info()
        .into_iter()
        .max_by_key(|b| b.backup_id)
        .map(|b| BackupInfo {
            backup_id: b.backup_id,
            timestamp: b.timestamp,
            size: b.size,
            files: b.num_files,
        })
        .ok_or_else(|| StorageError::Engine("the backup folder holds no backup".into()))
}

/// Restores the latest backup of the backup folder `from` into the (new) database folder `to`.
pub fn restore_latest(from: &Path, to: &Path) -> Result<BackupInfo> {
    let mut engine = open_backup_engine(from)?;
    let latest = latest_backup(&engine)?;
    engine.verify_backup(latest.backup_id).map_err(err)?;
    let options = rocksdb::backup::RestoreOptions::default();
    engine
        .restore_from_backup(to, to, &options, latest.backup_id)
        .map_err(err)?;
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Db;

    const A: Map = Map("a");
    const B: Map = Map("b");

    #[test]
    fn batches_scans_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::new(RocksEngine::open(dir.path(), &[A, B], 8, 8, false).unwrap());
            let mut batch = Batch::new();
            for i in [1u64, 2, 3, 10] {
                batch.put(A, i.to_be_bytes(), format!("v{i}"));
            }
            batch.put(B, b"x".to_vec(), b"y".to_vec());
            db.write(batch).unwrap();
            let forward: Vec<u64> = db
                .scan_from(A, &[], &2u64.to_be_bytes(), Direction::Forward)
                .map(|e| u64::from_be_bytes(e.unwrap().0[..8].try_into().unwrap()))
                .collect();
            assert_eq!(forward, vec![2, 3, 10]);
            let backward: Vec<u64> = db
                .scan_from(A, &[], &5u64.to_be_bytes(), Direction::Backward)
                .map(|e| u64::from_be_bytes(e.unwrap().0[..8].try_into().unwrap()))
                .collect();
            assert_eq!(backward, vec![3, 2, 1]);
            let mut delete = Batch::new();
            delete.delete(A, 1u64.to_be_bytes());
            db.write(delete).unwrap();
        }
        // Everything acknowledged is there after reopening.
        let db = Db::new(RocksEngine::open(dir.path(), &[A, B], 8, 8, false).unwrap());
        assert_eq!(db.get(A, &1u64.to_be_bytes()).unwrap(), None);
        assert_eq!(
            db.get(A, &10u64.to_be_bytes()).unwrap().as_deref(),
            Some(&b"v10"[..])
        );
        assert_eq!(db.get(B, b"x").unwrap().as_deref(), Some(&b"y"[..]));
        assert_eq!(
            db.multi_get(
                A,
                &[2u64.to_be_bytes().to_vec(), 7u64.to_be_bytes().to_vec()]
            )
            .unwrap()
            .iter()
            .filter(|v| v.is_some())
            .count(),
            1
        );
    }
}
