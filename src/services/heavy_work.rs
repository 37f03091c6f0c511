//! A bound on the heavy work other servers can cause (state resolution, auth chains of `/state`,
//! `/state_ids`, `/event_auth` and `send_join` answers): at most `limits.heavy_work_threads` run at
//! once, whatever the number of peers asking. They run on the blocking pool like every database
//! call; the bound keeps CPU for the rest (a client's send and /sync never wait for a permit).
//!
//! Callers on the async side are admitted first (`admit`, by `Services::run_heavy`), so at most
//! `max` of them occupy a blocking thread; the permit inside (`enter`) bounds the other callers.
//! A thread that holds a permit and enters again (state resolution walks auth chains) does not
//! take a second one, so nesting cannot deadlock.

use std::{
    cell::Cell,
    sync::{Condvar, Mutex},
};

pub struct HeavyWork {
    admissions: tokio::sync::Semaphore,
    running: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

thread_local! {
    /// Permits held by this thread (0 or 1, more when nested).
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// Held while heavy work runs; the permit is given back when it is dropped.
pub struct Permit<'a> {
    gate: &'a HeavyWork,
    /// This thread took the permit (false when it already held one).
    took: bool,
}

impl HeavyWork {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            admissions: tokio::sync::Semaphore::new(max),
            running: Mutex::new(0),
            freed: Condvar::new(),
            max,
        }
    }

    /// Waits, without holding a thread, until fewer than `max` admitted jobs run.
    pub async fn admit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.admissions.acquire().await.ok()
    }

    /// Waits until fewer than `max` heavy jobs run (at once when this thread holds a permit).
    pub fn enter(&self) -> Permit<'_> {
        if HELD.get() > 0 {
            HELD.set(HELD.get() + 1);
            return Permit {
                gate: self,
                took: false,
            };
        }
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= self.max {
            running = self.freed.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        HELD.set(1);
        Permit {
            gate: self,
            took: true,
        }
    }

    /// Heavy jobs running now.
    pub fn running(&self) -> usize {
        *self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        HELD.set(HELD.get().saturating_sub(1));
        if self.took {
            let mut running = self.gate.running.lock().unwrap_or_else(|e| e.into_inner());
            *running -= 1;
            self.gate.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use super::HeavyWork;

    #[test]
    fn never_more_than_max_at_once_and_nesting_takes_no_second_permit() {
        let gate = Arc::new(HeavyWork::new(2));
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, now, most) = (gate.clone(), now.clone(), most.clone());
                std::thread::spawn(move || {
                    let _outer = gate.enter();
                    // Nested: must not wait for a permit this thread already holds.
                    let _inner = gate.enter();
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(running, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at once, never more");
        assert_eq!(gate.running(), 0, "every permit given back");
    }
}
