//! Exports (★): a room's whole history, or a user's data, as one tar archive with a readable HTML
//! transcript, for auditors and departing teams. Run by `parvis export-room` / `export-user`
//! (through the running server's control socket, or directly when it is stopped) or by
//! `POST /_parvis/admin/v1/rooms/{roomId}/export` / `…/users/{userId}/export`, whose archive is
//! kept in `<storage.path>/exports/<jobId>.tar` (the newest [`KEPT_EXPORTS`]) and downloaded from
//! `GET /_parvis/admin/v1/exports/{jobId}`. What an archive holds: `room.rs`, `user.rs`,
//! `transcript.rs`. Documented in spec/export.md.

pub mod archive;
pub mod room;
pub mod transcript;
pub mod user;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};

use super::{
    Services,
    jobs::{Job, Progress},
};
use crate::error::{Error, Result};

pub const ROOM_JOB: &str = "export_room";
pub const USER_JOB: &str = "export_user";

/// The folder of the admin API's archives, in the data folder.
pub const EXPORTS_FOLDER: &str = "exports";

/// Archives kept in [`EXPORTS_FOLDER`]; the oldest beyond go when a new export starts.
pub const KEPT_EXPORTS: usize = 20;

pub(crate) fn io_error(e: std::io::Error) -> Error {
    Error::internal(format!("export: {e}"))
}

/// What to export.
#[derive(Debug, Clone)]
pub enum Subject {
    Room(OwnedRoomId),
    User(OwnedUserId),
}

impl Subject {
    fn kind(&self) -> &'static str {
        match self {
            Self::Room(_) => ROOM_JOB,
            Self::User(_) => USER_JOB,
        }
    }
}

/// Runs the export of `subject` into `out` (blocking).
pub fn export(
    s: &Services,
    subject: &Subject,
    out: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Value> {
    match subject {
        Subject::Room(room_id) => room::export_room(s, room_id, out, progress),
        Subject::User(user_id) => user::export_user(s, user_id, out, progress),
    }
}

/// The archive of an admin API export job.
pub fn archive_path(s: &Services, job_id: &str) -> Option<PathBuf> {
    let safe = !job_id.is_empty() && job_id.chars().all(|c| c.is_ascii_alphanumeric());
    safe.then(|| {
        s.config()
            .storage
            .path
            .join(EXPORTS_FOLDER)
            .join(format!("{job_id}.tar"))
    })
}

/// Deletes the oldest archives of the exports folder beyond [`KEPT_EXPORTS`] - 1.
fn forget_old_archives(s: &Services) -> Result<()> {
    let folder = s.config().storage.path.join(EXPORTS_FOLDER);
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Ok(());
    };
    // Job ids begin with their start time: name order is age order.
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tar"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(KEPT_EXPORTS - 1);
    for path in names.into_iter().take(excess) {
        std::fs::remove_file(path).map_err(io_error)?;
    }
    Ok(())
}

/// Starts an export as a background job. `out` None: the admin API's archive in the exports
/// folder. The subject is checked first (404 when unknown).
pub fn start_job(
    services: &Arc<Services>,
    subject: Subject,
    out: Option<PathBuf>,
    started_by: &str,
    watch: Option<tokio::sync::mpsc::UnboundedSender<Progress>>,
) -> Result<(Job, tokio::task::JoinHandle<Result<Job>>)> {
    match &subject {
        Subject::Room(room_id) if services.short.room(room_id)?.is_none() => {
            return Err(Error::not_found("Room not found"));
        }
        Subject::User(user_id) if services.users.account(user_id)?.is_none() => {
            return Err(Error::not_found("User not found"));
        }
        _ => {}
    }
    if out.is_none() {
        forget_old_archives(services)?;
    }
    let params = match &subject {
        Subject::Room(room_id) => json!({ "room_id": room_id }),
        Subject::User(user_id) => json!({ "user_id": user_id }),
    };
    let kind = subject.kind();
    let (job, handle) = crate::services::jobs::run_in_background(
        services,
        kind,
        started_by,
        Some(params),
        watch,
        move |s, job_id, report| {
            let out = match out {
                Some(out) => out,
                None => archive_path(s, job_id)
                    .ok_or_else(|| Error::internal("a job id that is not a file name"))?,
            };
            export(s, &subject, &out, report)
        },
    )?;
    Ok((job, handle))
}
