//! Storage: a narrow key-value interface (named maps, get, ordered scans, atomic batches) and its
//! engines, RocksDB (embedded, the default) and PostgreSQL, each wrapped in the counting engine
//! (calls as metrics). Services reach the database only through [`Db`].

pub mod counting;
pub mod db;
pub mod engine;
pub mod keys;
pub mod postgres;
pub mod rocks;
pub mod time_index;

pub use db::Db;
pub use engine::{Batch, Direction, Engine, Map};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Engine(String),
    #[error("corrupt value in {map}: {why}")]
    Corrupt { map: &'static str, why: String },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A database with `maps` in a temporary folder (deleted with the folder): for unit tests.
#[cfg(test)]
pub fn test_db(maps: &[Map]) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let engine = rocks::RocksEngine::open(dir.path(), maps, 8, 8, false).expect("RocksDB opens");
    (dir, Db::new(engine))
}
