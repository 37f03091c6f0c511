//! Token-bucket rate limits per user (or per client address before login).

use std::{collections::HashMap, sync::Mutex, time::Instant};

use crate::{config::RateLimitConfig, error::Error};

pub struct RateLimiter {
    enabled: bool,
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            enabled: config.enabled,
            per_second: config.per_second,
            burst: config.burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `who`'s bucket, or answers M_LIMIT_EXCEEDED with the wait.
    pub fn check(&self, who: &str) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 60);
        }
        let (tokens, at) = buckets.entry(who.to_owned()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - *tokens) / self.per_second * 1000.0).ceil() as u64;
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
