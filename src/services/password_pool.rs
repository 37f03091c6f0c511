//! Password hashing and verification (Argon2id) on a few dedicated threads with a small bounded
//! queue. A hash costs tens of milliseconds of CPU and 7 MiB: a login or registration flood must
//! not occupy tokio's blocking pool (where every database call runs, `Services::run`) nor grow
//! memory without bound. When the threads are busy and the queue is full, the request is refused
//! at once with 429 `M_LIMIT_EXCEEDED` and a `retry_after_ms`, instead of waiting.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    time::Instant,
};

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

pub struct PasswordPool {
    jobs: SyncSender<Job>,
    slots: usize,
    threads: usize,
    /// Moving average of one hash's duration, in ms (for `retry_after_ms`).
    average_ms: Arc<AtomicU64>,
}

/// Argon2id with 7 MiB and 5 passes (one of OWASP's recommended settings): a hash costs tens of
/// milliseconds, and its memory is small enough to run a few at once.
fn argon2() -> Argon2<'static> {
    let params = argon2::Params::new(7 * 1024, 5, 1, None).expect("valid Argon2 parameters");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hashes on the calling thread (the pool's threads, the `make-admin` command and tests).
pub fn hash_now(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("password hashing: {e}")))
}

/// Verifies on the calling thread; the hash names its own parameters.
pub fn verify_now(password: &str, hash: &str) -> Result<bool> {
    let parsed = PasswordHash::new(hash).map_err(|_| Error::internal("corrupt password hash"))?;
    Ok(argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

impl PasswordPool {
    /// `threads` workers (at least 1) and room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let average_ms = Arc::new(AtomicU64::new(50));
        for i in 0..threads {
            let receiver = receiver.clone();
            // The threads end when the pool (the only sender) is dropped.
            std::thread::Builder::new()
                .name(format!("parvis-password-{i}"))
                .spawn(move || work(&receiver))
                .expect("password hashing thread");
        }
        Self {
            jobs,
            slots: threads + queue,
            threads,
            average_ms,
        }
    }

    /// Queues `f` for a pool thread (429 when full); the future waits for it without holding any
    /// tokio thread. `f` may read the database (a pool thread is not an async worker).
    pub fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<impl Future<Output = Result<R>> + Send + 'static> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, tx)?;
        Ok(async move {
            rx.await
                .map_err(|_| Error::internal("password hashing failed"))
        })
    }

    /// Runs `f` on a pool thread and blocks the calling (blocking-pool) thread until it is done:
    /// for trusted callers only (the admin API); the wait is bounded by the pool's size.
    fn run_blocking<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(f, tx)?;
        rx.blocking_recv()
            .map_err(|_| Error::internal("password hashing failed"))
    }

    fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
        tx: tokio::sync::oneshot::Sender<R>,
    ) -> Result<()> {
        let average = self.average_ms.clone();
        let job: Job = Box::new(move || {
            let started = Instant::now();
            let result = f();
            let took = started.elapsed().as_millis() as u64;
            let before = average.load(Ordering::Relaxed);
            average.store((before * 7 + took) / 8, Ordering::Relaxed);
            let _ = tx.send(result);
        });
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::limit_exceeded(self.retry_after_ms())),
            Err(TrySendError::Disconnected(_)) => Err(Error::internal("password hashing stopped")),
        }
    }

    /// How long the work queued now takes to drain, roughly.
    fn retry_after_ms(&self) -> u64 {
        let per_job = self.average_ms.load(Ordering::Relaxed).max(1);
        (per_job * self.slots as u64 / self.threads as u64).max(100)
    }

    /// A new Argon2id hash of `password` (429 when the pool is full).
    pub async fn hash(&self, password: String) -> Result<String> {
        self.run(move || hash_now(&password))?.await?
    }

    /// Whether `password` matches `hash` (429 when the pool is full).
    pub async fn verify(&self, password: String, hash: String) -> Result<bool> {
        self.run(move || verify_now(&password, &hash))?.await?
    }

    /// [`Self::hash`] from a blocking-pool thread (admin API paths).
    pub fn hash_blocking(&self, password: &str) -> Result<String> {
        let password = password.to_owned();
        self.run_blocking(move || hash_now(&password))?
    }
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        // One thread waits in `recv` at a time; the others wait for the lock.
        let job = match receiver.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_a_full_pool_answers_429() {
        let pool = PasswordPool::new(1, 1);
        let hash = pool.hash("secret".into()).await.unwrap();
        assert!(pool.verify("secret".into(), hash.clone()).await.unwrap());
        assert!(!pool.verify("wrong".into(), hash.clone()).await.unwrap());
        // Block the only thread, fill the one queue slot: the next job is refused at once.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let blocker = pool
            .run(move || {
                started_tx.send(()).unwrap();
                wait.recv().unwrap();
            })
            .unwrap();
        started.recv().unwrap();
        let queued = pool.run(|| 1).unwrap();
        let refused = pool.hash("x".into()).await.unwrap_err();
        assert_eq!(refused.errcode, "M_LIMIT_EXCEEDED");
        assert_eq!(refused.status.as_u16(), 429);
        assert!(refused.extra["retry_after_ms"].as_u64().unwrap() >= 100);
        release.send(()).unwrap();
        blocker.await.unwrap();
        assert_eq!(queued.await.unwrap(), 1);
    }
}
