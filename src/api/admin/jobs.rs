//! Parvis's own admin routes for background jobs (`/_parvis/admin/v1/...`): start a backup, and
//! follow any job's status and progress.

use std::sync::Arc;

use axum::{Json, extract::State};
use serde_json::{Value, json};

use super::extract::{Admin, Args, Params};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        admin::paging::parse_limit,
        backup,
        export::{self, Subject},
        jobs::JobStatus,
    },
};

type Answer = Result<Json<Value>>;

/// `POST /_parvis/admin/v1/backup`: backs up the database and media into `[backup] dir` as a
/// background job; answers `{"job_id"}` at once (409 while another backup runs).
pub async fn start_backup(State(services): State<Arc<Services>>, Admin(admin): Admin) -> Answer {
    let config = &services.config().backup;
    let Some(dir) = config.dir.clone() else {
        return Err(Error::invalid_param(
            "backups are not configured: set [backup] dir",
        ));
    };
    let keep = config.keep;
    // Recording the job writes to the database: on the blocking pool.
    let background = services.clone();
    let job = services
        .run(move |_| {
            backup::start_job(&background, dir, keep, admin.as_str(), None).map(|(job, _)| job)
        })
        .await?;
    Ok(Json(json!({ "job_id": job.job_id })))
}

/// `GET /_parvis/admin/v1/jobs?limit=`: the newest jobs first (default 100).
pub async fn list(State(services): State<Arc<Services>>, _: Admin, params: Params) -> Answer {
    let limit = parse_limit(params.0.get("limit").map(String::as_str))?;
    services
        .run(move |s| Ok(Json(json!({ "jobs": s.jobs.list(limit)? }))))
        .await
}

/// `GET /_parvis/admin/v1/jobs/{jobId}`: one job (404 `M_NOT_FOUND` when unknown).
pub async fn get(State(services): State<Arc<Services>>, _: Admin, args: Args) -> Answer {
    let job_id = args.string(0)?;
    services
        .run(move |s| match s.jobs.get(&job_id)? {
            Some(job) => Ok(Json(serde_json::to_value(job).unwrap_or_default())),
            None => Err(Error::not_found("No such job")),
        })
        .await
}

/// `POST /_parvis/admin/v1/rooms/{roomId}/export`: exports the room as a background job
/// (`{"job_id"}` at once; 404 for an unknown room); the archive is then downloaded from
/// `GET /_parvis/admin/v1/exports/{jobId}`.
pub async fn export_room(
    State(services): State<Arc<Services>>,
    Admin(admin): Admin,
    args: Args,
) -> Answer {
    let subject = Subject::Room(args.room(0)?);
    start_export(services, subject, admin.as_str()).await
}

/// `POST /_parvis/admin/v1/users/{userId}/export`: the same for a user's data.
pub async fn export_user(
    State(services): State<Arc<Services>>,
    Admin(admin): Admin,
    args: Args,
) -> Answer {
    let subject = Subject::User(args.user(0)?);
    start_export(services, subject, admin.as_str()).await
}

async fn start_export(services: Arc<Services>, subject: Subject, admin: &str) -> Answer {
    let admin = admin.to_owned();
    let background = services.clone();
    let job = services
        .run(move |_| {
            export::start_job(&background, subject, None, &admin, None).map(|(job, _)| job)
        })
        .await?;
    Ok(Json(json!({ "job_id": job.job_id })))
}

/// `GET /_parvis/admin/v1/exports/{jobId}`: the archive of a finished export
/// (`application/x-tar`); 404 `M_NOT_FOUND` for an unknown job or one whose archive is gone, 400
/// `M_INVALID_PARAM` while it runs or when it failed.
pub async fn download(
    State(services): State<Arc<Services>>,
    _: Admin,
    args: Args,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    let job_id = args.string(0)?;
    let path = services
        .run(move |s| {
            let job = s
                .jobs
                .get(&job_id)?
                .filter(|j| j.kind == export::ROOM_JOB || j.kind == export::USER_JOB)
                .ok_or_else(|| Error::not_found("No such export"))?;
            if job.status != JobStatus::Complete {
                return Err(Error::invalid_param(format!(
                    "the export is {}",
                    serde_json::to_value(job.status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                )));
            }
            export::archive_path(s, &job.job_id)
                .filter(|p| p.is_file())
                .ok_or_else(|| Error::not_found("The archive is gone"))
        })
        .await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
    let body = axum::body::Body::from_stream(file_chunks(file));
    Ok((
        [
            (http::header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                http::header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}\"",
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("export.tar")
                ),
            ),
        ],
        body,
    )
        .into_response())
}

/// A file's bytes in chunks of 64 KiB (an archive may be large; it is never held in memory).
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 << 10];
        match tokio::io::AsyncReadExt::read(&mut file, &mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
