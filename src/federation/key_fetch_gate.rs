//! How often other servers' keys are fetched: one fetch of a server at a time (callers that need
//! its keys meanwhile wait for that fetch and take its result), and after a fetch, success or
//! failure, none for `federation.key_fetch_interval_secs`: a request or event naming an unknown
//! key id, a notary query or `minimum_valid_until_ts` cannot make us ask a server again and again.
//! The per-server records are bounded ([`MAX_SERVERS`]), and at most
//! [`MAX_CONCURRENT_FETCHES`] fetches run at once, whatever the number of server names peers
//! make us ask (others wait for a turn).

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ruma::{OwnedServerName, ServerName};

/// Servers whose last fetch is remembered; beyond, records not in use are dropped (the oldest
/// first).
pub const MAX_SERVERS: usize = 10_000;
/// Fetches (of different servers) running at once.
pub const MAX_CONCURRENT_FETCHES: usize = 32;

/// What happened to a request for a fetch.
#[derive(Debug)]
pub enum Gated<T> {
    /// This caller fetched.
    Ran(T),
    /// A fetch ran recently (or finished while this caller waited): none was made; `ok` tells
    /// whether that one succeeded.
    Skipped { ok: bool },
}

#[derive(Default)]
struct Slot {
    /// Fetches finished on this slot.
    generation: AtomicU64,
    /// When the last fetch finished, and whether it succeeded.
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
    /// The same time, readable without waiting (for eviction).
    last_at: Mutex<Option<Instant>>,
}

pub struct KeyFetchGate {
    interval: Duration,
    slots: Mutex<HashMap<OwnedServerName, Arc<Slot>>>,
    started: AtomicU64,
    running: tokio::sync::Semaphore,
}

impl KeyFetchGate {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            slots: Mutex::new(HashMap::new()),
            started: AtomicU64::new(0),
            running: tokio::sync::Semaphore::new(MAX_CONCURRENT_FETCHES),
        }
    }

    /// How many fetches have been started (for tests and metrics).
    pub fn fetches_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Servers with a record.
    pub fn servers_remembered(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn slot(&self, server: &ServerName) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(server) {
            return slot.clone();
        }
        if slots.len() >= MAX_SERVERS {
            self.evict(&mut slots);
        }
        slots.entry(server.to_owned()).or_default().clone()
    }

    /// Drops records not in use: first those whose interval has passed, then the oldest others,
    /// down to 7/8 of the cap.
    fn evict(&self, slots: &mut HashMap<OwnedServerName, Arc<Slot>>) {
        let last_at = |slot: &Slot| *slot.last_at.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|_, slot| {
            Arc::strong_count(slot) > 1
                || last_at(slot).is_some_and(|at| at.elapsed() < self.interval)
        });
        let target = MAX_SERVERS - MAX_SERVERS / 8;
        if slots.len() > target {
            let mut idle: Vec<(Option<Instant>, OwnedServerName)> = slots
                .iter()
                .filter(|(_, slot)| Arc::strong_count(slot) == 1)
                .map(|(name, slot)| (last_at(slot), name.clone()))
                .collect();
            idle.sort();
            for (_, name) in idle.into_iter().take(slots.len() - target) {
                slots.remove(&name);
            }
        }
    }

    /// Runs `fetch` for `server` unless a fetch of it finished less than the interval ago or
    /// while this caller waited for a running one.
    pub async fn run<T, E, Fut>(
        &self,
        server: &ServerName,
        fetch: impl FnOnce() -> Fut,
    ) -> Gated<Result<T, E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let slot = self.slot(server);
        let seen = slot.generation.load(Ordering::SeqCst);
        let mut last = slot.last.lock().await;
        if let Some((at, ok)) = *last
            && (slot.generation.load(Ordering::SeqCst) != seen || at.elapsed() < self.interval)
        {
            return Gated::Skipped { ok };
        }
        let _turn = self.running.acquire().await.ok();
        self.started.fetch_add(1, Ordering::Relaxed);
        let result = fetch().await;
        let now = Instant::now();
        *last = Some((now, result.is_ok()));
        *slot.last_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        slot.generation.fetch_add(1, Ordering::SeqCst);
        Gated::Ran(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: usize) -> OwnedServerName {
        format!("s{i}.example").try_into().unwrap()
    }

    #[tokio::test]
    async fn one_fetch_per_interval_and_waiters_share_it() {
        let gate = Arc::new(KeyFetchGate::new(Duration::from_secs(3600)));
        let server = name(0);
        // Ten callers at once: one fetch, the others wait and take its result.
        let (release, released) = tokio::sync::watch::channel(false);
        let callers: Vec<_> = (0..10)
            .map(|_| {
                let (gate, server, mut released) = (gate.clone(), server.clone(), released.clone());
                tokio::spawn(async move {
                    gate.run(&server, || async move {
                        let _ = released.wait_for(|r| *r).await;
                        Ok::<_, ()>(7)
                    })
                    .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        let mut ran = 0;
        for caller in callers {
            match caller.await.unwrap() {
                Gated::Ran(Ok(7)) => ran += 1,
                Gated::Skipped { ok: true } => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ran, 1);
        assert_eq!(gate.fetches_started(), 1);
        // Later, within the interval: nothing fetched.
        assert!(matches!(
            gate.run(&server, || async { Ok::<_, ()>(8) }).await,
            Gated::Skipped { ok: true }
        ));
        // Another server has its own record.
        assert!(matches!(
            gate.run(&name(1), || async { Ok::<_, ()>(9) }).await,
            Gated::Ran(Ok(9))
        ));
        assert_eq!(gate.fetches_started(), 2);
    }

    #[tokio::test]
    async fn failures_are_remembered_and_the_interval_ends() {
        let gate = KeyFetchGate::new(Duration::from_millis(0));
        let server = name(0);
        assert!(matches!(
            gate.run(&server, || async { Err::<(), _>("down") }).await,
            Gated::Ran(Err("down"))
        ));
        // With no interval, the next caller fetches again.
        assert!(matches!(
            gate.run(&server, || async { Ok::<_, ()>(()) }).await,
            Gated::Ran(Ok(()))
        ));
        let gate = KeyFetchGate::new(Duration::from_secs(3600));
        assert!(matches!(
            gate.run(&server, || async { Err::<(), _>("down") }).await,
            Gated::Ran(Err(_))
        ));
        assert!(matches!(
            gate.run(&server, || async { Ok::<_, ()>(()) }).await,
            Gated::Skipped { ok: false }
        ));
    }

    #[tokio::test]
    async fn fetches_of_many_servers_run_a_bounded_number_at_once() {
        let gate = Arc::new(KeyFetchGate::new(Duration::from_secs(3600)));
        let (running, most) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let fetches: Vec<_> = (0..MAX_CONCURRENT_FETCHES + 20)
            .map(|i| {
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    gate.run(&name(i), || async move {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, ()>(())
                    })
                    .await
                })
            })
            .collect();
        for fetch in fetches {
            assert!(matches!(fetch.await.unwrap(), Gated::Ran(Ok(()))));
        }
        assert!(
            most.load(Ordering::SeqCst) <= MAX_CONCURRENT_FETCHES as u64,
            "{most:?}"
        );
        assert_eq!(gate.fetches_started(), (MAX_CONCURRENT_FETCHES + 20) as u64);
    }

    #[tokio::test]
    async fn records_are_bounded() {
        let gate = KeyFetchGate::new(Duration::from_secs(3600));
        for i in 0..MAX_SERVERS + 100 {
            let _ = gate.run(&name(i), || async { Ok::<_, ()>(()) }).await;
        }
        assert!(
            gate.servers_remembered() <= MAX_SERVERS,
            "{}",
            gate.servers_remembered()
        );
        // The newest records are kept.
        assert!(matches!(
            gate.run(&name(MAX_SERVERS + 99), || async { Ok::<_, ()>(()) })
                .await,
            Gated::Skipped { .. }
        ));
    }
}
