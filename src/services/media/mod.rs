//! The media repository (client-server and server-server "Content repository"): uploads (at once,
//! or a URI created first and uploaded later), downloads, thumbnails generated once and stored,
//! other servers' media fetched over federation and cached. Files are content-addressed on disk
//! (`files`), metadata is in RocksDB (`records`).
//!
//! Steps: `upload` (create, upload), `download` (find local or cached media, wait for a pending
//! upload, fetch remote media), `thumbnail` (find or generate), `remote` (federation fetches).
//! Pure parts: `render` (sizes and image work), `headers` (dispositions and safe headers).

pub mod admin;
pub mod config;
pub mod download;
pub mod files;
pub mod headers;
pub mod records;
pub mod remote;
pub mod render;
pub mod retention;
pub mod thumbnail;
pub mod upload;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use http::StatusCode;

pub use records::MAPS;

use crate::{
    config::Config,
    error::{Error, Result},
    storage::Db,
};

pub struct Media {
    db: Db,
    pub files: files::FileStore,
    pub config: config::MediaConfig,
    /// Bumped after every completed upload: downloads waiting for a pending upload look again.
    uploaded: tokio::sync::watch::Sender<u64>,
    /// Held while an async upload checks and fills its record (one upload per URI).
    upload_lock: Mutex<()>,
    /// Read-held from storing a file to committing the record that names it; write-held while
    /// unreferenced files are removed (`admin::delete`), so a file is never removed under a record
    /// being written.
    files_lock: std::sync::RwLock<()>,
    /// One remote fetch or thumbnail generation per key at a time.
    work_locks: KeyedLocks,
    /// Thumbnail renderings at once ([`MAX_CONCURRENT_THUMBNAILS`]): decoding and scaling run on
    /// the blocking pool, which database calls share; more requests wait (asynchronously).
    thumbnail_slots: tokio::sync::Semaphore,
}

/// Thumbnails rendered at once on the blocking pool.
pub const MAX_CONCURRENT_THUMBNAILS: usize = 2;

impl Media {
    pub fn open(config: &Config, db: Db) -> Result<Self> {
        let root = config.storage.media_dir();
        let shared = config.storage.engine == crate::config::EngineKind::Postgres
            && config.storage.postgres.shared;
        let files = files::FileStore::open(root.clone(), shared).map_err(|e| {
            Error::internal(format!(
                "cannot open the media store {}: {e}",
                root.display()
            ))
        })?;
        Ok(Self {
            db,
            files,
            config: config.media.clone(),
            uploaded: tokio::sync::watch::channel(0).0,
            upload_lock: Mutex::new(()),
            files_lock: std::sync::RwLock::new(()),
            work_locks: KeyedLocks::default(),
            thumbnail_slots: tokio::sync::Semaphore::new(MAX_CONCURRENT_THUMBNAILS),
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Held from storing a file to committing its record.
    pub fn storing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.files_lock.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Held while unreferenced files are removed.
    pub fn removing(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.files_lock.write().unwrap_or_else(|e| e.into_inner())
    }

    fn notify_uploaded(&self) {
        self.uploaded.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Async locks by key, dropped when nobody holds them.
#[derive(Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: String) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

pub fn cannot_overwrite() -> Error {
    Error::new(
        StatusCode::CONFLICT,
        "M_CANNOT_OVERWRITE_MEDIA",
        "Media already uploaded",
    )
}

pub fn not_yet_uploaded() -> Error {
    Error::new(
        StatusCode::GATEWAY_TIMEOUT,
        "M_NOT_YET_UPLOADED",
        "Content has not yet been uploaded",
    )
}

pub fn media_not_found() -> Error {
    Error::not_found("Media not found")
}
