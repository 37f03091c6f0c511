//! Backup and restore of a data folder, while the server serves.
//!
//! A backup folder holds `db/` (RocksDB's BackupEngine: a consistent snapshot taken while writes go
//! on; a second backup into the same folder shares the files it already has), `media/` (the
//! content-addressed media files, new ones copied) and `federation-tls/` (the generated listener
//! certificate, when there is one). The database is copied first: every media file it names was
//! written before its record was committed, so it is on disk when the media are copied next.
//!
//! Started by `parvis backup` (through the running server's control socket, or directly when the
//! server is stopped) or by `POST /_parvis/admin/v1/backup`; each run is a background job
//! ([`super::jobs`]) with its progress. `parvis restore` puts a backup into a new data folder.

pub mod files;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::{Value, json};

use super::{
    Services,
    jobs::{Job, Progress},
};
use crate::{
    error::{Error, Result},
    storage::Db,
};

pub const DB_FOLDER: &str = "db";
pub const MEDIA_FOLDER: &str = "media";
pub const TLS_FOLDER: &str = "federation-tls";

/// The job kind of backups.
pub const JOB_KIND: &str = "backup";

/// `[backup]`: where `POST /_parvis/admin/v1/backup` writes (`parvis backup --out` names its own).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// The backup folder of the admin route; unset, the route answers 400.
    pub dir: Option<PathBuf>,
    /// Backups kept in `dir` (the oldest beyond are deleted); 0 keeps all.
    pub keep: usize,
}

/// At most one backup at a time.
#[derive(Default)]
pub struct Backups {
    running: std::sync::atomic::AtomicBool,
}

/// Clears [`Backups::running`] when the backup ends, however it ends.
struct Running<'a>(&'a Backups);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0
            .running
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Copies the database, the media of `media_dir` and the TLS certificate of `data_dir` into `out`.
pub fn backup(
    db: &Db,
    data_dir: &Path,
    media_dir: &Path,
    out: &Path,
    keep: usize,
    progress: &mut dyn FnMut(Progress),
) -> Result<Value> {
    let io = |what: &str, e: std::io::Error| Error::internal(format!("backup: {what}: {e}"));
    std::fs::create_dir_all(out.join(DB_FOLDER)).map_err(|e| io("cannot create the folder", e))?;
    progress(Progress::new("database", 0, 1));
    let database = db.backup(&out.join(DB_FOLDER), keep)?;
    progress(Progress::new("database", 1, 1));
    let media = files::copy_tree(
        media_dir,
        &out.join(MEDIA_FOLDER),
        &["tmp"],
        &mut |done, total| progress(Progress::new("media", done, total)),
    )
    .map_err(|e| io("media", e))?;
    files::copy_tree(
        &data_dir.join(TLS_FOLDER),
        &out.join(TLS_FOLDER),
        &[],
        &mut |_, _| {},
    )
    .map_err(|e| io("TLS certificate", e))?;
    Ok(json!({ "folder": out, "database": database, "media": media }))
}

/// Restores the latest backup of `from` into `data_dir` (media into `media_dir`), which must not
/// hold a database.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    media_dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Value> {
    let io = |what: &str, e: std::io::Error| Error::internal(format!("restore: {what}: {e}"));
    if data_dir.join("CURRENT").exists() {
        return Err(Error::internal(format!(
            "{} already holds a database: restore into a new folder",
            data_dir.display()
        )));
    }
    if !from.join(DB_FOLDER).is_dir() {
        return Err(Error::internal(format!(
            "{} is not a Parvis backup (no {DB_FOLDER}/ folder)",
            from.display()
        )));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| io("cannot create the data folder", e))?;
    progress(Progress::new("database", 0, 1));
    let database = crate::storage::rocks::restore_latest(&from.join(DB_FOLDER), data_dir)?;
    progress(Progress::new("database", 1, 1));
    let media = files::copy_tree(
        &from.join(MEDIA_FOLDER),
        media_dir,
        &[],
        &mut |done, total| progress(Progress::new("media", done, total)),
    )
    .map_err(|e| io("media", e))?;
    files::copy_tree(
        &from.join(TLS_FOLDER),
        &data_dir.join(TLS_FOLDER),
        &[],
        &mut |_, _| {},
    )
    .map_err(|e| io("TLS certificate", e))?;
    Ok(json!({ "database": database, "media": media }))
}

/// Starts a backup of the running server into `out` as a background job; `watch` receives its
/// progress. Answers at once with the job; the returned handle ends with the finished job.
pub fn start_job(
    services: &Arc<Services>,
    out: PathBuf,
    keep: usize,
    started_by: &str,
    watch: Option<tokio::sync::mpsc::UnboundedSender<Progress>>,
) -> Result<(Job, tokio::task::JoinHandle<Result<Job>>)> {
    use std::sync::atomic::Ordering;
    if services
        .backups
        .running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(Error::new(
            http::StatusCode::CONFLICT,
            "M_UNKNOWN",
            "a backup is already running",
        ));
    }
    let started = crate::services::jobs::run_in_background(
        services,
        JOB_KIND,
        started_by,
        None,
        watch,
        move |s, _, report| {
            let _only_one = Running(&s.backups);
            let storage = &s.config().storage;
            let (data_dir, media_dir) = (storage.path.clone(), storage.media_dir());
            backup(&s.globals.db, &data_dir, &media_dir, &out, keep, report)
        },
    );
    // The running flag is cleared when the job ends (`Running`), or here when it did not start.
    if started.is_err() {
        services.backups.running.store(false, Ordering::Release);
    }
    started
}
