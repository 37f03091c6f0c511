//! A growing delay after failed logins, per account (the user id login resolves: case-folded,
//! whatever the identifier's spelling). After `rate_limits.login_failures_before_delay` failures,
//! the next attempt must wait `rate_limits.login_failure_delay_ms`, doubling with each further
//! failure up to [`WINDOW`]; until then it is answered 429 `M_LIMIT_EXCEEDED` with the wait in
//! `retry_after_ms`, before any password is verified. A success, or [`WINDOW`] without a
//! failure, starts over. At most [`CAP`] accounts are tracked (the oldest entry makes room).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ruma::{OwnedUserId, UserId};

use crate::{
    config::RateLimitConfig,
    error::{Error, Result},
};

/// Failures older than this (counted from the last one) are forgotten; also the longest delay.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Accounts tracked at once.
pub const CAP: usize = 100_000;

pub struct LoginFailures {
    enabled: bool,
    free: u32,
    base: Duration,
    /// account → (failures, time of the last one).
    failures: Mutex<HashMap<OwnedUserId, (u32, Instant)>>,
}

impl LoginFailures {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            enabled: config.enabled && config.login_failures_before_delay > 0,
            free: config.login_failures_before_delay,
            base: Duration::from_millis(config.login_failure_delay_ms),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The wait after `failures` failures (none below the free ones).
    fn delay(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(20);
        self.base.saturating_mul(1 << doublings).min(WINDOW)
    }

    /// Ok when `user` may try a password now; else 429 with the wait.
    pub fn check(&self, user: &UserId) -> Result<()> {
        self.check_at(user, Instant::now())
    }

    fn check_at(&self, user: &UserId, now: Instant) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&(count, last)) = failures.get(user) else {
            return Ok(());
        };
        let since = now.saturating_duration_since(last);
        let wait = self.delay(count);
        if since >= WINDOW || since >= wait {
            return Ok(());
        }
        Err(Error::limit_exceeded(
            (wait - since).as_millis().max(1) as u64
        ))
    }

    /// Records a failed attempt of `user`.
    pub fn failed(&self, user: &UserId) {
        self.failed_at(user, Instant::now());
    }

    fn failed_at(&self, user: &UserId, now: Instant) {
        if !self.enabled {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= CAP && !failures.contains_key(user) {
            failures.retain(|_, (_, last)| now.saturating_duration_since(*last) < WINDOW);
            if failures.len() >= CAP
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(u, _)| u.clone())
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(user.to_owned()).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= WINDOW {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = now;
    }

    /// A successful login of `user` starts over.
    pub fn succeeded(&self, user: &UserId) {
        if self.enabled {
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> LoginFailures {
        let mut config = RateLimitConfig::default();
        config.login_failures_before_delay = 3;
        config.login_failure_delay_ms = 1000;
        LoginFailures::new(&config)
    }

    #[test]
    fn delay_grows_after_the_free_failures_and_success_resets() {
        let guard = guard();
        let user: OwnedUserId = "@alice:example.org".try_into().unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            guard.check_at(&user, t0).unwrap();
            guard.failed_at(&user, t0 + Duration::from_millis(i));
        }
        let last = t0 + Duration::from_millis(2);
        let wait = guard.check_at(&user, last).unwrap_err();
        assert_eq!(wait.errcode, "M_LIMIT_EXCEEDED");
        assert_eq!(wait.extra["retry_after_ms"].as_u64(), Some(1000));
        // After the wait, one more try; it fails: the next wait is twice as long.
        let later = last + Duration::from_millis(1000);
        guard.check_at(&user, later).unwrap();
        guard.failed_at(&user, later);
        assert_eq!(
            guard.check_at(&user, later).unwrap_err().extra["retry_after_ms"].as_u64(),
            Some(2000)
        );
        // Other accounts are not affected; a success starts over.
        let bob: OwnedUserId = "@bob:example.org".try_into().unwrap();
        guard.check_at(&bob, later).unwrap();
        guard.succeeded(&user);
        guard.check_at(&user, later).unwrap();
    }

    #[test]
    fn failures_are_forgotten_after_the_window() {
        let guard = guard();
        let user: OwnedUserId = "@alice:example.org".try_into().unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            guard.failed_at(&user, t0);
        }
        assert!(guard.check_at(&user, t0 + Duration::from_secs(60)).is_err());
        guard.check_at(&user, t0 + WINDOW).unwrap();
        guard.failed_at(&user, t0 + WINDOW);
        guard.check_at(&user, t0 + WINDOW).unwrap();
    }
}
