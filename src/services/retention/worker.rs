//! The purge jobs (`[retention] purge_jobs`): each runs every `interval` (the first time a minute
//! after start at most) over the rooms whose effective max lifetime is in its range, room by room,
//! as a background job (`services::jobs`, kind `retention_purge`) whose progress is the rooms
//! done. A job stopped by a shutdown stays `running` and goes on from its last room at the next
//! start; a room purges in batches, so nothing is ever half done.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use tokio::{sync::watch, task::JoinHandle, time::Instant};

use super::{JOB_KIND, PurgeJobConfig, lifetime::Lifetime, max_lifetime};
use crate::{
    error::{Error, Result},
    services::{
        Services,
        jobs::{Job, JobStatus, Progress},
        timeline::{ROOMS, purge},
    },
    util::now_ms,
};

/// The first run of a job comes this long after start at most.
const FIRST_RUN_WITHIN: Duration = Duration::from_secs(60);

pub fn spawn(services: Arc<Services>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if !services.retention.enabled() {
            return;
        }
        let stopping = stop.clone();
        let resumed = services
            .run(move |s| {
                for job in interrupted(s)? {
                    let config: PurgeJobConfig = job
                        .params
                        .clone()
                        .and_then(|p| serde_json::from_value(p).ok())
                        .ok_or_else(|| Error::internal("a purge job without its settings"))?;
                    run(s, config, Some(job), &|| *stopping.borrow())?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = resumed {
            tracing::warn!("resuming retention purges: {}", e.message);
        }
        let jobs = services.retention.config().jobs();
        let start = Instant::now();
        let mut due: Vec<Instant> = jobs
            .iter()
            .map(|j| start + Duration::from_millis(j.interval.0).min(FIRST_RUN_WITHIN))
            .collect();
        loop {
            let Some((i, at)) = due.iter().copied().enumerate().min_by_key(|(_, at)| *at) else {
                return;
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep_until(at) => {}
            }
            let (config, stopping) = (jobs[i], stop.clone());
            let ran = services
                .run(move |s| run(s, config, None, &|| *stopping.borrow()))
                .await;
            if let Err(e) = ran {
                tracing::warn!("retention purge: {}", e.message);
            }
            due[i] = Instant::now() + Duration::from_millis(config.interval.0);
        }
    })
}

/// Purge jobs left running by a previous process.
fn interrupted(s: &Services) -> Result<Vec<Job>> {
    Ok(s.jobs
        .list(usize::MAX)?
        .into_iter()
        .filter(|j| j.kind == JOB_KIND && j.status == JobStatus::Running)
        .collect())
}

/// Runs one purge job over the rooms it covers (from where `resume` stopped); stops early,
/// leaving the job running, when `stopping` says so. A run that finds no room with a policy in
/// its range leaves no record.
pub fn run(
    s: &Services,
    config: PurgeJobConfig,
    resume: Option<Job>,
    stopping: &dyn Fn() -> bool,
) -> Result<()> {
    let rooms = covered_rooms(s, config)?;
    let job = match resume {
        Some(job) => job,
        None if rooms.is_empty() => return Ok(()),
        // The job's settings, kept in its record to resume it.
        None => s
            .jobs
            .start(JOB_KIND, "retention", serde_json::to_value(config).ok())?,
    };
    match purge_rooms(s, &job, &rooms, stopping) {
        Ok(Some(purged)) => s.jobs.finish(
            &job.job_id,
            Ok(json!({ "events_purged": purged, "rooms": rooms.len() })),
        ),
        Ok(None) => Ok(()),
        Err(e) => s.jobs.finish(&job.job_id, Err(e.message)),
    }
}

/// The rooms whose effective max lifetime the job covers, in room id order, with that lifetime.
fn covered_rooms(s: &Services, config: PurgeJobConfig) -> Result<Vec<(u64, Lifetime)>> {
    let mut rooms = Vec::new();
    for entry in s.globals.db.scan_prefix(ROOMS, &[]) {
        let (key, _) = entry?;
        let Ok(room_id) = ruma::OwnedRoomId::try_from(String::from_utf8_lossy(&key).as_ref())
        else {
            continue;
        };
        if let Some(short_room) = s.short.room(&room_id)?
            && let Some(max) = max_lifetime(s, short_room)?
            && config.covers(max)
        {
            rooms.push((short_room, max));
        }
    }
    Ok(rooms)
}

/// Purges the rooms from the job's progress on; Some(events purged) when done, None when stopped.
fn purge_rooms(
    s: &Services,
    job: &Job,
    rooms: &[(u64, Lifetime)],
    stopping: &dyn Fn() -> bool,
) -> Result<Option<u64>> {
    let total = rooms.len() as u64;
    let now = now_ms();
    let mut purged = 0;
    for (i, (short_room, max)) in rooms.iter().enumerate().skip(job.progress.done as usize) {
        let scope = purge::Scope::before(now.saturating_sub(max.0));
        match purge::purge(s, *short_room, scope, stopping)? {
            Some(n) => purged += n,
            None => return Ok(None),
        }
        s.jobs.progress(
            &job.job_id,
            Progress {
                step: "rooms".into(),
                done: i as u64 + 1,
                total,
            },
        )?;
    }
    Ok(Some(purged))
}
