//! Parvis's own admin routes for background jobs (`/_parvis/admin/v1/...`): start a backup, and
//! follow any job's status and progress.

use std::sync::Arc;

use axum::{Json, extract::State};
use serde_json::{Value, json};

use super::extract::{Admin, Args, Params};
use crate::{
    error::{Error, Result},
    services::{Services, admin::paging::parse_limit, backup},
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
    let (job, _running) = backup::start_job(&services, dir, keep, admin.as_str(), None)?;
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
