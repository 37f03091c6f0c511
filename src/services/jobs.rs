//! Background jobs that admins start and watch (backups today; exports, purges and room deletions
//! report through the same records): each has a kind, a status, its progress (a step name, done
//! and total) and, once finished, a result or an error. Records are kept in `background_jobs`
//! (the newest [`KEPT_JOBS`]); a job that was running when the server stopped is marked failed
//! at the next start unless its kind resumes by itself.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    storage::{Db, Direction, Map},
    util::now_ms,
};

/// Job id (time-ordered text) → [`Job`] as JSON.
pub const JOBS: Map = Map("background_jobs");
pub const MAPS: &[Map] = &[JOBS];

/// Finished jobs beyond this many (oldest first) are forgotten when a new one starts.
pub const KEPT_JOBS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Complete,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// What the job is doing now ("database", "media", …).
    pub step: String,
    pub done: u64,
    /// 0 while unknown.
    pub total: u64,
}

impl Progress {
    pub fn new(step: &str, done: u64, total: u64) -> Self {
        Self {
            step: step.to_owned(),
            done,
            total,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub kind: String,
    pub status: JobStatus,
    pub progress: Progress,
    /// Who started it: a user id, "command line", or "retention".
    pub started_by: String,
    /// What it was asked to do (kept to resume it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    pub started_ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct Jobs {
    db: Db,
    /// The time part of the last id handed out: ids grow strictly, so two jobs started in one
    /// millisecond still list in start order.
    last_id_ms: std::sync::atomic::AtomicU64,
}

impl Jobs {
    /// Opens the job records; jobs left running by a previous process (and whose kind is not in
    /// `resumable`) are marked failed.
    pub fn open(db: Db, resumable: &[&str]) -> Result<Self> {
        let jobs = Self {
            db,
            last_id_ms: Default::default(),
        };
        for job in jobs.list(usize::MAX)? {
            if job.status == JobStatus::Running && !resumable.contains(&job.kind.as_str()) {
                jobs.finish(&job.job_id, Err("interrupted: the server stopped".into()))?;
            }
        }
        Ok(jobs)
    }

    /// Records a new running job of `kind`.
    pub fn start(&self, kind: &str, started_by: &str, params: Option<Value>) -> Result<Job> {
        self.forget_old()?;
        let now = now_ms();
        let id_ms = self
            .last_id_ms
            .fetch_update(
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
                |last| Some(now.max(last + 1)),
            )
            .map_or(now, |last| now.max(last + 1));
        let job = Job {
            job_id: format!("{id_ms:012x}{}", crate::util::random_string(8)),
            kind: kind.to_owned(),
            status: JobStatus::Running,
            progress: Progress::default(),
            started_by: started_by.to_owned(),
            params,
            started_ts: now,
            finished_ts: None,
            result: None,
            error: None,
        };
        self.save(&job)?;
        Ok(job)
    }

    pub fn get(&self, job_id: &str) -> Result<Option<Job>> {
        Ok(self.db.get_json(JOBS, job_id.as_bytes())?)
    }

    /// The newest `limit` jobs, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<Job>> {
        let mut jobs = Vec::new();
        for entry in self.db.scan_from(JOBS, &[], &[0xff], Direction::Backward) {
            if jobs.len() >= limit {
                break;
            }
            let (_, value) = entry?;
            jobs.push(crate::storage::db::decode_json(JOBS, &value)?);
        }
        Ok(jobs)
    }

    pub fn progress(&self, job_id: &str, progress: Progress) -> Result<()> {
        self.update(job_id, |job| job.progress = progress)
    }

    /// Marks the job complete with its result, or failed with its error.
    pub fn finish(&self, job_id: &str, outcome: Result<Value, String>) -> Result<()> {
        self.update(job_id, |job| {
            job.finished_ts = Some(now_ms());
            match outcome {
                Ok(result) => {
                    job.status = JobStatus::Complete;
                    job.result = Some(result);
                }
                Err(error) => {
                    job.status = JobStatus::Failed;
                    job.error = Some(error);
                }
            }
        })
    }

    fn update(&self, job_id: &str, change: impl FnOnce(&mut Job)) -> Result<()> {
        let mut job = self
            .get(job_id)?
            .ok_or_else(|| Error::internal(format!("no job {job_id}")))?;
        change(&mut job);
        self.save(&job)
    }

    fn save(&self, job: &Job) -> Result<()> {
        let value = serde_json::to_vec(job).map_err(|e| Error::internal(e.to_string()))?;
        Ok(self.db.put(JOBS, job.job_id.as_bytes(), value)?)
    }

    /// Keeps the newest [`KEPT_JOBS`] - 1 records (running ones always stay).
    fn forget_old(&self) -> Result<()> {
        let mut batch = crate::storage::Batch::new();
        for (n, entry) in self
            .db
            .scan_from(JOBS, &[], &[0xff], Direction::Backward)
            .enumerate()
        {
            let (key, value) = entry?;
            if n + 1 >= KEPT_JOBS {
                let job: Job = crate::storage::db::decode_json(JOBS, &value)?;
                if job.status != JobStatus::Running {
                    batch.delete(JOBS, key.to_vec());
                }
            }
        }
        Ok(self.db.write(batch)?)
    }
}

/// Records a job of `kind` and runs `work` (given the job's id) on the blocking pool: its progress goes to the record
/// (at most 4 times a second, and at each step's start and end) and to `watch`; its outcome
/// finishes the record. Answers the job at once; the handle ends with the finished record.
pub fn run_in_background(
    services: &std::sync::Arc<super::Services>,
    kind: &str,
    started_by: &str,
    params: Option<Value>,
    watch: Option<tokio::sync::mpsc::UnboundedSender<Progress>>,
    work: impl FnOnce(&super::Services, &str, &mut dyn FnMut(Progress)) -> Result<Value>
    + Send
    + 'static,
) -> Result<(Job, tokio::task::JoinHandle<Result<Job>>)> {
    use std::time::{Duration, Instant};
    let job = services.jobs.start(kind, started_by, params)?;
    let services = services.clone();
    let job_id = job.job_id.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let mut last_saved = Instant::now() - Duration::from_secs(1);
        let mut last_step = String::new();
        let mut report = |p: Progress| {
            let step_ends = p.done >= p.total;
            if p.step != last_step
                || step_ends
                || last_saved.elapsed() >= Duration::from_millis(250)
            {
                last_step.clone_from(&p.step);
                last_saved = Instant::now();
                let _ = services.jobs.progress(&job_id, p.clone());
            }
            if let Some(watch) = &watch {
                let _ = watch.send(p);
            }
        };
        let outcome = work(&services, &job_id, &mut report).map_err(|e| e.message.clone());
        if let Err(e) = &outcome {
            tracing::warn!("background job {job_id} failed: {e}");
        }
        services.jobs.finish(&job_id, outcome)?;
        services
            .jobs
            .get(&job_id)?
            .ok_or_else(|| Error::internal("the job record vanished"))
    });
    Ok((job, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_finish_and_are_interrupted_by_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            crate::storage::Db::new(
                crate::storage::rocks::RocksEngine::open(dir.path(), MAPS, 8, 8, false).unwrap(),
            )
        };
        let (done_id, left_id) = {
            let jobs = Jobs::open(open(), &[]).unwrap();
            let done = jobs.start("backup", "@a:x", None).unwrap();
            let left = jobs.start("backup", "@a:x", None).unwrap();
            jobs.progress(
                &done.job_id,
                Progress {
                    step: "media".into(),
                    done: 3,
                    total: 4,
                },
            )
            .unwrap();
            jobs.finish(&done.job_id, Ok(serde_json::json!({"backup_id": 1})))
                .unwrap();
            let listed: Vec<String> = jobs
                .list(10)
                .unwrap()
                .into_iter()
                .map(|j| j.job_id)
                .collect();
            assert_eq!(listed, vec![left.job_id.clone(), done.job_id.clone()]);
            (done.job_id, left.job_id)
        };
        let jobs = Jobs::open(open(), &[]).unwrap();
        let done = jobs.get(&done_id).unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Complete);
        assert_eq!(done.progress.done, 3);
        let left = jobs.get(&left_id).unwrap().unwrap();
        assert_eq!(left.status, JobStatus::Failed);
        assert!(left.error.unwrap().contains("interrupted"));
    }
}
