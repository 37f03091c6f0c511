//! Token-bucket rate limits per user (or per client address before login), with per-user
//! overrides an admin sets (Synapse's `override_ratelimit`; 0 per second: unlimited).

use std::{
    collections::HashMap,
    sync::{Mutex, RwLock},
    time::Instant,
};

use serde::{Deserialize, Serialize};

use crate::{
    config::RateLimitConfig,
    error::Error,
    storage::{Db, Map},
};

/// user id → [`Override`] JSON.
pub const OVERRIDES: Map = Map("ratelimit_overrides");

/// A user's own limits: `messages_per_second` (0: unlimited) and `burst_count`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub messages_per_second: u64,
    pub burst_count: u64,
}

pub struct RateLimiter {
    enabled: bool,
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// Few (each set by an admin): kept in memory, loaded at start.
    overrides: RwLock<HashMap<String, Override>>,
}

impl RateLimiter {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            enabled: config.enabled,
            per_second: config.per_second,
            burst: config.burst,
            buckets: Mutex::new(HashMap::new()),
            overrides: RwLock::default(),
        }
    }

    /// Reads the overrides stored by admins (at start).
    pub fn load_overrides(&self, db: &Db) -> crate::storage::Result<()> {
        let mut overrides = self.overrides.write().unwrap_or_else(|e| e.into_inner());
        for entry in db.scan_prefix(OVERRIDES, &[]) {
            let (key, value) = entry?;
            let limits: Override = crate::storage::db::decode_json(OVERRIDES, &value)?;
            overrides.insert(String::from_utf8_lossy(&key).into_owned(), limits);
        }
        Ok(())
    }

    pub fn override_of(&self, user: &str) -> Option<Override> {
        self.overrides
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .copied()
    }

    /// Sets (or, with None, removes) a user's override, stored and in force at once.
    pub fn set_override(
        &self,
        db: &Db,
        user: &str,
        limits: Option<Override>,
    ) -> crate::storage::Result<()> {
        let mut overrides = self.overrides.write().unwrap_or_else(|e| e.into_inner());
        match limits {
            Some(limits) => {
                db.put(
                    OVERRIDES,
                    user.as_bytes(),
                    crate::storage::db::encode_json(&limits),
                )?;
                overrides.insert(user.to_owned(), limits);
            }
            None => {
                db.delete(OVERRIDES, user.as_bytes())?;
                overrides.remove(user);
            }
        }
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
        Ok(())
    }

    /// Takes one token from `who`'s bucket, or answers M_LIMIT_EXCEEDED with the wait.
    pub fn check(&self, who: &str) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        let (per_second, burst) = match self.override_of(who) {
            Some(o) if o.messages_per_second == 0 => return Ok(()),
            Some(o) => (
                o.messages_per_second as f64,
                (o.burst_count as f64).max(1.0),
            ),
            None => (self.per_second, self.burst),
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 60);
        }
        let (tokens, at) = buckets.entry(who.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - *tokens) / per_second * 1000.0).ceil() as u64;
            Err(Error::limit_exceeded(wait_ms))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_limits() {
        let limiter = RateLimiter::new(&RateLimitConfig {
            enabled: true,
            per_second: 1.0,
            burst: 3.0,
            ..Default::default()
        });
        for _ in 0..3 {
            limiter.check("a").unwrap();
        }
        let err = limiter.check("a").unwrap_err();
        assert_eq!(err.errcode, "M_LIMIT_EXCEEDED");
        assert!(err.extra["retry_after_ms"].as_u64().unwrap() > 0);
        limiter.check("b").unwrap();
    }
}
